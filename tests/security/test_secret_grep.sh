#!/bin/bash
# Issue 12: every output stream of full roll-out runs, grepped for the credentials: plain text,
# --json, --log-format json, SGRUN_DEBUG=http, a failing run whose (distinctive, wrong)
# credentials the servers reject, the REPL's transcript and history, and every file a run
# leaves (snapshot, lock). 0 occurrences, also of JSON-escaped and percent-encoded forms and of
# 12-character pieces of a secret.
. "$(dirname "$0")/lib.sh"
src=${SGRUN_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
command -v tmux >/dev/null || { echo "SKIP: tmux is missing (run .ci/setup)"; exit 77; }
"$sgrun" sim --port 0 --quiet --task-delay 50 --env-file "$tmp/env" --ready-file "$tmp/url" >/dev/null 2>&1 &
sim=$!
tmx() { tmux -L "sgsec-$$" "$@"; } # a tmux server of our own: its environment is ours
cleanup_hooks+=("kill $sim 2>/dev/null" "tmx kill-server 2>/dev/null")
for _ in $(seq 1200); do [ -s "$tmp/url" ] && break; sleep 0.05; done
set -a
. "$tmp/env"
set +a
export SGRUN_LOCK_DIR=$tmp/locks SGRUN_HISTORY=$tmp/history SGRUN_PROFILES=$tmp/none
mkdir -m 700 "$SGRUN_LOCK_DIR"
out=$tmp/out
mkdir "$out"
creds=(EXOSCALE_API_KEY EXOSCALE_API_SECRET GCORE_API_KEY GENESISCLOUD_TOKEN BARRACK_API_KEY HOSTUP_API_KEY)

# the emulator's accounts (the demo credentials) for real roll-outs
cd "$tmp"
rollout=$src/scripts/rollout.lua
# the demo roll-out (what `sgrun --sim scripts/rollout.lua` runs), against this emulator
# shellcheck disable=SC2207
demo=(exoscale:web $("$sgrun" -e 'for _, n in ipairs(require("sg.connect").providers()) do
  if n ~= "exoscale" then io.write(n, ":", require("sgsim." .. n).demo_target, " ") end end') --allow-lossy)
"$sgrun" "$rollout" "${demo[@]}" >"$out/plain.out" 2>"$out/plain.err"
check "a plain roll-out ran" grep -q . "$out/plain.out"
"$sgrun" --json "$rollout" "${demo[@]}" >"$out/json.out" 2>"$out/json.err"
"$sgrun" --log-format json "$rollout" "${demo[@]}" >"$out/logjson.out" 2>"$out/logjson.err"
SGRUN_DEBUG=http "$sgrun" --dry-run "$rollout" "${demo[@]}" >"$out/dry.out" 2>"$out/dry.err"
curl -s -X POST "$(cat "$tmp/url")/_sim/reset" >/dev/null
SGRUN_DEBUG=http "$sgrun" "$rollout" "${demo[@]}" \
  --save="$tmp/web.snapshot.json" >"$out/debug.out" 2>"$out/debug.err"
check "the SGRUN_DEBUG=http trace was written" grep -q "sgrun http" "$out/debug.err"
check "... with credential headers redacted" grep -q "REDACTED" "$out/debug.err"

# the REPL, on a real terminal: connections, errors, internals, a roll-out
printf '#!/bin/bash\nset -a; . %q; set +a\nexec %q\n' "$tmp/env" "$sgrun" >"$tmp/repl.sh"
TERM=xterm tmx new-session -d -s "sgsec-$$" -x 200 -y 50 "bash $tmp/repl.sh"
sleep 0.5
for line in 'c = sg.connect("hostup")' 'c' 'print(c)' 'help(c)' 'e = select(2, pcall(c.list_firewall_rules, c, 999999))' \
  'e' 'require("sg.connect").internals(c)' 'r = sg.rollout(sg.snapshot(sg.connect("exoscale"), "web"), {{sg.connect("gcore"), "web"}}, {lossy = "allow"})' \
  'r' 'h = {["X-API-Key"] = os.getenv("HOSTUP_API_KEY")}' 'x = sg.connect("genesis", {token = os.getenv("GENESISCLOUD_TOKEN")})' 'x'; do
  tmx send-keys -t "sgsec-$$" -l "$line"
  tmx send-keys -t "sgsec-$$" Enter
  sleep 0.4
done
for _ in $(seq 200); do
  tmx capture-pane -p -t "sgsec-$$" -S - | grep -q 'genesisSECRET\|sg.connect("genesis") ->' && break
  sleep 0.1
done
tmx capture-pane -p -t "sgsec-$$" -S - >"$out/repl.screen"
tmx send-keys -t "sgsec-$$" C-d
check "the REPL session ran a roll-out" grep -q "roll-out: ok" "$out/repl.screen"

# distinctive wrong credentials: every server rejects them, some echo what they got
declare -A wrong
n=0
for v in "${creds[@]}"; do
  n=$((n + 1))
  wrong[$v]="sgrSECRET${n}q9f1c7e2b/d4+a=Q\"z"
  export "$v=${wrong[$v]}"
done
SGRUN_DEBUG=http "$sgrun" "$rollout" "${demo[@]}" >"$out/wrong.out" 2>"$out/wrong.err"
check "the run with wrong credentials failed" [ $? != 0 ]
"$sgrun" --json "$rollout" "${demo[@]}" >"$out/wrongjson.out" 2>"$out/wrongjson.err"
cp "$tmp/web.snapshot.json" "$SGRUN_HISTORY" "$out/" 2>/dev/null
cp "$SGRUN_LOCK_DIR"/* "$out/" 2>/dev/null

# the demo values and the distinctive ones, in raw, JSON-escaped and percent-encoded forms, and
# 12-character pieces
values=()
for v in "${creds[@]}"; do values+=("$(grep "^$v=" "$tmp/env" | cut -d= -f2-)" "${wrong[$v]}"); done
: >"$tmp/patterns"
for s in "${values[@]}"; do
  printf '%s\n' "$s" "${s//\//\\/}" >>"$tmp/patterns"
  "$sgrun" -e 'io.write((arg[1]:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end)), "\n")' "$s" >>"$tmp/patterns"
  for ((i = 0; i + 12 <= ${#s}; i += 6)); do printf '%s\n' "${s:i:12}" >>"$tmp/patterns"; done
done
check "the patterns do find a credential where one is (the env file)" grep -qFf "$tmp/patterns" "$tmp/env"
hits=$(grep -rFf "$tmp/patterns" "$out" | head -5)
check "0 occurrences of any credential in $(ls "$out" | wc -l) outputs${hits:+: $hits}" [ -z "$hits" ]
finish
