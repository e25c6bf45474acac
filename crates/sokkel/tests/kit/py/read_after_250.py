"""The send-then-read barrier (issue #16), as an application's test suite meets it.

Sender threads each deliver messages with smtplib, one after another; right after
each 250 the same thread reads the message back, every way a test might:

- the web API: GET /api/v1/message/ID, and a search for a word only it holds;
- POP3 (poplib): a new session's STAT counts it and UIDL lists its id;
- IMAP (imaplib): SELECT INBOX, then UID FETCH of its id (the INBOX's UID is the id);
- the CLI as a second process: `sokkel mail list --json` lists it and
  `sokkel mail show ID --raw` prints exactly the bytes sent.

Every read must find it the first time: no retries. Prints JSON
{"checked": N, "failures": [...]}.

argv: SMTP_PORT HTTP_PORT POP3_PORT IMAP_PORT SOKKEL DB SENDERS PER_SENDER
"""

import http.client
import imaplib
import json
import poplib
import re
import smtplib
import subprocess
import sys
import threading

smtp_port, http_port, pop3_port, imap_port = (int(a) for a in sys.argv[1:5])
sokkel, db = sys.argv[5], sys.argv[6]
senders, per_sender = int(sys.argv[7]), int(sys.argv[8])
HOST = "127.0.0.1"
TIMEOUT = 60

lock = threading.Lock()
failures = []
checked = 0


def fail(id_, how, detail):
    with lock:
        failures.append({"id": id_, "read": how, "detail": str(detail)[:300]})


def api(path):
    conn = http.client.HTTPConnection(HOST, http_port, timeout=TIMEOUT)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def read_back(id_, word, content, delivered_before):
    status, body = api(f"/api/v1/message/{id_}")
    if status != 200:
        fail(id_, "api message", f"{status} {body[:100]!r}")
    status, body = api(f"/api/v1/search?query={word}")
    found = status == 200 and any(m["ID"] == str(id_) for m in json.loads(body)["messages"])
    if not found:
        fail(id_, "api search", f"{status} {body[:200]!r}")

    pop = poplib.POP3(HOST, pop3_port, timeout=TIMEOUT)
    try:
        pop.user("barrier")
        pop.pass_("barrier")
        count, _ = pop.stat()
        uids = {line.split()[1].decode() for line in pop.uidl()[1]}
        if count < delivered_before or str(id_) not in uids:
            fail(id_, "pop3", f"STAT {count} (this thread alone delivered {delivered_before}), "
                              f"UIDL has it: {str(id_) in uids}")
        pop.quit()
    finally:
        pop.close()

    imap = imaplib.IMAP4(HOST, imap_port, timeout=TIMEOUT)
    try:
        imap.login("barrier", "barrier")
        imap.select("INBOX")
        typ, data = imap.uid("FETCH", str(id_), "(RFC822.SIZE)")
        text = b" ".join(d if isinstance(d, bytes) else b"" for d in data)
        if typ != "OK" or not re.search(rb"UID %d\b" % id_, text):
            fail(id_, "imap", f"{typ} {data!r}")
        imap.logout()
    finally:
        try:
            imap.shutdown()
        except OSError:
            pass

    listed = subprocess.run([sokkel, "mail", "list", "--json", "--limit", "1000000", "--db", db],
                            capture_output=True, timeout=TIMEOUT)
    if listed.returncode != 0 or id_ not in {m["id"] for m in json.loads(listed.stdout)}:
        fail(id_, "mail list", listed.stderr.decode(errors="replace") or "not listed")
    shown = subprocess.run([sokkel, "mail", "show", str(id_), "--raw", "--db", db],
                           capture_output=True, timeout=TIMEOUT)
    if shown.returncode != 0 or shown.stdout != content:
        fail(id_, "mail show", shown.stderr.decode(errors="replace")
             or f"{len(shown.stdout)} bytes, sent {len(content)}")


def sender(n):
    global checked
    smtp = smtplib.SMTP(HOST, smtp_port, timeout=TIMEOUT)
    smtp.ehlo("barrier.test")
    for i in range(per_sender):
        word = f"barrierword{n}x{i}q"
        content = (f"From: s{n}@barrier.test\r\nTo: r@barrier.test\r\n"
                   f"Subject: barrier {n}-{i}\r\n\r\nthe word is {word}\r\n").encode()
        smtp.mail(f"s{n}@barrier.test")
        smtp.rcpt("r@barrier.test")
        code, reply = smtp.data(content)
        match = re.search(rb"queued as (\d+)", reply)
        if code != 250 or not match:
            fail(None, "smtp", f"{code} {reply!r}")
            continue
        id_ = int(match.group(1))
        try:
            read_back(id_, word, content, i + 1)
        except Exception as error:  # a read that failed outright is a miss too
            fail(id_, "exception", repr(error))
        with lock:
            checked += 1
    smtp.quit()


def main():
    threads = [threading.Thread(target=sender, args=(n,)) for n in range(senders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps({"checked": checked, "failures": failures}))


main()
