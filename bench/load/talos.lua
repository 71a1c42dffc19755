-- wrk script for bench/load/run.sh. Modes (after `--`):
--   verify <file>                 POST apiKeys:verify, the lines of <file> in a random order
--   batch <file> <k>              POST apiKeys:batchVerify, <k> lines each, in a random order
--   issue                         POST issuedApiKeys
--   import <k>                    POST importedApiKeys:batchCreate with <k> fresh raw keys
--   list <query>                  GET issuedApiKeys?<query>
-- done() prints one machine-readable RESULT line. No response() here: defining
-- it makes wrk hand every response to Lua (warm.lua has one).

-- Every request a run can send is built in init(), and request() returns one
-- of them without allocating; the collector is then stopped. Why: with the
-- credentials in a 1M-entry table and a fresh body string per request,
-- LuaJIT's collector ran every few seconds and marked that table in one
-- step, touching a million strings: wrk stopped reading for ~100 ms each
-- time, and those stalls, not the servers, set the p99 of every
-- 32-connection run (bench/RESULTS.md, evening round of 2026-12-01).
-- Verify mode walks a random permutation of the file, so a run of fewer
-- requests than keys asks for each key at most once, in random order.

local mode, reqs, nreqs, k, tid_seq
local at = 0
local json_headers = { ["Content-Type"] = "application/json" }
local BATCHES = 10000 -- distinct batch bodies, each k credentials
local ISSUE_ACTORS = 1000

local function load(file)
  local t, n = {}, 0
  for line in io.lines(file) do
    if line ~= "" then
      n = n + 1
      t[n] = line
    end
  end
  assert(n > 0, "no credentials in " .. file)
  return t, n
end

local function shuffle(t, n)
  for i = n, 2, -1 do
    local j = math.random(1, i)
    t[i], t[j] = t[j], t[i]
  end
end

local function cred(c)
  return '{"credential":"' .. c .. '"}'
end

function setup(thread)
  thread:set("tid", math.random(1, 1000000000))
end

function init(args)
  mode = args[1]
  math.randomseed(os.time() + (tid or 0))
  reqs, nreqs = {}, 0
  local function add(r)
    nreqs = nreqs + 1
    reqs[nreqs] = r
  end
  if mode == "verify" then
    local keys, n = load(args[2])
    shuffle(keys, n)
    for i = 1, n do
      add(wrk.format("POST", "/v2alpha1/admin/apiKeys:verify", json_headers, cred(keys[i])))
      keys[i] = nil
    end
  elseif mode == "batch" then
    local keys, n = load(args[2])
    k = tonumber(args[3])
    shuffle(keys, n)
    local next_key = 0
    for _ = 1, BATCHES do
      local parts = {}
      for i = 1, k do
        next_key = next_key % n + 1
        parts[i] = cred(keys[next_key])
      end
      add(wrk.format("POST", "/v2alpha1/admin/apiKeys:batchVerify", json_headers,
        '{"requests":[' .. table.concat(parts, ",") .. ']}'))
    end
  elseif mode == "issue" then
    for a = 0, ISSUE_ACTORS - 1 do
      add(wrk.format("POST", "/v2alpha1/admin/issuedApiKeys", json_headers,
        '{"name":"bench","actor_id":"user-' .. a .. '","scopes":["read"]}'))
    end
    shuffle(reqs, nreqs)
  elseif mode == "import" then
    -- Fresh raw keys every request, so these are built per request; at a
    -- dozen requests a second the collector's work is negligible.
    k = tonumber(args[2])
    tid_seq = 0
  elseif mode == "list" then
    add(wrk.format("GET", "/v2alpha1/admin/issuedApiKeys?" .. (args[2] or "")))
  else
    error("unknown mode " .. tostring(mode))
  end
  collectgarbage("collect")
  if mode ~= "import" then
    collectgarbage("stop")
  end
end

local function import_request()
  tid_seq = tid_seq + 1
  local parts = {}
  local stamp = tostring(tid) .. "_" .. tid_seq .. "_" .. math.random(1, 1000000000)
  for i = 1, k do
    parts[i] = '{"raw_key":"legacy_' .. stamp .. '_' .. i .. '","name":"imported","actor_id":"user-' .. (i % 1000) .. '"}'
  end
  return wrk.format("POST", "/v2alpha1/admin/importedApiKeys:batchCreate", json_headers,
    '{"requests":[' .. table.concat(parts, ",") .. ']}')
end

function request()
  if nreqs == 0 then
    return import_request()
  end
  at = at % nreqs + 1
  return reqs[at]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d rps=%.1f mean_us=%.1f p50_us=%d p90_us=%d p99_us=%d p999_us=%d max_us=%d status_errors=%d socket_errors=%d\n",
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, e.status, e.connect + e.read + e.write + e.timeout))
end
