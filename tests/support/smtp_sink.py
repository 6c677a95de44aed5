#!/usr/bin/env python3
"""A real SMTP server process for valwatch's tests.

Listens on 127.0.0.1 (port given, or 0 for any free port), prints
`listening 127.0.0.1:<port>` as its first line on standard output, and
writes every message it accepts as one JSON file into the output
directory:

    {"peer": "127.0.0.1:51234", "auth_user": "ops" | null,
     "mail_from": "valwatch@example.org", "rcpt_tos": ["a@example.org", ...],
     "data": "<the message as received, headers and body>",
     "subject": "<Subject, decoded>", "body": "<text body, transfer encoding undone>"}

Files are named 000001.json, 000002.json, ... in the order the messages
were accepted, and appear atomically (written aside, then renamed), so a
reader never sees half a message.

Plain SMTP only (no STARTTLS, no implicit TLS): Python's stdlib smtpd has
neither; smtp_tls_sink.py (aiosmtpd) serves the TLS tests. AUTH PLAIN is offered; with --user/--password the credentials
are checked (535 when wrong), without them any credentials are accepted.
Stops on SIGTERM or SIGINT.

Built on the stdlib's smtpd/asyncore (deprecated, still in Python 3.11),
so it needs nothing installed.
"""

import argparse
import base64
import email
import email.policy
import json
import os
import signal
import sys
import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import asyncore
    import smtpd


class Channel(smtpd.SMTPChannel):
    """smtpd's channel plus EHLO advertising AUTH PLAIN and the AUTH verb."""

    def __init__(self, server, conn, addr, *args, **kwargs):
        self.auth_user = None
        self._auth_pending = False
        super().__init__(server, conn, addr, *args, **kwargs)

    def smtp_EHLO(self, arg):
        if not arg:
            self.push("501 Syntax: EHLO hostname")
            return
        if self.seen_greeting:
            self.push("503 Duplicate HELO/EHLO")
            return
        self._set_rset_state()
        self.seen_greeting = arg
        self.extended_smtp = True
        self.push("250-%s" % self.fqdn)
        self.push("250-8BITMIME")
        self.push("250-AUTH PLAIN")
        self.push("250 HELP")

    def smtp_AUTH(self, arg):
        if not self.seen_greeting:
            self.push("503 Error: send EHLO first")
            return
        if self.auth_user is not None:
            self.push("503 Error: already authenticated")
            return
        parts = (arg or "").split()
        if not parts or parts[0].upper() != "PLAIN":
            self.push("504 5.5.4 Unrecognized authentication type")
            return
        if len(parts) == 1:
            # The credentials follow on the next line.
            self._auth_pending = True
            self.push("334 ")
            return
        self._check_plain(parts[1])

    def _check_plain(self, encoded):
        try:
            _authzid, user, password = (
                base64.b64decode(encoded, validate=True).decode("utf-8").split("\0")
            )
        except Exception:
            self.push("501 5.5.2 Cannot decode the credentials")
            return
        want = self.smtp_server.credentials
        if want is not None and (user, password) != want:
            self.push("535 5.7.8 Authentication credentials invalid")
            return
        self.auth_user = user
        self.push("235 2.7.0 Authentication successful")

    def found_terminator(self):
        if self._auth_pending:
            self._auth_pending = False
            line = self._emptystring.join(self.received_lines)
            self.received_lines = []
            if isinstance(line, bytes):
                line = line.decode("ascii", "replace")
            self._check_plain(line.strip())
            return
        # asyncore runs one handler at a time: this is the channel whose
        # message (if this line ends one) process_message is about to get.
        self.smtp_server.current = self
        super().found_terminator()


class Sink(smtpd.SMTPServer):
    channel_class = Channel

    def __init__(self, addr, out_dir, credentials):
        self.out_dir = out_dir
        self.credentials = credentials
        self.count = 0
        self.current = None
        super().__init__(addr, None, decode_data=False)

    def process_message(self, peer, mailfrom, rcpttos, data, **kwargs):
        if self.credentials is not None and self.current.auth_user is None:
            return "530 5.7.0 Authentication required"
        self.count += 1
        raw = data if isinstance(data, bytes) else data.encode("utf-8")
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        try:
            body = parsed.get_content() if not parsed.is_multipart() else None
        except Exception as e:  # an undecodable body is recorded, not fatal
            body = "<cannot decode: %s>" % e
        data = raw.decode("utf-8", "replace")
        record = {
            "peer": "%s:%s" % (peer[0], peer[1]),
            "auth_user": self.current.auth_user,
            "mail_from": mailfrom,
            "rcpt_tos": list(rcpttos),
            "data": data,
            "subject": str(parsed.get("Subject", "")),
            "body": body,
        }
        name = "%06d.json" % self.count
        tmp = os.path.join(self.out_dir, "." + name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(record, f)
        os.replace(tmp, os.path.join(self.out_dir, name))
        return None


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=0, help="0: any free port")
    p.add_argument("--dir", required=True, help="where received messages are written")
    p.add_argument("--user", help="the only user AUTH accepts (with --password)")
    p.add_argument("--password")
    args = p.parse_args()
    if (args.user is None) != (args.password is None):
        p.error("--user and --password go together")
    os.makedirs(args.dir, exist_ok=True)
    creds = (args.user, args.password) if args.user is not None else None
    sink = Sink(("127.0.0.1", args.port), args.dir, creds)
    host, port = sink.socket.getsockname()[:2]
    print("listening %s:%d" % (host, port), flush=True)

    def stop(_signum, _frame):
        sink.close()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    asyncore.loop(timeout=0.5)


if __name__ == "__main__":
    main()
