# start_sim ARGS...: starts `sgrun sim --port 0 --quiet ARGS` in the background (its output in
# $tmp/sim.log), waits until it serves, exports what its --env-file holds and sets $url and
# $sim_pid. Sourced by the shell tests; needs $sgrun and $tmp, and the caller's EXIT trap kills
# $sim_pid. The wait is long because a sanitizer build on a busy machine starts slowly; a sim that
# never comes up fails the test with its log rather than leaving later checks to fail obscurely.
start_sim() {
  "$sgrun" sim --port 0 --quiet --ready-file "$tmp/url" --env-file "$tmp/env" "$@" >"$tmp/sim.log" 2>&1 &
  sim_pid=$!
  local _
  for _ in $(seq 1200); do
    [ -s "$tmp/url" ] && [ -s "$tmp/env" ] && break
    kill -0 "$sim_pid" 2>/dev/null || break
    sleep 0.05
  done
  if ! [ -s "$tmp/url" ] || ! [ -s "$tmp/env" ]; then
    echo "the emulator did not start (sgrun sim $*):" >&2
    cat "$tmp/sim.log" >&2
    exit 1
  fi
  set -a
  . "$tmp/env"
  set +a
  url=$(cat "$tmp/url")
}
