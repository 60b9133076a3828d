-- GET /Users?filter=userName eq "..." for userNames read from SCIM_NAMES, picked at random.
local names = {}
function init(args)
  for line in io.lines(os.getenv("SCIM_NAMES")) do names[#names + 1] = line end
  wrk.headers["Authorization"] = "Bearer " .. os.getenv("SCIM_TOKEN")
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 1000)
end
function request()
  local n = names[math.random(#names)]
  return wrk.format("GET", "/scim/v2/Users?filter=userName%20eq%20%22" .. n .. "%22")
end
local bad = 0
function response(status, headers, body)
  if status ~= 200 or not body:find('"totalResults":1', 1, true) then
    bad = bad + 1
    if bad == 1 then print("unexpected answer " .. status .. " " .. body:sub(1, 200)) end
  end
end
