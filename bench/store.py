#!/usr/bin/env python3
"""The store at scale (issue #12): `sokkel mail serve` with 1,000,000 messages of about
1 KiB, filled through SMTP, measured against the issue's bars.

    python3 bench/store.py --sokkel target/release/sokkel                 # 1,000,000
    python3 bench/store.py --sokkel target/release/sokkel --messages 200000

Steps, each on the same fresh store in a temporary directory:

1. fill: N messages through SMTP from one Python process (a pipelining client over
   --connections sockets, each reused for 5,000 messages; the end of one message and
   the next envelope go in one write, RFC 2920). Subjects, senders, recipients and
   bodies vary; 1 in 20 carries an `X-Tags:` header (one of TAGS, so a `tag:` search
   matches N/200); exactly RARE_COUNT (300) messages, spread evenly, carry the rare
   word RARE_WORD (zanzibar). Prints
   the fill rate, then waits until the rare word's count is RARE_COUNT (search
   indexing runs behind delivery).
2. latency: p50/p99/max of sequential requests over one keep-alive HTTP connection
   (--requests each, after 20 not counted): the newest page, a deep `start=` page, a
   `before=` cursor page, `tag:NAME`, the rare word; and `sokkel mail list --db`, whole
   process, median of 5.
3. memory: a fresh server process on the full store, one WebSocket on /api/events read
   like the page reads it, the page's list request every second, while smtp-source
   delivers --live-messages messages; VmRSS sampled every 0.2 s, VmHWM at the end.
   With --browser, bench/web_rss.mjs opens the real page in headless Chromium instead
   of the Python WebSocket (needs `npm ci` in crates/sokkel/tests/web_js).
4. pruning: a server on the full store with `--max <stored - 100000>` while
   smtp-source (--load-sessions) delivers; a separate SMTP client times end of
   DATA -> 250 for each of its messages until the store is back at the limit
   (--prune-count changes the 100,000). A binary without `--max` says "retention not
   supported by this binary" and measures the same delivery for --baseline-seconds
   with no pruning.
5. ratios: bench/smtp.sh's smtp-source vs smtp-sink measurement, on the same binary.

Then prints a markdown table for docs/benchmarks.md; --skip STEP leaves a step out.
Loopback only (127.0.0.1, free ports). Every process started here runs in a session
of its own and is killed when its step ends, when the script ends, and on Ctrl-C or
SIGTERM; the temporary directory goes with it. Python's standard library, plus
Postfix's smtp-source and smtp-sink (apt-get install -y postfix) and, for step 5,
aiosmtpd (bench/smtp.sh's).
"""

import argparse
import base64
import http.client
import json
import math
import os
import re
import select
import selectors
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SMTP_SOURCE = "/usr/sbin/smtp-source"
SMTP_SINK = "/usr/sbin/smtp-sink"

RARE_WORD = "zanzibar"
RARE_COUNT = 300
TAGS = ["invoices", "alerts", "newsletter", "signup", "billing",
        "urgent", "staging", "ci", "support", "qa"]
TAG_QUERIED = "alerts"

# Bars from the issue (p99 in ms unless said otherwise).
BAR_LIST_MS = 10
BAR_TAG_MS = 20
BAR_RARE_MS = 50
BAR_MAIL_LIST_MS = 100
BAR_RSS_MB = 100
BAR_PRUNE_P99_MS = 50


def log(text):
    print(f"store.py: {text}", file=sys.stderr, flush=True)


class Fatal(Exception):
    """A step cannot go on; the message says why."""


# ---------------------------------------------------------------------------------------
# Processes: every one in a session of its own, all killed on the way out.

STARTED = []


def start(args, **kwargs):
    proc = subprocess.Popen(args, start_new_session=True, **kwargs)
    STARTED.append(proc)
    return proc


def stop(proc, grace=5.0):
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
    if proc in STARTED:
        STARTED.remove(proc)


def stop_all():
    for proc in list(STARTED):
        stop(proc, grace=2.0)


def proc_status(pid, field):
    """A /proc/PID/status field in MB (VmRSS, VmHWM); 0.0 once the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class Server:
    """`sokkel mail serve` on the store, SMTP and HTTP on free loopback ports."""

    def __init__(self, sokkel, db, workdir, name, extra=()):
        args = [sokkel, "mail", "serve", "--db", db, "--smtp", "127.0.0.1:0",
                "--http", "127.0.0.1:0", "--no-pop3", "--no-imap", "--hostname", "bench.test", *extra]
        env = {k: v for k, v in os.environ.items() if not k.startswith("SOKKEL_")}
        self.stderr_path = os.path.join(workdir, f"{name}.err")
        with open(self.stderr_path, "wb") as err:
            # Unbuffered, so select() on the pipe sees every line not yet read.
            self.proc = start(args, stdout=subprocess.PIPE, stderr=err, env=env, bufsize=0)
        self.smtp = self.http = None
        self.stdout_lines = []
        deadline = time.monotonic() + 120  # opening a big store may migrate it
        while time.monotonic() < deadline and not (self.smtp and self.http):
            ready, _, _ = select.select([self.proc.stdout], [], [], 1.0)
            if not ready:
                if self.proc.poll() is not None:
                    break
                continue
            line = self.proc.stdout.readline().decode(errors="replace").strip()
            if not line and self.proc.poll() is not None:
                break
            self.stdout_lines.append(line)
            if m := re.match(r"listening on smtp (\S+):(\d+)$", line):
                self.smtp = (m.group(1), int(m.group(2)))
            elif m := re.match(r"listening on http http://(\S+):(\d+)/$", line):
                self.http = (m.group(1), int(m.group(2)))
        if not (self.smtp and self.http):
            self.stop()
            raise Fatal(f"sokkel {' '.join(extra)} did not announce its listeners; stderr: "
                        + open(self.stderr_path, errors="replace").read()[-2000:])
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        for line in self.proc.stdout:
            self.stdout_lines.append(line.decode(errors="replace").rstrip())

    def memory(self, field):
        return proc_status(self.proc.pid, field)

    def stderr_tail(self, lines=5):
        with open(self.stderr_path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])

    def stop(self):
        stop(self.proc)


# ---------------------------------------------------------------------------------------
# The messages

PEOPLE = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan",
          "judy", "mallory", "niaj", "olivia", "peggy", "rupert", "sybil", "trent",
          "victor", "walter", "yolanda", "zoe", "oscar", "pat"]
DOMAINS = ["example.com", "example.org", "shop.test", "corp.test", "mail.test", "news.test"]
SUBJECTS = ["Your order {n} has shipped", "Invoice {n} for {w}", "Re: {w} {v} meeting notes",
            "Welcome to the {w} team", "Password reset request #{n}", "Weekly {w} report",
            "[ticket {n}] {w} {v} needs review", "Fwd: {w} proposal", "{w}: build {n} failed",
            "Reminder: {w} {v} due"]
WORDS = ("account agenda approval budget call client contract customer deadline delivery "
         "design draft estimate feedback follow forecast invoice launch meeting minutes "
         "notes offer order payment plan policy price project proposal quarter receipt "
         "release report request review schedule shipment signup status summary support "
         "team ticket timeline update welcome weekly the and for with please thanks "
         "attached below today tomorrow next week you we kitchen garden server deploy "
         "lorem ipsum dolor sit amet consectetur adipiscing elit sed tempor").split()


def _paragraphs(count=997, seed=12):
    """A pool of ~350-byte paragraphs; message n takes two of them."""
    state, out = seed, []
    for _ in range(count):
        words = []
        while sum(len(w) + 1 for w in words) < 350:
            state = (state * 1103515245 + 12345) % 2**31
            words.append(WORDS[(state >> 8) % len(WORDS)])
        words[0] = words[0].capitalize()
        words[-1] += "."
        lines, line = [], []
        for word in words:
            if line and len(" ".join(line)) + len(word) >= 76:
                lines.append(" ".join(line))
                line = []
            line.append(word)
        out.append("\r\n".join(lines + [" ".join(line)]))
    return out


PARAGRAPHS = _paragraphs()


def rare_positions(total):
    step = max(total // RARE_COUNT, 1)
    return step, step // 2


def message(n, total):
    """(envelope sender, recipient, message bytes) of message n (0-based) of total:
    about 1 KiB, CRLF line ends, no line starting with a dot."""
    who = PEOPLE[n % len(PEOPLE)]
    sender = f"{who}{n % 97}@{DOMAINS[n % len(DOMAINS)]}"
    rcpt = f"{PEOPLE[(n * 7 + 3) % len(PEOPLE)]}@{DOMAINS[(n // 7) % len(DOMAINS)]}"
    w, v = WORDS[(n * 31) % len(WORDS)], WORDS[(n * 17 + 5) % len(WORDS)]
    subject = SUBJECTS[(n // 3) % len(SUBJECTS)].format(n=n, w=w, v=v)
    first = PARAGRAPHS[(n * 7919) % len(PARAGRAPHS)]
    second = PARAGRAPHS[(n * 104729 + 1) % len(PARAGRAPHS)]
    step, offset = rare_positions(total)
    if n % step == offset and n // step < RARE_COUNT:
        first = f"About {RARE_WORD}: " + first
    day = 1 + n % 28
    head = (f"From: {who.title()} <{sender}>\r\n"
            f"To: <{rcpt}>\r\n"
            + (f"Cc: {PEOPLE[(n + 5) % len(PEOPLE)]}@corp.test\r\n" if n % 5 == 0 else "")
            + f"Subject: {subject}\r\n"
            f"Date: Mon, {day:02d} Jun 2026 {n % 24:02d}:{n % 60:02d}:00 +0000\r\n"
            f"Message-ID: <store-{n}@bench.test>\r\n"
            + (f"X-Tags: {message_tag(n)}\r\n" if n % 20 == 7 else "")
            + "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 7bit\r\n\r\n")
    body = f"Hello {PEOPLE[(n * 7 + 3) % len(PEOPLE)].title()},\r\n\r\n{first}\r\n\r\n{second}\r\n\r\n-- \r\n{who}\r\n"
    return sender, rcpt, (head + body).encode()


def message_tag(n):
    return TAGS[(n // 20) % len(TAGS)]


def tagged_count(total, tag):
    return sum(1 for n in range(7, total, 20) if message_tag(n) == tag)


# ---------------------------------------------------------------------------------------
# SMTP


def read_reply(f):
    """One SMTP reply, all its lines; returns (code, last line)."""
    while True:
        line = f.readline()
        if not line:
            raise Fatal("the SMTP server closed the connection")
        if len(line) < 4 or line[3:4] != b"-":
            return int(line[:3]), line


def envelope(sender, rcpt):
    return f"MAIL FROM:<{sender}>\r\nRCPT TO:<{rcpt}>\r\nDATA\r\n".encode()


# Messages per fill connection before it says QUIT and a fresh one takes over. A
# session that pipelines message after message is never between transactions when
# sokkel checks, and sokkel 8435284 then counts --data-total-timeout (10 min) from the
# session's first DATA and cuts it with 421.
PER_CONNECTION = 5000


class FillConnection:
    """One pipelining SMTP connection of the fill: after the greeting and EHLO it
    always has a group in flight, whose replies it counts as they arrive."""

    def __init__(self, addr, fill, budget):
        self.fill = fill
        self.budget = budget  # messages before QUIT; the fill then opens a fresh connection
        self.sock = socket.create_connection(addr, timeout=60)
        f = self.sock.makefile("rb")
        read_reply(f)
        self.sock.sendall(b"EHLO fill.bench.test\r\n")
        code, _ = read_reply(f)
        if code != 250:
            raise Fatal(f"EHLO answered {code}")
        self.buf = b""
        self.expect = []  # reply codes the group in flight must get, in order
        self.pending_data = None  # bytes of the message whose 354 is awaited
        self.delivering = False  # the next 250 is for a message's end of data
        self.n = fill.take()
        if self.n is None:
            self.sock.sendall(b"QUIT\r\n")
            self.expect = [221]
        else:
            sender, rcpt, data = message(self.n, fill.total)
            self.pending_data = data
            self.sock.sendall(envelope(sender, rcpt))
            self.expect = [250, 250, 354]

    def readable(self):
        """Handles what arrived; False once the connection is finished."""
        chunk = self.sock.recv(65536)
        if not chunk:
            raise Fatal("the server closed a fill connection")
        self.buf += chunk
        while b"\r\n" in self.buf:
            line, self.buf = self.buf.split(b"\r\n", 1)
            if line[3:4] == b"-":
                continue
            code = int(line[:3])
            want = self.expect.pop(0)
            if code != want:
                raise Fatal(f"message {self.n}: wanted {want}, got {line.decode(errors='replace')}")
            if want == 250 and self.delivering:
                self.delivering = False
                self.fill.delivered += 1
            if want == 221:
                self.sock.close()
                return False
            if want == 354:
                self.send_data()
        return True

    def send_data(self):
        data = self.pending_data + b".\r\n"
        self.delivering = True
        self.expect = [250]
        self.budget -= 1
        self.n = self.fill.take() if self.budget > 0 else None
        if self.n is None:
            self.pending_data = None
            self.sock.sendall(data + b"QUIT\r\n")
            self.expect.append(221)
        else:
            sender, rcpt, next_data = message(self.n, self.fill.total)
            self.pending_data = next_data
            self.sock.sendall(data + envelope(sender, rcpt))
            self.expect += [250, 250, 354]


class Fill:
    def __init__(self, total):
        self.total = total
        self.next = 0
        self.delivered = 0

    def take(self):
        if self.next >= self.total:
            return None
        n = self.next
        self.next += 1
        return n


def fill_store(addr, total, connections, max_seconds):
    """Sends `total` messages; returns seconds taken."""
    fill = Fill(total)
    sel = selectors.DefaultSelector()
    for _ in range(connections):
        c = FillConnection(addr, fill, PER_CONNECTION)
        sel.register(c.sock, selectors.EVENT_READ, c)
    start = time.monotonic()
    last_report = start
    open_conns = connections
    while open_conns:
        now = time.monotonic()
        if now - start > max_seconds:
            raise Fatal(f"the fill ran out of time: {fill.delivered} of {total} "
                        f"delivered in {max_seconds:.0f} s (--fill-seconds)")
        if now - last_report > 30:
            log(f"fill: {fill.delivered:,} of {total:,} delivered, "
                f"{fill.delivered / (now - start):,.0f} msg/s")
            last_report = now
        for key, _ in sel.select(timeout=1.0):
            if not key.data.readable():
                sel.unregister(key.fileobj)
                open_conns -= 1
                if fill.next < fill.total:
                    c = FillConnection(addr, fill, PER_CONNECTION)
                    sel.register(c.sock, selectors.EVENT_READ, c)
                    open_conns += 1
    sel.close()
    if fill.delivered != total:
        raise Fatal(f"the fill delivered {fill.delivered} of {total}")
    return time.monotonic() - start


def probe_deliveries(addr, stop_event, latencies, max_messages):
    """One SMTP session delivering message after message until stop_event; appends
    each message's end of DATA -> 250 time (seconds) to latencies."""
    sock = socket.create_connection(addr, timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    f = sock.makefile("rb")
    read_reply(f)
    sock.sendall(b"EHLO probe.bench.test\r\n")
    read_reply(f)
    n = 0
    while not stop_event.is_set() and n < max_messages:
        sender, rcpt, data = message(10**9 + n, 10**9)
        sock.sendall(envelope(sender, rcpt))
        codes = [read_reply(f)[0] for _ in range(3)]
        if codes != [250, 250, 354]:
            raise Fatal(f"the prober's envelope got {codes}")
        sock.sendall(data)
        t0 = time.perf_counter()
        sock.sendall(b".\r\n")
        code, line = read_reply(f)
        latencies.append(time.perf_counter() - t0)
        if code != 250:
            raise Fatal(f"the prober's message got {line!r}")
        n += 1
    sock.sendall(b"QUIT\r\n")
    sock.close()


def smtp_source(addr, messages, sessions, size=1024):
    """smtp-source delivering `messages` of `size` bytes over `sessions` reused
    connections; its output goes to a pipe read by the caller. The subject lets
    bench/web_rss.mjs find the newest message in the page."""
    return start([SMTP_SOURCE, "-d", "-s", str(sessions), "-m", str(messages), "-l", str(size),
                  "-S", "store bench load", "-f", "load@bench.test", "-t", "inbox@bench.test",
                  f"{addr[0]}:{addr[1]}"],
                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


# ---------------------------------------------------------------------------------------
# HTTP


class Api:
    """One keep-alive HTTP/1.1 connection."""

    def __init__(self, addr):
        self.addr = addr
        self.conn = http.client.HTTPConnection(*addr, timeout=60)

    def get(self, path):
        """(status, body bytes)."""
        try:
            self.conn.request("GET", path)
            r = self.conn.getresponse()
            return r.status, r.read()
        except (http.client.HTTPException, OSError):
            self.conn.close()
            self.conn = http.client.HTTPConnection(*self.addr, timeout=60)
            raise

    def json(self, path):
        status, body = self.get(path)
        if status != 200:
            raise Fatal(f"GET {path}: {status} {body[:200]!r}")
        return json.loads(body)

    def close(self):
        self.conn.close()


def percentile(sorted_values, p):
    if not sorted_values:
        return float("nan")
    # Nearest rank: the smallest value with at least p % of the values at or below it.
    k = min(len(sorted_values) - 1, max(0, math.ceil(p / 100 * len(sorted_values)) - 1))
    return sorted_values[k]


def time_requests(api, path, count, warmup, max_seconds):
    """Times `count` sequential GETs after `warmup` untimed ones. Returns a dict with
    the status of the first, the number timed and p50/p99/max in ms; stops early (and
    says so) after max_seconds."""
    status, body = api.get(path)
    if status != 200:
        return {"status": status, "reason": body[:200].decode(errors="replace"), "n": 0}
    for _ in range(warmup - 1):
        api.get(path)
    times = []
    deadline = time.monotonic() + max_seconds
    while len(times) < count and time.monotonic() < deadline:
        t0 = time.perf_counter()
        status, _ = api.get(path)
        times.append((time.perf_counter() - t0) * 1000)
        if status != 200:
            raise Fatal(f"GET {path} answered {status} mid-run")
    times.sort()
    return {"status": 200, "n": len(times), "p50": percentile(times, 50),
            "p99": percentile(times, 99), "max": times[-1], "body": body}


def wait_for(what, check, seconds, every=1.0):
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise Fatal(f"{what}: not within {seconds:.0f} s")
        time.sleep(every)


class EventSocket:
    """A WebSocket on /api/events read as the page reads it; counts frames."""

    def __init__(self, addr):
        self.sock = socket.create_connection(addr, timeout=10)
        key = base64.b64encode(os.urandom(16)).decode()
        host = f"{addr[0]}:{addr[1]}"
        self.sock.sendall((f"GET /api/events HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           f"Sec-WebSocket-Version: 13\r\nOrigin: http://{host}\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise Fatal("the server closed the WebSocket handshake")
            head += chunk
        if not head.startswith(b"HTTP/1.1 101"):
            raise Fatal(f"/api/events: {head.splitlines()[0]!r}")
        self.buf = head.split(b"\r\n\r\n", 1)[1]
        self.frames = 0
        self.kinds = {}
        self.closed = False  # by the server, while the client still read
        self.sock.settimeout(1.0)
        self._run = True
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        while self._run:
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                break
            if not chunk:
                break
            self.buf += chunk
            self._frames()
        self.closed = self._run

    def _frames(self):
        while len(self.buf) >= 2:
            length = self.buf[1] & 0x7F
            start = 2
            if length == 126:
                if len(self.buf) < 4:
                    return
                length, start = struct.unpack(">H", self.buf[2:4])[0], 4
            elif length == 127:
                if len(self.buf) < 10:
                    return
                length, start = struct.unpack(">Q", self.buf[2:10])[0], 10
            if len(self.buf) < start + length:
                return
            opcode = self.buf[0] & 0x0F
            payload, self.buf = self.buf[start:start + length], self.buf[start + length:]
            if opcode == 0x9:  # a ping: answer as the browser does (a masked pong)
                mask = os.urandom(4)
                masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload[:125]))
                self.sock.sendall(bytes([0x8A, 0x80 | len(masked)]) + mask + masked)
                continue
            self.frames += 1
            if payload[:1] == b"{":
                kind = re.match(rb'\{"Type":"(\w+)"', payload)
                if kind:
                    name = kind.group(1).decode()
                    self.kinds[name] = self.kinds.get(name, 0) + 1

    def close(self):
        self._run = False
        self.thread.join()
        self.sock.close()


# ---------------------------------------------------------------------------------------
# The steps


def step_fill(args, work, db):
    server = Server(args.sokkel, db, work, "fill")
    try:
        log(f"fill: {args.messages:,} messages over {args.connections} pipelining connections")
        try:
            secs = fill_store(server.smtp, args.messages, args.connections, args.fill_seconds)
        except Fatal as e:
            raise Fatal(f"{e}; the server's last log lines:\n{server.stderr_tail()}") from None
        result = {"seconds": secs, "rate": args.messages / secs, "hwm": server.memory("VmHWM")}
        log(f"fill: {args.messages:,} in {secs:.1f} s, {result['rate']:,.0f} msg/s")
        api = Api(server.http)
        total = api.json("/api/v1/messages?limit=1")["total"]
        if total != args.messages:
            raise Fatal(f"the API lists {total} messages, {args.messages} were sent")
        t0 = time.monotonic()
        wait_for("indexing the rare word's messages",
                 lambda: True if api.json(f"/api/v1/search?query={RARE_WORD}&limit=1")
                 ["messages_count"] == RARE_COUNT else None, args.fill_seconds)
        result["index_wait"] = time.monotonic() - t0
        api.close()
        return result
    finally:
        server.stop()


def step_latency(args, work, db):
    server = Server(args.sokkel, db, work, "latency")
    try:
        api = Api(server.http)
        result = {"open_hwm": server.memory("VmHWM")}
        total = api.json("/api/v1/messages?limit=1")["total"]
        deep = min(total // 2, args.deep_offset)
        cursor = api.json(f"/api/v1/messages?limit=1&start={deep}")["messages"][0]["ID"]
        tag_expected = tagged_count(args.messages, TAG_QUERIED)
        cases = [
            ("newest page", "/api/v1/messages?limit=50", total, BAR_LIST_MS),
            (f"deep page, `start={deep}`", f"/api/v1/messages?limit=50&start={deep}", total, None),
            (f"cursor at {deep}, `before=`", f"/api/v1/messages?limit=50&before={cursor}", total, None),
            (f"`tag:{TAG_QUERIED}`", f"/api/v1/search?query=tag:{TAG_QUERIED}&limit=50",
             tag_expected, BAR_TAG_MS),
            (f"rare word `{RARE_WORD}`", f"/api/v1/search?query={RARE_WORD}&limit=50",
             RARE_COUNT, BAR_RARE_MS),
        ]
        rows = []
        for kind, path, expected, bar in cases:
            log(f"latency: {kind}")
            r = time_requests(api, path, args.requests, 20, args.case_seconds)
            r.update(kind=kind, path=path, bar=bar, expected=expected)
            if r["status"] == 200:
                answer = json.loads(r.pop("body"))
                r["matches"] = answer.get("messages_count", answer.get("total"))
            rows.append(r)
        result["rows"] = rows
        result["hwm_after"] = server.memory("VmHWM")
        api.close()

        log("latency: sokkel mail list, 5 runs")
        env = {k: v for k, v in os.environ.items() if not k.startswith("SOKKEL_")}
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            subprocess.run([args.sokkel, "mail", "list", "--db", db], check=True, env=env,
                           stdout=subprocess.DEVNULL, timeout=60)
            times.append((time.perf_counter() - t0) * 1000)
        result["mail_list"] = sorted(times)
        return result
    finally:
        server.stop()


def step_memory(args, work, db):
    server = Server(args.sokkel, db, work, "memory")
    page = source = None
    try:
        api = Api(server.http)
        result = {"open_rss": server.memory("VmRSS")}
        if args.browser:
            done = os.path.join(work, "sender-done")
            page = start(["node", os.path.join(HERE, "web_rss.mjs"),
                          f"http://{server.http[0]}:{server.http[1]}/", done, "600"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            line = page.stdout.readline().decode(errors="replace").strip()
            if line != "ready":
                raise Fatal(f"the page did not open: {line} {page.stdout.read(2000)!r}")
            result["client"] = "the page in headless Chromium (bench/web_rss.mjs)"
        else:
            events = EventSocket(server.http)
            api.json("/api/v1/messages?limit=50")
            result["client"] = ("a WebSocket on /api/events and the page's list request "
                                "(`messages?limit=50`) every second")
        result["idle_rss"] = server.memory("VmRSS")
        source = smtp_source(server.smtp, args.live_messages, 4)
        peak = 0.0
        next_poll = time.monotonic()
        t0 = time.monotonic()
        deadline = t0 + args.live_seconds
        while source.poll() is None:
            if time.monotonic() > deadline:
                raise Fatal(f"smtp-source took over {args.live_seconds} s for "
                            f"{args.live_messages} messages")
            peak = max(peak, server.memory("VmRSS"))
            if not args.browser and time.monotonic() >= next_poll:
                api.json("/api/v1/messages?limit=50")
                next_poll += 1.0
            time.sleep(0.2)
        secs = time.monotonic() - t0
        out = source.stdout.read().decode(errors="replace")
        if source.returncode != 0:
            raise Fatal(f"smtp-source failed: {out[-500:]}")
        result["live_rate"] = args.live_messages / secs
        if args.browser:
            open(os.path.join(work, "sender-done"), "w").close()
            out = page.stdout.read().decode(errors="replace")
            if page.wait(60) != 0:
                raise Fatal(f"the page check failed: {out[-1000:]}")
            result["page"] = out.strip().splitlines()[-1]
        else:
            time.sleep(1)
            events.close()
            result["page"] = (f"the WebSocket got {events.frames:,} frames "
                              f"({', '.join(f'{v:,} {k}' for k, v in sorted(events.kinds.items()))})"
                              + ("; the server closed it" if events.closed else ""))
        result["peak_rss"] = max(peak, server.memory("VmRSS"))
        result["hwm"] = server.memory("VmHWM")
        result["end_rss"] = server.memory("VmRSS")
        result["total"] = api.json("/api/v1/messages?limit=1")["total"]
        api.close()
        return result
    finally:
        for proc in (source, page):
            if proc is not None:
                stop(proc)
        server.stop()


def retention_supported(sokkel):
    out = subprocess.run([sokkel, "mail", "serve", "--help"], capture_output=True,
                         text=True, timeout=30).stdout
    return re.search(r"^\s*--max[ =]<", out, re.M) is not None


def step_prune(args, work, db, stored):
    supported = retention_supported(args.sokkel)
    limit = stored - args.prune_count
    result = {"supported": supported, "limit": limit}
    if supported:
        extra = ["--max", str(limit)]
        log(f"prune: --max {limit:,} on {stored:,} stored, while smtp-source delivers")
    else:
        extra = []
        log("prune: retention not supported by this binary (no --max in `mail serve --help`); "
            f"measuring the same delivery for {args.baseline_seconds:.0f} s without pruning")
    server = Server(args.sokkel, db, work, "prune", extra)
    source = None
    stop_probe = threading.Event()
    latencies = []
    probe_error = []

    def probe():
        try:
            probe_deliveries(server.smtp, stop_probe, latencies, 10**7)
        except Exception as e:  # reported after the step
            probe_error.append(repr(e))

    prober = threading.Thread(target=probe)
    try:
        api = Api(server.http)
        source = smtp_source(server.smtp, 10**7, args.load_sessions)
        t0 = time.monotonic()
        prober.start()
        if supported:
            # Done when the store is back at the limit although mail keeps arriving.
            done = None
            deadline = t0 + args.prune_seconds
            while time.monotonic() < deadline:
                if source.poll() is not None:
                    raise Fatal("smtp-source stopped: "
                                + source.stdout.read().decode(errors="replace")[-500:])
                if api.json("/api/v1/messages?limit=1")["total"] <= limit:
                    done = time.monotonic() - t0
                    break
                time.sleep(0.5)
            result["prune_seconds"] = done
        else:
            time.sleep(args.baseline_seconds)
        stop_probe.set()
        prober.join(60)
        secs = time.monotonic() - t0
        stop(source)
        if probe_error:
            raise Fatal(f"the prober failed: {probe_error[0]}")
        result["total_after"] = api.json("/api/v1/messages?limit=1")["total"]
        api.close()
        lat = sorted(x * 1000 for x in latencies)
        result.update(seconds=secs, probes=len(lat), p50=percentile(lat, 50),
                      p99=percentile(lat, 99), max=lat[-1] if lat else float("nan"),
                      delivered=result["total_after"] - (limit if supported else stored))
        result["pruned_log"] = [line for line in server.stdout_lines if "prun" in line.lower()][-3:]
        return result
    finally:
        stop_probe.set()
        if prober.is_alive():
            prober.join(10)
        if source is not None:
            stop(source)
        server.stop()


def step_ratios(args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOKKEL_")}
    env.update(SMTP_BENCH_SOKKEL=os.path.abspath(args.sokkel),
               SMTP_BENCH_SERVERS="smtp-sink sokkel", SMTP_BENCH_LIST_FILL="0")
    log("ratios: bash bench/smtp.sh (smtp-sink, then sokkel)")
    out = subprocess.run(["bash", os.path.join(HERE, "smtp.sh")], env=env, capture_output=True,
                         text=True, timeout=1800, start_new_session=True)
    if out.returncode != 0:
        raise Fatal(f"bench/smtp.sh failed: {out.stderr.strip()[-500:]}")
    lines = out.stdout.splitlines()
    return {"machine": [l for l in lines if l.startswith("smtp-source ")],
            "table": [l for l in lines if l.startswith("|")],
            "ratios": [l for l in lines if l.startswith("sokkel")]}


# ---------------------------------------------------------------------------------------
# The report


def fmt_ms(x):
    return f"{x:.2f}"


def verdict(value, bar):
    if bar is None:
        return "(no bar)"
    return f"< {bar} ms: {'met' if value < bar else 'MISSED'}"


def report(args, figures):
    fill, lat, mem, prune, ratios = (figures.get(k) for k in ("fill", "latency", "memory", "prune", "ratios"))
    n = args.messages
    print()
    print(f"sokkel store at {n:,} messages of about 1 KiB, filled through SMTP "
          f"(`python3 bench/store.py --sokkel {args.sokkel} --messages {n}`)")
    print(f"machine: {os.cpu_count()} cores, {os.uname().release}; "
          f"load average at start {figures['load_start']}; "
          f"{time.strftime('%Y-%m-%dT%H:%MZ', time.gmtime(figures['started']))} to "
          f"{time.strftime('%H:%MZ', time.gmtime())}")
    if fill:
        print()
        print(f"Fill: {n:,} messages in {fill['seconds']:.1f} s, **{fill['rate']:,.0f} msg/s** "
              f"({args.connections} pipelining connections from one Python process); "
              f"the rare word searchable {fill['index_wait']:.1f} s after the last 250; "
              f"store {figures['db_mb']:,} MB on disk; server VmHWM {fill['hwm']:.1f} MB")
    if lat or prune:
        print()
        print("| measurement | matches | p50 ms | p99 ms | max ms | bar |")
        print("|---|---:|---:|---:|---:|---|")
    if lat:
        for r in lat["rows"]:
            where = f"`GET {r['path']}` ({r['kind']}, {r['n']} requests)"
            if r["status"] != 200:
                print(f"| `GET {r['path']}` ({r['kind']}) | | | | | answered {r['status']}: "
                      f"{r['reason'][:80]} |")
                continue
            matches = f"{r['matches']:,}" if isinstance(r.get("matches"), int) else "?"
            if r.get("matches") != r["expected"]:
                matches += f" (expected {r['expected']:,})"
            print(f"| {where} | {matches} | {fmt_ms(r['p50'])} | {fmt_ms(r['p99'])} | "
                  f"{fmt_ms(r['max'])} | {verdict(r['p99'], r['bar'])} |")
        ml = lat["mail_list"]
        print(f"| `sokkel mail list --db` (whole process, 5 runs) | | "
              f"median {fmt_ms(statistics.median(ml))} | | {fmt_ms(ml[-1])} | "
              f"median {verdict(statistics.median(ml), BAR_MAIL_LIST_MS)} |")
    if prune:
        what = (f"end of DATA -> 250 while pruning {args.prune_count:,} (`--max {prune['limit']:,}`)"
                if prune["supported"] else
                "end of DATA -> 250 under the same load, no pruning "
                "(retention not supported by this binary)")
        print(f"| {what}, {prune['probes']:,} messages of one prober | | {fmt_ms(prune['p50'])} | "
              f"{fmt_ms(prune['p99'])} | {fmt_ms(prune['max'])} | "
              f"{verdict(prune['p99'], BAR_PRUNE_P99_MS)} |")
    if lat:
        print()
        print(f"Server VmHWM: {lat['open_hwm']:.1f} MB after opening the full store, "
              f"{lat['hwm_after']:.1f} MB after the requests above.")
    if mem:
        ok = "met" if mem["hwm"] < BAR_RSS_MB else "MISSED"
        print()
        print(f"Memory, fresh server on the full store, {mem['client']}, while smtp-source "
              f"(`-d -s 4 -l 1024`) delivered {args.live_messages:,} messages at "
              f"{mem['live_rate']:,.0f} msg/s: VmRSS {mem['open_rss']:.1f} MB at start, "
              f"{mem['idle_rss']:.1f} MB with the client connected, at most "
              f"{mem['peak_rss']:.1f} MB sampled every 0.2 s, {mem['end_rss']:.1f} MB at the "
              f"end; **VmHWM {mem['hwm']:.1f} MB** (bar < {BAR_RSS_MB} MB: {ok}); "
              f"{mem['page']}; store then {mem['total']:,} messages.")
    if prune:
        print()
        if prune["supported"]:
            took = (f"back at the limit after {prune['prune_seconds']:.1f} s"
                    if prune["prune_seconds"] is not None else
                    f"NOT back at the limit within {args.prune_seconds:.0f} s")
            print(f"Pruning: restarted with `--max {prune['limit']:,}`; smtp-source "
                  f"(`-d -s {args.load_sessions} -l 1024`) and one prober delivered meanwhile; "
                  f"{took}; {prune['total_after']:,} messages at the end.")
            for line in prune["pruned_log"]:
                print(f"  server: {line}")
        else:
            print(f"Pruning: retention not supported by this binary. Baseline instead: "
                  f"{args.baseline_seconds:.0f} s of smtp-source (`-d -s {args.load_sessions} "
                  f"-l 1024`) plus one prober on the full store, {prune['delivered']:,} "
                  f"messages delivered.")
    if ratios:
        print()
        print("smtp-source against smtp-sink (`SMTP_BENCH_SERVERS=\"smtp-sink sokkel\" "
              "SMTP_BENCH_LIST_FILL=0 bash bench/smtp.sh`, on a fresh store): "
              + " ".join(ratios["machine"]))
        print()
        print("\n".join(ratios["table"]))
        print()
        print("\n".join(f"- {line}" for line in ratios["ratios"]))
    print()
    print("Load average (1 min) at the start of each step: "
          + ", ".join(f"{name} {load:.1f}" for name, load in figures["loads"])
          + f"; at the end {os.getloadavg()[0]:.1f}.")
    for name, error in figures.get("errors", []):
        print()
        print(f"Step {name} failed: {error}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sokkel", default="target/release/sokkel", help="the binary under test")
    parser.add_argument("--messages", type=int, default=1_000_000, help="messages in the store")
    parser.add_argument("--connections", type=int, default=64,
                        help="SMTP connections of the fill (more make bigger group commits)")
    parser.add_argument("--fill-seconds", type=float, default=3600, help="time limit of the fill")
    parser.add_argument("--requests", type=int, default=300, help="timed requests per API case")
    parser.add_argument("--case-seconds", type=float, default=120,
                        help="time limit of each API case")
    parser.add_argument("--deep-offset", type=int, default=100_000,
                        help="start= of the deep page (at most half the store)")
    parser.add_argument("--live-messages", type=int, default=20_000,
                        help="messages smtp-source delivers while memory is sampled")
    parser.add_argument("--live-seconds", type=float, default=600,
                        help="time limit of that delivery")
    parser.add_argument("--browser", action="store_true",
                        help="open the real page in headless Chromium (bench/web_rss.mjs)")
    parser.add_argument("--load-sessions", type=int, default=8,
                        help="smtp-source sessions while pruning")
    parser.add_argument("--prune-count", type=int, default=100_000,
                        help="messages the retention step prunes")
    parser.add_argument("--prune-seconds", type=float, default=600,
                        help="time limit of the pruning")
    parser.add_argument("--baseline-seconds", type=float, default=30,
                        help="delivery time measured when the binary has no retention")
    parser.add_argument("--skip", action="append", default=[],
                        choices=["latency", "memory", "prune", "ratios"],
                        help="leave a step out (repeatable)")
    parser.add_argument("--keep-db", metavar="DIR",
                        help="copy the filled store to DIR before measuring (not removed)")
    args = parser.parse_args()

    if args.messages < 2 * args.prune_count and "prune" not in args.skip:
        parser.error(f"--messages must be at least twice --prune-count ({args.prune_count}), "
                     "or add --skip prune")
    if args.messages < RARE_COUNT:
        parser.error(f"--messages must be at least {RARE_COUNT}")
    if not (os.path.isfile(args.sokkel) and os.access(args.sokkel, os.X_OK)):
        parser.error(f"no sokkel binary at {args.sokkel}: build one with "
                     "`cargo build --release -p sokkel` or pass --sokkel PATH")
    for tool in (SMTP_SOURCE, SMTP_SINK):
        if not os.access(tool, os.X_OK):
            parser.error(f"{tool} missing: apt-get install -y postfix")
    if args.browser and not os.path.isdir(os.path.join(
            HERE, "..", "crates", "sokkel", "tests", "web_js", "node_modules", "playwright-core")):
        parser.error("--browser needs playwright-core: (cd crates/sokkel/tests/web_js && "
                     "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci)")

    # Ctrl-C and SIGTERM unwind through the finally blocks, which stop every process
    # (SIGINT too when a shell started this in the background with SIGINT ignored).
    def interrupt(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    work = tempfile.mkdtemp(prefix="sokkel-store-bench-")
    db = os.path.join(work, "mail.db")
    figures = {"started": time.time(), "load_start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
               "errors": [], "loads": [("fill", os.getloadavg()[0])]}
    status = 0
    try:
        figures["fill"] = step_fill(args, work, db)
        figures["db_mb"] = sum(os.path.getsize(os.path.join(work, f))
                               for f in os.listdir(work) if f.startswith("mail.db")) // (1 << 20)
        if args.keep_db:
            os.makedirs(args.keep_db, exist_ok=True)
            for f in os.listdir(work):
                if f.startswith("mail.db"):
                    shutil.copy2(os.path.join(work, f), args.keep_db)
        stored = args.messages
        for name, run in (("latency", lambda: step_latency(args, work, db)),
                          ("memory", lambda: step_memory(args, work, db)),
                          ("prune", lambda: step_prune(args, work, db, stored)),
                          ("ratios", lambda: step_ratios(args))):
            if name in args.skip:
                continue
            figures["loads"].append((name, os.getloadavg()[0]))
            try:
                figures[name] = run()
            except Fatal as e:
                log(f"{name}: {e}")
                figures["errors"].append((name, str(e)))
                status = 1
            if name == "memory" and "memory" in figures:
                stored = figures["memory"]["total"]
    except Fatal as e:
        log(str(e))
        figures["errors"].append(("fill", str(e)))
        status = 1
    except KeyboardInterrupt:
        log("interrupted")
        status = 130
    finally:
        stop_all()
        shutil.rmtree(work, ignore_errors=True)
    if "fill" in figures:
        report(args, figures)
    return status


if __name__ == "__main__":
    sys.exit(main())
