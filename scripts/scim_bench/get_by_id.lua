-- GET /Users/{id} for ids read from SCIM_IDS (one per line), picked at random.
local ids = {}
function init(args)
  for line in io.lines(os.getenv("SCIM_IDS")) do ids[#ids + 1] = line end
  wrk.headers["Authorization"] = "Bearer " .. os.getenv("SCIM_TOKEN")
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 1000)
end
function request()
  return wrk.format("GET", "/scim/v2/Users/" .. ids[math.random(#ids)])
end
local bad = 0
function response(status) if status ~= 200 then bad = bad + 1; if bad == 1 then print("unexpected status " .. status) end end end
