#!/usr/bin/env python3
"""Scans the captured logs of a whole test run for what operational logs must never hold.

Tidings logs people only as keyed pseudonyms, client addresses truncated (/24, /48), and
never keys, passwords or message contents. The test suite writes every log line it
produces (its own loggers at trace level, and the output of every `tidings` process it
runs) to one file; this script fails the run if that file holds an email address, a full
client IP address, an API key, or one of the contents the tests send.

Usage: scan_logs.py LOGFILE
"""
import re
import sys

# A domain ends in a label of letters (a user@127.0.0.1 in a database URL is not an address).
EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@(?:[A-Za-z0-9\-]+\.)+[A-Za-z]{2,}")
API_KEY = re.compile(r"tdg_[0-9A-Za-z]{40,}")
IPV4 = re.compile(r"(?<![0-9.])(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?![0-9])")
IPV6 = re.compile(r"(?<![0-9A-Fa-f:])(?:[0-9A-Fa-f]{1,4}:){3,7}[0-9A-Fa-f]{1,4}(?![0-9A-Fa-f:])")
# Contents the tests send as attribute values, event properties and CSV cells.
CONTENTS = ["Zanzibar-attribute-7781", "Quokka-property-5521", "Narwhal-csv-3390", "Deleted-attribute-4410"]
# The server's own listen address is configuration, not a person's.
OWN_ADDRESSES = {"127.0.0.1", "0.0.0.0"}


def findings(line):
    for match in EMAIL.finditer(line):
        yield "email address", match.group(0)
    for match in API_KEY.finditer(line):
        yield "API key", match.group(0)[:12] + "..."
    for match in IPV4.finditer(line):
        address = match.group(0)
        octets = [int(part) for part in match.groups()]
        if address in OWN_ADDRESSES or octets[3] == 0 or any(part > 255 for part in octets):
            continue
        yield "full IPv4 address", address
    for match in IPV6.finditer(line):
        yield "full IPv6 address", match.group(0)
    for content in CONTENTS:
        if content in line:
            yield "message content", content


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    path = sys.argv[1]
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            lines = handle.readlines()
    except OSError as error:
        print(f"log scan: cannot read {path}: {error}", file=sys.stderr)
        return 1
    if not lines:
        print(f"log scan: {path} is empty; the suite's logs were not captured", file=sys.stderr)
        return 1
    hits = []
    for number, line in enumerate(lines, 1):
        for kind, text in findings(line):
            hits.append(f"{path}:{number}: {kind} {text}: {line.strip()[:200]}")
    if hits:
        print(f"log scan: {len(hits)} finding(s) in the captured logs:", file=sys.stderr)
        for hit in hits[:50]:
            print("  " + hit, file=sys.stderr)
        return 1
    print(f"log scan: {len(lines)} log lines, no email address, full IP address, API key or content")
    return 0


if __name__ == "__main__":
    sys.exit(main())
