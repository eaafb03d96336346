#!/bin/bash
# The command line as a user meets it: lua-compatible options, arg, stdin, shebang scripts,
# exit codes, tracebacks from tasks, and Ctrl-C.
set -u
sgrun=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
. "$(dirname "${BASH_SOURCE[0]}")/../support/check.sh"

out=$("$sgrun" -e 'print(1 + 1)')
check "-e runs code" [ "$out" = 2 ]

printf 'print(select("#", ...), ...)\nprint(arg[0], arg[1], arg[2], arg[-1] ~= nil)\n' >"$tmp/args.lua"
out=$("$sgrun" "$tmp/args.lua" a b)
check "script gets ... and arg like lua" [ "$out" = "2	a	b
$tmp/args.lua	a	b	true" ]

# what `bench/run.sh startup` times: code that never requires sg loads neither it nor curl
out=$("$sgrun" -e 'print(package.loaded.sg == nil, package.loaded["_sg.http"] == nil)')
check "-e loads neither sg nor the network library until required" [ "$out" = "true	true" ]
out=$("$sgrun" -e 'require "sg" print(package.loaded["sg.connect"] == nil)')
check "requiring sg leaves sg.connect for its first use" [ "$out" = true ]

out=$(echo 'print("from stdin")' | "$sgrun" -)
check "- runs stdin" [ "$out" = "from stdin" ]
out=$(echo 'print("piped")' | "$sgrun")
check "no script and no terminal runs stdin" [ "$out" = "piped" ]

printf '#!/usr/bin/env sgrun\nprint("shebang ok")\n' >"$tmp/she.lua"
out=$("$sgrun" "$tmp/she.lua")
check "a shebang line is skipped" [ "$out" = "shebang ok" ]

out=$("$sgrun" -e 'x = 5' -e 'print(x)')
check "several -e run in order" [ "$out" = 5 ]
out=$("$sgrun" -l sg -e 'print(type(sg.spawn))')
check "-l loads a library into a global" [ "$out" = function ]

"$sgrun" --version | grep -q '^sgrun [0-9]' ; check "--version" [ $? = 0 ]
"$sgrun" --help | grep -q 'usage: ' ; check "--help" [ $? = 0 ]

"$sgrun" --no-such-flag 2>"$tmp/err"
check "an unknown option exits 2" [ $? = 2 ]
check "and says what to do" grep -q -- "--help" "$tmp/err"

"$sgrun" -e 'os.exit(3)'
check "a playbook sets its own exit code" [ $? = 3 ]

cat >"$tmp/fail.lua" <<'LUA'
local sg = require "sg"
local function deep() sg.sleep(0.01) error("task failure here") end
local t = sg.spawn(deep)
local ok, err = t:wait()
error(err, 0)
LUA
"$sgrun" "$tmp/fail.lua" 2>"$tmp/err"
check "an uncaught error exits 1" [ $? = 1 ]
check "with its message" grep -q "task failure here" "$tmp/err"
check "and a traceback" grep -q "stack traceback" "$tmp/err"

"$sgrun" -e 'local sg = require "sg"; sg.all(function() sg.sleep(0.01) error("in a child") end)' 2>"$tmp/err"
check "an error inside sg.all exits 1" [ $? = 1 ]
check "naming the child's error" grep -q "in a child" "$tmp/err"
check "with the child's traceback" grep -q "stack traceback" "$tmp/err"

"$sgrun" -e 'error(setmetatable({}, {__tostring = function() return "custom error object" end}))' 2>"$tmp/err"
check "error objects print through __tostring" grep -q "custom error object" "$tmp/err"

"$sgrun" "$tmp/missing.lua" 2>"$tmp/err"
check "a missing script is a user error: exit 2" [ $? = 2 ]
check "naming the file" grep -q "missing.lua" "$tmp/err"

# Ctrl-C while waiting, and while computing: clean exit 130, no core, no hang.
for code in 'require("sg").sleep(30)' 'while true do end'; do
  "$sgrun" -e "$code" 2>"$tmp/err" &
  pid=$!
  sleep 0.5
  kill -INT $pid
  for _ in $(seq 50); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done
  wait $pid
  rc=$?
  check "Ctrl-C during '$code' exits 130" [ $rc = 130 ]
done

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
