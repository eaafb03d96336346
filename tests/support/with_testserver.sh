#!/bin/bash
# usage: with_testserver.sh TESTSERVER SGRUN SCRIPT [ARGS...]
# Starts the test server on a free loopback port, runs SCRIPT with TEST_URL set, stops the server.
set -u
server=$1 sgrun=$2
shift 2
portfile=$(mktemp)
"$server" > "$portfile" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -f "$portfile"' EXIT
for _ in $(seq 1200); do
  [ -s "$portfile" ] && break
  sleep 0.05
done
port=$(head -n1 "$portfile")
[ -n "$port" ] || { echo "with_testserver: the test server did not start" >&2; exit 1; }
export TEST_URL="http://127.0.0.1:$port"
"$sgrun" "$@"
