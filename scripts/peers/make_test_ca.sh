#!/usr/bin/env bash
# Makes throwaway TLS material for the SMTP tests in DIR (created if missing;
# existing files are overwritten):
#   ca.pem, ca.key                 a self-signed test CA (EC P-256, CA:true, 2 days)
#   server.pem, server.key         signed by it, for DNS:localhost and IP:127.0.0.1
#   other.pem, other.key           signed by it, for DNS:wrong.example only
#   untrusted-ca.pem, untrusted-ca.key   a second CA that clients are not given
#   untrusted.pem, untrusted.key   signed by the second CA, for localhost/127.0.0.1
#   client.pem, client.key         a client certificate signed by the first CA, CN=tidings
#                                  (the test PostgreSQL role), for clientAuth
# Usage: scripts/peers/make_test_ca.sh DIR
set -euo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 DIR" >&2
    exit 2
fi
dir=$1
mkdir -p "$dir"
work=$(mktemp -d "${TMPDIR:-/tmp}/tidings-test-ca.XXXXXX")
trap 'rm -rf "$work"' EXIT

# quiet CMD...: runs CMD silently; on failure shows its output and stops.
quiet() {
    if ! "$@" >"$work/out" 2>&1; then
        echo "$0: failed: $*" >&2
        cat "$work/out" >&2
        exit 1
    fi
}

new_key() {
    quiet openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"
    chmod 600 "$1"
}

# make_ca NAME SUBJECT: NAME.pem / NAME.key
make_ca() {
    local name=$1 subject=$2
    new_key "$dir/$name.key"
    cat >"$work/$name-ca.cnf" <<EOF
[req]
distinguished_name = dn
prompt = no
x509_extensions = ca_ext
[dn]
CN = $subject
[ca_ext]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
EOF
    quiet openssl req -new -x509 -sha256 -days 2 -key "$dir/$name.key" \
        -config "$work/$name-ca.cnf" -out "$dir/$name.pem"
}

# make_leaf NAME CA CN USAGE [SAN]: NAME.pem / NAME.key signed by CA.pem / CA.key, for
# extendedKeyUsage USAGE (serverAuth or clientAuth) and, when given, subjectAltName SAN (CN is
# only a label: clients match server names against subjectAltName)
make_leaf() {
    local name=$1 ca=$2 cn=$3 usage=$4 san=${5:-}
    new_key "$dir/$name.key"
    cat >"$work/$name.cnf" <<EOF
[req]
distinguished_name = dn
prompt = no
[dn]
CN = $cn
[leaf_ext]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = $usage
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
    if [[ -n $san ]]; then echo "subjectAltName = $san" >>"$work/$name.cnf"; fi
    quiet openssl req -new -sha256 -key "$dir/$name.key" -config "$work/$name.cnf" \
        -out "$work/$name.csr"
    quiet openssl x509 -req -sha256 -days 2 -in "$work/$name.csr" \
        -CA "$dir/$ca.pem" -CAkey "$dir/$ca.key" \
        -set_serial "0x$(openssl rand -hex 16)" \
        -extfile "$work/$name.cnf" -extensions leaf_ext \
        -out "$dir/$name.pem"
}

make_ca ca "Tidings Test CA"
make_leaf server ca localhost serverAuth "DNS:localhost, IP:127.0.0.1"
make_leaf other ca wrong.example serverAuth "DNS:wrong.example"
make_ca untrusted-ca "Tidings Untrusted Test CA"
make_leaf untrusted untrusted-ca localhost serverAuth "DNS:localhost, IP:127.0.0.1"
make_leaf client ca tidings clientAuth
