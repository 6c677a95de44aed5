#!/usr/bin/env python3
"""A real TLS-speaking SMTP server process for valwatch's tests (aiosmtpd).

Two modes:
  --mode starttls  plain connection that must be upgraded with STARTTLS
                   before anything but EHLO/NOOP/QUIT (530 otherwise);
                   AUTH is offered only after the upgrade.
  --mode implicit  TLS from the first byte (what smtps:// speaks).

The server certificate and key are given (--cert/--key, PEM). With
--user/--password, AUTH PLAIN/LOGIN is required before MAIL and only those
credentials pass (535 otherwise).

Listens on 127.0.0.1 (--port, 0 for any free port), prints
`listening 127.0.0.1:<port>` as its first line on standard output, and
writes every message it accepts as one JSON file into --dir, in the same
shape as smtp_sink.py plus what the TLS session was:

    {"peer": "127.0.0.1:51234", "auth_user": "ops" | null,
     "mail_from": "...", "rcpt_tos": [...], "data": "...",
     "subject": "...", "body": "...",
     "tls_version": "TLSv1.3" | null, "starttls": true | false}

Files are 000001.json, 000002.json, ... written aside and renamed. A TLS
handshake the client aborts (e.g. it does not trust the certificate) is
logged on standard error and changes nothing. Stops on SIGTERM or SIGINT.

Needs aiosmtpd (`python3 -m pip install aiosmtpd`); exits with status 3
and a message naming it when it is missing.
"""

import argparse
import asyncio
import email
import email.policy
import json
import os
import signal
import ssl
import sys
import warnings

try:
    from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword
except ImportError:
    print("smtp_tls_sink.py needs aiosmtpd: python3 -m pip install aiosmtpd", file=sys.stderr)
    sys.exit(3)


class Handler:
    def __init__(self, out_dir):
        self.out_dir = out_dir
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        ssl_object = server.transport.get_extra_info("ssl_object") if server.transport else None
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8")
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        try:
            body = parsed.get_content() if not parsed.is_multipart() else None
        except Exception as e:  # an undecodable body is recorded, not fatal
            body = "<cannot decode: %s>" % e
        user = session.auth_data if session.authenticated else None
        if isinstance(user, bytes):
            user = user.decode("utf-8", "replace")
        self.count += 1
        record = {
            "peer": "%s:%s" % tuple(session.peer[:2]),
            "auth_user": user,
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "data": raw.decode("utf-8", "replace").replace("\r\n", "\n"),
            "subject": str(parsed.get("Subject", "")),
            "body": body,
            "tls_version": ssl_object.version() if ssl_object is not None else None,
            "starttls": server._tls_protocol is not None,
        }
        name = "%06d.json" % self.count
        tmp = os.path.join(self.out_dir, "." + name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(record, f)
        os.replace(tmp, os.path.join(self.out_dir, name))
        return "250 OK"


def authenticator(credentials):
    """Accepts exactly `credentials` (login, password) over PLAIN or LOGIN."""

    def check(_server, _session, _envelope, mechanism, auth_data):
        if mechanism not in ("PLAIN", "LOGIN") or not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        got = (auth_data.login.decode("utf-8", "replace"),
               auth_data.password.decode("utf-8", "replace"))
        if got != credentials:
            return AuthResult(success=False, handled=False)
        return AuthResult(success=True, auth_data=got[0])

    return check


async def serve(args):
    os.makedirs(args.dir, exist_ok=True)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(args.cert, args.key)
    handler = Handler(args.dir)
    creds = (args.user, args.password) if args.user is not None else None
    implicit = args.mode == "implicit"

    def factory():
        return SMTP(
            handler,
            hostname="localhost",
            # STARTTLS mode: offered and required; implicit: the socket is
            # TLS already, so STARTTLS must not be offered again.
            tls_context=None if implicit else context,
            require_starttls=not implicit,
            authenticator=authenticator(creds) if creds else None,
            auth_required=creds is not None,
            # aiosmtpd only knows STARTTLS as "TLS": with implicit TLS the
            # whole connection is encrypted, so AUTH may be offered at once.
            auth_require_tls=not implicit,
        )

    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        factory, host="127.0.0.1", port=args.port, ssl=context if implicit else None
    )
    host, port = server.sockets[0].getsockname()[:2]
    print("listening %s:%d" % (host, port), flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mode", choices=["starttls", "implicit"], required=True)
    p.add_argument("--cert", required=True, help="server certificate chain (PEM)")
    p.add_argument("--key", required=True, help="server private key (PEM)")
    p.add_argument("--port", type=int, default=0, help="0: any free port")
    p.add_argument("--dir", required=True, help="where received messages are written")
    p.add_argument("--user", help="the only user AUTH accepts (with --password)")
    p.add_argument("--password")
    args = p.parse_args()
    if (args.user is None) != (args.password is None):
        p.error("--user and --password go together")
    warnings.simplefilter("ignore")
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
