#!/usr/bin/env bash
# Runs a Lua test against a local nginx on loopback: with_nginx.sh <sgrun> <test.lua>
# (or with_nginx.sh <sgrun> <command...>, for bench/run.sh tls)
# Three TLS servers with a certificate from the CA `sgrun sim --tls` makes: H2_URL speaks HTTP/2,
# H2_SHORT_URL too but closes every connection (GOAWAY) after 3 requests, H1_URL only HTTP/1.1. Every request answers 200 {"ok":true}; NGINX_LOG is the access log, one line a request:
# "CONNECTION_SERIAL REQUESTS_ON_IT METHOD URI PROTOCOL" (distinct serials = connections = TLS
# handshakes). Under /slow/ every server answers after 50 ms (nginx's echo module,
# libnginx-mod-http-echo); NGINX_SLOW=1 says it is there. Exports SGRUN_CA_FILE. Exit 77 (skipped)
# when nginx is not installed.
set -u
sgrun=$1
test=$2
nginx=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$nginx" ] || { echo "SKIP: nginx is not installed (run .ci/setup)"; exit 77; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/sgrun-nginx.XXXXXX")
nginx_pid=
cleanup() {
  [ -n "$nginx_pid" ] && kill "$nginx_pid" 2>/dev/null && wait "$nginx_pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# the emulator's CA and server certificate: made by starting it once with --tls-dir
"$sgrun" sim --tls --tls-dir "$tmp/tls" --port 0 --env-file "$tmp/env" --quiet >/dev/null 2>&1 &
sim=$!
for _ in $(seq 1200); do [ -s "$tmp/env" ] && break; sleep 0.05; done
kill "$sim" && wait "$sim" 2>/dev/null
[ -s "$tmp/tls/server.pem" ] || { echo "with_nginx.sh: no certificate was made"; exit 1; }

echo_module=/usr/lib/nginx/modules/ngx_http_echo_module.so
load_echo="" slow=""
if [ -f "$echo_module" ]; then
  load_echo="load_module $echo_module;"
  slow="location /slow/ { echo_sleep 0.05; echo -n '{\"ok\":true}'; }"
fi

for attempt in $(seq 20); do
  p2=$((20000 + RANDOM % 20000))
  p1=$((p2 + 1))
  p3=$((p2 + 2))
  mkdir -p "$tmp/body"
  cat >"$tmp/nginx.conf" <<CONF
$load_echo
daemon off;
worker_processes 1;
pid $tmp/nginx.pid;
error_log $tmp/error.log;
events { worker_connections 2048; }
http {
  log_format conns '\$connection \$connection_requests \$request_method \$request_uri \$server_protocol';
  access_log $tmp/access.log conns;
  client_body_temp_path $tmp/body;
  proxy_temp_path $tmp/body;
  fastcgi_temp_path $tmp/body;
  uwsgi_temp_path $tmp/body;
  scgi_temp_path $tmp/body;
  ssl_certificate $tmp/tls/server.pem;
  ssl_certificate_key $tmp/tls/server.key;
  default_type application/json;
  server {
    listen 127.0.0.1:$p2 ssl http2;
    keepalive_requests 100000;
    location / { return 200 '{"ok":true}'; }
    $slow
  }
  server {
    listen 127.0.0.1:$p3 ssl http2;
    keepalive_requests 3;
    location / { return 200 '{"ok":true}'; }
    $slow
  }
  server {
    listen 127.0.0.1:$p1 ssl;
    keepalive_requests 100000;
    location / { return 200 '{"ok":true}'; }
    $slow
  }
}
CONF
  : >"$tmp/error.log"
  "$nginx" -c "$tmp/nginx.conf" -e "$tmp/error.log" >/dev/null 2>&1 &
  nginx_pid=$!
  for _ in $(seq 1200); do [ -s "$tmp/nginx.pid" ] && break; kill -0 "$nginx_pid" 2>/dev/null || break; sleep 0.05; done
  if [ -s "$tmp/nginx.pid" ] && kill -0 "$nginx_pid" 2>/dev/null; then break; fi
  wait "$nginx_pid" 2>/dev/null
  nginx_pid=
  grep -q "in use" "$tmp/error.log" || { echo "with_nginx.sh: nginx did not start:"; cat "$tmp/error.log"; exit 1; }
done
[ -n "$nginx_pid" ] || { echo "with_nginx.sh: no free port pair for nginx"; exit 1; }

export H2_URL=https://127.0.0.1:$p2 H1_URL=https://127.0.0.1:$p1 H2_SHORT_URL=https://127.0.0.1:$p3
export NGINX_LOG=$tmp/access.log NGINX_SLOW=$([ -n "$slow" ] && echo 1 || echo 0)
export SGRUN_CA_FILE=$tmp/tls/ca.pem
shift
if [ $# = 1 ] && [ "${test%.lua}" != "$test" ]; then "$sgrun" "$test"; else "$@"; fi
status=$?
[ "$status" = 0 ] || { echo "--- nginx error log ---"; cat "$tmp/error.log"; } >&2
exit "$status"
