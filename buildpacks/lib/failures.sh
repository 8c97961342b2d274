# shellcheck shell=bash
# failures.sh: no build fails without saying which command failed and why.
#
# Shared by the bash buildpacks shipped with Moorage (nodejs, static, procfile, go, ...).
# Source it at the top of bin/compile, right after `set -euo pipefail`:
#
#     bp_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
#     # shellcheck source=../../lib/failures.sh
#     . "$bp_dir/../lib/failures.sh"
#
# (`buildpacks/<name>/../lib` in this repository; the builder copies `buildpacks/lib` next
# to the buildpacks it runs, so the same path works in a build.)
#
# What it gives the script:
#
#   bp_run CMD [ARG...]   runs CMD with its output (stdout and stderr) indented into the build
#                         output; when CMD exits non-zero it prints the failure (below) with the
#                         last lines CMD printed, and exits with CMD's exit code.
#   bp_fail MESSAGE...    prints the failure with MESSAGE as its reason and exits 1; for checks
#                         the script makes itself ("package.json is not valid JSON").
#   an ERR trap           any other command that fails and stops the script (set -e) is reported
#                         the same way: the command as written, its exit code, the script line.
#   an EXIT trap          a script that exits non-zero without any of the above (a bare `exit 3`)
#                         still reports its exit code and the last command it ran. A script
#                         that needs an EXIT trap of its own starts it with
#                         `bp_on_exit "$?" "$BASH_COMMAND"`.
#
# What a failure looks like (the builder quotes the "Build failed:" line in its error):
#
#   " !     Build failed: `npm ci --prefer-offline` exited with code 1 (bin/compile line 57)"
#   " !     Its last output lines:"
#   " !       npm ERR! ..."
#
# and for a command not run through bp_run, the script line as written when it says more:
#
#   " !     Build failed: `cat` exited with code 2 (bin/compile line 9: ls /nonexistent | cat)"
#
# Nothing else is printed on failure: the command's own output is already above.
#
# Only the script's own shell reports (not its subshells), and only once.

BP_FAILURE_PREFIX=" !     Build failed: "
BP_FAILURE_TAIL_LINES="${BP_FAILURE_TAIL_LINES:-20}"
_bp_reported=""
_bp_path="$(cd "$(dirname "${BASH_SOURCE[1]:-$0}")" && pwd)/$(basename "${BASH_SOURCE[1]:-$0}")"
_bp_script="bin/${_bp_path##*/}"

# The failure block; $1 reason, $2 optional file whose last lines are quoted.
_bp_report() {
  [ -z "$_bp_reported" ] || return 0
  _bp_reported=1
  echo "${BP_FAILURE_PREFIX}$1"
  if [ -n "${2:-}" ] && [ -s "$2" ]; then
    echo " !     Its last output lines:"
    tail -n "$BP_FAILURE_TAIL_LINES" "$2" | sed 's/^/ !       /'
  fi
}

# "bin/compile line N", and the line as written when it says more than the command alone.
_bp_where() {
  local line=$1 command=${2:-} text
  text="$(sed -n "${line}{s/^[[:space:]]*//;s/[[:space:]]*\$//;p;}" "$_bp_path" 2>/dev/null | cut -c1-200)"
  if [ -n "$text" ] && [ "$text" != "$command" ]; then
    printf '%s line %s: %s' "$_bp_script" "$line" "$text"
  else
    printf '%s line %s' "$_bp_script" "$line"
  fi
}

_bp_quote() {
  local out="" arg
  for arg in "$@"; do
    case "$arg" in
      *[!A-Za-z0-9_./=:@%+,-]* | "") out+=" '${arg//\'/\'\\\'\'}'" ;;
      *) out+=" $arg" ;;
    esac
  done
  printf '%s' "${out# }"
}

bp_run() {
  local log status=0
  log="$(mktemp "${TMPDIR:-/tmp}/bp-run.XXXXXX")"
  "$@" 2>&1 | tee "$log" | sed -u 's/^/       /' || status=$?
  if [ "$status" -ne 0 ]; then
    _bp_report "\`$(_bp_quote "$@")\` exited with code $status ($_bp_script line ${BASH_LINENO[-2]})" "$log"
    rm -f "$log"
    exit "$status"
  fi
  rm -f "$log"
}

# The line named is where the script's top level made the call that failed (through any
# helper functions of the script's own): BASH_LINENO's last entry but one.
bp_fail() {
  _bp_report "$* ($_bp_script line ${BASH_LINENO[-2]})"
  exit 1
}

_bp_on_err() {
  local status=$1 line=$2 command=$3
  [ "$BASHPID" = "$$" ] || return 0
  _bp_report "\`$command\` exited with code $status ($(_bp_where "$line" "$command"))"
}

bp_on_exit() {
  local status=$1 command=$2
  [ "$status" -ne 0 ] || return 0
  [ "$BASHPID" = "$$" ] || return 0
  _bp_report "$_bp_script exited with code $status; the last command it ran was \`$command\`"
}

set -E
trap '_bp_on_err "$?" "$LINENO" "$BASH_COMMAND"' ERR
trap 'bp_on_exit "$?" "$BASH_COMMAND"' EXIT
