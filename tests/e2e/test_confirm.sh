#!/bin/bash
# What needs sg.rollout's side of the contract (opts.confirm, on_progress, write_plan/read_plan):
# on a terminal a roll-out that would remove rules shows the plan and asks (tmux); "n" changes
# nothing, Ctrl-C or SIGTERM there ends the run as interrupted (130, 143) with nothing changed,
# "y" goes ahead, --yes and a stdin that is not a terminal never ask; live progress is drawn on
# the terminal; --plan-out writes a plan without writing, --apply-plan applies it.
# Skipped (exit 77) while this tree's sg.rollout lacks those parts.
set -u
sgrun=$1
root=${SGRUN_SOURCE_DIR:?}
grep -q "confirm" "$root/stdlib/sg/rollout.lua" && grep -q "on_progress" "$root/stdlib/sg/rollout.lua" \
  && grep -q "write_plan" "$root/stdlib/sg/rollout.lua" || {
  echo "SKIP: sg.rollout does not call opts.confirm/on_progress or write plans yet"
  exit 77
}
tmp=$(mktemp -d)
export SGRUN_LOCK_DIR=$tmp
sock=sgrun-test-$$
sim_pid=""
trap 'tmux -L $sock kill-server 2>/dev/null; [ -n "$sim_pid" ] && kill $sim_pid 2>/dev/null; rm -rf "$tmp"' EXIT
. "$(dirname "${BASH_SOURCE[0]}")/../support/check.sh"
. "$(dirname "${BASH_SOURCE[0]}")/../support/sim.sh"

start_sim --task-delay 300
writes() {
  curl -s "$url/_sim/log" | "$sgrun" -e "
    local log = require('sg').json.decode(io.read('a'))
    local n = 0
    for _, e in ipairs(log.requests) do if e.method ~= 'GET' then n = n + 1 end end
    print(n)"
}

# start_terminal NAME COMMAND: COMMAND runs in a tmux window with the emulator's settings
start_terminal() {
  rm -f "$tmp/$1.done"
  tmux -L $sock -f /dev/null new-session -d -s "$1" -x 250 -y 60 \
    "set -a; . '$tmp/env'; set +a; cd '$tmp' && $2; echo \$? >'$tmp/$1.done'; sleep 30"
}
wait_for_screen() { # NAME TEXT
  for _ in $(seq 200); do
    tmux -L $sock capture-pane -p -t "$1" | grep -qF -- "$2" && return 0
    sleep 0.1
  done
  return 1
}
finish_terminal() {
  for _ in $(seq 300); do [ -s "$tmp/$1.done" ] && break; sleep 0.1; done
  tmux -L $sock capture-pane -p -S -200 -t "$1" >"$tmp/$1.screen"
  tmux -L $sock kill-session -t "$1"
}
rollout="'$sgrun' '$root/scripts/rollout.lua' --allow-lossy exoscale:web gcore:web"

curl -s -X DELETE "$url/_sim/log" >/dev/null
start_terminal no "$rollout"
check "on a terminal a roll-out that removes rules asks" wait_for_screen no "Go ahead? [y/N]"
tmux -L $sock capture-pane -p -S -200 -t no >"$tmp/question.screen"
check "the question shows the plan: the target planned, not failed" \
  bash -c "grep -q 'roll-out: ok (1 planned)' '$tmp/question.screen' && ! grep -q failed '$tmp/question.screen'"
check "with the rules it would remove" grep -qE '^ +- ' "$tmp/question.screen"
tmux -L $sock send-keys -t no n Enter
finish_terminal no
check "answering n exits 1" [ "$(cat "$tmp/no.done")" = 1 ]
check "and says nothing changed" grep -q "not confirmed, nothing changed" "$tmp/no.screen"
check "and no write was sent" [ "$(writes)" = 0 ]
check "the target not confirmed is shown as planned, not unchanged" \
  grep -q "roll-out: not confirmed, nothing changed (1 planned)" "$tmp/no.screen"

# Ctrl-C (SIGINT) or SIGTERM at the question ends the run as interrupted (130, 143), not as an
# answer "no" (1); nothing was written, and the report says so
for sig in INT TERM; do
  curl -s -X DELETE "$url/_sim/log" >/dev/null
  start_terminal "sig$sig" "$rollout"
  check "SIG$sig: the roll-out asks" wait_for_screen "sig$sig" "Go ahead? [y/N]"
  if [ $sig = INT ]; then
    tmux -L $sock send-keys -t "sig$sig" C-c
  else
    shell=$(tmux -L $sock display-message -p -t "sig$sig" '#{pane_pid}')
    kill -TERM "$(pgrep -P "$shell")"
  fi
  finish_terminal "sig$sig"
  code=130
  [ $sig = TERM ] && code=143
  check "SIG$sig at the question exits $code" [ "$(cat "$tmp/sig$sig.done")" = $code ]
  check "SIG$sig: the report says interrupted" grep -q "roll-out: INTERRUPTED by SIG$sig" "$tmp/sig$sig.screen"
  check "SIG$sig: before anything changed" grep -q "interrupted before any write: nothing was changed" \
    "$tmp/sig$sig.screen"
  check "SIG$sig: not taken as an answer" bash -c "! grep -q 'not confirmed' '$tmp/sig$sig.screen'"
  check "SIG$sig: the target with changes is not called unchanged" \
    bash -c "! grep -qE '^ *gcore +web +unchanged' '$tmp/sig$sig.screen'"
  check "SIG$sig: no write was sent" [ "$(writes)" = 0 ]
done

"$sgrun" "$root/scripts/rollout.lua" --allow-lossy exoscale:web gcore:web </dev/null >"$tmp/out" 2>&1 &
pid=$!
sleep 0.5
check "without a terminal nobody is asked" bash -c "! grep -q 'Go ahead' '$tmp/out'"
wait $pid
check "and the roll-out runs: exit 0" [ $? = 0 ]

curl -s -X DELETE "$url/_sim/log" >/dev/null
start_terminal yes "'$sgrun' '$root/scripts/rollout.lua' --yes --allow-lossy exoscale:web genesis:web barrack:web"
finish_terminal yes
check "--yes does not ask" bash -c "! grep -q 'Go ahead' '$tmp/yes.screen'"
check "--yes: exit 0" [ "$(cat "$tmp/yes.done")" = 0 ]
check "progress was drawn per target" grep -q "genesis .*converged" "$tmp/yes.screen"

curl -s -X DELETE "$url/_sim/log" >/dev/null
"$sgrun" "$root/scripts/rollout.lua" --allow-lossy --plan-out "$tmp/plan.json" exoscale:web hostup:vm=10000 \
  >"$tmp/out" 2>&1
check "--plan-out with changes to make exits 3" [ $? = 3 ]
check "and writes the plan" [ -s "$tmp/plan.json" ]
check "and sends no write" [ "$(writes)" = 0 ]
# what shapes a plan is given when it is made; at --apply-plan it was silently ignored
# (--additive let the plan's removals through, --save wrote nothing)
for flag in --additive --allow-lossy "--save $tmp/saved.json"; do
  # shellcheck disable=SC2086
  "$sgrun" "$root/scripts/rollout.lua" --yes $flag --apply-plan "$tmp/plan.json" >"$tmp/out" 2>&1
  check "--apply-plan with ${flag%% *}: exit 2" [ $? = 2 ]
  check "--apply-plan with ${flag%% *}: says to give it to --plan-out" grep -q "give ${flag%% *} to the --plan-out run" "$tmp/out"
  check "--apply-plan with ${flag%% *}: no write" [ "$(writes)" = 0 ]
done
"$sgrun" "$root/scripts/rollout.lua" --yes --apply-plan "$tmp/plan.json" >"$tmp/out" 2>&1
check "--apply-plan applies it: exit 0" [ $? = 0 ]
"$sgrun" "$root/scripts/rollout.lua" --yes --apply-plan "$tmp/plan.json" exoscale:web 2>"$tmp/err"
check "--apply-plan with targets is a usage error" [ $? = 2 ]
mkdir "$tmp/plan-dir"
"$sgrun" "$root/scripts/rollout.lua" --yes --apply-plan "$tmp/plan-dir" >"$tmp/out" 2>&1
check "--apply-plan of a directory: exit 2" [ $? = 2 ]
check "says it cannot be read, without a Lua position" bash -c \
  "grep -q 'plan-dir: cannot read: .*plan-dir is not a regular file (a directory)' '$tmp/out' && ! grep -q 'rollout.lua:[0-9]' '$tmp/out'"
mkfifo "$tmp/plan-fifo"
timeout 20 "$sgrun" "$root/scripts/rollout.lua" --yes --apply-plan "$tmp/plan-fifo" >"$tmp/out" 2>&1
check "--apply-plan of a FIFO: exit 2 at once (124 would be a hang)" [ $? = 2 ]
check "says it is a FIFO" grep -q "plan-fifo is not a regular file (a FIFO)" "$tmp/out"

# a FIFO named like a journal in the journal directory is not a journal: --recover and a roll-out
# pass it by instead of waiting forever to open it
mkfifo "$tmp/sgrun-rollout-0123456789abcdef.journal"
timeout 20 "$sgrun" "$root/scripts/rollout.lua" --recover >"$tmp/out" 2>&1
check "--recover with a FIFO named like a journal: exit 0 at once (124 would be a hang)" [ $? = 0 ]
timeout 20 "$sgrun" --dry-run "$root/scripts/rollout.lua" --allow-lossy exoscale:web gcore:web >"$tmp/out" 2>&1
check "... and a dry run of a roll-out: exit 0 or 3 at once" bash -c "[ $? = 0 ] || [ $? = 3 ]"
rm -f "$tmp/sgrun-rollout-0123456789abcdef.journal"

# the in-process emulator listens on another port each run: a plan made under --sim --state is
# still its accounts' (an account is its credentials, not its endpoint's address)
(
  unset $(env | grep -o '^SGRUN_[A-Z]*_URL')
  cd "$tmp" || exit 1
  "$sgrun" --sim --state inproc.json "$root/scripts/rollout.lua" --allow-lossy --plan-out inproc-plan.json \
    exoscale:web gcore:web >/dev/null 2>&1
  "$sgrun" --sim --state inproc.json "$root/scripts/rollout.lua" --yes --apply-plan inproc-plan.json >inproc.out 2>&1
)
check "a plan made under --sim --state applies in the next --sim run: exit 0" [ $? = 0 ]
check "converging both targets" [ "$(grep -c converged "$tmp/inproc.out")" -ge 2 ]

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
