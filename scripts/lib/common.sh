# shellcheck shell=bash
# Shared helpers for scripts/*: messages, installing missing Debian packages,
# and running a long child command so that signals reach this script at once.
#
# Source it; it defines functions only (and guards against double sourcing).

[[ -n "${_TIDINGS_COMMON_SH:-}" ]] && return 0
_TIDINGS_COMMON_SH=1

# Prefix of every message; a script may set it before sourcing.
: "${LOG_PREFIX:=$(basename "$0")}"

log()  { printf '%s: %s\n' "$LOG_PREFIX" "$*" >&2; }
warn() { printf '%s: WARNING: %s\n' "$LOG_PREFIX" "$*" >&2; }
die()  { printf '%s: ERROR: %s\n' "$LOG_PREFIX" "$*" >&2; exit 1; }

_APT_UPDATED=""

# apt_install PKG...: `apt-get update` (once per run) and install the packages.
# Call it only with packages that are actually missing.
apt_install() {
    (($# > 0)) || return 0
    if [[ $(id -u) -ne 0 ]]; then
        die "missing packages: $* (run as root, or install them first)"
    fi
    export DEBIAN_FRONTEND=noninteractive
    if [[ -z $_APT_UPDATED ]]; then
        log "apt-get update"
        apt-get update -q >&2 || die "apt-get update failed"
        _APT_UPDATED=1
    fi
    log "apt-get install $*"
    apt-get install -y -q --no-install-recommends "$@" >&2 ||
        die "apt-get install $* failed"
}

# run_child CMD...: runs CMD in the background and waits for it, returning its
# exit status. Unlike a foreground command, this lets a trapped signal
# (INT/TERM/HUP, see install_traps) interrupt the wait immediately; the EXIT
# trap then calls stop_child. CMD's stdin is /dev/null.
_CHILD_PID=""
run_child() {
    local rc=0
    "$@" </dev/null &
    _CHILD_PID=$!
    wait "$_CHILD_PID" || rc=$?
    _CHILD_PID=""
    return "$rc"
}

# stop_child: ends the command started by run_child, if it still runs: SIGINT
# first (SwiftPM cancels its own children on SIGINT), then SIGTERM, then SIGKILL.
stop_child() {
    local pid=$_CHILD_PID sig i
    [[ -n $pid ]] || return 0
    _CHILD_PID=""
    for sig in INT TERM KILL; do
        kill -0 "$pid" 2>/dev/null || break
        log "stopping PID $pid (SIG$sig)"
        kill -"$sig" "$pid" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.2
        done
    done
    wait "$pid" 2>/dev/null || true
}

# install_traps FUNC: runs FUNC on EXIT, whatever happened; INT, TERM and HUP
# make the script exit (130, 143, 129), which runs FUNC too. FUNC receives the
# exit status in $? and should not exit by itself.
install_traps() {
    local fn=$1
    # shellcheck disable=SC2064  # expand $fn now, on purpose
    trap "_run_exit_trap $fn" EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    trap 'exit 129' HUP
}

_run_exit_trap() {
    local rc=$? fn=$1
    trap - EXIT INT TERM HUP
    set +e
    "$fn"
    exit "$rc"
}
