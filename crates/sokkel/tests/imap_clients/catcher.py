"""What every IMAP client script here shares: the catcher it talks to (its IMAP,
SMTP and web ports from the command line), mail sent to it over SMTP, its web API
read and changed, and checks that fail with a line saying what went wrong.

A script is run as `python3 SCRIPT IMAP_PORT SMTP_PORT HTTP_PORT` against a catcher
whose only login is morty / secret; it prints `ok` when every check held, and exits
non-zero with the failed check otherwise. Messages are found by their subject, which
each script makes unique, since UIDs in tag folders are not the API's IDs.
"""

import json
import smtplib
import sys
import time
import urllib.request

HOST = "127.0.0.1"
USER = "morty"
PASSWORD = "secret"
# How long anything that should happen at once may take before a check fails.
PROMPT = 10.0


class CheckFailed(Exception):
    """A check that did not hold: the script's failure."""


def check(condition, what):
    """Fails the script with `what` unless `condition` holds."""
    if not condition:
        raise CheckFailed(what)


def wait_until(probe, what, timeout=PROMPT):
    """Calls `probe` until it returns something truthy (returned); fails with `what`
    and the last value after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise CheckFailed(f"{what} within {timeout} s; last: {value!r}")
        time.sleep(0.05)


class Catcher:
    """The catcher under test, from `sys.argv`."""

    def __init__(self, argv=None):
        argv = sys.argv[1:] if argv is None else argv
        if len(argv) < 3:
            sys.exit("usage: SCRIPT IMAP_PORT SMTP_PORT HTTP_PORT")
        self.imap_port, self.smtp_port, self.http_port = (int(a) for a in argv[:3])
        self.host = HOST
        self.user = USER
        self.password = PASSWORD

    def send(self, subject, body="hello", to="morty@example.test"):
        """Delivers one message over SMTP; returns once the catcher said 250."""
        message = (
            f"From: Rick <rick@example.test>\r\n"
            f"To: <{to}>\r\n"
            f"Subject: {subject}\r\n"
            f"Message-ID: <{subject.replace(' ', '.')}@example.test>\r\n"
            f"Date: Mon, 30 Nov 2026 12:00:00 +0000\r\n"
            f"\r\n{body}\r\n"
        )
        with smtplib.SMTP(HOST, self.smtp_port, timeout=PROMPT) as smtp:
            smtp.sendmail("rick@example.test", [to], message.encode())

    def _api(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"http://{HOST}:{self.http_port}{path}", data=data, method=method
        )
        with urllib.request.urlopen(request, timeout=PROMPT) as response:
            return response.read()

    def messages(self):
        """Every message as the web API lists it (its summaries)."""
        return json.loads(self._api("GET", "/api/v1/messages?limit=1000"))["messages"]

    def message(self, subject):
        """The API's summary of the message with this subject, or None."""
        found = [m for m in self.messages() if m["Subject"] == subject]
        check(len(found) <= 1, f"one message with subject {subject!r}: {found}")
        return found[0] if found else None

    def wait_message(self, subject, what, holds):
        """Waits until the API's summary of `subject` satisfies `holds`; fails with
        `what` and the summary otherwise."""
        return wait_until(
            lambda: (m := self.message(subject)) is not None and holds(m) and m,
            f"the web API shows {subject!r} {what}",
        )

    def wait_gone(self, subject):
        """Waits until the API no longer lists `subject`."""
        wait_until(
            lambda: self.message(subject) is None,
            f"the web API no longer lists {subject!r}",
        )

    def set_flags(self, subject, **changes):
        """PUT /api/v1/messages for one message: Read=..., Flagged=..."""
        message = self.message(subject)
        check(message is not None, f"the web API lists {subject!r}")
        body = {"IDs": [message["ID"]]}
        body.update({k.capitalize(): v for k, v in changes.items()})
        self._api("PUT", "/api/v1/messages", body)

    def delete(self, subject):
        """DELETE /api/v1/messages for one message."""
        message = self.message(subject)
        check(message is not None, f"the web API lists {subject!r}")
        self._api("DELETE", "/api/v1/messages", {"IDs": [message["ID"]]})


def main(flow):
    """Runs `flow(catcher)` and prints `ok`, or the failed check and exits 1."""
    try:
        flow(Catcher())
    except CheckFailed as failed:
        print(f"check failed: {failed}", file=sys.stderr)
        sys.exit(1)
    print("ok")
