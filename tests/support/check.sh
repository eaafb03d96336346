# check NAME CONDITION...: runs CONDITION and counts it passed or failed (naming it on stderr).
# Sourced by the shell tests; they print "$passed passed, $failed failed" at the end.
passed=0 failed=0
check() {
  local name=$1
  shift
  if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL $name" >&2; fi
}
