#!/usr/bin/env python3
"""Hostile clients against `sokkel mail serve` (issue #11): what each attack costs the
server, measured from outside, so one binary can be compared with another.

    python3 bench/hostile.py --sokkel target/release/sokkel            # every attack
    python3 bench/hostile.py --sokkel /tmp/sokkel-old mime-nest raw-stall

Each attack starts its own catcher on 127.0.0.1 (free ports, a temporary store, only
flags every release has), runs for a bounded time, and prints one line:

    attack | up, silent or dead after | peak RSS during | RSS after | what clients saw

Peak RSS is the highest VmRSS sampled every 20 ms from /proc while the attack runs
(the fill before it is not counted). Loopback only; every process started here is
killed when its attack ends, whether it passed or not. Python's standard library only.
"""

import argparse
import base64
import os
import re
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

MiB = 1 << 20
# The address the connection floods come from, and the one the well-behaved clients use:
# two addresses of the loopback range (Linux answers on all of 127.0.0.0/8), so a
# per-address share can tell them apart.
ATTACKER = "127.0.0.3"


# ---------------------------------------------------------------------------------------
# The server under test


class Catcher:
    def __init__(self, sokkel, extra=(), log_stderr=False):
        self.dir = tempfile.TemporaryDirectory(prefix="sokkel-hostile-")
        self.db = os.path.join(self.dir.name, "mail.db")
        args = [sokkel, "mail", "serve", "--smtp", "127.0.0.1:0", "--http", "127.0.0.1:0",
                "--pop3", "127.0.0.1:0", "--imap", "127.0.0.1:0", "--db", self.db, "--hostname", "bench.test", *extra]
        env = {k: v for k, v in os.environ.items() if not k.startswith("SOKKEL_")}
        env.setdefault("RUST_LOG", "info")
        self.stderr_path = os.path.join(self.dir.name, "stderr")
        self.stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.stderr, env=env,
                                     start_new_session=True)
        self.smtp = self.http = self.pop3 = None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (self.smtp and self.http and self.pop3):
            line = self.proc.stdout.readline().decode(errors="replace").strip()
            if not line:
                if self.proc.poll() is not None:
                    break
                continue
            if m := re.match(r"listening on smtp (\S+):(\d+)$", line):
                self.smtp = (m.group(1), int(m.group(2)))
            elif m := re.match(r"listening on http http://(\S+):(\d+)/$", line):
                self.http = (m.group(1), int(m.group(2)))
            elif m := re.match(r"listening on pop3 (\S+):(\d+)$", line):
                self.pop3 = (m.group(1), int(m.group(2)))
        if not (self.smtp and self.http and self.pop3):
            self.stop()
            raise RuntimeError("sokkel did not announce its listeners; stderr:\n"
                               + open(self.stderr_path).read())
        threading.Thread(target=self._drain_stdout, daemon=True).start()

    def _drain_stdout(self):
        for _ in self.proc.stdout:
            pass

    def alive(self):
        """"up" if the process runs and greets a new SMTP client within 5 s, "silent"
        if it runs but does not, "dead" if it has exited."""
        if self.proc.poll() is not None:
            return "dead"
        try:
            with socket.create_connection(self.smtp, timeout=5) as s:
                s.settimeout(5)
                return "up" if s.recv(100).startswith(b"220") else "silent"
        except OSError:
            return "silent"

    def rss(self):
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    def stderr_lines(self):
        self.stderr.flush()
        with open(self.stderr_path, "rb") as f:
            return f.read().decode(errors="replace").splitlines()

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.stderr.close()
        self.dir.cleanup()


class PeakRss:
    """Samples the server's VmRSS every 20 ms from start() to stop()."""

    def __init__(self, catcher):
        self.catcher, self.peak, self._run = catcher, 0, False

    def __enter__(self):
        self._run = True
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while self._run:
            self.peak = max(self.peak, self.catcher.rss())
            time.sleep(0.02)

    def __exit__(self, *exc):
        self._run = False
        self._thread.join()


# ---------------------------------------------------------------------------------------
# Clients


def smtp_session(addr, source=None, timeout=30):
    s = socket.create_connection(addr, timeout=timeout, source_address=(source, 0) if source else None)
    f = s.makefile("rb")
    reply(f)
    return s, f


def reply(f):
    """One SMTP reply (all its lines); returns (code, text)."""
    lines = []
    while True:
        line = f.readline()
        if not line:
            return 0, b"".join(lines)
        lines.append(line)
        if len(line) < 4 or line[3:4] != b"-":
            return int(line[:3] or b"0"), b"".join(lines)


def send_messages(addr, messages, sessions=4):
    """Delivers every raw message over `sessions` reused connections; returns the
    reply codes after DATA."""
    codes = []
    lock = threading.Lock()
    chunks = [messages[i::sessions] for i in range(sessions)]

    def worker(chunk):
        if not chunk:
            return
        s, f = smtp_session(addr)
        s.sendall(b"EHLO bench\r\n")
        reply(f)
        for raw in chunk:
            s.sendall(b"MAIL FROM:<a@bench.test>\r\nRCPT TO:<b@bench.test>\r\nDATA\r\n")
            reply(f), reply(f), reply(f)
            s.sendall(raw + b"\r\n.\r\n")
            code, _ = reply(f)
            with lock:
                codes.append(code)
        s.sendall(b"QUIT\r\n")
        s.close()

    threads = [threading.Thread(target=worker, args=(c,)) for c in chunks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return codes


def http_get(addr, path, timeout=30, headers=None):
    req = urllib.request.Request(f"http://{addr[0]}:{addr[1]}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def http_request(addr, method, path, body=b"", headers=None, timeout=10):
    req = urllib.request.Request(f"http://{addr[0]}:{addr[1]}{path}", data=body or None,
                                 method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def small_buffers(s):
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)


def fmt_mb(n):
    return f"{n / MiB:,.0f} MB"


def timed(fn):
    start = time.monotonic()
    ok = fn()
    return ok, time.monotonic() - start


def victim_smtp(addr, source="127.0.0.2"):
    """A well-behaved client delivering one small message; (got 250, seconds)."""
    def go():
        try:
            s, f = smtp_session(addr, source=source, timeout=15)
            s.sendall(b"EHLO victim\r\nMAIL FROM:<v@bench.test>\r\nRCPT TO:<w@bench.test>\r\nDATA\r\n")
            codes = [reply(f)[0] for _ in range(4)]
            s.sendall(b"Subject: victim\r\n\r\nhello\r\n.\r\n")
            code = reply(f)[0]
            s.close()
            return codes[-1] == 354 and code == 250
        except OSError:
            return False
    return timed(go)


# ---------------------------------------------------------------------------------------
# The attacks. Each returns (state after, peak RSS, RSS after, what clients saw).


def mime_nest(sokkel, levels=34_000):
    c = Catcher(sokkel)
    try:
        raw = (b"From: a@bench.test\r\nSubject: nest\r\n"
               + b"Content-Type: message/rfc822\r\n\r\n" * levels + b"hello\r\n")
        with PeakRss(c) as peak:
            try:
                codes = send_messages(c.smtp, [raw], sessions=1)
            except OSError as e:
                codes = [f"connection lost ({e.__class__.__name__})"]
            time.sleep(0.5)
        alive = c.alive()
        code = codes[0] if codes else "no reply"
        return alive, peak.peak, c.rss(), f"{len(raw) / MiB:.1f} MiB message, reply {code}"
    finally:
        c.stop()


def address_message(n, i):
    to = ",\r\n ".join(f"user{j}@bench.test" for j in range(n))
    return (f"From: a@bench.test\r\nTo: {to}\r\nSubject: many {i}\r\n\r\nbody\r\n").encode()


def api_addresses(sokkel, messages=200, addresses=20_000, concurrent=4):
    c = Catcher(sokkel)
    try:
        send_messages(c.smtp, [address_message(addresses, i) for i in range(messages)])
        sizes = []

        def get():
            status, body = http_get(c.http, "/api/v1/messages?limit=1000", timeout=120)
            sizes.append((status, len(body)))

        with PeakRss(c) as peak:
            threads = [threading.Thread(target=get) for _ in range(concurrent)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        size = max((s for _, s in sizes), default=0)
        return (c.alive(), peak.peak, c.rss(),
                f"{concurrent} x limit=1000 over {messages} msgs x {addresses} To: "
                f"{size / MiB:.1f} MiB of JSON each")
    finally:
        c.stop()


def pop3_pipeline(sokkel, messages=10_000, sessions=30):
    c = Catcher(sokkel)
    try:
        send_messages(c.smtp, [b"Subject: s\r\n\r\nx\r\n"] * messages, sessions=8)
        socks = []
        with PeakRss(c) as peak:
            for _ in range(sessions):
                s = socket.create_connection(c.pop3, timeout=10)
                small_buffers(s)
                s.sendall(b"USER bench\r\nPASS bench\r\n" + b"LIST\r\n" * 680)
                socks.append(s)
            time.sleep(3)
            ok, secs = timed(lambda: pop3_stat(c.pop3))
        for s in socks:
            s.close()
        return (c.alive(), peak.peak, c.rss(),
                f"{sessions} sessions x 680 pipelined LIST over {messages} msgs; "
                f"another client's STAT {'ok' if ok else 'FAILED'} in {secs:.2f} s")
    finally:
        c.stop()


def pop3_stat(addr):
    try:
        with socket.create_connection(addr, timeout=10, source_address=("127.0.0.2", 0)) as s:
            f = s.makefile("rb")
            f.readline()
            s.sendall(b"USER v\r\nPASS v\r\nSTAT\r\nQUIT\r\n")
            lines = [f.readline() for _ in range(4)]
            return lines[2].startswith(b"+OK")
    except OSError:
        return False


def smtp_trickle(sokkel, clients=200, victims=10):
    """`clients` sessions from one address each send one byte a second of an endless
    command; the cap is `clients` and the command timeout 3 s. Then `victims` real
    clients from another address try to deliver."""
    c = Catcher(sokkel, ["--max-conns", str(clients), "--command-timeout", "3s"])
    try:
        socks = []
        for _ in range(clients):
            try:
                s, _ = smtp_session(c.smtp, source=ATTACKER, timeout=5)
                socks.append(s)
            except OSError:
                break
        stop = time.monotonic() + 8
        with PeakRss(c) as peak:
            while time.monotonic() < stop:
                for s in socks:
                    try:
                        s.send(b"N")
                    except OSError:
                        pass
                time.sleep(1)
            open_after = count_open(socks)
            served = sum(victim_smtp(c.smtp)[0] for _ in range(victims))
        for s in socks:
            s.close()
        return (c.alive(), peak.peak, c.rss(),
                f"{clients} trickling (1 B/s, cap {clients}, command timeout 3 s): "
                f"{open_after} still open after 8 s; {served}/{victims} real clients got 250")
    finally:
        c.stop()


def count_open(socks, window=0.5):
    """How many of `socks` the server has not closed: for `window` seconds, read
    whatever arrives (such as a last 421) and drop each socket that reaches its end."""
    open_socks = set(socks)
    deadline = time.monotonic() + window
    while open_socks and time.monotonic() < deadline:
        ready, _, _ = select.select(list(open_socks), [], [], max(0, deadline - time.monotonic()))
        for s in ready:
            try:
                if not s.recv(4096):
                    open_socks.discard(s)
            except OSError:
                open_socks.discard(s)
    return len(open_socks)


def http_slowloris(sokkel, clients=600, requests=27, seconds=15):
    c = Catcher(sokkel)
    try:
        socks = []
        for _ in range(clients):
            try:
                s = socket.create_connection(c.http, timeout=5, source_address=(ATTACKER, 0))
                s.send(b"GET / HTTP/1.1\r\n")
                socks.append(s)
            except OSError:
                break
        served = 0
        with PeakRss(c) as peak:
            start = time.monotonic()
            for i in range(requests):
                for s in socks:
                    try:
                        s.send(b"X")
                    except OSError:
                        pass
                try:
                    with socket.create_connection(c.http, timeout=5,
                                                  source_address=("127.0.0.2", 0)) as v:
                        v.settimeout(5)
                        v.sendall(b"GET /api/v1/info HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                  b"Connection: close\r\n\r\n")
                        served += v.recv(12).startswith(b"HTTP/1.1 200")
                except OSError:
                    pass
                time.sleep(max(0.0, start + (i + 1) * seconds / requests - time.monotonic()))
        for s in socks:
            s.close()
        return (c.alive(), peak.peak, c.rss(),
                f"{len(socks)} trickling header bytes: {served}/{requests} real requests "
                f"answered over {seconds} s")
    finally:
        c.stop()


def data_hold(sokkel, clients=100, size=31 * MiB):
    c = Catcher(sokkel)
    try:
        chunk = (b"x" * 998 + b"\r\n") * 1024
        socks, replies = [], []
        with PeakRss(c) as peak:
            for _ in range(clients):
                s, f = smtp_session(c.smtp)
                s.sendall(b"EHLO hold\r\nMAIL FROM:<a@bench.test>\r\nRCPT TO:<b@bench.test>\r\nDATA\r\n")
                codes = [reply(f)[0] for _ in range(4)]
                replies.append(codes[-1])
                if codes[-1] == 354:
                    sent = 0
                    try:
                        s.settimeout(30)
                        while sent < size:
                            s.sendall(chunk)
                            sent += len(chunk)
                    except OSError:
                        pass
                socks.append(s)
            time.sleep(1)
            ok, secs = victim_smtp(c.smtp)
        held = peak.peak
        for s in socks:
            s.close()
        time.sleep(3)
        return (c.alive(), held, c.rss(),
                f"{clients} x unfinished {size / MiB:.0f} MiB DATA "
                f"({replies.count(354)} got 354); a small message "
                f"{'got 250' if ok else 'FAILED'} in {secs:.2f} s; RSS after = 3 s after they left")
    finally:
        c.stop()


def ws_stall(sokkel, events=2000, subject_len=100_000):
    c = Catcher(sokkel)
    try:
        ws = socket.create_connection(c.http, timeout=10)
        small_buffers(ws)
        key = base64.b64encode(os.urandom(16)).decode()
        host = f"{c.http[0]}:{c.http[1]}"
        ws.sendall((f"GET /api/events HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
                    f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                    f"Sec-WebSocket-Version: 13\r\nOrigin: http://{host}\r\n\r\n").encode())
        head = ws.recv(4096)
        upgraded = head.startswith(b"HTTP/1.1 101")
        raw = b"Subject: " + b"s" * subject_len + b"\r\n\r\nbody\r\n"
        with PeakRss(c) as peak:
            send_messages(c.smtp, [raw] * events, sessions=4)
            time.sleep(1)
        ws.close()
        return (c.alive(), peak.peak, c.rss(),
                f"one WebSocket ({'upgraded' if upgraded else 'NOT upgraded'}) never reading "
                f"while {events} messages with {subject_len // 1000} kB subjects arrive")
    finally:
        c.stop()


def raw_stall(sokkel, clients=40, size=31 * MiB):
    c = Catcher(sokkel)
    try:
        body = (b"y" * 998 + b"\r\n") * (size // 1000)
        codes = send_messages(c.smtp, [b"Subject: big\r\n\r\n" + body], sessions=1)
        socks = []
        with PeakRss(c) as peak:
            for _ in range(clients):
                s = socket.create_connection(c.http, timeout=10)
                small_buffers(s)
                s.sendall(b"GET /api/v1/message/latest/raw HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                socks.append(s)
            time.sleep(3)
            status, _ = http_get(c.http, "/api/v1/info", timeout=10)
        for s in socks:
            s.close()
        return (c.alive(), peak.peak, c.rss(),
                f"{clients} clients never reading /raw of a {size / MiB:.0f} MiB message "
                f"(stored: {codes}); /api/v1/info meanwhile: {status}")
    finally:
        c.stop()


def full_store(sokkel, retries=2000):
    c = Catcher(sokkel, ["--max-store-size", "256KiB"])
    try:
        filler = b"Subject: fill\r\n\r\n" + b"z" * 8000 + b"\r\n"
        codes = []
        for _ in range(100):
            codes += send_messages(c.smtp, [filler] * 10, sessions=1)
            if 451 in codes:
                break
        before = len(c.stderr_lines())
        start = time.monotonic()
        retry_codes = send_messages(c.smtp, [filler] * retries, sessions=4)
        secs = time.monotonic() - start
        time.sleep(1)
        log_lines = len(c.stderr_lines()) - before
        status, body = http_request(c.http, "DELETE", "/api/v1/messages")
        listed, _ = http_get(c.http, "/api/v1/messages")
        after = send_messages(c.smtp, [b"Subject: again\r\n\r\nx\r\n"], sessions=1)
        return (c.alive(), 0, c.rss(),
                f"{retry_codes.count(451)} x 451 in {secs:.1f} s wrote {log_lines} log lines; "
                f"DELETE all -> {status} {body[:60]!r}; next message -> {after}")
    finally:
        c.stop()


def origin(sokkel):
    c = Catcher(sokkel)
    try:
        send_messages(c.smtp, [b"Subject: keep me\r\n\r\nx\r\n"], sessions=1)
        status, _ = http_request(c.http, "DELETE", "/api/v1/messages", body=b"",
                                 headers={"Content-Type": "text/plain",
                                          "Origin": "http://evil.example"})
        _, listed = http_get(c.http, "/api/v1/messages")
        kept = b"keep me" in listed
        return (c.alive(), 0, c.rss(),
                f"text/plain DELETE with a foreign Origin -> {status}; "
                f"message {'kept' if kept else 'DELETED'}")
    finally:
        c.stop()


ATTACKS = {
    "mime-nest": mime_nest,
    "api-addresses": api_addresses,
    "pop3-pipeline": pop3_pipeline,
    "smtp-trickle": smtp_trickle,
    "http-slowloris": http_slowloris,
    "data-hold": data_hold,
    "ws-stall": ws_stall,
    "raw-stall": raw_stall,
    "full-store": full_store,
    "origin": origin,
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sokkel", default="target/release/sokkel")
    parser.add_argument("attacks", nargs="*", metavar="ATTACK", help=", ".join(ATTACKS))
    args = parser.parse_args()
    unknown = [a for a in args.attacks if a not in ATTACKS]
    if unknown:
        parser.error(f"unknown attack {unknown[0]!r}; choose from {', '.join(ATTACKS)}")
    for name in args.attacks or ATTACKS:
        start = time.monotonic()
        try:
            alive, peak, after, saw = ATTACKS[name](args.sokkel)
            peak_text = fmt_mb(peak) if peak else "-"
            print(f"{name:15} | {alive:6} | peak {peak_text:>9} | "
                  f"after {fmt_mb(after):>8} | {saw} ({time.monotonic() - start:.0f} s)",
                  flush=True)
        except Exception as e:  # one broken attack must not hide the others' figures
            print(f"{name:15} | error: {e.__class__.__name__}: {e}", flush=True)


if __name__ == "__main__":
    main()
