#!/usr/bin/env python3
"""A webhook receiver for the webhook tests, verifying Standard Webhooks signatures on its own
(Python's hmac, hashlib and base64, the way the Standard Webhooks libraries do).

Serves HTTP (HTTPS with --cert/--key) on 127.0.0.1, on a port the OS picks, until SIGTERM.

  webhook_receiver.py --port-file PATH --record-dir DIR [--cert PEM --key PEM]

--port-file PATH   written (PATH.tmp, then renamed) as "PORT\\n" once the server listens
--record-dir DIR   created if missing. Read before every request:
                     secrets   the whsec_ secrets to verify with, one per line (none: nothing verifies)
                     status    what to answer whatever the signature: an HTTP status ("503"),
                               "redirect" (302 to /elsewhere) or "stall SECONDS" (wait, then 200)
                     reply     the body to answer with (default: a small JSON object)
                   Without a status file the answer is 200 when a signature verifies and 401
                   when none does. Each request N (from 1) is recorded as N.json, by rename:
                     {"method", "path", "headers" (lowercased names), "body" (text),
                      "verified", "matched" (indexes of the secrets whose signature is in the
                      header), "answered"}
"""
import argparse
import base64
import hashlib
import hmac
import http.server
import json
import os
import signal
import ssl
import sys
import threading
import time


def signature(secret, msg_id, timestamp, body):
    """The base64 HMAC-SHA256 of "id.timestamp.body" under the key the secret carries."""
    key = base64.b64decode(secret[len("whsec_"):] if secret.startswith("whsec_") else secret)
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def verifies(secret, msg_id, timestamp, body, header):
    """Whether any "v1,<signature>" entry of the space-separated header is the secret's."""
    expected = signature(secret, msg_id, timestamp, body)
    for versioned in header.split(" "):
        version, _, given = versioned.partition(",")
        if version == "v1" and hmac.compare_digest(expected, given):
            return True
    return False


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--record-dir", required=True)
    parser.add_argument("--cert")
    parser.add_argument("--key")
    args = parser.parse_args()
    os.makedirs(args.record_dir, exist_ok=True)
    lock = threading.Lock()
    counter = [0]

    def read(name):
        try:
            with open(os.path.join(args.record_dir, name)) as handle:
                return handle.read().strip()
        except FileNotFoundError:
            return ""

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *arguments):
            pass

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            msg_id = self.headers.get("webhook-id", "")
            timestamp = self.headers.get("webhook-timestamp", "")
            header = self.headers.get("webhook-signature", "")
            secrets = [line for line in read("secrets").splitlines() if line.strip()]
            matched = [index for index, secret in enumerate(secrets) if verifies(secret.strip(), msg_id, timestamp, body, header)]
            verified = bool(matched)
            behaviour = read("status")
            status, extra = (200 if verified else 401), {}
            if behaviour == "redirect":
                status, extra = 302, {"Location": "/elsewhere"}
            elif behaviour.startswith("stall"):
                time.sleep(float(behaviour.split()[1]))
                status = 200
            elif behaviour:
                status = int(behaviour)
            with lock:
                counter[0] += 1
                number = counter[0]
            record = {
                "method": self.command, "path": self.path,
                "headers": {name.lower(): value for name, value in self.headers.items()},
                "body": body.decode("utf-8", "replace"), "verified": verified, "matched": matched, "answered": status,
            }
            target = os.path.join(args.record_dir, f"{number}.json")
            with open(target + ".tmp", "w") as handle:
                json.dump(record, handle)
            os.rename(target + ".tmp", target)
            answer = (read("reply") or json.dumps({"received": msg_id, "verified": verified})).encode()
            try:
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)
            except (BrokenPipeError, ConnectionResetError):
                pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    if args.cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.cert, args.key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with open(args.port_file + ".tmp", "w") as handle:
        handle.write(f"{server.server_address[1]}\n")
    os.rename(args.port_file + ".tmp", args.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
