"""An aiosmtpd server for the send interop tests: saves every message it accepts.

    python3 aiosmtpd_server.py --dir DIR [--starttls CERT KEY] [--implicit CERT KEY]
                               [--user USER --password PASSWORD] [--require-starttls]

Binds 127.0.0.1 on a port the kernel picks and prints `listening on PORT`. Each
message is saved as DIR/N.eml (the bytes received) and DIR/N.json (envelope, whether
the session was encrypted, and who logged in with which mechanism), N.json written
last, atomically, so a reader that sees it sees both. Runs until killed.
"""

import argparse
import asyncio
import json
import os
import socket
import ssl

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class SavingHandler:
    def __init__(self, directory, logins):
        self.directory = directory
        self.logins = logins
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        base = os.path.join(self.directory, str(self.count))
        with open(base + ".eml", "wb") as f:
            f.write(envelope.original_content)
        login = self.logins.get(id(session))
        record = {
            "mail_from": envelope.mail_from,
            "mail_options": envelope.mail_options,
            "rcpt_tos": envelope.rcpt_tos,
            # session.ssl is set only after STARTTLS; the transport knows both kinds.
            "tls": server.transport.get_extra_info("ssl_object") is not None,
            "auth_mechanism": login[0] if login else None,
            "auth_user": login[1] if login else None,
        }
        with open(base + ".json.tmp", "w") as f:
            json.dump(record, f)
        os.rename(base + ".json.tmp", base + ".json")
        return f"250 2.0.0 saved as {self.count}"


class Authenticator:
    """Accepts exactly one user and password, and remembers who logged in how."""

    def __init__(self, user, password, logins):
        self.user = user.encode()
        self.password = password.encode()
        self.logins = logins

    def __call__(self, server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == self.user
            and auth_data.password == self.password
        )
        if ok:
            self.logins[id(session)] = (mechanism, auth_data.login.decode())
        return AuthResult(success=ok, handled=False)


def tls_context(cert, key):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True)
    parser.add_argument("--starttls", nargs=2, metavar=("CERT", "KEY"))
    parser.add_argument("--implicit", nargs=2, metavar=("CERT", "KEY"))
    parser.add_argument("--require-starttls", action="store_true")
    parser.add_argument("--user")
    parser.add_argument("--password")
    args = parser.parse_args()

    logins = {}
    handler = SavingHandler(args.dir, logins)
    authenticator = None
    if args.user is not None:
        authenticator = Authenticator(args.user, args.password or "", logins)
    starttls = tls_context(*args.starttls) if args.starttls else None
    implicit = tls_context(*args.implicit) if args.implicit else None

    def factory():
        return SMTP(
            handler,
            hostname="aiosmtpd.test",
            enable_SMTPUTF8=True,
            tls_context=starttls,
            require_starttls=args.require_starttls,
            authenticator=authenticator,
            # Plain-text AUTH is allowed only when neither TLS flavour is in play, so
            # that the AUTH tests can run both ways.
            auth_require_tls=starttls is not None,
        )

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    loop = asyncio.get_running_loop()
    server = await loop.create_server(factory, sock=sock, ssl=implicit)
    print(f"listening on {sock.getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
