#!/bin/bash
# bench/run.sh tls, run inside tests/support/with_nginx.sh (H2_URL, H1_URL, NGINX_LOG,
# SGRUN_CA_FILE): 1,000 HTTPS requests, 100 in flight, by sgrun and by curl --parallel, to an
# HTTP/2 server and to an HTTP/1.1-only one. Each side runs 3 times, alternating: the best wall
# time of each process (other load on the machine only ever adds time) and the most TLS
# handshakes any of its runs made, counted by the server (distinct connections in its log).
# Then the same with 50 ms of server latency a request (under /slow/, when nginx has its echo
# module), where the wall time shows how well each client overlaps slow answers.
set -euo pipefail
sgrun=$1
n=1000 c=100 rounds=3
handshakes() { awk -v p="$1" '$4 == p { print $1 }' "$NGINX_LOG" | sort -u | wc -l; }
served() { awk -v p="$1" '$4 == p' "$NGINX_LOG" | wc -l; }
now() { date +%s.%N; }
min() { awk -v a="$1" -v b="$2" 'BEGIN { print (a + 0 < b + 0) ? a : b }'; }
max() { if [ "$1" -gt "$2" ]; then echo "$1"; else echo "$2"; fi; }
list=$(mktemp)
trap 'rm -f "$list"' EXIT
delays="0"
[ "${NGINX_SLOW:-0}" = 1 ] && delays="0 50"
for delay in $delays; do
for proto in h2 h1; do
  if [ $proto = h2 ]; then base=$H2_URL; else base=$H1_URL; fi
  prefix=""
  [ "$delay" = 0 ] || prefix=/slow
  curl_s=999999 sg_s=999999 curl_hs=0 sg_hs=0 curl_n=0 sg_n=0
  for r in $(seq $rounds); do
    curl_path=$prefix/curl-$proto-$delay-$r sg_path=$prefix/sgrun-$proto-$delay-$r
    for _ in $(seq $n); do echo "url = \"$base$curl_path\""; echo "output = /dev/null"; done >"$list"
    t0=$(now)
    curl -s --parallel --parallel-max $c --cacert "$SGRUN_CA_FILE" -K "$list" 2>/dev/null
    t1=$(now)
    curl_s=$(min "$curl_s" "$(echo "$t1 - $t0" | bc -l)")
    t0=$(now)
    "$sgrun" bench/throughput.lua "$base$sg_path" $n $c >/dev/null
    t1=$(now)
    sg_s=$(min "$sg_s" "$(echo "$t1 - $t0" | bc -l)")
    curl_hs=$(max "$curl_hs" "$(handshakes "$curl_path")")
    sg_hs=$(max "$sg_hs" "$(handshakes "$sg_path")")
    curl_n=$((curl_n + $(served "$curl_path")))
    sg_n=$((sg_n + $(served "$sg_path")))
  done
  printf 'tls %s (%d HTTPS requests, %d in flight, nginx on loopback, %s, best of %d):\n' \
    "$([ $proto = h2 ] && echo HTTP/2 || echo HTTP/1.1-only)" $n $c \
    "$([ "$delay" = 0 ] && echo "no added latency" || echo "$delay ms a response")" $rounds
  printf '  curl --parallel  %6.3f s  %4d TLS handshakes  (%d served)\n' "$curl_s" "$curl_hs" "$curl_n"
  printf '  sgrun            %6.3f s  %4d TLS handshakes  (%d served)  %.2f x curl'"'"'s time\n' \
    "$sg_s" "$sg_hs" "$sg_n" "$(echo "$sg_s / $curl_s" | bc -l)"
done
done
