#!/bin/bash
# Output on a terminal and elsewhere (issue 11, items 6 and 7), through a real terminal (tmux):
# colour on a terminal, none when NO_COLOR is set or output is not a terminal; --log-format json
# turns roll-out progress into one log event per target step.
set -u
sgrun=$1
root=${SGRUN_SOURCE_DIR:?}
tmp=$(mktemp -d)
export SGRUN_LOCK_DIR=$tmp
sock=sgrun-test-$$
trap 'tmux -L $sock kill-server 2>/dev/null; rm -rf "$tmp"' EXIT
. "$(dirname "${BASH_SOURCE[0]}")/../support/check.sh"
esc=$(printf '\033')

# in_terminal NAME COMMAND: runs COMMAND in a fresh tmux window, waits for it, keeps the screen
# with its escape sequences in $tmp/NAME.screen
in_terminal() {
  local name=$1 command=$2
  rm -f "$tmp/$name.done"
  tmux -L $sock -f /dev/null new-session -d -s "$name" -x 250 -y 60 \
    "cd '$tmp' && $command; echo \$? >'$tmp/$name.done'; sleep 30"
  for _ in $(seq 300); do [ -s "$tmp/$name.done" ] && break; sleep 0.1; done
  tmux -L $sock capture-pane -e -p -t "$name" >"$tmp/$name.screen"
  tmux -L $sock kill-session -t "$name"
}

dry="'$sgrun' --sim --dry-run '$root/scripts/rollout.lua' --allow-lossy exoscale:web gcore:web"
in_terminal color "env -u NO_COLOR $dry"
check "a dry run on a terminal exits 3 (changes pending)" [ "$(cat "$tmp/color.done")" = 3 ]
check "and shows +/- lines in colour" grep -q "${esc}\[32m+ " "$tmp/color.screen"
in_terminal nocolor "NO_COLOR=1 $dry"
check "NO_COLOR: the same lines" grep -q "^      + " "$tmp/nocolor.screen"
check "NO_COLOR: no colour" bash -c "! grep -q '${esc}\[3[12]m' '$tmp/nocolor.screen'"

env -u NO_COLOR "$sgrun" --sim --dry-run "$root/scripts/rollout.lua" --allow-lossy exoscale:web gcore:web \
  >"$tmp/out" 2>"$tmp/err"
check "output that is not a terminal has the +/- lines" grep -q "^      - " "$tmp/out"
check "but no escape codes" bash -c "! grep -q '$esc' '$tmp/out' '$tmp/err'"

"$sgrun" --log-format json -e "
  require('sg.progress').new(io.stderr, { json_log = true }) {
    target = 2, provider = 'hostup', group = { vm = 10000 }, step = 'applying', done = 1, total = 3 }" \
  2>"$tmp/log"
check "--log-format json: a progress step is one log event" "$sgrun" -e "
  local e = assert(require('sg').json.decode(io.open('$tmp/log'):read('l')))
  assert(e.event == 'rollout_progress' and e.fields.step == 'applying' and e.fields.group == 'vm=10000'
    and e.fields.done == '1' and e.fields.total == '3', io.open('$tmp/log'):read('a'))"

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
