-- wrk script for scripts/bench. BENCH_KIND picks the request:
--   healthz   GET /healthz (the ceiling)
--   contacts  POST /v1/contacts (upsert)
--   events    POST /v1/events
-- POSTs carry the key from TIDINGS_BENCH_KEY. Synthetic addresses only (user<N>@bench.test);
-- N is drawn from 1..BENCH_CONTACTS so the run mixes creates and updates as real ingest does.
local key = os.getenv("TIDINGS_BENCH_KEY")
local kind = os.getenv("BENCH_KIND") or "healthz"
local contacts = tonumber(os.getenv("BENCH_CONTACTS") or "20000")
local counter = 0

request = function()
  if kind == "healthz" then
    return wrk.format("GET", "/healthz")
  end
  counter = counter + 1
  local n = math.random(1, contacts)
  local path, body
  if kind == "events" then
    path = "/v1/events"
    body = string.format('{"email":"user%d@bench.test","slug":"page-viewed","properties":{"n":%d}}', n, counter)
  else
    path = "/v1/contacts"
    body = string.format('{"email":"user%d@bench.test","plan":"pro","seats":%d,"lastSeen":"2026-11-30T10:00:00Z"}', n, counter % 50)
  end
  return wrk.format("POST", path, {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. key}, body)
end

done = function(summary, latency, requests)
  local errors = summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format("RESULT rps=%.0f p50_ms=%.2f p99_ms=%.2f requests=%d errors=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.requests, errors))
end
