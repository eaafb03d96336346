#!/bin/bash
# Host names that go through libcurl's threaded resolver. curl watches the resolver's socketpair
# through sgrun's event loop and closes it without its close-socket callback, and the
# connection's socket that follows usually gets the same number. When sgrun parked that number
# like a kept-alive connection's, the new socket was never registered and the request stalled
# until its timeout (the first request to every name). The names come from a private /etc/hosts
# bound in a mount namespace, so no DNS query leaves the machine (root only, for the mount).
set -u
sgrun=$1
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
server=$(dirname "$sgrun")/tests/testserver
[ "$(id -u)" = 0 ] || { echo "SKIP: a private /etc/hosts needs root (mount namespace)"; exit 77; }
command -v unshare >/dev/null || { echo "SKIP: unshare (util-linux) is not installed"; exit 77; }
grep -q '^hosts:.*files' /etc/nsswitch.conf 2>/dev/null || { echo "SKIP: /etc/hosts is not consulted here"; exit 77; }
tmp=$(mktemp -d)
server_pid=""
trap '[ -n "$server_pid" ] && kill $server_pid 2>/dev/null; rm -rf "$tmp"' EXIT
. "$here/../support/check.sh"

for i in 1 2 3 4 5; do echo "127.0.0.1 sgrun-resolver-$i"; done >"$tmp/hosts"
"$server" >"$tmp/port" &
server_pid=$!
for _ in $(seq 1200); do [ -s "$tmp/port" ] && break; sleep 0.05; done
port=$(head -n1 "$tmp/port")

# five names, each resolved once (curl caches a name for a minute), then each used again, and a
# burst of ten to one name: every request answered, none left to its timeout
cat >"$tmp/requests.lua" <<LUA
local sg = require "sg"
local failures = {}
local function get(name)
  local res, err = sg.http.request { url = "http://" .. name .. ":$port/hello", timeout = 10 }
  if not (res and res.status == 200) then failures[#failures + 1] = name .. ": " .. tostring(err) end
end
for round = 1, 2 do
  for i = 1, 5 do get("sgrun-resolver-" .. i) end
end
local burst = {}
for i = 1, 10 do burst[i] = function() get("sgrun-resolver-3") end end
sg.all(burst)
if #failures > 0 then error(table.concat(failures, "\n"), 0) end
print("all answered")
LUA
unshare --mount sh -c "mount --bind '$tmp/hosts' /etc/hosts && exec '$sgrun' '$tmp/requests.lua'" >"$tmp/out" 2>&1
check "requests to names resolved by libcurl's resolver are all answered" grep -q "all answered" "$tmp/out"
[ "$failed" = 0 ] || cat "$tmp/out" >&2

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
