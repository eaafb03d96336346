#!/bin/bash
# usage: with_h2dropserver.sh H2DROPSERVER SGRUN TEST.lua
# Starts tests/support/h2dropserver (HTTP/2 over TLS on loopback, resetting connections mid-write)
# with a certificate from the CA `sgrun sim --tls` makes, then runs the test with H2DROP_URL,
# H2DROP_LOG (the server's event log) and SGRUN_CA_FILE set.
set -u
server=$1 sgrun=$2
shift 2
tmp=$(mktemp -d "${TMPDIR:-/tmp}/sgrun-h2drop.XXXXXX")
pid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null && wait $pid 2>/dev/null; rm -rf "$tmp"' EXIT

"$sgrun" sim --tls --tls-dir "$tmp/tls" --port 0 --env-file "$tmp/env" --quiet >/dev/null 2>&1 &
sim=$!
for _ in $(seq 1200); do [ -s "$tmp/env" ] && break; sleep 0.05; done
kill "$sim" && wait "$sim" 2>/dev/null
[ -s "$tmp/tls/server.pem" ] || { echo "with_h2dropserver.sh: no certificate was made" >&2; exit 1; }

"$server" "$tmp/tls/server.pem" "$tmp/tls/server.key" "$tmp/events.log" >"$tmp/port" &
pid=$!
for _ in $(seq 1200); do [ -s "$tmp/port" ] && break; sleep 0.05; done
port=$(head -n1 "$tmp/port")
[ -n "$port" ] || { echo "with_h2dropserver.sh: the server did not start" >&2; exit 1; }
export H2DROP_URL="https://127.0.0.1:$port" H2DROP_LOG="$tmp/events.log" SGRUN_CA_FILE="$tmp/tls/ca.pem"
"$sgrun" "$@"
