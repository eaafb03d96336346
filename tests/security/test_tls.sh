#!/bin/bash
# Issue 12 item 4: ca_file / ca_path given to sg.connect (options or profile) are used for TLS
# verification. A local TLS server (openssl s_server) with a certificate from a CA made here.
. "$(dirname "$0")/lib.sh"
command -v openssl >/dev/null || { echo "SKIP: the openssl command is not installed"; exit 77; }
cd "$tmp"
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj "/CN=sgrun test CA" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr -subj "/CN=localhost" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >ext.cnf
openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem -days 2 -extfile ext.cnf 2>/dev/null
mkdir capath
cp ca.pem capath/
openssl rehash capath 2>/dev/null || c_rehash capath >/dev/null
openssl s_server -accept 127.0.0.1:0 -cert srv.pem -key srv.key -www >server.out 2>&1 &
server=$!
cleanup_hooks+=("kill $server 2>/dev/null")
for _ in $(seq 1200); do grep -q ACCEPT server.out && break; sleep 0.05; done
port=$(sed -n 's/^ACCEPT .*:\([0-9]*\)$/\1/p' server.out)
[ -n "$port" ] || { echo "the TLS server did not start"; cat server.out; exit 1; }
url="https://localhost:$port/hostup/api"
# s_server -www answers any GET with an HTML page: "bad_response" (not JSON) means TLS worked
probe() {
  "$sgrun" -e "
    local ok, e = pcall(function()
      local c = require('sg').connect('hostup', { api_key = 'k-12345678', base_url = '$url' ${1:-} })
      return c:list_firewall_rules(10000)
    end)
    io.write(ok and 'ok' or tostring(e.code))" 2>&1
}
check "without the CA, verification fails (tls)" [ "$(probe)" = tls ]
check "ca_file in the connect options is used" [ "$(probe ", ca_file = '$tmp/ca.pem'")" = bad_response ]
check "ca_path in the connect options is used" [ "$(probe ", ca_path = '$tmp/capath'")" = bad_response ]
check "a wrong ca_file still fails" [ "$(probe ", ca_file = '$tmp/srv.key'")" = tls ]
# one process, requests one after another (so on one pooled handle): each uses its own CA options
# and none is left over for the next
check "CA options do not carry over between requests" [ "$("$sgrun" -e "
  local http = require('sg').http
  local function try(opts)
    opts.url = '$url'
    local res, _, code = http.request(opts)
    return res and 'ok' or code
  end
  io.write(table.concat({ try {}, try { ca_file = '$tmp/ca.pem' }, try {}, try { ca_path = '$tmp/capath' },
    try { ca_file = '$tmp/srv.key' }, try { ca_file = '$tmp/ca.pem' } }, ' '))" 2>&1)" = "tls ok tls ok tls ok" ]
printf '[default.hostup]\nca_file = %s/ca.pem\n[other.hostup]\nca_path = %s/capath\n' "$tmp" "$tmp" >profiles
chmod 600 profiles
check "ca_file in the profile is used" [ "$(SGRUN_PROFILES=$tmp/profiles probe)" = bad_response ]
check "ca_path in the profile is used" [ "$(SGRUN_PROFILES=$tmp/profiles probe ", profile = 'other'")" = bad_response ]
check "the TLS hint names ca_file" bash -c "$(printf '%q' "$sgrun") -e \"
  local ok, e = pcall(function() local c = require('sg').connect('hostup', { api_key = 'k-12345678',
    base_url = '$url' }) return c:list_firewall_rules(10000) end) io.write(e.message)\" | grep -q ca_file"
finish
