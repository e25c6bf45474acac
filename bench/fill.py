#!/usr/bin/env python3
"""Fill a mail catcher with varied messages over SMTP, for search and HTTP benchmarks.

    python3 bench/fill.py --port 1025 --messages 100000 --connections 8

Sends M messages over N parallel SMTP connections (one thread each, smtplib from
the standard library) to HOST:PORT and prints messages per second. The messages
look like a busy test inbox: subjects and bodies from a vocabulary, a few hundred
senders and recipients, one in four HTML with a text alternative, one in ten with
an attachment. Each message also carries one "rare" word, rareword000 ...
rareword399 (--rare-words), all of one length so none is the start of another:
searching one of them matches M / 400 messages (250 of 100,000), the "few hundred"
of the issue's search benchmark. Message n carries rareword(n mod R).

Bounded in count (--messages) and time (--max-seconds): when time runs out it
stops, says how many were sent, and exits with status 1.
"""

import argparse
import random
import smtplib
import sys
import threading
import time

WORDS = (
    "account agenda approval budget call client contract customer deadline delivery "
    "design draft estimate feedback follow forecast invoice launch meeting minutes notes "
    "offer order payment plan policy price project proposal quarter receipt release "
    "report request review schedule shipment signup status summary support team ticket "
    "timeline update welcome weekly the and for with please thanks attached below today "
    "tomorrow next week you we café naïve résumé"
).split()

SUBJECTS = (
    "Your order {n} has shipped",
    "Invoice {n} for {word}",
    "Re: {word} {word2} meeting notes",
    "Welcome to the {word} team",
    "Password reset request #{n}",
    "Weekly {word} report",
    "[ticket {n}] {word} {word2} needs review",
    "Fwd: {word} proposal",
)

DOMAINS = ("example.com", "example.org", "shop.test", "corp.test", "mail.test", "news.test")


def build(n, rare_words, rng):
    """The bytes of message n (CRLF line endings)."""
    word, word2 = rng.choice(WORDS), rng.choice(WORDS)
    subject = rng.choice(SUBJECTS).format(n=n, word=word, word2=word2)
    sender = f"user{rng.randrange(300)}@{rng.choice(DOMAINS)}"
    rcpt = f"team{rng.randrange(50)}@{rng.choice(DOMAINS)}"
    rare = f"rareword{n % rare_words:03d}"
    paragraphs = []
    for p in range(rng.randint(1, 8)):
        words = [rng.choice(WORDS) for _ in range(rng.randint(20, 60))]
        if p == 0:
            words.insert(rng.randrange(len(words) + 1), rare)
        paragraphs.append(" ".join(words).capitalize() + ".")
    text = "\r\n\r\n".join(paragraphs) + "\r\n"
    headers = (
        f"From: User {sender.split('@')[0]} <{sender}>\r\n"
        f"To: {rcpt}\r\n"
        f"Subject: {subject}\r\n"
        f"Message-ID: <fill-{n}-{rng.randrange(1 << 30)}@fill.test>\r\n"
        "MIME-Version: 1.0\r\n"
    )
    if n % 10 == 5:
        blob = "JVBERi0xLjQKJcfsj6IKNSAwIG9iago8PC9MZW5ndGggNiAwIFI+PgpzdHJlYW0K\r\n" * 8
        body = (
            'Content-Type: multipart/mixed; boundary="mixed"\r\n\r\n'
            "--mixed\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\n"
            f"{text}\r\n--mixed\r\nContent-Type: application/pdf\r\n"
            f'Content-Disposition: attachment; filename="document-{n}.pdf"\r\n'
            f"Content-Transfer-Encoding: base64\r\n\r\n{blob}--mixed--\r\n"
        )
    elif n % 4 == 0:
        html = "".join(f"<p>{p}</p>" for p in paragraphs)
        body = (
            'Content-Type: multipart/alternative; boundary="alt"\r\n\r\n'
            "--alt\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\n"
            f"{text}\r\n--alt\r\nContent-Type: text/html; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\n"
            f"<html><body><h1>{subject}</h1>{html}</body></html>\r\n--alt--\r\n"
        )
    else:
        body = (
            "Content-Type: text/plain; charset=utf-8\r\n"
            f"Content-Transfer-Encoding: 8bit\r\n\r\n{text}"
        )
    return sender, rcpt, (headers + body).encode("utf-8")


class Counter:
    """Hands out message numbers to the sender threads, up to a total."""

    def __init__(self, total):
        self.lock = threading.Lock()
        self.next = 0
        self.total = total
        self.sent = 0
        self.failed = 0

    def take(self):
        with self.lock:
            if self.next >= self.total:
                return None
            n = self.next
            self.next += 1
            return n

    def done(self, ok):
        with self.lock:
            if ok:
                self.sent += 1
            else:
                self.failed += 1


def sender(args, counter, deadline, seed, errors):
    rng = random.Random(seed)
    smtp = None
    try:
        while time.monotonic() < deadline:
            n = counter.take()
            if n is None:
                return
            if smtp is None:
                smtp = smtplib.SMTP(args.host, args.port, timeout=args.timeout)
            mail_from, rcpt, raw = build(n, args.rare_words, rng)
            try:
                smtp.sendmail(mail_from, [rcpt], raw)
                counter.done(True)
            except smtplib.SMTPException as error:
                counter.done(False)
                errors.append(f"message {n}: {error}")
                if len(errors) > args.max_errors:
                    return
                try:
                    smtp.quit()
                except (smtplib.SMTPException, OSError):
                    pass
                smtp = None
    except OSError as error:
        errors.append(f"connection: {error}")
    finally:
        if smtp is not None:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1025)
    parser.add_argument("--messages", "-m", type=int, default=10_000)
    parser.add_argument("--connections", "-c", type=int, default=8)
    parser.add_argument("--rare-words", type=int, default=400)
    parser.add_argument("--max-seconds", type=float, default=900.0)
    parser.add_argument("--timeout", type=float, default=30.0, help="per SMTP operation")
    parser.add_argument("--max-errors", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if not 1 <= args.rare_words <= 1000:
        parser.error("--rare-words must be 1 to 1000 (three digits)")
    if args.messages < 0 or args.connections < 1:
        parser.error("--messages must be >= 0 and --connections >= 1")

    counter = Counter(args.messages)
    errors = []
    start = time.monotonic()
    deadline = start + args.max_seconds
    threads = [
        threading.Thread(target=sender, args=(args, counter, deadline, args.seed * 1000 + i, errors))
        for i in range(args.connections)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - start

    rate = counter.sent / elapsed if elapsed > 0 else 0.0
    print(
        f"sent {counter.sent} of {args.messages} messages to {args.host}:{args.port} "
        f"over {args.connections} connections in {elapsed:.1f} s: {rate:.0f} msg/s"
    )
    for error in errors[:10]:
        print(f"error: {error}", file=sys.stderr)
    if counter.sent < args.messages:
        print(f"incomplete: {counter.failed} refused, time or errors ran out", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
