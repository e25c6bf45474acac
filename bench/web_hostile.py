#!/usr/bin/env python3
"""Peak RSS of `sokkel mail serve` under the web attacks of issue #11, for
docs/benchmarks.md. Loopback only; every server started here is killed on exit.

    python3 bench/web_hostile.py SOKKEL_BINARY DB_DIR [messages]

1. list:  MESSAGES (default 200) messages with 20,000 To addresses each, delivered
          through SMTP (kept in DB_DIR/list.db, reused if present), then a fresh
          server answers one, then LIST_CONCURRENT (8) concurrent
          `GET /api/v1/messages?limit=1000`;
2. raw:   one 31 MiB message, then 40 clients send `GET /api/v1/message/1/raw`
          and never read; RSS after 3 s, and whether another client is served;
3. ws:    a WebSocket client that never reads (4 KiB receive buffer) while 300
          messages with 20,000 To addresses each arrive.

Prints one line per measurement: VmHWM and VmRSS in MiB (from /proc), bytes
answered, seconds taken.
"""

import json
import os
import shutil
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time

BINARY, WORK = sys.argv[1], sys.argv[2]
MESSAGES = int(sys.argv[3]) if len(sys.argv) > 3 else 200
MIB = 1 << 20


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, db):
        self.smtp, self.http = free_port(), free_port()
        self.proc = subprocess.Popen(
            [BINARY, "mail", "serve", "--db", db, "--smtp", f"127.0.0.1:{self.smtp}",
             "--http", f"127.0.0.1:{self.http}", "--no-pop3"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={k: v for k, v in os.environ.items() if not k.startswith("SOKKEL_")})
        deadline = time.time() + 600
        while time.time() < deadline:
            try:
                if self.get("/api/v1/info")[0] == 200:
                    return
            except OSError:
                time.sleep(0.2)
        raise SystemExit("server did not start")

    def memory(self):
        fields = {}
        with open(f"/proc/{self.proc.pid}/status") as status:
            for line in status:
                name, _, value = line.partition(":")
                if name in ("VmHWM", "VmRSS"):
                    fields[name] = int(value.split()[0]) * 1024 / MIB
        return fields["VmHWM"], fields["VmRSS"]

    def get(self, path, timeout=120):
        with socket.create_connection(("127.0.0.1", self.http), timeout=timeout) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.http}\r\n"
                      "Connection: close\r\n\r\n".encode())
            data = b""
            while chunk := s.recv(1 << 20):
                data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        return int(head.split()[1]), body

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def report(what, server, **extra):
    hwm, rss = server.memory()
    details = " ".join(f"{k}={v}" for k, v in extra.items())
    print(f"{what}: VmHWM {hwm:.0f} MiB, VmRSS {rss:.0f} MiB {details}", flush=True)


def addresses(count):
    return ",\r\n ".join(f'"Recipient {n}" <user{n}@example.com>' for n in range(count))


BIG_TO = (f"From: rick@example.com\r\nTo: {addresses(20_000)}\r\nSubject: everyone\r\n"
          "\r\nhi\r\n")


def deliver(port, message, count, connections=4):
    def send(share):
        with smtplib.SMTP("127.0.0.1", port, timeout=120) as smtp:
            for _ in range(share):
                smtp.sendmail("rick@example.com", ["morty@example.com"], message)
    threads = [threading.Thread(target=send, args=(count // connections + (i < count % connections),))
               for i in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def attack_list():
    db = os.path.join(WORK, "list.db")
    if not os.path.exists(db):
        server = Server(db)
        started = time.time()
        deliver(server.smtp, BIG_TO, MESSAGES)
        print(f"list: filled {MESSAGES} messages in {time.time() - started:.1f} s", flush=True)
        server.stop()
    copy = os.path.join(WORK, f"list-copy-{os.getpid()}.db")
    shutil.copy(db, copy)
    for suffix in ("-wal", "-shm"):
        if os.path.exists(db + suffix):
            shutil.copy(db + suffix, copy + suffix)
    started = time.time()
    server = Server(copy)
    report("list: opened", server, seconds=f"{time.time() - started:.1f}")
    started = time.time()
    status, body = server.get("/api/v1/messages?limit=1000")
    report("list: one limit=1000", server, status=status, bytes=len(body),
           seconds=f"{time.time() - started:.2f}")
    results = []

    def one():
        try:
            results.append(server.get("/api/v1/messages?limit=1000"))
        except OSError as error:
            results.append((0, str(error).encode()))
    started = time.time()
    concurrent = int(os.environ.get("LIST_CONCURRENT", "8"))
    threads = [threading.Thread(target=one) for _ in range(concurrent)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    report(f"list: {concurrent} concurrent limit=1000", server,
           statuses=sorted({r[0] for r in results}), bytes_each=len(results[0][1]),
           seconds=f"{time.time() - started:.2f}")
    server.stop()


def attack_raw():
    db = os.path.join(WORK, f"raw-{os.getpid()}.db")
    server = Server(db)
    line = b"0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz\r\n"
    body = line * ((31 * MIB) // len(line))
    with smtplib.SMTP("127.0.0.1", server.smtp, timeout=120) as smtp:
        smtp.sendmail("rick@example.com", ["morty@example.com"],
                      b"From: rick@example.com\r\nSubject: big\r\n\r\n" + body)
    report("raw: stored one 31 MiB message", server)
    stalled = []
    for _ in range(40):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", server.http))
        s.sendall(f"GET /api/v1/message/1/raw HTTP/1.1\r\nHost: 127.0.0.1:{server.http}\r\n\r\n".encode())
        stalled.append(s)
    time.sleep(3)
    started = time.time()
    status, _ = server.get("/api/v1/info", timeout=60)
    report("raw: 40 clients not reading /raw, after 3 s", server,
           other_client_status=status, other_client_seconds=f"{time.time() - started:.2f}")
    for s in stalled:
        s.close()
    server.stop()


def attack_ws():
    db = os.path.join(WORK, f"ws-{os.getpid()}.db")
    server = Server(db)
    ws = socket.socket()
    ws.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    ws.connect(("127.0.0.1", server.http))
    ws.sendall((f"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1:{server.http}\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += ws.recv(1)
    report("ws: one client not reading", server)
    started = time.time()
    deliver(server.smtp, BIG_TO, 300)
    time.sleep(2)
    status, body = server.get("/api/v1/info")
    dropped = json.loads(body).get("RuntimeStats", {}).get("WebSocketsDropped", "n/a")
    report("ws: after 300 messages with 20,000 To each", server, info_status=status,
           websockets_dropped=dropped, seconds=f"{time.time() - started:.1f}")
    ws.close()
    server.stop()


if __name__ == "__main__":
    os.makedirs(WORK, exist_ok=True)
    which = os.environ.get("ATTACKS", "list raw ws").split()
    for name in which:
        {"list": attack_list, "raw": attack_raw, "ws": attack_ws}[name]()
