-- wrk script for bench/web.sh: after the run, one machine-readable line with the
-- latency percentiles (milliseconds), the request rate and every kind of failure, so
-- the shell script can put them in a table and refuse a run that got errors.
--
--   wrk -t2 -c8 -d10s -s bench/wrk_latency.lua 'http://127.0.0.1:8025/api/v1/messages?limit=50'
--
-- prints, besides wrk's own report:
--   RESULT p50=0.41 p90=0.77 p99=1.90 max=7.12 rps=12345 requests=123456 non2xx=0 errors=0

done = function(summary, latency, requests)
   local ms = function(us) return string.format("%.2f", us / 1000) end
   local seconds = summary.duration / 1e6
   local errors = summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.timeout
   io.write(string.format("RESULT p50=%s p90=%s p99=%s max=%s rps=%.0f requests=%d non2xx=%d errors=%d\n",
      ms(latency:percentile(50)), ms(latency:percentile(90)), ms(latency:percentile(99)),
      ms(latency.max), summary.requests / seconds, summary.requests, summary.errors.status,
      errors))
end
