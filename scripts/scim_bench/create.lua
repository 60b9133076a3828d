-- POST /Users with a fresh userName each time (SCIM_PREFIX, the thread and a counter).
local counter = 0
local threads = {}
local prefix = os.getenv("SCIM_PREFIX") or "u"

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/scim+json"
  wrk.headers["Authorization"] = "Bearer " .. os.getenv("SCIM_TOKEN")
end

function request()
  counter = counter + 1
  local name = string.format("%s%d-%d@bench.example.com", prefix, tid, counter)
  local body = '{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"' .. name ..
    '","name":{"givenName":"Bench","familyName":"User ' .. counter .. '"},"title":"Engineer",' ..
    '"emails":[{"value":"' .. name .. '","type":"work","primary":true}]}'
  return wrk.format(nil, "/scim/v2/Users", nil, body)
end

local failed = 0
function response(status, headers, body)
  if status ~= 201 then
    failed = failed + 1
    if failed == 1 then print("unexpected status " .. status .. " " .. body:sub(1, 200)) end
  end
end
