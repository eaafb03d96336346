# Shared by tests/security/test_*.sh: check(), and the second user an attack runs as.
# usage in a test: . "$(dirname "$0")/lib.sh"; the test's first argument is the sgrun binary.
set -u
sgrun=$1
tmp=$(mktemp -d)
chmod 755 "$tmp"
cleanup_hooks=()
trap 'for h in "${cleanup_hooks[@]}"; do eval "$h"; done; rm -rf "$tmp"' EXIT
. "$(dirname "${BASH_SOURCE[0]}")/../support/check.sh"
finish() {
  echo "$passed passed, $failed failed"
  [ "$failed" = 0 ]
}
# Attacks as another local user need root to become that user; without root a test says why it
# cannot run and ends as skipped (exit 77, which ctest reports as "Not Run" with SKIP_RETURN_CODE).
need_root() {
  if [ "$(id -u)" != 0 ]; then
    echo "SKIP: this test plays a second local user (useradd, setpriv) and needs root; CI runs as root"
    exit 77
  fi
}
# ensure_user NAME: an unprivileged system account without a home, created once (serialised, as
# tests run in parallel).
ensure_user() {
  (
    flock 9
    id -u "$1" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$1"
  ) 9>/tmp/.sgrun-security-users.lock
}
# as USER CMD...: runs CMD as USER with no supplementary groups and a minimal environment.
as() {
  local user=$1
  shift
  setpriv --reuid="$user" --regid="$user" --clear-groups env -i PATH=/usr/bin:/bin HOME=/nonexistent "$@"
}
# A copy of sgrun (with its networking library) that any user can run, whatever the build
# directory's permissions.
public_sgrun() {
  mkdir -p "$tmp/bin"
  cp "$sgrun" "$tmp/bin/sgrun"
  cp "$(dirname "$sgrun")/libsgrun_net.so" "$tmp/bin/"
  chmod 755 "$tmp/bin" "$tmp/bin/sgrun"
  chmod 644 "$tmp/bin/libsgrun_net.so"
  echo "$tmp/bin/sgrun"
}
