#!/bin/bash
# A hostile server that echoes pieces of the credential it was sent (tests/support/testserver's
# /echo-tail/: the token without its first character, and upper-cased without its last) gets no
# run of 8 characters of it printed, for every provider: not in the error the playbook prints,
# not in the SGRUN_DEBUG=http trace, not in --json or JSON logs.
. "$(dirname "$0")/lib.sh"
src=${SGRUN_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
server=${TESTSERVER:?TESTSERVER names the test server binary (ctest sets it)}
"$server" >"$tmp/port" &
server_pid=$!
cleanup_hooks+=("kill $server_pid 2>/dev/null")
for _ in $(seq 1200); do [ -s "$tmp/port" ] && break; sleep 0.05; done
base=http://127.0.0.1:$(head -n1 "$tmp/port")/echo-tail

# leak FILE SECRET: prints the first 8-character window of SECRET found in FILE (any letter case)
leak() {
  local i
  for ((i = 0; i + 8 <= ${#2}; i++)); do
    if grep -qiF -- "${2:i:8}" "$1"; then
      echo "${2:i:8}"
      return 0
    fi
  done
  return 1
}

# run NAME TARGET VAR=SECRET...: audit.lua of TARGET against the hostile server, in every output
# form; none may show a window of any SECRET
run() {
  local name=$1 target=$2
  shift 2
  local provider=${target%%:*} form
  local url_var
  url_var=SGRUN_$(echo "$provider" | tr '[:lower:]' '[:upper:]')_URL
  for form in plain json debug; do
    local opts=() envs=()
    case $form in
      json) opts=(--json --log-format json) ;;
      debug) envs=(SGRUN_DEBUG=http) ;;
    esac
    env -i PATH="$PATH" HOME="$tmp" SGRUN_PROFILES="$tmp/none" SGRUN_LOCK_DIR="$tmp" \
      "$url_var=$base" "$@" "${envs[@]}" \
      "$sgrun" "${opts[@]}" "$src/scripts/audit.lua" "$target" >"$tmp/$name.$form.out" 2>&1
    check "$name ($form): the refused call fails, exit 1" [ $? = 1 ]
    check "$name ($form): the error is shown" grep -q "HTTP 401" "$tmp/$name.$form.out"
    check "$name ($form): the echo shows as [REDACTED]" grep -qF "[REDACTED]" "$tmp/$name.$form.out"
    local pair secret piece
    for pair in "$@"; do
      case ${pair%%=*} in *_ID) continue ;; esac # project and region: not secrets
      secret=${pair#*=}
      piece=$(leak "$tmp/$name.$form.out" "$secret")
      check "$name ($form): no 8 characters of ${pair%%=*} printed${piece:+ (found $piece)}" [ -z "$piece" ]
    done
  done
}

run genesis genesis:web GENESISCLOUD_TOKEN=ZZtopsecretgenesistoken98765
run gcore gcore:web GCORE_API_KEY=4242\$tailGCOREkey0123456789abcdef GCORE_CLOUD_PROJECT_ID=1 \
  GCORE_CLOUD_REGION_ID=2
run barrack barrack:web BARRACK_API_KEY=tailBARRACKkey0123456789abcdef
run hostup hostup:vm=10000 HOSTUP_API_KEY=hostup-tail-key-0123456789abcdef
run exoscale exoscale:web EXOSCALE_API_KEY=EXOtail7c1d2e3f4a5b6c7d8e9f0a \
  EXOSCALE_API_SECRET=tailSECRETexo0123456789abcdefghijABCDEFGHIJ
finish
