#!/bin/bash
# Installing sgrun like any other tool: `cmake --install` into a DESTDIR under an unusual prefix,
# then the installed sgrun runs a shipped playbook against its emulator with the source and
# build trees out of sight (hidden under empty mounts where a mount namespace can be had). Also:
# the systemd units verify, the Debian package is lintian-clean but for documented overrides,
# and the Kubernetes kustomization renders with the fields the deployment relies on.
set -u
build=$1 src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0 skipped=0
check() { # check NAME CONDITION...
  local name=$1
  shift
  if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL $name" >&2; fi
}
skip() { skipped=$((skipped + 1)); echo "SKIP $1" >&2; }

prefix=/opt/sgrun-test
DESTDIR=$tmp/root cmake --install "$build" --prefix "$prefix" >"$tmp/install.log" 2>&1
check "cmake --install succeeds" [ $? -eq 0 ]
root=$tmp/root$prefix
for f in bin/sgrun lib/sgrun/libsgrun_net.so share/sgrun/scripts/rollout.lua \
         share/man/man1/sgrun.1.gz share/bash-completion/completions/sgrun \
         lib/systemd/system/sgrun-drift.service lib/systemd/system/sgrun-drift.timer; do
  check "installed $f" [ -e "$root/$f" ]
done
check "shipped playbooks are executable" [ -x "$root/share/sgrun/scripts/rollout.lua" ]
# The licence ships as Debian's copyright file (machine-readable: the text indented, blank lines
# as " ."); it must say what LICENSE says, holder and text.
copyright=$root/share/doc/sgrun/copyright
check "installed share/doc/sgrun/copyright" [ -f "$copyright" ]
holder=$(sed -n 's/^Copyright (c) //p' "$src/LICENSE")
check "LICENSE names its copyright holder" [ -n "$holder" ]
check "the installed copyright names LICENSE's holder" [ "$holder" = "$(sed -n 's/^Copyright: //p' "$copyright")" ]
check "the installed copyright carries LICENSE's text" cmp -s \
  <(sed -n '/^Permission is hereby granted/,$p' "$src/LICENSE") \
  <(sed -n '/^License: MIT$/,$p' "$copyright" | tail -n +2 | sed 's/^ //; s/^\.$//')
check "the man page renders" sh -c "man -l '$root/share/man/man1/sgrun.1.gz' 2>/dev/null | grep -q 'EXIT STATUS'"
check "bash completion loads and completes options" bash -c "
  source '$root/share/bash-completion/completions/sgrun'
  COMP_WORDS=(sgrun --dr); COMP_CWORD=1; _sgrun; [ \"\${COMPREPLY[*]}\" = --dry-run ]"

# The installed binary, run from an empty directory with a clean environment: the source and
# build trees hidden (mount namespace) when possible, so nothing can come from them.
hidden=0
[ "$(id -u)" -eq 0 ] && unshare --mount true 2>/dev/null && hidden=1
run_installed() {
  local script="cd '$tmp/work' && env -i PATH=/usr/bin:/bin HOME='$tmp/work' \
    '$root/bin/sgrun' --no-lock --sim '$root/share/sgrun/scripts/rollout.lua'"
  if [ "$hidden" = 1 ]; then
    unshare --mount sh -c "mount -t tmpfs none '$src' && { [ -d '$build' ] && mount -t tmpfs none '$build' 2>/dev/null; true; } && $script"
  else
    sh -c "$script"
  fi
}
mkdir -p "$tmp/work"
out=$(run_installed 2>&1)
code=$?
[ "$hidden" = 1 ] || skip "source and build trees could not be hidden (needs root for a mount namespace)"
check "installed sgrun runs the roll-out playbook (exit $code)" [ $code -eq 0 ]
check "roll-out converged from the installed tree" sh -c "printf '%s' \"\$1\" | grep -q converged" _ "$out"
[ $code -eq 0 ] || printf '%s\n' "$out" | tail -20 >&2

# systemd units: verified against the installed binary (the unit's path rewritten to it).
if command -v systemd-analyze >/dev/null; then
  mkdir -p "$tmp/units"
  sed "s|/usr/bin/sgrun|$root/bin/sgrun|; s|/usr/share/sgrun|$root/share/sgrun|" \
    "$root/lib/systemd/system/sgrun-drift.service" >"$tmp/units/sgrun-drift.service"
  cp "$root/lib/systemd/system/sgrun-drift.timer" "$tmp/units/"
  verify=$(cd "$tmp/units" && systemd-analyze verify --man=no sgrun-drift.service sgrun-drift.timer 2>&1)
  check "systemd-analyze verify is clean: $verify" [ -z "$verify" ]
else
  skip "systemd-analyze is not installed"
fi

# The Debian package.
if command -v lintian >/dev/null && command -v dpkg-shlibdeps >/dev/null; then
  (cd "$build" && cpack -G DEB -B "$tmp/deb" >"$tmp/cpack.log" 2>&1)
  deb=$(ls "$tmp"/deb/sgrun_*.deb 2>/dev/null | head -1)
  check "cpack builds a .deb" [ -n "$deb" ]
  if [ -n "$deb" ]; then
    lint=$(lintian "$deb" 2>&1 | grep -v 'running with root privileges')
    check "lintian is clean apart from deploy/debian/lintian-overrides: $lint" [ -z "$lint" ]
    check "the package installs sgrun into /usr/bin" sh -c "dpkg-deb -c '$deb' | grep ' ./usr/bin/sgrun$' >/dev/null"
    check "the package ships the licence" sh -c "dpkg-deb -c '$deb' | grep ' ./usr/share/doc/sgrun/copyright$' >/dev/null"
  fi
else
  skip "lintian or dpkg-dev is not installed"
fi

# Kubernetes: rendered with kubectl's kustomize where there is one, else the YAML read as is.
if command -v kubectl >/dev/null && kubectl kustomize "$src/deploy/kubernetes" >"$tmp/k8s.yaml" 2>"$tmp/k8s.err"; then
  rendered=$tmp/k8s.yaml
else
  skip "kubectl kustomize is not available; checking the unrendered YAML"
  rendered=$src/deploy/kubernetes/cronjob.yaml
fi
check "kubernetes manifests: indexed job, Forbid, shards agree, 0400 secret, non-root, read-only root, /tmp" \
  /usr/bin/python3 - "$rendered" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
cron = next(d for d in docs if d["kind"] == "CronJob")
job = cron["spec"]["jobTemplate"]["spec"]
pod = job["template"]["spec"]
c = pod["containers"][0]
env = {e["name"]: e.get("value") for e in c.get("env", [])}
secret = next(v for v in pod["volumes"] if "secret" in v)["secret"]
problems = []
def need(cond, what):
    if not cond: problems.append(what)
need(job.get("completionMode") == "Indexed", "completionMode Indexed")
need(cron["spec"].get("concurrencyPolicy") == "Forbid", "concurrencyPolicy Forbid")
need(job.get("completions") == job.get("parallelism") == int(env.get("SGRUN_SHARDS", -1)),
     "completions, parallelism and SGRUN_SHARDS agree")
need(secret.get("defaultMode") == 0o400, "profile secret mode 0400")
need(pod["securityContext"].get("runAsNonRoot") is True, "runAsNonRoot")
need(c["securityContext"].get("readOnlyRootFilesystem") is True, "readOnlyRootFilesystem")
need(any(d["kind"] == "ConfigMap" for d in docs) or "kustomization" not in sys.argv[1], "inventory ConfigMap")
# with a read-only root, sgrun's lock directory (/tmp/sgrun-UID, created 0700) needs a writable
# /tmp; a mount point as SGRUN_LOCK_DIR would be refused (an emptyDir is 0777)
need(any(m["mountPath"] == "/tmp" for m in c["volumeMounts"]) and "SGRUN_LOCK_DIR" not in env,
     "a writable /tmp and no SGRUN_LOCK_DIR")
# the Secret reaches the pod as root's file, mode 0440, group fsGroup: sgrun reads it only when
# that group is the process's own
need(pod["securityContext"].get("fsGroup") == pod["securityContext"].get("runAsGroup"), "fsGroup = runAsGroup")
if problems:
    print("missing: " + ", ".join(problems), file=sys.stderr)
    sys.exit(1)
PY

echo "install: $passed passed, $failed failed, $skipped skipped"
[ $failed -eq 0 ]
