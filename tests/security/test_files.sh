#!/bin/bash
# Issue 12 items 2 and 7: temporary files are created exclusively (a symlink planted by another
# user at the name a writer would use is never followed), and a profile file that is not the
# invoking user's or root's is refused, also behind a symlink.
. "$(dirname "$0")/lib.sh"
need_root
ensure_user sgrun-attacker
shared=$tmp/shared
mkdir -m 1777 "$shared"
echo precious >"$tmp/victim"
chmod 644 "$tmp/victim"
victim_intact() { grep -qx precious "$tmp/victim"; }

# --- sgrun sim --env-file/--ready-file/--state: the old names were PATH.tmp<pid>, so the attacker
# plants symlinks for the next few hundred pids and waits
next=$(($(cat /proc/sys/kernel/ns_last_pid) + 1))
as sgrun-attacker bash -c "for p in \$(seq $next $((next + 400))); do
  for f in env ready state; do ln -s '$tmp/victim' '$shared/'\$f.tmp\$p; done; done"
planted=$(ls "$shared" | wc -l)
"$sgrun" sim --port 0 --quiet --env-file "$shared/env" --ready-file "$shared/ready" --state "$shared/state" >/dev/null 2>"$tmp/sim.err" &
sim=$!
for _ in $(seq 1200); do [ -s "$shared/ready" ] && break; sleep 0.05; done
kill -TERM $sim
wait $sim
check "the emulator ran with $planted symlinks planted around it" [ $? = 0 ]
check "... the victim file is untouched" victim_intact
for f in env ready state; do
  check "... $f is a regular file of root's, mode 600" [ "$(stat -c '%F %U %a' "$shared/$f")" = "regular file root 600" ]
done
check "... the env file holds the demo setup" grep -q "^SGRUN_GCORE_URL=http://127.0.0.1:" "$shared/env"

# --- sg.save: the temporary file is PATH.PID.XXXXXX.tmp, random, created O_EXCL, mode 600; a file
# planted at the target itself is replaced, not written through
ln -s "$tmp/victim" "$shared/web.snapshot.json"
chown -h sgrun-attacker "$shared/web.snapshot.json"
cat >"$tmp/save.lua" <<'LUA'
local sg = require "sg"
local sf = require "sg.snapshot_file"
local seen
local fsync = sf.fsync
sf.fsync = function(p)
  if p:find("%.tmp$") then
    local h = io.popen("stat -c '%F %a' '" .. p .. "'")
    seen = p .. " " .. h:read("l")
    h:close()
  end
  return fsync(p)
end
sg.save({ format = "sgrun.snapshot/1", provider = "gcore", group = { name = "web" }, rules = {} }, arg[1])
print(seen)
LUA
out=$("$sgrun" "$tmp/save.lua" "$shared/web.snapshot.json" 2>&1)
check "sg.save into a shared directory works ($out)" grep -Eq "web\.snapshot\.json\.[0-9]+\.[A-Za-z0-9]{6}\.tmp regular file 600$" <<<"$out"
check "... through no planted symlink: the victim is intact" victim_intact
check "... the target is now sgrun's own regular file" [ "$(stat -c '%F %U' "$shared/web.snapshot.json")" = "regular file root" ]
check "... no temporary file is left" [ -z "$(ls "$shared" | grep 'web.*\.tmp$')" ]

# --- profiles: another user's file (directly, or as the target of a symlink) is refused
probe='local ok, err = pcall(require("sg").connect, "hostup")
print(ok and "accepted" or tostring(err))'
printf '[default.hostup]\napi_key = attacker-controlled\n' >"$tmp/theirs"
chmod 600 "$tmp/theirs"
chown sgrun-attacker "$tmp/theirs"
out=$(env -u HOSTUP_API_KEY SGRUN_PROFILES="$tmp/theirs" "$sgrun" -e "$probe" 2>&1)
check "another user's profile file is refused ($out)" grep -q "belongs to user sgrun-attacker" <<<"$out"
ln -s "$tmp/theirs" "$shared/profiles"
out=$(env -u HOSTUP_API_KEY SGRUN_PROFILES="$shared/profiles" "$sgrun" -e "$probe" 2>&1)
check "... also behind a symlink" grep -q "belongs to user sgrun-attacker" <<<"$out"
cp "$tmp/theirs" "$tmp/mine"
chown root "$tmp/mine"
chmod 600 "$tmp/mine"
ln -s "$tmp/mine" "$tmp/link-to-mine"
out=$(env -u HOSTUP_API_KEY SGRUN_PROFILES="$tmp/link-to-mine" "$sgrun" -e "$probe" 2>&1)
check "a symlink to one's own private profile is fine" [ "$out" = accepted ]
chmod 640 "$tmp/mine"
out=$(env -u HOSTUP_API_KEY SGRUN_PROFILES="$tmp/link-to-mine" "$sgrun" -e "$probe" 2>&1)
check "... and the mode is judged on the target" grep -q "others can read it (mode 640)" <<<"$out"
# a root-owned profile read by an unprivileged user (e.g. /etc/sgrun/profiles) is accepted
# when that user can read it at all; here it cannot, and says so without a traceback
out=$(as sgrun-attacker env SGRUN_PROFILES="$tmp/mine" "$(public_sgrun)" -e "$probe" 2>&1)
check "an unreadable profile is an error, not 'no profile'" grep -q "Permission denied" <<<"$out"
# Kubernetes mounts a Secret for a non-root pod as root's file that the pod's group may read
# (fsGroup: mode 0440): private to that user's own group, so accepted; any other group, group
# write, or others' read is still refused.
chgrp sgrun-attacker "$tmp/mine"
chmod 440 "$tmp/mine"
out=$(as sgrun-attacker env SGRUN_PROFILES="$tmp/mine" "$(public_sgrun)" -e "$probe" 2>&1)
check "root's profile that only the user's own group reads is accepted ($out)" [ "$out" = accepted ]
chmod 460 "$tmp/mine"
out=$(as sgrun-attacker env SGRUN_PROFILES="$tmp/mine" "$(public_sgrun)" -e "$probe" 2>&1)
check "... not when that group may write it" grep -q "others can read it (mode 460)" <<<"$out"
chmod 444 "$tmp/mine"
out=$(as sgrun-attacker env SGRUN_PROFILES="$tmp/mine" "$(public_sgrun)" -e "$probe" 2>&1)
check "... nor when others may read it" grep -q "others can read it (mode 444)" <<<"$out"
chgrp root "$tmp/mine"
chmod 440 "$tmp/mine"
out=$(env -u HOSTUP_API_KEY SGRUN_PROFILES="$tmp/mine" "$sgrun" -e "$probe" 2>&1)
check "... nor for root itself" grep -q "others can read it (mode 440)" <<<"$out"
finish
