# Shared by the gst-launch-1.0 test scripts (sourced): TAP results and
# bounded waits for background processes.

n=0 failed=0
# ok DESCRIPTION STATUS: one TAP line
ok () { n=$((n + 1)); if [ "$2" -eq 0 ]; then echo "ok $n - $1"; else echo "not ok $n - $1"; failed=1; fi; }
now_ms () { date +%s%3N; }

# wait_exit PID SECONDS: the exit status, or 124 (after killing it) when it
# is still running
wait_exit () {
  local p=$1 limit=$2 t=0
  while kill -0 "$p" 2>/dev/null && [ "$t" -lt $((limit * 20)) ]; do sleep 0.05; t=$((t + 1)); done
  if kill -0 "$p" 2>/dev/null; then kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; return 124; fi
  wait "$p"
}
