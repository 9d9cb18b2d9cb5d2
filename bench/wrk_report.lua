-- Prints wrk's summary as key=value lines for bench/index.sh to parse, instead of the
-- human-readable text whose units (us/ms/s, KB/MB/GB) vary from run to run.
done = function(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format("requests=%d\n", summary.requests))
  io.write(string.format("duration_us=%d\n", summary.duration))
  io.write(string.format("bytes=%d\n", summary.bytes))
  io.write(string.format("p50_us=%d\n", latency:percentile(50)))
  io.write(string.format("p99_us=%d\n", latency:percentile(99)))
  io.write(string.format("errors_connect=%d\n", errors.connect))
  io.write(string.format("errors_read=%d\n", errors.read))
  io.write(string.format("errors_write=%d\n", errors.write))
  io.write(string.format("errors_status=%d\n", errors.status))
  io.write(string.format("errors_timeout=%d\n", errors.timeout))
end
