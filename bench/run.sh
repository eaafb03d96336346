#!/bin/bash
# One command per benchmark, each a ratio taken side by side in one run on this machine:
#   bench/run.sh fanout | throughput | tls | startup | memory | plan | rollout | fleet | ratelimit | faults | all
# Builds sgrun (build/) first. Figures and their meaning are in bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/setup >/dev/null
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j2 >/dev/null
sgrun=build/sgrun
server=build/tests/testserver

start_server() {
  portfile=$(mktemp)
  "$server" >"$portfile" &
  server_pid=$!
  for _ in $(seq 100); do [ -s "$portfile" ] && break; sleep 0.05; done
  url="http://127.0.0.1:$(head -n1 "$portfile")"
  rm -f "$portfile"
}
server_pid=""
stop_server() { [ -n "$server_pid" ] || return 0; kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; }
trap stop_server EXIT

fanout() {
  start_server
  "$sgrun" bench/fanout.lua "$url" 1000 100 50
  stop_server
}

# Each client runs 5 times, alternating, and keeps its best rate: other load on the machine only
# ever takes some away.
throughput() {
  local n=20000 c=100 rounds=5
  start_server
  local wrk_rps=0 curl_rps=0 floor_rps=0 pair_rps=0 sg_rps=0 rps list t0 t1
  list=$(mktemp)
  for _ in $(seq $n); do echo "url = \"$url/hello\""; echo "output = /dev/null"; done >"$list"
  for _ in $(seq $rounds); do
    rps=$(wrk -t2 -c$c -d3s "$url/hello" | awk '/Requests\/sec/ {print $2}')
    wrk_rps=$(echo "if ($rps > $wrk_rps) $rps else $wrk_rps" | bc -l)
    t0=$(date +%s.%N)
    curl -s --parallel --parallel-immediate --parallel-max $c -K "$list" 2>/dev/null
    t1=$(date +%s.%N)
    curl_rps=$(echo "r = $n / ($t1 - $t0); if (r > $curl_rps) r else $curl_rps" | bc -l)
    rps=$(build/libcurl_floor "$url/hello" $n $c)
    floor_rps=$(echo "if ($rps > $floor_rps) $rps else $floor_rps" | bc -l)
    # two bare clients at once, half the requests and half the in-flight each: what a transport
    # spread over two threads could reach at best on this machine
    t0=$(date +%s.%N)
    build/libcurl_floor "$url/hello" $((n / 2)) $((c / 2)) >/dev/null &
    build/libcurl_floor "$url/hello" $((n / 2)) $((c / 2)) >/dev/null
    wait $!
    t1=$(date +%s.%N)
    pair_rps=$(echo "r = $n / ($t1 - $t0); if (r > $pair_rps) r else $pair_rps" | bc -l)
    rps=$("$sgrun" bench/throughput.lua "$url/hello" $n $c)
    sg_rps=$(echo "if ($rps > $sg_rps) $rps else $sg_rps" | bc -l)
  done
  rm -f "$list"
  stop_server
  printf 'throughput (%d requests, %d in flight, keep-alive, best of %d):\n' $n $c $rounds
  printf '  wrk            %8.0f req/s\n' "$wrk_rps"
  printf '  curl --parallel %7.0f req/s\n' "$curl_rps"
  printf '  bare libcurl   %8.0f req/s  (%.2f x wrk: bench/libcurl_floor.c, no Lua)\n' "$floor_rps" \
    "$(echo "$floor_rps / $wrk_rps" | bc -l)"
  printf '  2 bare libcurl %8.0f req/s  (%.2f x wrk: two processes at once, %d in flight each)\n' \
    "$pair_rps" "$(echo "$pair_rps / $wrk_rps" | bc -l)" $((c / 2))
  printf '  sgrun          %8.0f req/s  (%.2f x wrk, %.2f x curl --parallel, %.2f x bare libcurl)\n' \
    "$sg_rps" "$(echo "$sg_rps / $wrk_rps" | bc -l)" "$(echo "$sg_rps / $curl_rps" | bc -l)" \
    "$(echo "$sg_rps / $floor_rps" | bc -l)"
}

tls() {
  tests/support/with_nginx.sh "$sgrun" bash bench/tls.sh "$sgrun"
}

# mean time of one run of a command, best of several rounds (other load only ever adds time)
best_ms() {
  local best="" t0 t1 ms
  for _ in 1 2 3 4 5; do
    t0=$(date +%s.%N)
    for _ in $(seq 50); do "$@"; done
    t1=$(date +%s.%N)
    ms=$(echo "($t1 - $t0) * 1000 / 50" | bc -l)
    if [ -z "$best" ] || [ "$(echo "$ms < $best" | bc -l)" = 1 ]; then best=$ms; fi
  done
  echo "$best"
}

startup() {
  local lua_ms sg_ms
  lua_ms=$(best_ms lua5.4 -e '')
  sg_ms=$(best_ms "$sgrun" -e '')
  printf 'startup (best of 5 rounds of 50 runs): lua5.4 -e "" %.2f ms, sgrun -e "" %.2f ms, ratio %.2f\n' \
    "$lua_ms" "$sg_ms" "$(echo "$sg_ms / $lua_ms" | bc -l)"
}

memory() {
  printf 'memory: idle peak %s MB\n' "$("$sgrun" bench/memory.lua)"
  start_server
  printf 'memory: peak with 1000 requests in flight %s MB\n' "$("$sgrun" bench/memory.lua "$url" 1000)"
  stop_server
}

rollout() {
  "$sgrun" --sim bench/rollout.lua
}

# A fleet drift over N accounts per provider with 5 groups each, on an emulator with 100 ms latency.
fleet_drift() {
  local per_provider=$1 dir sim_pid
  dir=$(mktemp -d)
  "$sgrun" sim --port 0 --accounts "$per_provider" --account-groups 5 --latency 100 --task-delay 100 \
    --fleet-file "$dir/fleet.lua" --env-file "$dir/env" --quiet >/dev/null &
  sim_pid=$!
  for _ in $(seq 1200); do [ -s "$dir/env" ] && break; sleep 0.05; done
  (set -a; . "$dir/env"; set +a; SGRUN_LOCK_DIR=$dir "$sgrun" bench/fleet.lua "$dir/fleet.lua" 100)
  kill "$sim_pid"
  wait "$sim_pid" 2>/dev/null || true
  rm -rf "$dir"
}

fleet() {
  fleet_drift 200    # 1,000 accounts, 5,000 groups
  if [ -n "${SGRUN_BENCH_LARGE:-}" ]; then fleet_drift 2000; fi   # 10,000 accounts, 50,000 groups
}

ratelimit() {
  "$sgrun" --sim bench/ratelimit.lua 1000 20
}

faults() {
  "$sgrun" --sim bench/faults.lua 10
}

plan() {
  if [ -f bench/plan_bench.lua ]; then "$sgrun" bench/plan_bench.lua; else echo "plan: no benchmark yet"; fi
}

case "${1:-all}" in
  fanout) fanout ;;
  throughput) throughput ;;
  tls) tls ;;
  startup) startup ;;
  memory) memory ;;
  plan) plan ;;
  rollout) rollout ;;
  fleet) fleet ;;
  ratelimit) ratelimit ;;
  faults) faults ;;
  all) fanout; throughput; tls; startup; memory; plan; rollout; fleet; ratelimit; faults ;;
  *) echo "usage: bench/run.sh fanout|throughput|tls|startup|memory|plan|rollout|fleet|ratelimit|faults|all" >&2; exit 2 ;;
esac
