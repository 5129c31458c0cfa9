#!/usr/bin/env python3
"""A scriptable SMTP server for the SMTP client's tests (built on aiosmtpd 1.4.6).

Runs one SMTP server on 127.0.0.1, on a port the OS picks, until SIGTERM or SIGINT.

  smtp_peer.py --port-file PATH [--record-dir DIR] [--mode MODE] [options]

--port-file PATH   written (PATH.tmp, then renamed) as "PORT\\n" once the server listens
--record-dir DIR   created if missing; for each accepted message N (from 1):
                     N.eml   the message as received after DATA (dot-unstuffed, CRLF kept)
                     N.json  {"mail_from", "rcpt_tos", "mail_options", "rcpt_options",
                              "smtp_utf8", "tls", "tls_version", "auth_user", "peer",
                              "helo", "connection", "size"}; written last, by rename, so
                              once it exists N.eml is complete. A null reverse-path
                              (MAIL FROM:<>) is recorded as "".
                   connections.log  "C 127.0.0.1:PORT" for each accepted connection C
                   commands.log     every command line received, in order, from all
                                    connections; AUTH arguments and AUTH continuation
                                    lines are written as ***
--cert PEM --key PEM   server certificate (chain) and key, for the TLS modes
--user U --password P  the one credential AUTH PLAIN/LOGIN accepts; with --user, AUTH
                   is required before MAIL (in plain mode it is offered without TLS)
--hostname NAME    name in the greeting and the EHLO reply (default localhost)
--timeout SECONDS  idle time after which the server drops a connection (default 300)
--verbose          aiosmtpd's own session log on stderr

--mode MODE
  plain            no TLS; every message gets "250 2.0.0 Ok: queued as N"
  starttls         STARTTLS offered but not required (needs --cert/--key)
  starttls-auth    STARTTLS offered and required (530 before it); AUTH required after
                   it (needs --cert/--key/--user/--password; wrong credentials: 535)
  implicit-tls     TLS from the first byte (needs --cert/--key); AUTH if --user given
  starttls-fails   STARTTLS offered; the command is answered
                   "454 4.7.0 TLS not available due to temporary reason"
  starttls-inject  STARTTLS offered (needs --cert/--key); the 220 reply is followed, in
                   the same write, by "250-injected" and "250 AUTH PLAIN"; a TLS
                   handshake after it proceeds as usual
  reply            --reply-at {connect,mail,rcpt,data,message} --reply "CODE text":
                   that reply at that point (a multi-line reply: lines separated by
                   "\\n", each starting with the code). --reply-for ADDRESS limits a
                   rcpt reply to that recipient. At connect a 421 greeting closes the
                   connection; another non-2xx greeting answers 503 to everything but
                   QUIT. At message the message is still recorded.
  drop-mid-data    after 354 and the first content bytes, the connection is reset
                   (--drop-with rst, the default) or closed (--drop-with fin) with no
                   reply; nothing is recorded
  stall            --stall-at {connect,mail,data,message}: no answer at that point
                   (connect: no greeting); the connection stays open. At message the
                   message is recorded before the server goes silent.

--reply-at/--reply and --stall-at also work with the other modes (e.g. a 554 after
AUTH over STARTTLS). SIZE (33554432), 8BITMIME and SMTPUTF8 are always advertised;
PIPELINING is not (aiosmtpd does not advertise it, though it reads pipelined commands
in order).
"""
import argparse
import asyncio
import json
import logging
import os
import signal
import socket
import ssl
import struct
import sys
import warnings

from aiosmtpd.smtp import MISSING, SMTP, AuthResult

MODES = (
    "plain",
    "starttls",
    "starttls-auth",
    "implicit-tls",
    "starttls-fails",
    "starttls-inject",
    "reply",
    "drop-mid-data",
    "stall",
)
STARTTLS_MODES = ("starttls", "starttls-auth", "starttls-inject")
INJECTED_STARTTLS_REPLY = b"220 2.0.0 Ready to start TLS\r\n250-injected\r\n250 AUTH PLAIN"
STARTTLS_FAILED_REPLY = "454 4.7.0 TLS not available due to temporary reason"
_PLAIN_READUNTIL = object()


def die(message):
    print(f"smtp_peer: {message}", file=sys.stderr)
    sys.exit(2)


def parse_args(argv):
    p = argparse.ArgumentParser(description="Scriptable SMTP test server.")
    p.add_argument("--port-file", required=True)
    p.add_argument("--record-dir")
    p.add_argument("--mode", choices=MODES, default="plain")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--user")
    p.add_argument("--password")
    p.add_argument("--hostname", default="localhost")
    p.add_argument("--timeout", type=float, default=300.0)
    p.add_argument("--reply-at", choices=("connect", "mail", "rcpt", "data", "message"))
    p.add_argument("--reply")
    p.add_argument("--reply-for")
    p.add_argument("--stall-at", choices=("connect", "mail", "data", "message"))
    p.add_argument("--drop-with", choices=("rst", "fin"), default="rst")
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args(argv)

    needs_cert = args.mode in STARTTLS_MODES or args.mode == "implicit-tls"
    if needs_cert and not (args.cert and args.key):
        die(f"--mode {args.mode} needs --cert and --key")
    if (args.cert is None) != (args.key is None):
        die("--cert and --key go together")
    if (args.user is None) != (args.password is None):
        die("--user and --password go together")
    if args.mode == "starttls-auth" and args.user is None:
        die("--mode starttls-auth needs --user and --password")
    if args.mode == "reply" and not (args.reply_at and args.reply):
        die("--mode reply needs --reply-at and --reply")
    if (args.reply_at is None) != (args.reply is None):
        die("--reply-at and --reply go together")
    if args.reply_for and args.reply_at != "rcpt":
        die("--reply-for only applies to --reply-at rcpt")
    if args.mode == "stall" and not args.stall_at:
        die("--mode stall needs --stall-at")
    if args.reply is not None:
        lines = args.reply.split("\n")
        for line in lines:
            if len(line) < 3 or not line[:3].isdigit() or line[3:4] not in ("", " ", "-"):
                die(f"--reply line {line!r} does not start with a three-digit code")
            if line[:3] != lines[0][:3]:
                die("every line of --reply must carry the same code")
    return args


def reply_lines(reply):
    """ "451 a\\n451 b" -> ["451-a", "451 b"]; a single line is kept as given."""
    lines = reply.split("\n")
    if len(lines) == 1:
        return lines
    out = []
    for i, line in enumerate(lines):
        sep = " " if i == len(lines) - 1 else "-"
        out.append(line[:3] + sep + line[4:])
    return out


async def forever():
    await asyncio.get_running_loop().create_future()


def write_atomically(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


class Recorder:
    def __init__(self, directory):
        self.dir = directory
        if directory:
            os.makedirs(directory, exist_ok=True)

    def append(self, name, line):
        if not self.dir:
            return
        with open(os.path.join(self.dir, name), "ab") as f:
            f.write(line.encode("utf-8", "replace") + b"\n")

    def message(self, n, content, record):
        if not self.dir:
            return
        write_atomically(os.path.join(self.dir, f"{n}.eml"), content)
        text = json.dumps(record, ensure_ascii=False, indent=1) + "\n"
        write_atomically(os.path.join(self.dir, f"{n}.json"), text.encode("utf-8", "replace"))


def loggable(line):
    """A received command line for commands.log, with AUTH arguments hidden."""
    text = line.rstrip(b"\r\n").decode("utf-8", "backslashreplace")
    words = text.split()
    if words and words[0].upper() == "AUTH" and len(words) > 2:
        return f"{words[0]} {words[1]} ***"
    return text


class Handler:
    """aiosmtpd handler hooks; holds the state shared by all connections."""

    def __init__(self, cfg, recorder):
        self.cfg = cfg
        self.recorder = recorder
        self.connections = 0
        self.messages = 0
        self.live = set()

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        if self.cfg.user is None:
            # No credential, no AUTH (aiosmtpd offers it whenever TLS is up).
            responses = [r for r in responses if not r.startswith("250-AUTH")]
        if self.cfg.mode == "starttls-fails" and "250-STARTTLS" not in responses:
            responses.insert(len(responses) - 1, "250-STARTTLS")
        return responses

    async def handle_MAIL(self, server, session, envelope, address, options):
        if self.cfg.stall_at == "mail":
            await forever()
        if self.cfg.reply_at == "mail":
            if self.cfg.reply.startswith("2"):
                envelope.mail_from = address
                envelope.mail_options.extend(options)
            return server.reply_text()
        return MISSING

    async def handle_RCPT(self, server, session, envelope, address, options):
        cfg = self.cfg
        if cfg.reply_at == "rcpt" and (
            cfg.reply_for is None or cfg.reply_for.lower() == address.lower()
        ):
            if cfg.reply.startswith("2"):
                envelope.rcpt_tos.append(address)
                envelope.rcpt_options.extend(options)
            return server.reply_text()
        return MISSING

    async def handle_DATA(self, server, session, envelope):
        self.messages += 1
        n = self.messages
        content = envelope.original_content or b""
        tls = server.tls_object()
        mail_from = envelope.mail_from
        if mail_from == "<>":
            mail_from = ""
        record = {
            "mail_from": mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "mail_options": list(envelope.mail_options),
            "rcpt_options": list(envelope.rcpt_options),
            "smtp_utf8": bool(envelope.smtp_utf8),
            "tls": tls is not None,
            "tls_version": tls.version() if tls is not None else None,
            "auth_user": server.authenticated_user,
            "peer": session.peer[0] if session.peer else None,
            "helo": session.host_name,
            "connection": server.connection_no,
            "size": len(content),
        }
        self.recorder.message(n, content, record)
        if self.cfg.stall_at == "message":
            await forever()
        if self.cfg.reply_at == "message":
            return server.reply_text()
        return f"250 2.0.0 Ok: queued as {n}"

    async def handle_exception(self, error):
        if type(error).__name__ == "TLSSetupException":
            cause = error.__cause__
            if self.cfg.verbose:
                print(f"smtp_peer: TLS handshake failed: {cause!r}", file=sys.stderr)
            return "421 4.7.0 TLS handshake failed"
        print(f"smtp_peer: error in session: {error!r}", file=sys.stderr)
        return f"500 5.0.0 Error: ({type(error).__name__}) {error}"

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        login = bytes(auth_data.login)
        password = bytes(auth_data.password)
        if (
            self.cfg.user is not None
            and login == self.cfg.user.encode("utf-8")
            and password == self.cfg.password.encode("utf-8")
        ):
            server.authenticated_user = login.decode("utf-8", "replace")
            return AuthResult(success=True, auth_data=server.authenticated_user)
        return AuthResult(success=False, handled=False)


class PeerSMTP(SMTP):
    """aiosmtpd's SMTP with the test behaviours, one instance per connection."""

    def __init__(self, handler, **kwargs):
        self.peer_handler = handler
        self.cfg = handler.cfg
        self.connection_no = None
        self.authenticated_user = None
        self._inject_on_next_220 = False
        self._greeting_sent = False
        self._greeting = None
        super().__init__(handler, **kwargs)

    # --- bookkeeping ---------------------------------------------------------

    def connection_made(self, transport):
        first = self.transport is None
        super().connection_made(transport)
        if first:
            h = self.peer_handler
            h.connections += 1
            self.connection_no = h.connections
            h.live.add(self)
            peer = transport.get_extra_info("peername") or ("?", 0)
            h.recorder.append("connections.log", f"{self.connection_no} {peer[0]}:{peer[1]}")

    def connection_lost(self, error):
        self.peer_handler.live.discard(self)
        super().connection_lost(error)

    def _cb_client_connected(self, reader, writer):
        super()._cb_client_connected(reader, writer)
        recorder = self.peer_handler.recorder
        plain_readuntil = reader.readuntil
        plain_readline = reader.readline

        # aiosmtpd reads a command with readuntil() (default separator), DATA lines
        # with readuntil(b"\r\n") and AUTH continuation lines with readline().
        async def readuntil(separator=_PLAIN_READUNTIL):
            if separator is not _PLAIN_READUNTIL:
                return await plain_readuntil(separator)
            line = await plain_readuntil()
            recorder.append("commands.log", loggable(line))
            return line

        async def readline():
            line = await plain_readline()
            if line:
                recorder.append("commands.log", "***")
            return line

        reader.readuntil = readuntil
        reader.readline = readline

    def tls_object(self):
        if self.transport is None:
            return None
        return self.transport.get_extra_info("ssl_object")

    def reply_text(self):
        return "\r\n".join(reply_lines(self.cfg.reply))

    async def push(self, status):
        if not self._greeting_sent:
            # The first reply of a connection is the greeting.
            self._greeting_sent = True
            if self._greeting is not None:
                status = self._greeting
        elif self._inject_on_next_220 and str(status).startswith("220"):
            self._inject_on_next_220 = False
            status = INJECTED_STARTTLS_REPLY
        await super().push(status)

    # --- connection start ----------------------------------------------------

    async def _handle_client(self):
        cfg = self.cfg
        if cfg.stall_at == "connect":
            await forever()
        if cfg.reply_at == "connect":
            lines = reply_lines(cfg.reply)
            if not cfg.reply.startswith("2"):
                await self.push("\r\n".join(lines))
                if cfg.reply.startswith("421"):
                    self.transport.close()
                    return
                await self._refuse_until_quit()
                return
            self._greeting = "\r\n".join(lines)
        await super()._handle_client()

    async def _refuse_until_quit(self):
        """After a non-2xx greeting (RFC 5321 3.1): 503 to all but QUIT."""
        while self.transport is not None:
            try:
                line = await self._reader.readuntil()
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                self.transport.close()
                return
            if line.strip().upper() == b"QUIT":
                await self.push("221 2.0.0 Bye")
                self.transport.close()
                return
            await self.push("503 5.5.1 Error: no service")

    # --- commands ------------------------------------------------------------

    async def smtp_STARTTLS(self, arg):
        if self.cfg.mode == "starttls-fails":
            if arg:
                await self.push("501 Syntax: STARTTLS")
            else:
                await self.push(STARTTLS_FAILED_REPLY)
            return
        if self.cfg.mode == "starttls-inject" and not arg and self.tls_context:
            self._inject_on_next_220 = True
        await super().smtp_STARTTLS(arg)

    async def _data_allowed(self, arg):
        """aiosmtpd's checks before 354; False when a reply was already sent."""
        if await self.check_helo_needed():
            return False
        if await self.check_auth_needed("DATA"):
            return False
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return False
        if arg:
            await self.push("501 Syntax: DATA")
            return False
        return True

    async def smtp_DATA(self, arg):
        cfg = self.cfg
        if cfg.mode == "drop-mid-data":
            if not await self._data_allowed(arg):
                return
            await self.push("354 End data with <CR><LF>.<CR><LF>")
            await self._reader.read(1)
            self._drop_connection()
            return
        if cfg.stall_at == "data" or cfg.reply_at == "data":
            if not await self._data_allowed(arg):
                return
            if cfg.stall_at == "data":
                await forever()
            await self.push(self.reply_text())
            return
        await super().smtp_DATA(arg)

    def _drop_connection(self):
        raw = self._original_transport or self.transport
        if self.cfg.drop_with == "rst":
            sock = raw.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            raw.abort()
        else:
            raw.close()


def server_context(cfg):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cfg.cert, cfg.key)
    return ctx


async def serve(cfg):
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    recorder = Recorder(cfg.record_dir)
    handler = Handler(cfg, recorder)
    tls = server_context(cfg) if cfg.cert else None
    implicit = cfg.mode == "implicit-tls"
    starttls = cfg.mode in STARTTLS_MODES
    smtp_options = dict(
        hostname=cfg.hostname,
        ident="ESMTP smtp_peer",
        decode_data=False,
        enable_SMTPUTF8=True,
        tls_context=tls if starttls else None,
        require_starttls=cfg.mode == "starttls-auth",
        auth_required=cfg.user is not None,
        # aiosmtpd offers AUTH once TLS is up (after STARTTLS) or, with
        # auth_require_tls False, from the start. Without --user no AUTH at all; with it,
        # implicit TLS is TLS throughout, and in plain mode AUTH is offered in the clear
        # on purpose (a client must refuse to use it).
        auth_require_tls=starttls or cfg.user is None,
        authenticator=handler.authenticate,
        timeout=cfg.timeout,
        loop=loop,
    )
    server = await loop.create_server(
        lambda: PeerSMTP(handler, **smtp_options),
        host="127.0.0.1",
        port=0,
        ssl=tls if implicit else None,
    )
    port = server.sockets[0].getsockname()[1]
    write_atomically(cfg.port_file, f"{port}\n".encode("ascii"))
    if cfg.verbose:
        print(f"smtp_peer: {cfg.mode} on 127.0.0.1:{port}", file=sys.stderr)

    await stop.wait()
    server.close()
    for proto in list(handler.live):
        if proto._original_transport is not None:
            proto._original_transport.abort()
        elif proto.transport is not None:
            proto.transport.abort()


def main(argv):
    cfg = parse_args(argv)
    # aiosmtpd warns when AUTH is allowed without TLS; here that is deliberate.
    warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
    logging.basicConfig(stream=sys.stderr, format="smtp_peer: %(name)s: %(message)s")
    logging.getLogger("mail.log").setLevel(logging.INFO if cfg.verbose else logging.CRITICAL)
    asyncio.run(serve(cfg))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
