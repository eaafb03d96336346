#!/bin/bash
# Files that decide what sgrun writes (snapshots a roll-out copies, plans, fleet inventories, the
# reports a merge adds up) are refused when another user could have written them: a file of
# another user's (not root's), or one that others, or a group not the user's own, may write.
# Judged on the opened file, so a symlink counts by its target.
. "$(dirname "$0")/lib.sh"
need_root
ensure_user sgrun-attacker
shared=$tmp/shared
mkdir -m 1777 "$shared"

"$sgrun" -e "require('sg').save({format = 'sgrun.snapshot/1', provider = 'gcore', group = {name = 'web'},
  rules = {{direction = 'ingress', protocol = 'tcp', port = 5432, cidr = '0.0.0.0/0'}}}, '$shared/web.json')"
# read FILE KIND: loads FILE as a snapshot, plan, inventory or report; prints "read" or the error
read_as() {
  "$sgrun" -e "
    local loaders = {
      snapshot = function(p) return require('sg.snapshot_file').load(p) end,
      plan = function(p) return require('sg.rollout').read_plan(p) end,
      inventory = function(p) return require('sg.fleet').load(p) end,
      report = function(p) return require('sg.fleet').read_report(p) end,
    }
    local ok, err = pcall(loaders['$2'], '$1')
    print(ok and 'read' or tostring(err))" 2>&1
}

chmod 644 "$shared/web.json"
check "one's own snapshot, mode 644, is read" [ "$(read_as "$shared/web.json" snapshot)" = read ]
chmod 664 "$shared/web.json"
check "... and mode 664 with one's own group" [ "$(read_as "$shared/web.json" snapshot)" = read ]
chown sgrun-attacker "$shared/web.json"
out=$(read_as "$shared/web.json" snapshot)
check "another user's snapshot is refused" grep -q "refusing to read .*belongs to user sgrun-attacker" <<<"$out"
check "... saying what to do" grep -q "copy it to a file of your own" <<<"$out"
chown root:sgrun-attacker "$shared/web.json"
out=$(read_as "$shared/web.json" snapshot)
check "one's own snapshot that another group may write is refused" grep -q "others can change it (mode 664)" <<<"$out"
check "... saying what to do" grep -q "chmod go-w" <<<"$out"
chown root:root "$shared/web.json"
chmod 666 "$shared/web.json"
check "... and one that anyone may write" grep -q "others can change it (mode 666)" <<<"$(read_as "$shared/web.json" snapshot)"
chmod 644 "$shared/web.json"
as sgrun-attacker ln -s "$shared/web.json" "$shared/link.json"
check "another user's symlink to one's own file is judged by the file" [ "$(read_as "$shared/link.json" snapshot)" = read ]

# a plan, an inventory and a report: the same rule (each is judged before it is parsed, so any
# content will do)
for kind in plan inventory report; do
  echo '{}' >"$shared/$kind"
  chown sgrun-attacker "$shared/$kind"
  check "another user's $kind is refused" grep -q "belongs to user sgrun-attacker" <<<"$(read_as "$shared/$kind" $kind)"
  chown root "$shared/$kind"
  chmod 646 "$shared/$kind"
  check "... and one that anyone may write" grep -q "others can change it (mode 646)" <<<"$(read_as "$shared/$kind" $kind)"
done
finish
