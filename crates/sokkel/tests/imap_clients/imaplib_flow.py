"""Python's imaplib as a script reading a mailbox uses it: login, select, search
UNSEEN, peek and fetch bodies, star, tag with UID COPY, delete with EXPUNGE, and
IDLE while a message arrives over SMTP. Each change is checked in the web API."""

import imaplib
import re
import time

from catcher import PROMPT, check, main, wait_until

SUBJECTS = ["imaplib one", "imaplib two", "imaplib three"]


def uid_of(imap, subject):
    status, data = imap.uid("SEARCH", "HEADER", "Subject", f'"{subject}"')
    check(status == "OK" and len(data[0].split()) == 1, f"UID SEARCH {subject!r}: {data}")
    return data[0].decode()


def idle_until_exists(imap, catcher):
    """IDLE (imaplib has no idle() before Python 3.14), send a message over SMTP,
    and read until `* n EXISTS` announces it; returns the seconds it took."""
    tag = imap._new_tag().decode()
    imap.send(f"{tag} IDLE\r\n".encode())
    line = imap.readline()
    check(line.startswith(b"+"), f"IDLE is answered with a continuation: {line!r}")
    imap.sock.settimeout(PROMPT)
    sent = time.monotonic()
    catcher.send("imaplib four", "arrived while idling")
    while True:
        line = imap.readline()
        check(line, "the server keeps the IDLE open")
        if re.match(rb"\* \d+ EXISTS", line):
            took = time.monotonic() - sent
            break
    imap.send(b"DONE\r\n")
    while True:
        line = imap.readline()
        check(line, "the server answers DONE")
        if line.startswith(tag.encode()):
            check(b" OK" in line, f"IDLE ends OK: {line!r}")
            return took


def flow(catcher):
    for subject in SUBJECTS:
        catcher.send(subject, f"body of {subject}")
    imap = imaplib.IMAP4(catcher.host, catcher.imap_port, timeout=PROMPT)
    check("IMAP4REV1" in imap.capabilities, f"IMAP4rev1 advertised: {imap.capabilities}")
    imap.login(catcher.user, catcher.password)
    status, data = imap.capability()
    check(b"IDLE" in data[0].split() and b"UIDPLUS" in data[0].split(),
          f"IDLE and UIDPLUS after login: {data}")
    status, data = imap.select("INBOX")
    check(status == "OK" and data == [b"3"], f"SELECT INBOX says 3 messages: {data}")

    status, data = imap.uid("SEARCH", None, "UNSEEN")
    check(len(data[0].split()) == 3, f"UID SEARCH UNSEEN finds all three: {data}")
    one, two, three = (uid_of(imap, s) for s in SUBJECTS)

    status, data = imap.uid("FETCH", one, "(BODY.PEEK[])")
    check(status == "OK" and b"body of imaplib one" in data[0][1],
          f"UID FETCH BODY.PEEK[] gives the message: {data}")
    check(not catcher.message("imaplib one")["Read"], "BODY.PEEK[] leaves it unread")
    status, data = imap.uid("STORE", one, "+FLAGS", r"(\Seen \Flagged)")
    check(status == "OK", f"UID STORE +FLAGS: {data}")
    catcher.wait_message("imaplib one", "read and starred", lambda m: m["Read"] and m["Flagged"])

    status, data = imap.uid("FETCH", two, "(BODY[])")
    check(status == "OK" and b"body of imaplib two" in data[0][1], f"UID FETCH BODY[]: {data}")
    catcher.wait_message("imaplib two", "read after a BODY[] fetch", lambda m: m["Read"])

    status, data = imap.create("work")
    check(status == "OK", f"CREATE work: {data}")
    status, data = imap.uid("COPY", two, "work")
    check(status == "OK", f"UID COPY to the tag folder: {data}")
    catcher.wait_message("imaplib two", "tagged work", lambda m: "work" in m["Tags"])
    status, data = imap.list()
    check(any(line.endswith(b' work') or line.endswith(b' "work"') for line in data),
          f"LIST shows the tag folder: {data}")

    status, data = imap.uid("STORE", three, "+FLAGS", r"(\Deleted)")
    check(status == "OK", f"UID STORE +FLAGS \\Deleted: {data}")
    check(catcher.message("imaplib three") is not None, "\\Deleted alone deletes nothing")
    status, data = imap.expunge()
    check(status == "OK" and len(data) == 1 and data[0] is not None,
          f"EXPUNGE answers one * n EXPUNGE: {data}")
    catcher.wait_gone("imaplib three")

    took = idle_until_exists(imap, catcher)
    check(took < PROMPT, f"IDLE saw the new message after {took:.3f} s")
    status, data = imap.uid("SEARCH", None, "UNSEEN")
    check(len(data[0].split()) == 1, f"only the new message is unseen: {data}")
    imap.logout()


if __name__ == "__main__":
    main(flow)
