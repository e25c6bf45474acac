#!/usr/bin/env python3
"""Mail for the web benchmark (bench/web.sh), sent through SMTP with Python's smtplib.

    python3 bench/web_fill.py fill PORT COUNT [CONNS]
        COUNT messages as fast as CONNS parallel connections (default 8) take them,
        each connection reused for its whole share. Subjects and bodies vary; exactly
        RARE_COUNT of them (spread evenly) carry the rare word "zanzibar", and about half
        carry the common word "quarterly", so a search can match a few hundred or
        tens of thousands; every fourth carries one of eight tags (X-Tags). Prints
        "filled COUNT in SECONDS s: RATE msg/s".

    python3 bench/web_fill.py pace PORT RATE SECONDS [CONNS] [LAST_SUBJECT_FILE]
        RATE messages per second for SECONDS seconds, paced (each connection sends on
        its own schedule of RATE/CONNS per second), then writes the subject of the
        last message sent to LAST_SUBJECT_FILE. Prints how many were sent and the
        rate achieved, which is below RATE if the server could not keep up.

Loopback only (127.0.0.1). Every loop is bounded by COUNT or SECONDS, and every socket
has a timeout; a refused message fails the whole run with its reply.
"""

import smtplib
import sys
import threading
import time

RARE_WORD = "zanzibar"
COMMON_WORD = "quarterly"
RARE_COUNT = 300
TAGS = ["signup", "invoices", "password-reset", "newsletter", "alerts", "orders", "support", "billing"]
TIMEOUT = 30

ADJECTIVES = ["urgent", "weekly", "final", "revised", "pending", "shared", "late",
              "draft", "signed", "missing", "updated", "annual", "small", "second"]
NOUNS = ["invoice", "meeting", "report", "password reset", "order", "newsletter",
         "ticket", "delivery", "contract", "review", "receipt", "reminder", "build"]
PEOPLE = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan",
          "judy", "mallory", "niaj", "olivia", "peggy", "rupert", "sybil", "trent"]
WORDS = ("lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor "
         "incididunt ut labore et dolore magna aliqua enim ad minim veniam quis nostrud "
         "exercitation ullamco laboris nisi aliquip ex ea commodo consequat duis aute irure "
         "reprehenderit voluptate velit esse cillum fugiat nulla pariatur excepteur sint "
         "occaecat cupidatat non proident sunt culpa qui officia deserunt mollit anim "
         "shipment budget server kitchen garden invoice tracking deploy").split()


def message(n, total, tag=""):
    """The sender, recipients and bytes of message number n (0-based) of total."""
    sender = f"{PEOPLE[n % len(PEOPLE)]}@sender{n % 7}.test"
    rcpt = f"{PEOPLE[(n * 7 + 3) % len(PEOPLE)]}@inbox.test"
    subject = f"{ADJECTIVES[n % len(ADJECTIVES)]} {NOUNS[(n // 3) % len(NOUNS)]} #{n}{tag}"
    # A cheap, deterministic word stream: different for every message.
    state = n * 2654435761 % 2**32
    words = []
    for _ in range(60 + n % 120):
        state = (state * 1103515245 + 12345) % 2**31
        words.append(WORDS[state % len(WORDS)])
    step = max(total // RARE_COUNT, 1)
    if n % step == step // 2 and n // step < RARE_COUNT:
        words.insert(len(words) // 2, RARE_WORD)
    if n % 2 == 0:
        words.append(COMMON_WORD)
    lines = [" ".join(words[i:i + 12]) for i in range(0, len(words), 12)]
    body = "\r\n".join(lines)
    # Every fourth message carries one of TAGS, so the page's tag sidebar
    # (/api/v1/tag-counts) counts a quarter of the store.
    tags = f"X-Tags: {TAGS[(n // 4) % len(TAGS)]}\r\n" if n % 4 == 0 else ""
    data = (f"From: {sender.split('@')[0].title()} <{sender}>\r\n"
            f"{tags}"
            f"To: <{rcpt}>\r\n"
            f"Subject: {subject}\r\n"
            f"Message-ID: <bench-{n}{tag}@web.bench.test>\r\n"
            f"Date: Thu, 01 Jan 2026 00:00:00 +0000\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\n"
            f"\r\n{body}\r\n")
    return sender, [rcpt], data.encode(), subject


def connect(port):
    smtp = smtplib.SMTP("127.0.0.1", port, timeout=TIMEOUT)
    smtp.ehlo("bench.test")
    return smtp


def run_threads(target, conns):
    errors = []

    def guarded(i):
        try:
            target(i)
        except Exception as err:  # reported once, below; the run fails
            errors.append(f"connection {i}: {err!r}")

    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        sys.exit("web_fill.py: " + "; ".join(errors[:3]))


def fill(port, count, conns):
    def worker(i):
        smtp = connect(port)
        for n in range(i, count, conns):
            sender, rcpts, data, _ = message(n, count)
            smtp.sendmail(sender, rcpts, data)
        smtp.quit()

    start = time.perf_counter()
    run_threads(worker, conns)
    secs = time.perf_counter() - start
    print(f"filled {count} in {secs:.1f} s: {count / secs:.0f} msg/s")


def pace(port, rate, seconds, conns, last_file):
    per_conn = rate / conns
    sent = [0] * conns
    last = [(0.0, "")] * conns
    start = time.perf_counter()
    end = start + seconds

    def worker(i):
        smtp = connect(port)
        k = 0
        while True:
            due = start + (k + i / conns) / per_conn
            if due >= end:
                break
            now = time.perf_counter()
            if due > now:
                time.sleep(due - now)
            n = k * conns + i
            sender, rcpts, data, subject = message(n, 10**9, tag=" live")
            smtp.sendmail(sender, rcpts, data)
            last[i] = (time.perf_counter(), subject)
            sent[i] += 1
            k += 1
        smtp.quit()

    run_threads(worker, conns)
    secs = time.perf_counter() - start
    total = sum(sent)
    newest = max(last)[1]
    if last_file:
        with open(last_file, "w", encoding="utf-8") as out:
            out.write(newest + "\n")
    print(f"paced {total} in {secs:.1f} s: {total / secs:.0f} msg/s (asked {rate})")


def main(argv):
    if len(argv) >= 3 and argv[0] == "fill":
        fill(int(argv[1]), int(argv[2]), int(argv[3]) if len(argv) > 3 else 8)
    elif len(argv) >= 4 and argv[0] == "pace":
        pace(int(argv[1]), float(argv[2]), float(argv[3]),
             int(argv[4]) if len(argv) > 4 else 8, argv[5] if len(argv) > 5 else None)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
