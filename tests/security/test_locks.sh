#!/bin/bash
# Issue 12 item 1 and issue 11 items 9-10: the playbook lock against another local user (planted
# symlinks, foreign lock files, shared and foreign directories, a lock held by someone else), the
# lock key (playbook + arguments, or --lock-name) and its release on every way out of a run.
. "$(dirname "$0")/lib.sh"
need_root
ensure_user sgrun-attacker
ensure_user sgrun-victim
unset XDG_RUNTIME_DIR
sg=$(public_sgrun)
printf 'print("ran")\n' >"$tmp/job.lua"
printf 'require("sg").sleep(tonumber(os.getenv("SLEEP") or 2))\n' >"$tmp/sleep.lua"
printf 'os.exit(0)\n' >"$tmp/exits.lua"
chmod 644 "$tmp"/*.lua
echo "precious" >"$tmp/victim-file"
lockfile() { ls "$1"/sgrun-"$2"-*.lock 2>/dev/null | head -n1; }

# a private lock directory of root's: find the file name a run uses, then replay the attacks
locks=$tmp/locks
mkdir -m 700 "$locks"
export SGRUN_LOCK_DIR=$locks
"$sg" "$tmp/job.lua" >/dev/null
file=$(lockfile "$locks" job.lua)
check "a run creates its lock file in SGRUN_LOCK_DIR" [ -n "$file" ]

# 1. a symlink planted where the lock file goes is never followed
rm -f "$file"
ln -s "$tmp/victim-file" "$file"
"$sg" "$tmp/job.lua" >"$tmp/out" 2>"$tmp/err"
rc=$?
check "a planted symlink lock file: the run fails (exit 1, got $rc)" [ "$rc" = 1 ]
check "... the victim file is untouched" grep -qx precious "$tmp/victim-file"
check "... the error says why" grep -q "symbolic link" "$tmp/err"
check "... the playbook did not run" [ ! -s "$tmp/out" ]
rm -f "$file"

# 2. a lock file that belongs to another user is refused, naming the owner
touch "$file"
chown sgrun-attacker "$file"
"$sg" "$tmp/job.lua" >"$tmp/out" 2>"$tmp/err"
rc=$?
check "a lock file of another user is refused (exit 1, got $rc)" [ "$rc" = 1 ]
check "... naming its owner" grep -q "belongs to user sgrun-attacker" "$tmp/err"

# 3. ... and when that user holds it, the report says so (not a plain 'skipped')
exec 9<>"$file"
as sgrun-attacker flock -x 9
"$sg" "$tmp/job.lua" >"$tmp/out" 2>"$tmp/err"
rc=$?
exec 9>&-
check "a lock held by another user is an error (exit 1, got $rc), not a silent skip" [ "$rc" = 1 ]
check "... reported as held by that user" grep -q "held by another user, user sgrun-attacker" "$tmp/err"
rm -f "$file"

# 4. directories others can write, or that are someone else's, or symlinks, are refused
mkdir -m 1777 "$tmp/shared"
SGRUN_LOCK_DIR=$tmp/shared "$sg" "$tmp/job.lua" >"$tmp/out" 2>"$tmp/err"
check "a world-writable lock directory (like /tmp) is refused" [ $? = 1 ]
check "... saying so" grep -q "writable by others" "$tmp/err"
check "... and nothing was created in it" [ -z "$(ls -A "$tmp/shared")" ]
mkdir -m 700 "$tmp/theirs"
chown sgrun-attacker "$tmp/theirs"
SGRUN_LOCK_DIR=$tmp/theirs "$sg" "$tmp/job.lua" >"$tmp/out" 2>"$tmp/err"
check "another user's lock directory is refused" [ $? = 1 ]
check "... saying so" grep -q "not yours" "$tmp/err"
ln -s "$locks" "$tmp/link"
SGRUN_LOCK_DIR=$tmp/link "$sg" "$tmp/job.lua" >"$tmp/out" 2>"$tmp/err"
check "a symlinked lock directory is refused" [ $? = 1 ]

# 5. an unprivileged user without XDG_RUNTIME_DIR gets a private /tmp/sgrun-UID (0700, theirs);
#    one planted there by another user is refused
vuid=$(id -u sgrun-victim)
rm -rf "/tmp/sgrun-$vuid"
as sgrun-victim "$sg" "$tmp/job.lua" >"$tmp/out" 2>"$tmp/err"
check "an unprivileged run works without XDG_RUNTIME_DIR" grep -qx ran "$tmp/out"
check "... its lock directory is private" [ "$(stat -c '%U %a' "/tmp/sgrun-$vuid")" = "sgrun-victim 700" ]
rm -rf "/tmp/sgrun-$vuid"
as sgrun-attacker mkdir -m 777 "/tmp/sgrun-$vuid"
as sgrun-victim "$sg" "$tmp/job.lua" >"$tmp/out" 2>"$tmp/err"
check "a /tmp/sgrun-UID planted by another user is refused" [ $? = 1 ]
check "... with a hint" grep -q "SGRUN_LOCK_DIR" "$tmp/err"
rm -rf "/tmp/sgrun-$vuid"

# 6. the lock key: playbook + arguments by default, --lock-name sets it
"$sg" "$tmp/sleep.lua" a >/dev/null 2>&1 &
p1=$!
sleep 0.7
SLEEP=0 "$sg" "$tmp/sleep.lua" b 2>"$tmp/err"
check "the same playbook on other arguments runs beside a held lock" [ $? = 0 ]
SLEEP=0 "$sg" "$tmp/sleep.lua" a 2>/dev/null
check "... the same arguments are skipped (75)" [ $? = 75 ]
SLEEP=0 "$sg" --lock-name other "$tmp/sleep.lua" a 2>/dev/null
check "... --lock-name with another name runs" [ $? = 0 ]
wait $p1
"$sg" --lock-name nightly "$tmp/sleep.lua" x >/dev/null 2>&1 &
p1=$!
sleep 0.7
"$sg" --lock-name nightly "$tmp/job.lua" 2>/dev/null >/dev/null
check "... two runs sharing a --lock-name exclude each other (75)" [ $? = 75 ]
wait $p1

# 7. the lock is released on every way out: no false "lock taken over" after a clean run
for script in exits.lua job.lua; do
  "$sg" "$tmp/$script" >/dev/null 2>&1
  "$sg" "$tmp/$script" >/dev/null 2>"$tmp/err"
  check "no 'lock taken over' after a clean run of $script" bash -c "! grep -q lock_taken_over '$tmp/err'"
done
printf 'os.exit(3)\n' >"$tmp/drift.lua"
"$sg" "$tmp/drift.lua" 2>/dev/null
"$sg" "$tmp/drift.lua" 2>"$tmp/err"
check "no 'lock taken over' after os.exit(3)" bash -c "! grep -q lock_taken_over '$tmp/err'"
SLEEP=5 "$sg" "$tmp/sleep.lua" k >/dev/null 2>&1 &
p1=$!
sleep 0.7
kill -KILL $p1
wait $p1 2>/dev/null
SLEEP=0 "$sg" "$tmp/sleep.lua" k 2>"$tmp/err"
check "a killed holder's lock is taken over, with the warning" grep -q lock_taken_over "$tmp/err"
finish
