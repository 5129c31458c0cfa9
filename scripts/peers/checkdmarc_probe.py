#!/usr/bin/env python3
"""A second opinion on a domain's SPF and DMARC records, from checkdmarc (pinned in
scripts/requirements-test.txt), asked through one DNS server on a chosen port.

  checkdmarc_probe.py --server 127.0.0.1 --port PORT DOMAIN [DOMAIN ...]

checkdmarc's command line takes nameservers as bare addresses (port 53); its library takes
dnspython Nameserver objects, which carry a port, so the tests' dnsmasq on a free loopback
port can answer it. Prints one JSON object, by domain:

  {"acme.test": {"spf": {"valid": true, "lookups": 5, "voidLookups": 0, "error": null, "record": "v=spf1 ..."},
                 "dmarc": {"valid": true, "present": true, "record": "v=DMARC1; ...", "error": null}}}

"lookups" is what checkdmarc counted before it stopped (it stops once the total passes 10).
"""
import argparse
import json
import sys

from checkdmarc.dmarc import check_dmarc
from checkdmarc.spf import check_spf
from dns.nameserver import Do53Nameserver


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--timeout", type=float, default=3.0)
    parser.add_argument("domains", nargs="+")
    arguments = parser.parse_args()
    nameservers = [Do53Nameserver(arguments.server, arguments.port)]
    report = {}
    for domain in arguments.domains:
        spf = check_spf(domain, nameservers=nameservers, timeout=arguments.timeout)
        dmarc = check_dmarc(domain, nameservers=nameservers, timeout=arguments.timeout)
        report[domain] = {
            "spf": {
                "valid": bool(spf.get("valid")),
                "lookups": spf.get("dns_lookups"),
                "voidLookups": spf.get("void_dns_lookups"),
                "error": spf.get("error"),
                "record": spf.get("record"),
            },
            "dmarc": {
                "valid": bool(dmarc.get("valid")),
                "present": dmarc.get("record") is not None,
                "record": dmarc.get("record"),
                "error": dmarc.get("error"),
            },
        }
    json.dump(report, sys.stdout, default=str)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
