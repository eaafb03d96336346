#!/bin/bash
# The REPL through a real pseudo-terminal (tmux): completion, multi-line input, pretty printing,
# Ctrl-C during a slow emulator call, history across sessions, no secret in the transcript.
set -u
sgrun=$1
command -v tmux >/dev/null || { echo "tmux is missing: run .ci/setup" >&2; exit 1; }
tmp=$(mktemp -d)
session="sgrun-repl-$$"
# a tmux server of its own: the default one is shared with other tests and with the user
sock="sgrun-repl-$$"
export TERM=${TERM:-xterm}
[ "$TERM" = dumb ] && export TERM=xterm
sim_pid=""
cleanup() {
  tmux -L "$sock" kill-server 2>/dev/null
  [ -n "$sim_pid" ] && kill $sim_pid 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
passed=0 failed=0
check() {
  local name=$1
  shift
  if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL $name" >&2; screen >&2; fi
}
screen() { tmux -L "$sock" capture-pane -p -t "$session" -S -200; }
# waits until the screen shows a pattern (up to 30 s: only a failure waits that long)
shows() {
  for _ in $(seq 300); do
    screen | grep -q -- "$1" && return 0
    sleep 0.1
  done
  return 1
}
type_line() { tmux -L "$sock" send-keys -t "$session" -l "$1"; tmux -L "$sock" send-keys -t "$session" Enter; }

"$sgrun" sim --port 0 --ready-file "$tmp/url" --latency 4000 --quiet >/dev/null &
sim_pid=$!
for _ in $(seq 1200); do [ -s "$tmp/url" ] && break; sleep 0.05; done
url=$(cat "$tmp/url")

# start [HISTORY]: a session with that history file ($tmp/history by default)
# (again while the server a kill-session of the last session left is still exiting, which tmux
# answers with "server exited unexpectedly")
start() {
  for _ in $(seq 50); do
    tmux -L "$sock" -f /dev/null new-session -d -s "$session" -x 160 -y 50 \
      "env SGRUN_HISTORY=${1:-$tmp/history} HOME=$tmp EXOSCALE_API_KEY=EXOdemo EXOSCALE_API_SECRET=SECRETSAUCE123 $sgrun; sleep 30" \
      2>/dev/null && break
    sleep 0.1
  done
  shows '^sg>' # capture-pane drops the prompt's trailing space
}

start
check "the banner says how to get help" shows 'help()'
check "the banner names the configured accounts" shows 'exoscale (environment)'
type_line 'conn = sg.connect("exoscale")'
type_line 'conn'
check "a connection prints without its credentials" shows 'sg.connect("exoscale") ->'
type_line 'help(conn)'
check "help(conn) lists the methods" shows 'add_rule_to_security_group'
check "and the neutral ones" shows '^  groups  '
type_line 'help(conn.get_security_group)'
check "help(conn.method) gives the signature" shows '^conn:get_security_group(id, \[query\])'
check "the HTTP method and path" shows '^  GET /security-group/{id}'
check "and the description" shows '^  Get a security group with its rules'
type_line 'sg.json.decode([[{"gone": null, "port": 22, "ratio": 0.5}]])'
check "JSON null prints as null" shows '^  gone = null,'
check "a whole number prints without .0" shows '^  port = 22,'
check "a fraction stays one" shows '^  ratio = 0.5,'
type_line 'require("sg.rule").normalize{direction = "ingress", protocol = "tcp", port = 443}'
check "a canonical rule prints in its text form" shows '^<rule ingress tcp 443 from 0.0.0.0/0>'

tmux -L "$sock" send-keys -t "$session" -l 'sg.ht'
tmux -L "$sock" send-keys -t "$session" Tab
check "tab completes a field" shows 'sg> sg.http'
tmux -L "$sock" send-keys -t "$session" -l '.req'
tmux -L "$sock" send-keys -t "$session" Tab
check "and a function inside it" shows 'sg> sg.http.request'
tmux -L "$sock" send-keys -t "$session" C-u
type_line 'local t = {"x"}; obj = setmetatable({}, {__index = {ping = function() end}})'
tmux -L "$sock" send-keys -t "$session" -l 'obj:pi'
tmux -L "$sock" send-keys -t "$session" Tab
check "tab completes methods" shows 'sg> obj:ping'
tmux -L "$sock" send-keys -t "$session" C-u

type_line 'function double(x)'
check "an incomplete chunk asks for more" shows 'sg>>'
type_line '  return x * 2'
type_line 'end'
type_line 'double(21)'
check "multi-line input runs as one chunk" shows '^42'

type_line '{zeta = 1, alpha = {1, 2}, mid = "m"}'
check "tables print with sorted keys" bash -c "tmux -L $sock capture-pane -p -t $session | tr -d '\n ' | grep -q 'alpha={1,2,},mid=\"m\",zeta=1,'"

type_line 'creds = {api_key = "SUPERSECRET-1", name = "demo"}'
type_line 'creds'
check "a table is printed" shows 'name = "demo"'
check "credential values are redacted (only the typed line shows it)" \
  [ "$(tmux -L "$sock" capture-pane -p -t "$session" -S -200 | grep -c SUPERSECRET)" = 1 ]

# a credential on a continuation line: the chunk as a whole carries it, so none of its lines is kept
type_line 'c2 = sg.connect("hostup", { api_key ='
type_line '"hostup-demo-key-MULTILINE0123" })'
type_line 'c3 = {api_key'
type_line '= "SPLITSECRET-2"}'
type_line '"after the multi-line secrets"'
shows '^"after the multi-line secrets"'

type_line "res, err = sg.http.request{url = '$url/hostup/api/vm/10000/firewall'}"
sleep 0.7
tmux -L "$sock" send-keys -t "$session" C-c
check "Ctrl-C cancels the slow call" shows 'cancelled$'
type_line '1 + 1'
check "the session still works after Ctrl-C" shows '^2$'
tmux -L "$sock" send-keys -t "$session" -l 'half typed line'
shows '^sg> half typed line' # the keys are in the line editor, not still in the terminal's queue
prompts=$(screen | grep -c '^sg>$')
tmux -L "$sock" send-keys -t "$session" C-c
# the next keys go to the fresh prompt, not to the line Ctrl-C is still clearing
for _ in $(seq 300); do [ "$(screen | grep -c '^sg>$')" -gt "$prompts" ] && break; sleep 0.1; done
type_line '"after clear"'
check "Ctrl-C at the prompt clears the line" shows '^"after clear"'

check "the secret never appeared on screen" bash -c "! tmux -L $sock capture-pane -p -t $session -S -500 | grep -q SECRETSAUCE"
type_line '"remember me"'
tmux -L "$sock" send-keys -t "$session" C-d
sleep 0.5
tmux -L "$sock" kill-session -t "$session" 2>/dev/null
start
tmux -L "$sock" send-keys -t "$session" Up
check "history persists across sessions" shows 'sg> "remember me"'
tmux -L "$sock" send-keys -t "$session" C-u
check "a line with a credential is not in the history file" bash -c "! grep -q SUPERSECRET $tmp/history"
check "other lines are" grep -q 'double(21)' "$tmp/history"
check "every line of an ordinary multi-line chunk is" grep -q 'return x \* 2' "$tmp/history"
check "no line of a chunk with a credential on a continuation line is" \
  bash -c "! grep -q 'MULTILINE0123\\|SPLITSECRET\\|c2 = sg.connect\\|c3 = {api_key' $tmp/history"

# A history path that is a symbolic link (planted, or a mistake) or not a regular file: history
# is off, the session says so, and what the path leads to is neither re-moded nor written.
printf 'precious\n' >"$tmp/target"
chmod 644 "$tmp/target"
ln -s "$tmp/target" "$tmp/histlink"
mkfifo -m 644 "$tmp/histfifo"
mkdir "$tmp/open-dir"
chmod 777 "$tmp/open-dir"
for hist in "$tmp/histlink" "$tmp/histfifo" "$tmp/open-dir/history"; do
  tmux -L "$sock" kill-session -t "$session" 2>/dev/null
  start "$hist"
  check "history off for ${hist##*/}, said once" shows "history off: $hist"
  type_line '"typed into a session without history"'
  shows '^"typed into a session without history"'
  tmux -L "$sock" send-keys -t "$session" C-d
  sleep 0.5
done
check "the link's target keeps its mode" [ "$(stat -c %a "$tmp/target")" = 644 ]
check "and its content" [ "$(cat "$tmp/target")" = precious ]
check "the FIFO keeps its mode" [ "$(stat -c %a "$tmp/histfifo")" = 644 ]
check "nothing is made in a directory others can write" [ ! -e "$tmp/open-dir/history" ]
# (SGRUN_HISTORY=/dev/null, no history without a word, is not run here: a build that got this
# wrong would make the test machine's /dev/null private to root.)

# the terminal hanging up (its window or SSH session closed) ends the REPL: one that outlived it
# was left spinning under the sanitizer build's leak check at exit
tmux -L "$sock" kill-session -t "$session" 2>/dev/null
start
repl_pid=$(pgrep -P "$(tmux -L "$sock" list-panes -t "$session" -F '#{pane_pid}')" | head -n1)
check "the REPL's process is found" [ -n "$repl_pid" ]
tmux -L "$sock" kill-session -t "$session"
gone() { for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done; return 1; }
check "a hangup ends the REPL" gone "$repl_pid"
kill -9 "$repl_pid" 2>/dev/null

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
