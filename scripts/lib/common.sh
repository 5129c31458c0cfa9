# shellcheck shell=bash
# Shared helpers for scripts/*: messages, installing missing Debian packages,
# signal traps, and running a long child command that can be ended as a group.
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

# run_child CMD...: runs CMD in a new session and process group (setsid) in the
# background, waits for it and returns its exit status. Two reasons:
#  - a trapped signal (INT/TERM/HUP, see install_traps) interrupts `wait` at
#    once, where a foreground command would delay the trap until it ended;
#  - the EXIT trap's stop_child can then end CMD and everything it started
#    (test runners, servers the tests spawned), even those orphaned, by group.
# CMD's stdin is /dev/null. When CMD ends by itself, whatever it left running
# in its group is reported and ended too.
_CHILD_PGID=""
run_child() {
    local rc=0
    setsid "$@" </dev/null &
    _CHILD_PGID=$!
    wait "$_CHILD_PGID" || rc=$?
    if _group_alive "$_CHILD_PGID"; then
        warn "'$1' exited ($rc) but left processes running: $(_group_pids "$_CHILD_PGID" | tr '\n' ' ')"
        stop_child
    fi
    _CHILD_PGID=""
    return "$rc"
}

# _group_pids PGID: PIDs of live (non-zombie) processes in process group PGID.
_group_pids() {
    local pgid=$1 p stat state pgrp
    for p in /proc/[0-9]*; do
        stat=$(cat 2>/dev/null <"$p/stat") || continue
        stat=${stat##*) }   # skip "pid (comm) ", comm may hold spaces
        read -r state _ pgrp _ <<<"$stat"
        [[ $pgrp == "$pgid" && $state != Z && $state != X ]] && printf '%s\n' "${p#/proc/}"
    done
    return 0
}

_group_alive() { [[ -n $(_group_pids "$1") ]]; }

# stop_child: ends the process group started by run_child, if any of it still
# runs: SIGTERM to the whole group, then SIGKILL after 10 s.
stop_child() {
    local pgid=$_CHILD_PGID sig i
    [[ -n $pgid ]] || return 0
    _CHILD_PGID=""
    for sig in TERM KILL; do
        _group_alive "$pgid" || break
        log "stopping process group $pgid (SIG$sig)"
        kill -"$sig" -- -"$pgid" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do
            _group_alive "$pgid" || break
            sleep 0.2
        done
    done
    wait "$pgid" 2>/dev/null || true
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
