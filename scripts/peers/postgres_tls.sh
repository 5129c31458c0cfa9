#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# A throwaway PostgreSQL cluster that takes TCP connections over TLS only, for the tests of
# Tidings' TLS to PostgreSQL (scripts/lib/postgres.sh makes and removes it):
#
#   scripts/peers/postgres_tls.sh --cert PEM --key PEM [--client-ca PEM] --port-file PATH
#
# --cert, --key     the server's certificate (chain) and private key
# --client-ca       also require a client certificate signed by this CA, whose CN is the role
# --port-file PATH  written (PATH.tmp, then renamed) as "PORT\n" once the server answers on
#                   127.0.0.1:PORT
#
# The role `tidings` (password `tidings`) is the superuser. The cluster runs until this
# script's standard input closes (the test that started it ended, however it ended); then it
# is stopped and removed. Without PostgreSQL's server binaries the script fails at once.
set -euo pipefail

LOG_PREFIX="postgres_tls"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=../lib/postgres.sh
source "$ROOT/scripts/lib/postgres.sh"

port_file=""
PG_TLS_CERT="" PG_TLS_KEY="" PG_TLS_CLIENT_CA=""
while (($# > 0)); do
    case $1 in
    --cert) PG_TLS_CERT=$2; shift 2 ;;
    --key) PG_TLS_KEY=$2; shift 2 ;;
    --client-ca) PG_TLS_CLIENT_CA=$2; shift 2 ;;
    --port-file) port_file=$2; shift 2 ;;
    *) die "unknown argument '$1' (see the header of $0)" ;;
    esac
done
[[ -n $port_file && -n $PG_TLS_CERT && -n $PG_TLS_KEY ]] || die "--cert, --key and --port-file are required"

pg_find_bin || die "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin (scripts/test installs Debian's postgresql)"
install_traps pg_stop_cluster
pg_start_cluster || die "the TLS cluster did not start (logs above)"
printf '%s\n' "$PG_PORT" >"$port_file.tmp"
mv "$port_file.tmp" "$port_file"
# Until the test closes our standard input.
while IFS= read -r _; do :; done
