-- wrk script for bench/soak/soak.sh.
--   verify <keys-file> <rate>   POST apiKeys:verify with a random key; <rate> req/s per wrk thread
--                               (0 = as fast as possible). Paced by a schedule on the monotonic
--                               clock: request n of a thread is due at start + n/rate, so the
--                               offered rate holds whatever the server's latency (open loop as
--                               far as the thread's connections allow).
--   admin <delay-ms>            mixed admin traffic: issue, list, revoke of what it issued
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } talos_timespec;
int clock_gettime(int clk_id, talos_timespec *tp);
]]
local ts = ffi.new("talos_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

local mode, keys, nkeys, pause
local rate, interval, next_due = 0, 0, nil
local issued = {}
local step = 0
local json = { ["Content-Type"] = "application/json" }

function setup(thread) thread:set("tid", math.random(1, 1000000000)) end

function init(args)
  mode = args[1]
  math.randomseed(os.time() + (tid or 0))
  if mode == "verify" then
    -- Every request is built here, so a request allocates nothing and
    -- LuaJIT's collector has next to no reason to run and mark the table
    -- (bench/RESULTS.md, evening round: ~100 ms stalls with 1M strings).
    keys, nkeys = {}, 0
    for line in io.lines(args[2]) do
      if line ~= "" then
        nkeys = nkeys + 1
        keys[nkeys] = wrk.format("POST", "/v2alpha1/admin/apiKeys:verify", json,
          '{"credential":"' .. line .. '"}')
      end
    end
    -- Nor hand responses to Lua (wrk asks whether `response` is a function
    -- after init): each would be a string of garbage.
    response = nil
    rate = tonumber(args[3]) or 0
    if rate > 0 then interval = 1000 / rate end
    collectgarbage("collect")
    -- Unpaced, nothing allocates at all. Paced, delay() reads the clock
    -- through the FFI, which may box a few bytes per request: over a
    -- 10-minute soak too much to never collect, so the collector stays on.
    if rate == 0 then collectgarbage("stop") end
  else
    pause = tonumber(args[2])
  end
end

function delay()
  if mode == "verify" then
    if interval == 0 then return 0 end
    local now = now_ms()
    -- Never bank more than 50 ms of missed slots (no catch-up bursts).
    if next_due == nil or next_due < now - 50 then next_due = now end
    next_due = next_due + interval
    local wait = next_due - interval - now
    if wait <= 0 then return 0 end
    return math.ceil(wait)
  end
  return pause
end

function request()
  if mode == "verify" then
    return keys[math.random(1, nkeys)]
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
