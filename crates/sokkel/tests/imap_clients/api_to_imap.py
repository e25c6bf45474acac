"""The reverse direction: read, star and delete made through the web API reach an
IMAP session that has the INBOX selected (imaplib): as FETCH FLAGS and EXPUNGE on
its next NOOP, and at once while it IDLEs."""

import re
import time

import imaplib

from catcher import PROMPT, check, main, wait_until


def noop_until(imap, kind, what):
    """NOOPs until the server has sent untagged `kind` responses; returns them."""
    found = []

    def collect():
        status, _ = imap.noop()
        check(status == "OK", "NOOP is answered OK")
        found.extend(d for d in imap.response(kind)[1] if d is not None)
        return found
    wait_until(collect, f"NOOP brings {what}")
    return found


def flow(catcher):
    catcher.send("reverse one", "first")
    catcher.send("reverse two", "second")
    imap = imaplib.IMAP4(catcher.host, catcher.imap_port, timeout=PROMPT)
    imap.login(catcher.user, catcher.password)
    status, data = imap.select("INBOX")
    check(data == [b"2"], f"SELECT INBOX: {data}")
    status, data = imap.fetch("1:2", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    order = [re.search(rb"Subject: (.*)\r\n", d[1]).group(1).decode()
             for d in data if isinstance(d, tuple)]
    check(sorted(order) == ["reverse one", "reverse two"], f"FETCH subjects: {data}")
    one = order.index("reverse one") + 1

    catcher.set_flags("reverse one", read=True, flagged=True)
    fetches = noop_until(imap, "FETCH", "the new flags of message one")
    check(any(f.startswith(f"{one} ".encode()) and b"\\Seen" in f and b"\\Flagged" in f
              for f in fetches), f"* {one} FETCH (FLAGS (\\Seen \\Flagged)): {fetches}")

    catcher.delete("reverse two")
    expunged = noop_until(imap, "EXPUNGE", "the deleted message")
    check(expunged == [str(3 - one).encode()], f"* n EXPUNGE for message two: {expunged}")
    status, data = imap.search(None, "ALL")
    check(data == [b"1"], f"one message left: {data}")

    tag = imap._new_tag().decode()
    imap.send(f"{tag} IDLE\r\n".encode())
    check(imap.readline().startswith(b"+"), "IDLE is answered with a continuation")
    started = time.monotonic()
    catcher.set_flags("reverse one", read=False, flagged=True)
    while True:
        check(time.monotonic() - started < PROMPT, "a FETCH while idling")
        line = imap.readline()
        check(line, "the server keeps the IDLE open")
        if re.match(rb"\* 1 FETCH", line):
            check(b"\\Seen" not in line and b"\\Flagged" in line, f"unread, starred: {line!r}")
            break
    imap.send(b"DONE\r\n")
    while not (line := imap.readline()).startswith(tag.encode()):
        check(line, "the server answers DONE")
    check(b" OK" in line, f"IDLE ends OK: {line!r}")
    imap.logout()


if __name__ == "__main__":
    main(flow)
