-- wrk script: POST signed webhook bodies, each once, spread over wrk's threads.
-- wrk ... -s bench/post.lua URL -- <requests file> <threads> <mode> <webhook path> <done prefix>
--   requests file: one line per request, "<X-Hub-Signature-256>\t<body>" (bench/bodies.py)
--   mode "loop": cycle through the thread's bodies until the duration ends (S1; the file
--                holds more bodies than the run can post, so none repeats in practice);
--   mode "once": post each body once; the thread stops when all its posts have a 200. Extra
--                requests the connections ask for meanwhile are a GET that every target
--                refuses (403/405), so they are neither posts nor counted as posts. When a
--                thread's posts are all answered it creates the file <done prefix><thread id>.
-- At the end it prints one line "BENCHJSON {...}" with counts and latency percentiles (µs).

local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  local path, nthreads = args[1], tonumber(args[2])
  once = args[3] == "once"
  webhook = args[4]
  done_prefix = args[5] or "/tmp/wrk-done-"
  sigs, bodies = {}, {}
  local i = 0
  for line in io.lines(path) do
    if i % nthreads == id then
      local tab = line:find("\t", 1, true)
      sigs[#sigs + 1] = line:sub(1, tab - 1)
      bodies[#bodies + 1] = line:sub(tab + 1)
    end
    i = i + 1
  end
  n, sent, ok, refused, failed, wrapped = #bodies, 0, 0, 0, 0, 0
  filler = wrk.format("GET", webhook .. "?hub.mode=bench")
end

function request()
  -- wrk calls thread 0's request() once to check the script (script_verify_request) and
  -- throws that request away: give it the filler, so no body is lost.
  if id == 0 and not verified then
    verified = true
    return filler
  end
  sent = sent + 1
  local index = sent
  if index > n then
    if once or n == 0 then return filler end
    wrapped = wrapped + 1
    index = (index - 1) % n + 1
  end
  return wrk.format("POST", webhook,
    {["Content-Type"] = "application/json", ["X-Hub-Signature-256"] = sigs[index]},
    bodies[index])
end

function response(status, headers, body)
  if status == 200 then
    ok = ok + 1
  elseif status == 403 or status == 405 then
    refused = refused + 1
  else
    failed = failed + 1
  end
  if once and ok + failed >= n and not finished then
    -- wrk itself runs until its duration ends: tell the runner, which interrupts it.
    finished = true
    local marker = io.open(done_prefix .. id, "w")
    marker:close()
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local ok_total, failed_total, wrapped_total = 0, 0, 0
  for _, thread in ipairs(threads) do
    ok_total = ok_total + thread:get("ok")
    failed_total = failed_total + thread:get("failed")
    wrapped_total = wrapped_total + thread:get("wrapped")
  end
  io.write(string.format(
    'BENCHJSON {"ok": %d, "failed": %d, "wrapped": %d, "requests": %d, "duration_us": %d, ' ..
    '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, "errors": %d}\n',
    ok_total, failed_total, wrapped_total, summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
