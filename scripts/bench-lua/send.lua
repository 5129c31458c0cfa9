-- wrk script for scripts/bench-send: POST /v1/messages, BENCH_MESSAGES in all (split across
-- wrk's threads), each to a different synthetic address (buyer<N>@bench.test). A thread
-- stops at its share; the script then ends wrk with SIGINT, which prints the summary.
local key = os.getenv("TIDINGS_BENCH_KEY")
local total = tonumber(os.getenv("BENCH_MESSAGES") or "20000")
local threads = tonumber(os.getenv("BENCH_THREADS") or "2")
local counter = 0
local answered = 0
local thread_id = 0
local next_id = 0

setup = function(thread)
  thread:set("thread_id", next_id)
  next_id = next_id + 1
end

request = function()
  counter = counter + 1
  local n = thread_id * total + counter
  local body = string.format('{"rcpt":"buyer%d@bench.test","templateSlug":"receipt","variables":{"name":"Buyer %d","order":{"id":"B-%d","total":"%d.00"}}}', n, n, n, n % 500)
  return wrk.format("POST", "/v1/messages", {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. key}, body)
end

response = function(status, headers, body)
  answered = answered + 1
  if answered >= total / threads then
    wrk.thread:stop()
  end
end

done = function(summary, latency, requests)
  local errors = summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format("RESULT rps=%.0f p50_ms=%.2f p99_ms=%.2f requests=%d errors=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.requests, errors))
end
