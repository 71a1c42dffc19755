-- wrk script for bench/soak/soak.sh.
--   verify <keys-file> <delay-ms>   POST apiKeys:verify with a random key, pausing <delay-ms> per request
--                                   on average (fractional: wrk sleeps whole ms, so 0.2 = 1 ms every 5th)
--   admin <delay-ms>                mixed admin traffic: issue, list, revoke of what it issued
local mode, keys, nkeys, pause
local owed = 0
local issued = {}
local step = 0
local json = { ["Content-Type"] = "application/json" }

function setup(thread) thread:set("tid", math.random(1, 1000000000)) end

function init(args)
  mode = args[1]
  math.randomseed(os.time() + (tid or 0))
  if mode == "verify" then
    keys, nkeys = {}, 0
    for line in io.lines(args[2]) do
      if line ~= "" then nkeys = nkeys + 1; keys[nkeys] = line end
    end
    pause = tonumber(args[3])
  else
    pause = tonumber(args[2])
  end
end

function delay()
  owed = owed + pause
  if owed >= 1 then
    local whole = math.floor(owed)
    owed = owed - whole
    return whole
  end
  return 0
end

function request()
  if mode == "verify" then
    return wrk.format("POST", "/v2alpha1/admin/apiKeys:verify", json,
      '{"credential":"' .. keys[math.random(1, nkeys)] .. '"}')
  end
  step = step + 1
  local r = step % 3
  if r == 1 then
    return wrk.format("POST", "/v2alpha1/admin/issuedApiKeys", json,
      '{"name":"soak","actor_id":"soak-' .. math.random(0, 99) .. '","scopes":["read"]}')
  elseif r == 2 then
    return wrk.format("GET", "/v2alpha1/admin/issuedApiKeys?page_size=50&filter=actor_id%3D%22soak-" .. math.random(0, 99) .. "%22")
  else
    local id = table.remove(issued)
    if id == nil then
      return wrk.format("GET", "/health/alive")
    end
    return wrk.format("POST", "/v2alpha1/admin/issuedApiKeys/" .. id .. ":revoke", json, "{}")
  end
end

function response(status, headers, body)
  if mode == "admin" then
    local id = string.match(body, '"issued_api_key":{"key_id":"([0-9a-f%-]+)"')
    if id ~= nil then table.insert(issued, id) end
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT requests=%d duration_us=%d p50=%d p99=%d p999=%d errors=%d non2xx=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency:percentile(99.9), e.connect + e.read + e.write + e.timeout, e.status))
end
