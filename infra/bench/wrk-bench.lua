-- Read by infra/bench/agent-load.py, which fills in {PERCENTILES}. POSTs the bodies of a file (one per
-- line) round robin; stops sending new requests after ACTIVE seconds so that
-- nothing is in flight when wrk stops. With RATE > 0, delay() paces the
-- thread's connections on one fixed schedule of RATE requests/s (each
-- connection that is free takes the next slot; a backlog of more than 100 ms
-- is dropped, so the achieved rate is lower when connections run out); RATE 0
-- sends as fast as the server answers. done() prints JSON.
--
-- A body may hold the marker FP_MARK in place of the first 8 hex digits of
-- each alert's fingerprint: every request then gets its own 8 hex digits
-- there (BASE + the number of requests this run sent), so no request repeats
-- an alert the agent has published already. The agent skips an alert whose
-- id (fingerprint and startsAt) SNS accepted in the last 5 minutes, as a
-- retry of the same notification, so round-robin copies of a few hundred
-- bodies would be answered without publishing anything. Bodies without the
-- marker are formatted once, up front.
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk, bench_timespec *ts);
]]
local ts = ffi.new("bench_timespec")
local function now()
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

local threads, count = {}, 0
function setup(thread)
  count = count + 1
  thread:set("id", count)
  table.insert(threads, thread)
end

local reqs, parts, headers, path, base, n, i, deadline, interval, next_t
local function split(line, mark)
  local out, pos = {}, 1
  while true do
    local s, e = string.find(line, mark, pos, true)
    if not s then out[#out + 1] = string.sub(line, pos); return out end
    out[#out + 1] = string.sub(line, pos, s - 1)
    pos = e + 1
  end
end

function init(args)
  headers = {["Content-Type"] = args[3]}
  if args[4] ~= "-" then headers["Authorization"] = args[4] end
  path = args[2]
  base = tonumber(args[7])
  reqs, parts = {}, {}
  local f = assert(io.open(args[1], "rb"))
  for line in f:lines() do
    if #line > 0 then
      local p = split(line, "FP_MARK")
      reqs[#reqs + 1] = #p == 1 and wrk.format("POST", path, headers, line) or false
      parts[#parts + 1] = p
    end
  end
  f:close()
  n = #reqs
  i = (id * 97) % n
  deadline = now() + tonumber(args[5])
  local rate = tonumber(args[6])
  interval = rate > 0 and 1 / rate or 0
  sent = 0
end

function request()
  i = i + 1
  if i > n then i = 1 end
  sent = sent + 1
  if reqs[i] then return reqs[i] end
  local tag = string.format("%08x", (base + sent) % 4294967296)
  return wrk.format("POST", path, headers, table.concat(parts[i], tag))
end

function delay()
  local t = now()
  if t >= deadline then return 100000000 end
  if interval <= 0 then return 0 end
  if next_t == nil or next_t < t - 0.1 then next_t = t end
  if next_t >= deadline then return 100000000 end
  local d = next_t - t
  next_t = next_t + interval
  if d <= 0 then return 0 end
  return math.floor(d * 1000 + 0.5)
end

function done(summary, latency, requests)
  -- wrk calls request() once before the run to count pipelined requests
  local total = -1
  for _, t in ipairs(threads) do total = total + (t:get("sent") or 0) end
  local ps = {}
  for _, p in ipairs({PERCENTILES}) do
    ps[#ps + 1] = string.format("[%s, %.0f]", tostring(p), latency:percentile(p))
  end
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %d, "sent": %d, "duration_us": %d, "bytes": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"latency_us": {"min": %.0f, "max": %.0f, "mean": %.1f, "stdev": %.1f}, "percentiles": [%s]}\n',
    summary.requests, total, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.max, latency.mean, latency.stdev, table.concat(ps, ", ")))
end
