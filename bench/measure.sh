# shellcheck shell=bash
# measure CMD...: run CMD, print "wall_s max_rss_kb peak_rss_anon_kb" (RssAnon of the process
# sampled every 5 ms: its heap, as opposed to page cache). CMD's output goes to $MEASURE_OUT when
# set, else is dropped (shown if CMD fails). Sourced by bench/scale.sh and bench/auto_policy.sh.
measure() {
  local out; out=$(mktemp)
  /usr/bin/time -f "%e %M" -o "$out.time" "$@" > "$out" 2>&1 &
  local tpid=$! peak=0 pid=""
  while kill -0 "$tpid" 2>/dev/null; do
    [ -z "$pid" ] && pid=$(pgrep -P "$tpid" | head -1 || true)
    if [ -n "$pid" ] && [ -r "/proc/$pid/status" ]; then
      local a; a=$(awk '/^RssAnon/{print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
      [ -n "$a" ] && [ "$a" -gt "$peak" ] && peak=$a
    fi
    sleep 0.005
  done
  wait "$tpid" || { cat "$out"; return 1; }
  [ -n "${MEASURE_OUT:-}" ] && cp "$out" "$MEASURE_OUT"
  echo "$(cat "$out.time") $peak"
  rm -f "$out" "$out.time"
}
