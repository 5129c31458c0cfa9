# shellcheck shell=bash
# shellcheck source-path=SCRIPTDIR
# A throwaway PostgreSQL cluster for tests and benchmarks.
#
#   source scripts/lib/postgres.sh
#   pg_find_bin || apt_install postgresql      # Debian's server binaries
#   install_traps pg_stop_cluster              # BEFORE starting (see common.sh)
#   pg_start_cluster                           # sets PG_DIR PG_PORT PG_URL ...
#   psql "$PG_URL" -c 'select 1'
#   pg_stop_cluster                            # idempotent; the trap calls it too
#
# The cluster lives in a fresh temp dir owned by the `postgres` user (the
# server refuses to run as root), listens on 127.0.0.1 only, on a free port,
# with its unix socket inside the temp dir. Durability is off (fsync,
# synchronous_commit, full_page_writes) unless PG_DURABLE=1; max_connections is 1000.
# Role `tidings` is the bootstrap superuser, password `tidings`: TCP needs the
# password (scram-sha-256); the unix socket trusts local connections.
#
# TLS (set before pg_start_cluster; scripts/peers/postgres_tls.sh uses it):
#   PG_TLS_CERT, PG_TLS_KEY  the server's certificate (chain) and key, PEM: ssl = on (TLS 1.2 or
#                            later), and pg_hba.conf takes TCP connections over TLS only (hostssl);
#                            a client that asks for none is refused
#   PG_TLS_CLIENT_CA         also require a client certificate signed by this CA (PEM) whose CN
#                            is the role's name (clientcert=verify-full)
# The files are copied into the cluster's dir for the `postgres` user. The unix socket stays
# without TLS and trusted, for administration.
#
# After pg_start_cluster:
#   PG_BIN      directory of the server binaries (highest /usr/lib/postgresql/*/bin)
#   PG_VERSION  e.g. "15.18"
#   PG_DIR      the temp dir: data/ (cluster), sock/ (unix socket), server.log
#   PG_PORT     the TCP port on 127.0.0.1
#   PG_URL      postgres://tidings:tidings@127.0.0.1:$PG_PORT/postgres
#   PG_SOCKET_DIR  $PG_DIR/sock (for psql -h)

_TIDINGS_LIB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=common.sh
source "$_TIDINGS_LIB_DIR/common.sh"

PG_ROLE=tidings
PG_PASSWORD=tidings
PG_BIN="${PG_BIN:-}"
PG_VERSION=""
PG_DIR=""
PG_PORT=""
PG_URL=""
PG_SOCKET_DIR=""
# Parent of the temp dir; must be traversable by the `postgres` user and short
# (a unix socket path is limited to 107 bytes).
: "${PG_TMP_PARENT:=/tmp}"

# pg_find_bin: sets PG_BIN to the highest /usr/lib/postgresql/<v>/bin holding
# the server binaries (Debian's layout; /usr/local/bin shims are ignored).
# Returns 1 if there is none.
pg_find_bin() {
    local d
    PG_BIN=""
    while IFS= read -r d; do
        if [[ -x $d/initdb && -x $d/pg_ctl && -x $d/postgres && -x $d/psql && -x $d/pg_isready ]]; then
            PG_BIN=$d
            return 0
        fi
    done < <(compgen -G '/usr/lib/postgresql/*/bin' | sort -t/ -k4,4 -V -r)
    return 1
}

# _pg_as OUTFILE CMD...: runs CMD as the `postgres` user when we are root,
# from the cluster's dir (so it never tries to read root's cwd), with stdout
# and stderr into OUTFILE. The redirection is on the subshell, not on a
# function call: a signal trap that runs meanwhile keeps the script's stderr.
_pg_as() {
    local out=$1
    shift
    if [[ $(id -u) -eq 0 ]]; then
        (cd "$PG_DIR" && exec runuser -u postgres -- "$@") >"$out" 2>&1
    else
        (cd "$PG_DIR" && exec "$@") >"$out" 2>&1
    fi
}

_pg_free_port() {
    python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

# _pg_dump_log FILE...: prints the end of each log (relative to PG_DIR) to stderr.
_pg_dump_log() {
    local f
    for f in "$@"; do
        f=$PG_DIR/$f
        [[ -s $f ]] || continue
        printf '%s: ----- %s -----\n' "$LOG_PREFIX" "$f" >&2
        tail -n 60 "$f" >&2
    done
    printf '%s: ----- end of PostgreSQL logs -----\n' "$LOG_PREFIX" >&2
}

# pg_start_cluster: creates and starts the cluster; on failure prints the logs
# and returns 1 (what was created is left for pg_stop_cluster to remove).
pg_start_cluster() {
    local attempt port deadline
    if [[ -n $PG_DIR ]]; then
        warn "pg_start_cluster: a cluster is already running in $PG_DIR"
        return 1
    fi
    if [[ -z $PG_BIN ]] && ! pg_find_bin; then
        warn "no PostgreSQL server under /usr/lib/postgresql/*/bin (apt-get install postgresql)"
        return 1
    fi
    if [[ $(id -u) -eq 0 ]] && ! id -u postgres >/dev/null 2>&1; then
        warn "the 'postgres' user does not exist (it comes with Debian's postgresql-common)"
        return 1
    fi
    command -v python3 >/dev/null || { warn "python3 is needed to pick a free port"; return 1; }
    PG_VERSION=$("$PG_BIN/postgres" --version | awk '{print $3}')

    PG_DIR=$(mktemp -d "$PG_TMP_PARENT/tidings-pg.XXXXXX") || { PG_DIR=""; return 1; }
    PG_SOCKET_DIR=$PG_DIR/sock
    mkdir -m 700 "$PG_SOCKET_DIR"
    printf '%s\n' "$PG_PASSWORD" >"$PG_DIR/pwfile"
    chmod 700 "$PG_DIR"
    if [[ $(id -u) -eq 0 ]]; then
        chown -R postgres:postgres "$PG_DIR"
    fi

    if ! _pg_as "$PG_DIR/initdb.log" "$PG_BIN/initdb" -D "$PG_DIR/data" -U "$PG_ROLE" --pwfile="$PG_DIR/pwfile" \
        --auth-local=trust --auth-host=scram-sha-256 \
        --encoding=UTF8 --locale=C.UTF-8 --no-sync --no-instructions; then
        warn "initdb failed"
        _pg_dump_log initdb.log
        return 1
    fi
    cat >>"$PG_DIR/data/postgresql.conf" <<CONF

# --- throwaway test cluster (scripts/lib/postgres.sh) ---
listen_addresses = '127.0.0.1'
unix_socket_directories = '$PG_SOCKET_DIR'
max_connections = 1000
CONF
    if [[ -n ${PG_TLS_CERT:-} ]]; then
        _pg_configure_tls || return 1
    fi
    # Tests trade durability for speed; benchmarks set PG_DURABLE=1 to measure a real server.
    if [[ -z ${PG_DURABLE:-} ]]; then
        printf 'fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n' >>"$PG_DIR/data/postgresql.conf"
    fi

    # Another process may take the port between picking and binding: retry.
    for attempt in 1 2 3 4 5; do
        port=$(_pg_free_port) || { warn "could not pick a free port"; return 1; }
        log "starting PostgreSQL $PG_VERSION on 127.0.0.1:$port in $PG_DIR (attempt $attempt)"
        if _pg_as "$PG_DIR/pg_ctl.log" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" \
            -l "$PG_DIR/server.log" -o "-p $port" -w -t 30 start; then
            PG_PORT=$port
            break
        fi
        if grep -qE 'could not bind|Address already in use' "$PG_DIR/server.log" 2>/dev/null &&
            ! _pg_as /dev/null "$PG_BIN/pg_ctl" -D "$PG_DIR/data" status; then
            warn "port $port was taken; trying another"
            continue
        fi
        break
    done
    if [[ -z $PG_PORT ]]; then
        warn "PostgreSQL did not start (pg_ctl start -w -t 30 failed)"
        _pg_dump_log pg_ctl.log server.log
        return 1
    fi

    PG_URL="postgres://$PG_ROLE:$PG_PASSWORD@127.0.0.1:$PG_PORT/postgres"
    # Ready on TCP, and the password works: the way the tests will connect. A TLS cluster may
    # want a client certificate on TCP: its role is checked over the unix socket instead.
    local check_url=$PG_URL
    if [[ -n ${PG_TLS_CERT:-} ]]; then
        check_url="postgresql://$PG_ROLE@/postgres?host=$PG_SOCKET_DIR&port=$PG_PORT"
    fi
    deadline=$((SECONDS + 30))
    until "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -d postgres &&
        "$PG_BIN/psql" "$check_url" -XAtq -c 'select 1' >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then
            warn "PostgreSQL on 127.0.0.1:$PG_PORT did not answer within 30 s"
            "$PG_BIN/psql" "$check_url" -XAtq -c 'select 1' >&2 || true
            _pg_dump_log server.log
            return 1
        fi
        sleep 0.2
    done
    log "PostgreSQL $PG_VERSION ready at postgres://$PG_ROLE:***@127.0.0.1:$PG_PORT/postgres"
}

# _pg_configure_tls: copies PG_TLS_CERT/PG_TLS_KEY (and PG_TLS_CLIENT_CA) into the cluster,
# turns ssl on and makes pg_hba.conf accept TCP connections over TLS only.
_pg_configure_tls() {
    local file clientcert=""
    [[ -n ${PG_TLS_KEY:-} ]] || { warn "PG_TLS_CERT needs PG_TLS_KEY"; return 1; }
    for file in "$PG_TLS_CERT" "$PG_TLS_KEY" ${PG_TLS_CLIENT_CA:+"$PG_TLS_CLIENT_CA"}; do
        [[ -r $file ]] || { warn "TLS file $file cannot be read"; return 1; }
    done
    mkdir -m 700 "$PG_DIR/tls"
    cp "$PG_TLS_CERT" "$PG_DIR/tls/server.pem"
    cp "$PG_TLS_KEY" "$PG_DIR/tls/server.key"
    chmod 600 "$PG_DIR/tls/server.key"
    cat >>"$PG_DIR/data/postgresql.conf" <<CONF
ssl = on
ssl_cert_file = '$PG_DIR/tls/server.pem'
ssl_key_file = '$PG_DIR/tls/server.key'
ssl_min_protocol_version = 'TLSv1.2'
CONF
    if [[ -n ${PG_TLS_CLIENT_CA:-} ]]; then
        cp "$PG_TLS_CLIENT_CA" "$PG_DIR/tls/client-ca.pem"
        printf "ssl_ca_file = '%s'\n" "$PG_DIR/tls/client-ca.pem" >>"$PG_DIR/data/postgresql.conf"
        clientcert=" clientcert=verify-full"
    fi
    # TLS or nothing on TCP: no `host` line, so a client without TLS matches no entry.
    cat >"$PG_DIR/data/pg_hba.conf" <<HBA
local   all all                 trust
hostssl all all 127.0.0.1/32    scram-sha-256$clientcert
hostssl all all ::1/128         scram-sha-256$clientcert
HBA
    if [[ $(id -u) -eq 0 ]]; then
        chown -R postgres:postgres "$PG_DIR/tls" "$PG_DIR/data/pg_hba.conf"
    fi
}

# _pg_pids_of DIR: PIDs of processes whose command line names DIR/data
# (the postmaster, or a pg_ctl/initdb still running): this cluster's only.
_pg_pids_of() {
    local dir=$1 p cmd
    for p in /proc/[0-9]*; do
        cmd=$(tr '\0' ' ' 2>/dev/null <"$p/cmdline") || continue
        [[ $cmd == *" $dir/data"* ]] && printf '%s\n' "${p#/proc/}"
    done
    return 0
}

# pg_stop_cluster: stops the cluster (immediate mode), makes sure no process of
# it is left, and removes its temp dir. Safe to call more than once, and on a
# cluster that only half started.
pg_stop_cluster() {
    local dir=$PG_DIR pids i sig refused
    [[ -n $dir ]] || return 0
    # Refused connections make client pools back off and retry: say so, it explains stalls.
    refused=$(grep -c "too many clients" "$dir/server.log" 2>/dev/null || true)
    if [[ ${refused:-0} -gt 0 ]]; then
        warn "PostgreSQL refused $refused connections with 'too many clients' (max_connections)"
    fi
    if [[ -f $dir/data/postmaster.pid && -n $PG_BIN ]]; then
        _pg_as /dev/null "$PG_BIN/pg_ctl" -D "$dir/data" stop -m immediate -w -t 15 || true
    fi
    # Whatever is left (a postmaster that was still starting, or did not stop).
    for sig in QUIT KILL; do
        pids=$(_pg_pids_of "$dir")
        [[ -n $pids ]] || break
        # shellcheck disable=SC2086  # one PID per word
        kill -"$sig" $pids 2>/dev/null || true
        for ((i = 0; i < 25; i++)); do
            [[ -n $(_pg_pids_of "$dir") ]] || break
            sleep 0.2
        done
    done
    if [[ -n $(_pg_pids_of "$dir") ]]; then
        warn "PostgreSQL processes of $dir are still running: $(_pg_pids_of "$dir" | tr '\n' ' ')"
    fi
    case $dir in
    "$PG_TMP_PARENT"/tidings-pg.*) rm -rf -- "$dir" ;;
    *) warn "not removing unexpected PG_DIR '$dir'" ;;
    esac
    PG_DIR="" PG_PORT="" PG_URL="" PG_SOCKET_DIR=""
    log "PostgreSQL stopped and $dir removed"
}
