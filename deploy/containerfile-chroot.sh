#!/bin/bash
# Builds deploy/Containerfile where no container engine runs: every stage is a copy of a Debian 12
# minbase root made by debootstrap, and each instruction is carried out in a chroot of it, so the
# file's own package lists, build steps, user and working directory are exercised as written.
# Then it runs the image's entrypoint as the image's user: `sgrun --help` and the demo roll-out
# against the embedded emulator. Needs root, debootstrap and Debian's package mirror; it takes
# several minutes and is not part of ctest.
#   deploy/containerfile-chroot.sh WORKDIR    (WORKDIR/base, the debootstrap root, is kept and reused)
# Understands the instructions the Containerfile uses: FROM [AS], RUN, COPY (. and --from=),
# WORKDIR, USER, ENV, ENTRYPOINT, CMD; anything else stops it.
set -euo pipefail
[ $# = 1 ] || { echo "usage: $0 WORKDIR" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "$0: needs root (debootstrap and chroot)" >&2; exit 2; }
src=$(cd "$(dirname "$0")/.." && pwd)
work=$(mkdir -p "$1" && cd "$1" && pwd)
command -v debootstrap >/dev/null || apt-get install -y --no-install-recommends debootstrap
[ -x "$work/base/bin/sh" ] || debootstrap --variant=minbase bookworm "$work/base" http://deb.debian.org/debian

mounted=()
cleanup() { for m in "${mounted[@]}"; do umount -l "$m" 2>/dev/null || true; done; }
trap cleanup EXIT

declare -A stage_root
root="" workdir=/ user=0:0 entrypoint="" cmd="" n=0
envs=()
in_root() { # USERSPEC COMMAND: runs COMMAND with sh in the current stage, as the image would
  # (HOME from the stage's passwd entry of the user, as container engines set it)
  local home
  home=$(chroot "$root" getent passwd "${1%%:*}" | cut -d: -f6)
  chroot --userspec="$1" "$root" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME="${home:-/}" "${envs[@]}" /bin/sh -c "cd '$workdir' && $2"
}
from() { # IMAGE [AS NAME]
  n=$((n + 1))
  root=$work/stage$n
  rm -rf "$root"
  cp -a "$work/base" "$root"
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  for d in proc dev; do mount --bind "/$d" "$root/$d"; mounted+=("$root/$d"); done
  [ "${2:-}" = AS ] && stage_root[$3]=$root
  workdir=/ user=0:0 envs=()
}
copy() {
  if [[ $1 == --from=* ]]; then
    local from_root=${stage_root[${1#--from=}]}
    # the source is a glob inside the other stage
    # shellcheck disable=SC2086
    cp -a $from_root$2 "$root$3"
  else
    [ "$1 $2" = ". ." ] || { echo "only 'COPY . .' and 'COPY --from=' are understood" >&2; exit 1; }
    mkdir -p "$root$workdir"
    git -C "$src" ls-files -z | (cd "$src" && tar --null -T - -c) | tar -x -C "$root$workdir"
  fi
}

# the Containerfile's logical lines: continuations joined, comments and blank lines dropped
while IFS= read -r line; do
  read -r op rest <<<"$line"
  echo "== $op $rest" | cut -c1-120
  case $op in
    FROM) from $rest ;;
    RUN) in_root "$user" "$rest" ;;
    COPY) copy $rest ;;
    WORKDIR) workdir=$rest; mkdir -p "$root$workdir" ;;
    USER) user=$rest ;;
    ENV) envs+=("$rest") ;;
    ENTRYPOINT) entrypoint=$rest ;;
    CMD) cmd=$rest ;;
    *) echo "unknown instruction: $op" >&2; exit 1 ;;
  esac
done < <(sed -e '/^[[:space:]]*#/d' "$src/deploy/Containerfile" | sed -e ':a' -e '/\\$/N; s/\\\n//; ta' | grep -v '^[[:space:]]*$')

# ENTRYPOINT and CMD in their JSON form: ["a", "b"] -> a b
words() { python3 -c 'import json, shlex, sys; print(" ".join(map(shlex.quote, json.loads(sys.argv[1]))))' "$1"; }
echo "== the image, as $user: $(words "$entrypoint") $(words "$cmd")"
in_root "$user" "$(words "$entrypoint") $(words "$cmd")" | head -n 3
echo "== the demo roll-out against the emulator, as $user"
in_root "$user" "$(words "$entrypoint") --sim /usr/share/sgrun/scripts/rollout.lua" | tail -n 12
echo "containerfile-chroot: the image builds and runs as $user"
