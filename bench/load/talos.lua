-- wrk script for bench/load/run.sh. Modes (after `--`):
--   verify <file>                 POST apiKeys:verify, a random line of <file> per request
--   batch <file> <k>              POST apiKeys:batchVerify with <k> random lines
--   issue                         POST issuedApiKeys
--   import <k>                    POST importedApiKeys:batchCreate with <k> fresh raw keys
--   list <query>                  GET issuedApiKeys?<query>
-- done() prints one machine-readable RESULT line. No response() here: defining
-- it makes wrk hand every response to Lua (warm.lua has one).

local mode, keys, nkeys, k, query
local seq = 0
local json_headers = { ["Content-Type"] = "application/json" }

local function load(file, limit)
  local t, n = {}, 0
  for line in io.lines(file) do
    if line ~= "" then
      n = n + 1
      t[n] = line
      if limit and n >= limit then break end
    end
  end
  return t, n
end

function setup(thread)
  thread:set("tid", math.random(1, 1000000000))
end

function init(args)
  mode = args[1]
  math.randomseed(os.time() + (tid or 0))
  if mode == "verify" then
    keys, nkeys = load(args[2])
  elseif mode == "batch" then
    keys, nkeys = load(args[2])
    k = tonumber(args[3])
  elseif mode == "import" then
    k = tonumber(args[2])
  elseif mode == "list" then
    query = args[2] or ""
  end
end

local function cred(c)
  return '{"credential":"' .. c .. '"}'
end

local function batch_body(pick)
  local parts = {}
  for i = 1, k do parts[i] = cred(pick()) end
  return '{"requests":[' .. table.concat(parts, ",") .. ']}'
end

local function random_key() return keys[math.random(1, nkeys)] end

function request()
  if mode == "verify" then
    return wrk.format("POST", "/v2alpha1/admin/apiKeys:verify", json_headers, cred(random_key()))
  elseif mode == "batch" then
    return wrk.format("POST", "/v2alpha1/admin/apiKeys:batchVerify", json_headers, batch_body(random_key))
  elseif mode == "issue" then
    return wrk.format("POST", "/v2alpha1/admin/issuedApiKeys", json_headers,
      '{"name":"bench","actor_id":"user-' .. math.random(0, 999) .. '","scopes":["read"]}')
  elseif mode == "import" then
    seq = seq + 1
    local parts = {}
    local stamp = tostring(tid) .. "_" .. seq .. "_" .. math.random(1, 1000000000)
    for i = 1, k do
      parts[i] = '{"raw_key":"legacy_' .. stamp .. '_' .. i .. '","name":"imported","actor_id":"user-' .. (i % 1000) .. '"}'
    end
    return wrk.format("POST", "/v2alpha1/admin/importedApiKeys:batchCreate", json_headers,
      '{"requests":[' .. table.concat(parts, ",") .. ']}')
  elseif mode == "list" then
    return wrk.format("GET", "/v2alpha1/admin/issuedApiKeys?" .. query)
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d rps=%.1f mean_us=%.1f p50_us=%d p90_us=%d p99_us=%d p999_us=%d max_us=%d status_errors=%d socket_errors=%d\n",
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, e.status, e.connect + e.read + e.write + e.timeout))
end
