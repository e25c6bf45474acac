#!/usr/bin/env python3
"""IMAP and POP3 against Dovecot (issue #13): the same messages served by
`sokkel mail serve` and by Dovecot 2.3, fetched by the same clients.

    python3 bench/fetch.py --sokkel target/release/sokkel
    python3 bench/fetch.py --sokkel BIN --skip mbsync --skip rss --skip idle   # POP3 only
    python3 bench/fetch.py --sokkel BIN --out figures.json --label after

Setup, in a temporary directory: a sokkel on a fresh store (SMTP, POP3 and, when the
binary has it, IMAP on free loopback ports; any login accepted) and a throwaway Dovecot
(`dovecot -F -c CONF`: maildir, a passwd-file user that is the current user, no TLS,
plaintext logins). --messages (10,000) messages of exactly
--size (4096) bytes go into both: into sokkel over SMTP (bench/store.py's pipelining
fill), into Dovecot as maildir files written directly. Each server is then read once,
untimed (POP3 UIDL, IMAP SELECT and FETCH of flags and sizes), so that Dovecot's index
and cache exist before anything is timed.

Sections (--skip NAME leaves one out; each timed one runs --runs times per server,
alternating servers, and reports best and median wall time and their ratios):

  pop3-pipelined  one POP3 session RETRs every message, --batch (100) commands per write
  poplib          Python's poplib RETRs every message, one at a time
  mbsync          `mbsync` pulls INBOX into an empty maildir (a fresh one each run;
                  FSync no, or its own fsyncs take most of the time)
  rss             a fresh sokkel on the full store: VmRSS at rest, with 1, then with
                  --clients (100) IMAP sessions logged in with INBOX selected and idle;
                  Dovecot's processes' summed RSS and PSS for reference
  idle            --clients IMAP sessions IDLE on INBOX; --pushes (300) messages are
                  delivered one at a time, --spacing (50 ms) apart; for each, the time
                  from the SMTP 250 to each session's `* n EXISTS`: p50/p99/max over all
                  sessions x messages. Dovecot for reference (--dovecot-pushes, 20): it
                  has no SMTP, so its messages arrive through dovecot-lda, timed from
                  the LDA's exit. Few, because each one makes every idling Dovecot
                  session rescan the 10,000-file maildir: 300 took minutes.

A binary without IMAP (before issue #13) runs the POP3 sections only. Prints a
markdown table; --out FILE also writes every figure as JSON. Loopback only; every
process started here runs in a session of its own and is stopped at the end, on
Ctrl-C and on SIGTERM, and the temporary directory goes with it. Needs
dovecot-imapd, dovecot-pop3d and isync (apt-get install -y dovecot-imapd
dovecot-pop3d isync); Python's standard library.
"""

import argparse
import asyncio
import grp
import json
import os
import platform
import poplib
import pwd
import re
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import store  # noqa: E402  (bench/store.py: process handling, the SMTP fill, percentiles)
from store import Fatal, percentile, proc_status, start, stop, stop_all  # noqa: E402

DOVECOT = "/usr/sbin/dovecot"
DOVECOT_LDA = "/usr/lib/dovecot/dovecot-lda"
MBSYNC = "/usr/bin/mbsync"
USER, PASSWORD = "bench", "bench-secret"
SECTIONS = ["pop3-pipelined", "poplib", "mbsync", "rss", "idle"]
IMAP_SECTIONS = {"mbsync", "rss", "idle"}

# Bars from the issue.
BAR_IDLE_P99_MS = 100
BAR_RSS_MB = 30


def log(text):
    print(f"fetch.py: {text}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(addr, proc, seconds=30):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            socket.create_connection(addr, timeout=1).close()
            return True
        except OSError:
            time.sleep(0.1)
    return False


# ---------------------------------------------------------------------------------------
# The messages: exactly `size` bytes each, CRLF line ends, no line starting with a dot.


def mail(n, size):
    """(envelope sender, recipient, message bytes) of message n."""
    who = store.PEOPLE[n % len(store.PEOPLE)]
    sender = f"{who}{n % 97}@{store.DOMAINS[n % len(store.DOMAINS)]}"
    rcpt = f"{store.PEOPLE[(n * 7 + 3) % len(store.PEOPLE)]}@bench.test"
    w, v = store.WORDS[(n * 31) % len(store.WORDS)], store.WORDS[(n * 17 + 5) % len(store.WORDS)]
    subject = store.SUBJECTS[(n // 3) % len(store.SUBJECTS)].format(n=n, w=w, v=v)
    head = (f"From: {who.title()} <{sender}>\r\n"
            f"To: <{rcpt}>\r\n"
            f"Subject: {subject}\r\n"
            f"Date: Mon, {1 + n % 28:02d} Jun 2026 {n % 24:02d}:{n % 60:02d}:00 +0000\r\n"
            f"Message-ID: <fetch-{n}@bench.test>\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 7bit\r\n\r\n")
    body = f"Hello {rcpt.split('@')[0].title()},\r\n"
    k = 0
    while len(head) + len(body) < size - 100:
        body += "\r\n" + store.PARAGRAPHS[(n * 7919 + k * 104729) % len(store.PARAGRAPHS)] + "\r\n"
        k += 1
    text = (head + body)[:size - 2 - 20]
    text = text.rstrip() + "\r\n\r\n-- \r\n"
    text += ("x" * (size - len(text) - 2)) + "\r\n"
    return sender, rcpt, text.encode()


# ---------------------------------------------------------------------------------------
# The servers


def has_imap(sokkel):
    out = subprocess.run([sokkel, "mail", "serve", "--help"], capture_output=True, text=True,
                         timeout=30).stdout
    return "--imap " in out or "--imap <" in out


class Sokkel:
    """`sokkel mail serve` on the store, SMTP, POP3 and (when built in) IMAP on free
    loopback ports, any login accepted."""

    def __init__(self, binary, db, workdir, imap, extra):
        args = [binary, "mail", "serve", "--db", db, "--smtp", "127.0.0.1:0",
                "--pop3", "127.0.0.1:0", "--no-http", "--hostname", "bench.test"]
        if imap:
            # Room for the sections' sessions above the default cap of 100, so that
            # one closing late never turns the next section's login away.
            args += ["--imap", "127.0.0.1:0", "--imap-max-sessions", "1000"]
        args += extra
        env = {k: v for k, v in os.environ.items() if not k.startswith("SOKKEL_")}
        self.err_path = os.path.join(workdir, "sokkel.err")
        with open(self.err_path, "ab") as err:
            self.proc = start(args, stdout=subprocess.PIPE, stderr=err, env=env, bufsize=0)
        self.addrs = {}
        wanted = {"smtp", "pop3"} | ({"imap"} if imap else set())
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not wanted <= set(self.addrs):
            ready, _, _ = select.select([self.proc.stdout], [], [], 1.0)
            if not ready:
                if self.proc.poll() is not None:
                    break
                continue
            line = self.proc.stdout.readline().decode(errors="replace").strip()
            if not line and self.proc.poll() is not None:
                break
            if m := re.match(r"listening on (smtp|pop3|imap) (\S+):(\d+)$", line):
                self.addrs[m.group(1)] = (m.group(2), int(m.group(3)))
        if not wanted <= set(self.addrs):
            stop(self.proc)
            with open(self.err_path, errors="replace") as f:
                tail = f.read()[-2000:]
            raise Fatal(f"sokkel did not announce {sorted(wanted - set(self.addrs))}; stderr: {tail}")
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()

    def rss(self):
        return {"rss_mb": proc_status(self.proc.pid, "VmRSS"),
                "hwm_mb": proc_status(self.proc.pid, "VmHWM")}

    def stop(self):
        stop(self.proc)


DOVECOT_CONF = """\
protocols = imap pop3
listen = 127.0.0.1
base_dir = {dir}/run
state_dir = {dir}/state
log_path = {dir}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = {internal}
default_login_user = {login}
default_internal_group = {group}
default_process_limit = 1000
default_client_limit = 4000
first_valid_uid = 0
mail_location = maildir:{dir}/mail/%u
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {dir}/passwd
}}
userdb {{
  driver = passwd-file
  args = {dir}/passwd
}}
protocol imap {{
  mail_max_userip_connections = 1000
}}
protocol pop3 {{
  mail_max_userip_connections = 1000
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service pop3-login {{
  chroot =
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {pop3}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
"""


RUNNING_DOVECOTS = []  # stopped on the way out, mail processes and all


class Dovecot:
    """A throwaway Dovecot: its config, maildir and runtime files under `dir`."""

    def __init__(self, workdir):
        self.dir = os.path.join(workdir, "dovecot")
        self.maildir = os.path.join(self.dir, "mail", USER)
        for sub in ("run", "state", "home", "mail"):
            os.makedirs(os.path.join(self.dir, sub))
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(self.maildir, sub))
        # Dovecot's login and internal processes refuse to run as root, and so does its
        # passwd-file user: as root, the users its Debian package creates take those
        # parts, and the maildir belongs to `dovecot`.
        if os.getuid() == 0:
            internal, login = "dovecot", "dovenull"
            self.owner = (pwd.getpwnam("dovecot").pw_uid, pwd.getpwnam("dovecot").pw_gid)
        else:
            internal = login = pwd.getpwuid(os.getuid()).pw_name
            self.owner = None
        uid, gid = self.owner or (os.getuid(), os.getgid())
        with open(os.path.join(self.dir, "passwd"), "w") as f:
            f.write(f"{USER}:{{PLAIN}}{PASSWORD}:{uid}:{gid}::{self.dir}/home::\n")
        if self.owner:
            os.chmod(workdir, 0o755)
            for sub in ("home", "mail", os.path.join("mail", USER), *(
                    os.path.join("mail", USER, d) for d in ("cur", "new", "tmp"))):
                os.chown(os.path.join(self.dir, sub), *self.owner)
        self.addrs = {"imap": ("127.0.0.1", free_port()), "pop3": ("127.0.0.1", free_port())}
        self.conf = os.path.join(self.dir, "dovecot.conf")
        with open(self.conf, "w") as f:
            f.write(DOVECOT_CONF.format(dir=self.dir, internal=internal, login=login,
                                        group=grp.getgrgid(os.getgid()).gr_name,
                                        imap=self.addrs["imap"][1], pop3=self.addrs["pop3"][1]))
        self.seq = 0

    def start(self):
        RUNNING_DOVECOTS.append(self)
        self.proc = start([DOVECOT, "-F", "-c", self.conf], stdout=subprocess.DEVNULL,
                          stderr=open(os.path.join(self.dir, "stderr"), "wb"))
        for addr in self.addrs.values():
            if not wait_port(addr, self.proc):
                self.stop()
                raise Fatal("dovecot did not start: " + self.log_tail())

    def log_tail(self):
        text = ""
        for name in ("stderr", "dovecot.log"):
            try:
                with open(os.path.join(self.dir, name), errors="replace") as f:
                    text += f.read()[-1500:]
            except OSError:
                pass
        return text

    def deliver(self, data):
        """Writes one message into cur/ as Dovecot's own delivery would: LF line ends,
        through tmp/, its sizes in the name so a listing needs no stat."""
        lf = data.replace(b"\r\n", b"\n")
        self.seq += 1
        name = f"{1_790_000_000 + self.seq}.M{self.seq}P{os.getpid()}.bench,S={len(lf)},W={len(data)}"
        tmp = os.path.join(self.maildir, "tmp", name)
        with open(tmp, "wb") as f:
            f.write(lf)
        if self.owner:
            os.chown(tmp, *self.owner)
        os.rename(tmp, os.path.join(self.maildir, "cur", name + ":2,"))

    def processes(self):
        """The pids of dovecot and every process it started (all in its session)."""
        pids = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as f:
                        fields = f.read().rsplit(")", 1)[1].split()
                    if int(fields[3]) == self.proc.pid and fields[0] != "Z":  # session id
                        pids.append(int(entry))
                except (OSError, IndexError, ValueError):
                    pass
        return pids

    def rss(self):
        """Summed VmRSS (shared pages counted in every process) and PSS (shared pages
        split between their users) of all of Dovecot's processes."""
        rss = pss = 0.0
        pids = self.processes()
        for pid in pids:
            rss += proc_status(pid, "VmRSS")
            try:
                with open(f"/proc/{pid}/smaps_rollup") as f:
                    for line in f:
                        if line.startswith("Pss:"):
                            pss += int(line.split()[1]) / 1024
            except OSError:
                pass
        return {"rss_mb": rss, "pss_mb": pss, "processes": len(pids)}

    async def lda(self, data):
        """Delivers one message with dovecot-lda, as a Dovecot MTA setup would; returns
        the time it exited."""
        proc = await asyncio.create_subprocess_exec(
            DOVECOT_LDA, "-c", self.conf, "-d", USER, stdin=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        _, err = await asyncio.wait_for(proc.communicate(data), 60)
        t = time.perf_counter()
        if proc.returncode != 0:
            raise Fatal(f"dovecot-lda exited {proc.returncode}: {err.decode(errors='replace')}")
        return t

    def stop(self):
        """Stops the master, then whatever mail processes outlive it."""
        stop(self.proc)
        deadline = time.monotonic() + 10
        while (pids := self.processes()) and time.monotonic() < deadline:
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.1)


# ---------------------------------------------------------------------------------------
# Loading and warming


def load_sokkel(server, messages, size):
    """The messages over SMTP through bench/store.py's pipelining fill."""
    store.message = lambda n, total: mail(n, size)
    return store.fill_store(server.addrs["smtp"], messages, connections=8, max_seconds=900)


def load_dovecot(dovecot, messages, size):
    t0 = time.monotonic()
    for n in range(messages):
        dovecot.deliver(mail(n, size)[2])
    return time.monotonic() - t0


def warm(name, addrs, imap, messages):
    """Reads both once, untimed: POP3 UIDL and LIST, IMAP SELECT and a FETCH of what
    mbsync asks for first. Returns (POP3 count, IMAP EXISTS)."""
    p = poplib.POP3(*addrs["pop3"], timeout=300)
    p.user(USER)
    p.pass_(PASSWORD)
    count = p.stat()[0]
    p.uidl()
    p.list()
    p.quit()
    exists = None
    if imap:
        async def go():
            c = await Imap.open(addrs["imap"])
            await c.command("FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE)")
            await c.logout()
            return c.exists
        exists = asyncio.run(go())
    if count != messages or (imap and exists != messages):
        raise Fatal(f"{name} holds {count} messages over POP3 and {exists} over IMAP, "
                    f"not {messages}")
    return count, exists


# ---------------------------------------------------------------------------------------
# POP3


def pop3_pipelined(addr, messages, batch):
    """One session RETRs messages 1..N, `batch` commands per write; returns the bytes
    of the messages received."""
    sock = socket.create_connection(addr, timeout=60)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = bytearray()

    def line():
        while b"\r\n" not in buf:
            chunk = sock.recv(65536)
            if not chunk:
                raise Fatal("the POP3 server closed the connection")
            buf.extend(chunk)
        end = buf.index(b"\r\n") + 2
        text = bytes(buf[:end])
        del buf[:end]
        if not text.startswith(b"+OK"):
            raise Fatal(f"POP3 answered {text!r}")
        return text

    line()
    sock.sendall(f"USER {USER}\r\n".encode())
    line()
    sock.sendall(f"PASS {PASSWORD}\r\n".encode())
    line()
    received = 0
    for first in range(1, messages + 1, batch):
        last = min(first + batch, messages + 1)
        sock.sendall(b"".join(b"RETR %d\r\n" % i for i in range(first, last)))
        pending = last - first
        begin = scan = 0  # where the current response starts; where to look for its end
        while pending:
            # A response is "+OK ...\r\n", the dot-stuffed message, ".\r\n": no line of
            # a message is a lone dot, so each "\r\n.\r\n" ends one response.
            end = buf.find(b"\r\n.\r\n", scan)
            if end < 0:
                del buf[:begin]
                scan, begin = max(0, len(buf) - 4), 0
                chunk = sock.recv(1 << 18)
                if not chunk:
                    raise Fatal("the POP3 server closed the connection mid-RETR")
                buf.extend(chunk)
                continue
            if not buf.startswith(b"+OK", begin):
                raise Fatal(f"RETR answered {bytes(buf[begin:begin + 80])!r}")
            received += end + 2 - (buf.index(b"\r\n", begin) + 2)
            begin = scan = end + 5
            pending -= 1
        del buf[:begin]
    sock.sendall(b"QUIT\r\n")
    line()
    sock.close()
    return received


def pop3_poplib(addr, messages):
    p = poplib.POP3(*addr, timeout=60)
    p.user(USER)
    p.pass_(PASSWORD)
    received = 0
    for i in range(1, messages + 1):
        _, lines, octets = p.retr(i)
        received += octets
    p.quit()
    return received


# ---------------------------------------------------------------------------------------
# mbsync

# FSync no: with it, mbsync fsyncs every message it writes, and on this disk 10,000
# fsyncs take two minutes whichever server answers.
MBSYNC_RC = """\
FSync no

IMAPAccount far
Host {host}
Port {port}
User {user}
Pass {password}
SSLType None
AuthMechs LOGIN

IMAPStore far
Account far

MaildirStore near
Path {near}/
Inbox {near}/INBOX

Channel pull
Far :far:
Near :near:
Patterns INBOX
Sync Pull
Create Near
Expunge None
SyncState *
"""


def mbsync_pull(addr, workdir, run_name):
    """`mbsync` pulls INBOX into a new empty maildir; returns the files it wrote."""
    base = os.path.join(workdir, "mbsync", run_name)
    near = os.path.join(base, "near")
    os.makedirs(near)
    rc = os.path.join(base, "rc")
    with open(rc, "w") as f:
        f.write(MBSYNC_RC.format(host=addr[0], port=addr[1], user=USER, password=PASSWORD,
                                 near=near))
    proc = start([MBSYNC, "-c", rc, "-q", "pull"], stdout=subprocess.PIPE,
                 stderr=subprocess.STDOUT, env={**os.environ, "HOME": base})
    try:
        out, _ = proc.communicate(timeout=900)
    except subprocess.TimeoutExpired:
        stop(proc)
        raise Fatal("mbsync took longer than 900 s")
    stop(proc)
    if proc.returncode != 0:
        raise Fatal(f"mbsync exited {proc.returncode}: {out.decode(errors='replace')[-1000:]}")
    inbox = os.path.join(near, "INBOX")
    files = sum(len(os.listdir(os.path.join(inbox, d))) for d in ("cur", "new"))
    shutil.rmtree(base, ignore_errors=True)
    return files


# ---------------------------------------------------------------------------------------
# IMAP sessions (asyncio, raw lines)


class Imap:
    """One IMAP session: LOGIN, SELECT INBOX, then commands by tag."""

    def __init__(self, reader, writer):
        self.r, self.w = reader, writer
        self.tag = 0
        self.exists = None

    @classmethod
    async def open(cls, addr):
        r, w = await asyncio.open_connection(*addr, limit=1 << 20)
        c = cls(r, w)
        greeting = await r.readline()
        if not greeting.startswith(b"* OK"):
            raise Fatal(f"IMAP greeting {greeting!r}")
        await c.command(f'LOGIN "{USER}" "{PASSWORD}"')
        await c.command("SELECT INBOX")
        return c

    async def command(self, text):
        self.tag += 1
        tag = b"a%d" % self.tag
        self.w.write(tag + b" " + text.encode() + b"\r\n")
        await self.w.drain()
        while True:
            line = await self.r.readline()
            if not line:
                raise Fatal(f"the IMAP server closed the connection after {text.split()[0]}")
            if m := re.match(rb"\* (\d+) EXISTS", line):
                self.exists = int(m.group(1))
            elif m := re.search(rb"\{(\d+)\}\r\n$", line):
                await self.r.readexactly(int(m.group(1)))
            elif line.startswith(tag + b" "):
                if not line.startswith(tag + b" OK"):
                    raise Fatal(f"{text.split()[0]} answered {line!r}")
                return

    async def idle(self):
        self.w.write(b"i IDLE\r\n")
        await self.w.drain()
        line = await self.r.readline()
        if not line.startswith(b"+"):
            raise Fatal(f"IDLE answered {line!r}")

    async def logout(self):
        self.w.write(b"z LOGOUT\r\n")
        await self.w.drain()
        while await self.r.readline():
            pass
        self.w.close()

    def close(self):
        self.w.close()


async def open_sessions(addr, count):
    """`count` sessions, opened ten at a time."""
    sessions = []
    for first in range(0, count, 10):
        sessions += await asyncio.gather(*(Imap.open(addr) for _ in range(min(10, count - first))))
    return sessions


async def rss_section(addr, measure, clients):
    """measure() at rest, with one session and with `clients` sessions selected and
    idle (no command in flight)."""
    await asyncio.sleep(2)
    figures = {"rest": measure()}
    sessions = await open_sessions(addr, 1)
    await asyncio.sleep(1)
    figures["one"] = measure()
    sessions += await open_sessions(addr, clients - 1)
    await asyncio.sleep(3)
    figures["all"] = measure()
    for s in sessions:
        s.close()
    await asyncio.sleep(1)  # the server sees them go before the next section logs in
    return figures


async def idle_section(addr, deliver, clients, pushes, spacing, measure):
    """`clients` sessions IDLE; `deliver(i)` (a coroutine returning the time its
    message counts as delivered) runs `pushes` times, `spacing` s apart. Returns the
    latencies in ms from delivery to each session's EXISTS."""
    sessions = await open_sessions(addr, clients)
    for s in sessions:
        await s.idle()
    base = sessions[0].exists
    if any(s.exists != base for s in sessions):
        raise Fatal("the sessions selected INBOX with different message counts")
    target = base + pushes
    seen = [[] for _ in sessions]  # per session: (EXISTS n, perf_counter) as they arrive
    done = asyncio.Event()
    finished = [0]

    async def watch(k, s):
        while True:
            line = await s.r.readline()
            if not line:
                raise Fatal("the IMAP server closed an idling session")
            if m := re.match(rb"\* (\d+) EXISTS", line):
                n = int(m.group(1))
                seen[k].append((n, time.perf_counter()))
                if n >= target:
                    finished[0] += 1
                    if finished[0] == len(sessions):
                        done.set()
                    return

    watchers = [asyncio.create_task(watch(k, s)) for k, s in enumerate(sessions)]
    await asyncio.sleep(1)
    rss = measure()
    delivered = []
    t_start = time.perf_counter()
    for i in range(pushes):
        pause = t_start + i * spacing - time.perf_counter()
        if pause > 0:
            await asyncio.sleep(pause)
        delivered.append(await deliver(i))
    try:
        await asyncio.wait_for(done.wait(), 15)
    except asyncio.TimeoutError:
        pass
    for w in watchers:
        w.cancel()
    for s in sessions:
        s.close()
    latencies, early, missing = [], 0, 0
    for events in seen:
        i = 0
        for n, t in events:
            while i < pushes and base + i + 1 <= n:
                ms = (t - delivered[i]) * 1000
                early += ms < 0
                latencies.append(max(ms, 0.0))
                i += 1
        missing += pushes - i
    latencies.sort()
    return {"pushes": pushes, "samples": len(latencies), "missing": missing, "early": early,
            "p50_ms": percentile(latencies, 50), "p99_ms": percentile(latencies, 99),
            "max_ms": latencies[-1] if latencies else float("nan"), "rss": rss}


class SmtpPusher:
    """One SMTP session delivering the IDLE section's messages one at a time."""

    def __init__(self, addr, size):
        self.addr, self.size = addr, size

    async def open(self):
        self.r, self.w = await asyncio.open_connection(*self.addr)
        await self.reply()
        self.w.write(b"EHLO push.bench.test\r\n")
        await self.reply()

    async def reply(self):
        while True:
            line = await self.r.readline()
            if len(line) < 4:
                raise Fatal(f"SMTP answered {line!r}")
            if line[3:4] != b"-":
                return int(line[:3])

    async def deliver(self, i):
        sender, rcpt, data = mail(1_000_000 + i, self.size)
        self.w.write(store.envelope(sender, rcpt))
        codes = [await self.reply() for _ in range(3)]
        if codes != [250, 250, 354]:
            raise Fatal(f"the push's envelope got {codes}")
        self.w.write(data + b".\r\n")
        code = await self.reply()
        t = time.perf_counter()
        if code != 250:
            raise Fatal(f"the push's message got {code}")
        return t

    def close(self):
        self.w.close()


# ---------------------------------------------------------------------------------------
# Running the sections


def timed_runs(runs, servers, fn):
    """fn(name) for each server in turn, `runs` times; returns per server the wall
    times (s) and what fn returned last."""
    out = {name: {"seconds": []} for name in servers}
    for run in range(runs):
        for name in servers:
            t0 = time.perf_counter()
            result = fn(name, run)
            out[name]["seconds"].append(time.perf_counter() - t0)
            out[name]["result"] = result
            log(f"  {name} run {run + 1}: {out[name]['seconds'][-1]:.3f} s ({result})")
    for name in servers:
        s = out[name]["seconds"]
        out[name]["best"], out[name]["median"] = min(s), statistics.median(s)
    if len(servers) == 2:
        out["ratio_best"] = out["sokkel"]["best"] / out["dovecot"]["best"]
        out["ratio_median"] = out["sokkel"]["median"] / out["dovecot"]["median"]
    return out


def machine():
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    dovecot = subprocess.run([DOVECOT, "--version"], capture_output=True, text=True).stdout.strip()
    mbsync = subprocess.run([MBSYNC, "--version"], capture_output=True, text=True).stdout.strip()
    return {"nproc": os.cpu_count(), "cpu": model, "kernel": platform.release(),
            "dovecot": dovecot, "mbsync": mbsync, "python": platform.python_version(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def run(args, work, figures):
    imap = has_imap(args.sokkel)
    if not imap:
        log("this sokkel has no IMAP (--imap): only the POP3 sections run")
    sections = [s for s in SECTIONS if s not in args.skip and (imap or s not in IMAP_SECTIONS)]
    figures["sections"] = sections

    log(f"starting sokkel and dovecot, loading {args.messages:,} messages of {args.size} bytes")
    sok = Sokkel(args.sokkel, os.path.join(work, "mail.db"), work, imap, args.sokkel_arg)
    dov = Dovecot(work)
    dov.start()
    figures["load"] = {"sokkel_s": load_sokkel(sok, args.messages, args.size),
                       "dovecot_s": load_dovecot(dov, args.messages, args.size)}
    for name, addrs in (("sokkel", sok.addrs), ("dovecot", dov.addrs)):
        t0 = time.monotonic()
        warm(name, addrs, imap, args.messages)
        figures["load"][f"{name}_warm_s"] = time.monotonic() - t0
    addrs = {"sokkel": sok.addrs, "dovecot": dov.addrs}
    servers = ["sokkel", "dovecot"]

    if "pop3-pipelined" in sections:
        log(f"pop3-pipelined: RETR 1..{args.messages} in batches of {args.batch}")
        figures["pop3-pipelined"] = timed_runs(args.runs, servers, lambda name, _: pop3_pipelined(
            addrs[name]["pop3"], args.messages, args.batch))
    if "poplib" in sections:
        log("poplib: RETR one at a time")
        figures["poplib"] = timed_runs(args.runs, servers, lambda name, _: pop3_poplib(
            addrs[name]["pop3"], args.messages))
    if "mbsync" in sections:
        log("mbsync: full pull of INBOX into an empty maildir")
        figures["mbsync"] = timed_runs(args.runs, servers, lambda name, k: mbsync_pull(
            addrs[name]["imap"], work, f"{name}-{k}"))
        for name in servers:
            if figures["mbsync"][name]["result"] != args.messages:
                raise Fatal(f"mbsync pulled {figures['mbsync'][name]['result']} messages "
                            f"from {name}, not {args.messages}")
    if "rss" in sections or "idle" in sections:
        # A fresh process on the full store: its memory at rest is the baseline.
        sok.stop()
        sok = Sokkel(args.sokkel, os.path.join(work, "mail.db"), work, imap, args.sokkel_arg)
        addrs["sokkel"] = sok.addrs
    if "rss" in sections:
        log(f"rss: {args.clients} IMAP sessions, INBOX selected, idle")
        figures["rss"] = {
            "sokkel": asyncio.run(rss_section(sok.addrs["imap"], sok.rss, args.clients)),
            "dovecot": asyncio.run(rss_section(dov.addrs["imap"], dov.rss, args.clients))}
    if "idle" in sections:
        log(f"idle: {args.clients} sessions IDLE, {args.pushes} messages {args.spacing * 1000:.0f} ms apart")

        async def sokkel_idle():
            pusher = SmtpPusher(sok.addrs["smtp"], args.size)
            await pusher.open()
            try:
                return await idle_section(sok.addrs["imap"], pusher.deliver, args.clients,
                                          args.pushes, args.spacing, sok.rss)
            finally:
                pusher.close()

        async def dovecot_deliver(i):
            return await dov.lda(mail(1_000_000 + i, args.size)[2])

        figures["idle"] = {"sokkel": asyncio.run(sokkel_idle())}
        if args.dovecot_pushes:
            figures["idle"]["dovecot"] = asyncio.run(idle_section(
                dov.addrs["imap"], dovecot_deliver, args.clients, args.dovecot_pushes,
                args.spacing, dov.rss))
    sok.stop()
    dov.stop()


def report(args, f):
    m = f["machine"]
    print()
    print(f"### {args.label}: {args.messages:,} messages of {args.size} B, {m['date']}")
    print()
    print(f"`python3 bench/fetch.py {' '.join(sys.argv[1:])}`; {m['nproc']} × {m['cpu']}, "
          f"Linux {m['kernel']}, {m['dovecot'].split()[0]} (Dovecot), {m['mbsync']}; "
          f"load average {f['load_start']} at the start, {f.get('load_end', '?')} at the end. "
          f"sokkel: `{f['sokkel_version']}`.")
    print()
    if "load" in f:
        ld = f["load"]
        print(f"Loading: sokkel over SMTP {ld['sokkel_s']:.1f} s, Dovecot maildir files "
              f"{ld['dovecot_s']:.1f} s; the untimed first read {ld.get('sokkel_warm_s', 0):.1f} s "
              f"(sokkel), {ld.get('dovecot_warm_s', 0):.1f} s (Dovecot, which indexes then).")
        print()
    timed = [s for s in ("pop3-pipelined", "poplib", "mbsync") if s in f]
    if timed:
        print(f"| {args.runs} runs each, wall time | sokkel best | median | Dovecot best | median "
              "| ratio best | ratio median |")
        print("|---|---|---|---|---|---|---|")
        what = {"pop3-pipelined": f"POP3, pipelined RETR in batches of {args.batch}",
                "poplib": "POP3, poplib one RETR at a time",
                "mbsync": "IMAP, mbsync full pull of INBOX"}
        for s in timed:
            x = f[s]
            print(f"| {what[s]} | {x['sokkel']['best']:.2f} s | {x['sokkel']['median']:.2f} s "
                  f"| {x['dovecot']['best']:.2f} s | {x['dovecot']['median']:.2f} s "
                  f"| **{x['ratio_best']:.2f}×** | {x['ratio_median']:.2f}× |")
        print()
    if "rss" in f:
        s, d = f["rss"]["sokkel"], f["rss"]["dovecot"]
        grew = s["all"]["rss_mb"] - s["rest"]["rss_mb"]
        print(f"| memory | at rest | 1 session | {args.clients} sessions | growth |")
        print("|---|---|---|---|---|")
        print(f"| sokkel VmRSS | {s['rest']['rss_mb']:.1f} MB | {s['one']['rss_mb']:.1f} MB "
              f"| {s['all']['rss_mb']:.1f} MB | **{grew:.1f} MB** (bar < {BAR_RSS_MB} MB: "
              f"{'met' if grew < BAR_RSS_MB else 'MISSED'}) |")
        for key, label in (("rss_mb", "summed VmRSS"), ("pss_mb", "summed PSS")):
            print(f"| Dovecot {label} ({d['rest']['processes']} → {d['all']['processes']} "
                  f"processes) | {d['rest'][key]:.1f} MB | {d['one'][key]:.1f} MB "
                  f"| {d['all'][key]:.1f} MB | {d['all'][key] - d['rest'][key]:.1f} MB |")
        print()
    if "idle" in f:
        print(f"| IDLE push, {args.clients} sessions idling | messages | p50 | p99 | max "
              "| samples (missing) | server memory while idling |")
        print("|---|---|---|---|---|---|---|")
        for name, label in (("sokkel", "sokkel: SMTP 250 → `* n EXISTS`"),
                            ("dovecot", "Dovecot: dovecot-lda exits → `* n EXISTS`")):
            if name in f["idle"]:
                x = f["idle"][name]
                verdict = ""
                if name == "sokkel":
                    verdict = (f" (bar < {BAR_IDLE_P99_MS} ms: "
                               f"{'met' if x['p99_ms'] < BAR_IDLE_P99_MS else 'MISSED'})")
                print(f"| {label} | {x['pushes']} | {x['p50_ms']:.1f} ms "
                      f"| **{x['p99_ms']:.1f} ms**{verdict} "
                      f"| {x['max_ms']:.1f} ms | {x['samples']} ({x['missing']}) "
                      f"| {x['rss']['rss_mb']:.1f} MB |")
        print()
    for section, error in f["errors"]:
        print(f"- {section} FAILED: {error}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sokkel", default="target/release/sokkel", help="the binary under test")
    parser.add_argument("--sokkel-arg", action="append", default=[], metavar="ARG",
                        help="one more argument for `sokkel mail serve` (repeatable)")
    parser.add_argument("--messages", type=int, default=10_000, help="messages in both servers")
    parser.add_argument("--size", type=int, default=4096, help="bytes per message (>= 1024)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per server and section")
    parser.add_argument("--batch", type=int, default=100, help="RETR commands per write")
    parser.add_argument("--clients", type=int, default=100, help="IMAP sessions for rss and idle")
    parser.add_argument("--pushes", type=int, default=300, help="messages delivered while idling")
    parser.add_argument("--spacing", type=float, default=0.05, help="seconds between them")
    parser.add_argument("--dovecot-pushes", type=int, default=20,
                        help="messages delivered while idling on Dovecot, the reference "
                             "(0: none); each starts a dovecot-lda process")
    parser.add_argument("--skip", action="append", default=[], choices=SECTIONS,
                        help="leave a section out (repeatable)")
    parser.add_argument("--label", default="run", help="heading of the printed table")
    parser.add_argument("--out", metavar="FILE", help="write every figure as JSON to FILE")
    args = parser.parse_args()

    if not (os.path.isfile(args.sokkel) and os.access(args.sokkel, os.X_OK)):
        parser.error(f"no sokkel binary at {args.sokkel}: build one with "
                     "`cargo build --release -p sokkel` or pass --sokkel PATH")
    if args.size < 1024:
        parser.error("--size must be at least 1024")
    for tool, package in ((DOVECOT, "dovecot-imapd dovecot-pop3d"), (MBSYNC, "isync")):
        if not os.access(tool, os.X_OK):
            parser.error(f"{tool} missing: apt-get install -y {package}")
    if not os.path.exists("/usr/lib/dovecot/pop3"):
        parser.error("Dovecot's POP3 is missing: apt-get install -y dovecot-pop3d")

    def interrupt(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    work = tempfile.mkdtemp(prefix="sokkel-fetch-bench-")
    version = subprocess.run([args.sokkel, "--version"], capture_output=True, text=True)
    figures = {"machine": machine(), "sokkel_version": version.stdout.strip(),
               "load_start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
               "args": vars(args), "errors": []}
    status = 0
    try:
        run(args, work, figures)
    except Fatal as e:
        log(str(e))
        figures["errors"].append(("run", str(e)))
        status = 1
    except KeyboardInterrupt:
        log("interrupted")
        status = 130
    finally:
        # A second Ctrl-C or SIGTERM must not cut the cleanup short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for dovecot in RUNNING_DOVECOTS:
            dovecot.stop()
        stop_all()
        shutil.rmtree(work, ignore_errors=True)
    figures["load_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    report(args, figures)
    if args.out:
        with open(args.out, "w") as out:
            json.dump(figures, out, indent=1)
    return status


if __name__ == "__main__":
    sys.exit(main())
