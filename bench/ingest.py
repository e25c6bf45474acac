#!/usr/bin/env python3
"""SMTP ingest against Postfix's smtp-sink, the measurement of issue #16: sokkel's
catcher (storing every message durably) and smtp-sink (storing nothing), alternated
in the same run, round after round.

    python3 bench/ingest.py --sokkel target/release/sokkel            # 5 rounds
    python3 bench/ingest.py --sokkel new=target/release/sokkel --sokkel old=/tmp/sokkel-old

Each round measures both servers in three ways, each on a fresh server process
(and, for sokkel, a fresh store in a temporary directory):

- new: `smtp-source -s 20 -m 20000 -l 4096`, a new connection per message;
- reused: the same with `-d` (connections reused);
- pipe: one connection sending message after message, each transaction's MAIL,
  RCPT and DATA in one write and 1 KiB bodies (bench/pipeline_send.c, compiled
  here with cc), which also times the wait from the end of DATA to the 250.

Several sokkel builds (`--sokkel NAME=PATH`, repeated) are measured in the same
rounds, each against the same smtp-sink figure. The order of the servers rotates
from round to round. For sokkel it also takes:
CPU per message by thread (/proc/PID/task/*/stat around the load, threads of one
name summed), peak RSS, the time from the end of the load until the web API lists
every message (materialised) and until a search for a word only the last message
holds finds it (indexed), and the store's close line (stderr at SIGTERM: the log's
batches, ack wait, materialisation and index lag; every `key=number` field of it is
summarised). Checks that sokkel stored every message.

Then prints markdown for docs/benchmarks.md: the rounds, and the median ratio to
smtp-sink with min and max. Loopback only; every process started here runs in a
session of its own and is stopped when its measurement ends or the script exits.
Needs python3, cc, /usr/sbin/smtp-source and smtp-sink (apt-get install -y postfix).
"""

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import smtplib
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse

SOURCE = "/usr/sbin/smtp-source"
SINK = "/usr/sbin/smtp-sink"
HERE = os.path.dirname(os.path.abspath(__file__))
HZ = os.sysconf("SC_CLK_TCK")
PHASES = ("new", "reused", "pipe")
# How long the store may take to catch up after a load before the run is called stuck.
CATCH_UP_LIMIT = 600


class Fatal(Exception):
    pass


def log(text):
    print(text, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port, proc, what):
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise Fatal(f"{what} exited with {proc.returncode} before listening")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise Fatal(f"{what}: nothing listens on port {port}")


def stop(proc, sig=signal.SIGTERM, within=30):
    """Signals the process's session and waits for it; kills it if it lingers."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(within)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def thread_ticks(pid):
    """utime+stime per thread name (threads of one name summed), in clock ticks."""
    ticks = {}
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/stat") as f:
                stat = f.read()
        except FileNotFoundError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        ticks[name] = ticks.get(name, 0) + int(fields[11]) + int(fields[12])
    return ticks


def process_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])


def peak_rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


class Server:
    """One server process on free loopback ports."""

    def __init__(self, name, args, work):
        self.name = name
        binary = args.sokkel.get(name)
        self.smtp = free_port()
        self.http = None
        self.store = None
        env = {k: v for k, v in os.environ.items() if not k.startswith("SOKKEL_")}
        env.pop("RUST_LOG", None)
        if binary:
            self.http = free_port()
            self.store = tempfile.mkdtemp(dir=work, prefix="store.")
            command = [binary, "mail", "serve", "--smtp", f"127.0.0.1:{self.smtp}",
                       "--http", f"127.0.0.1:{self.http}", "--no-pop3", "--no-imap",
                       "--db", os.path.join(self.store, "mail.db")]
        else:
            # 256: listen backlog. -u: smtp-sink refuses to run as root otherwise.
            command = [SINK, "-u", "nobody", f"127.0.0.1:{self.smtp}", "256"]
        self.stderr_path = os.path.join(work, f"{name}.err")
        self.stderr = open(self.stderr_path, "w")
        self.proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=self.stderr, env=env, start_new_session=True)
        wait_listening(self.smtp, self.proc, name)
        if self.http:
            wait_listening(self.http, self.proc, name)

    def disk(self):
        """Bytes on disk (allocated) of mail.db, its WAL and its log directory."""
        def size(path):
            try:
                st = os.stat(path)
            except FileNotFoundError:
                return 0
            return max(st.st_blocks * 512, st.st_size)
        db = os.path.join(self.store, "mail.db")
        log_dir = db + "-log"
        logged = sum(size(os.path.join(log_dir, f)) for f in os.listdir(log_dir)) \
            if os.path.isdir(log_dir) else 0
        return {"db": size(db), "wal": size(db + "-wal"), "log": logged}

    def close(self):
        """SIGTERM and wait; returns what it wrote to stderr, and the store's size
        on disk after it closed."""
        stop(self.proc)
        self.stderr.close()
        with open(self.stderr_path) as f:
            text = f.read()
        disk = None
        if self.store:
            disk = self.disk()
            shutil.rmtree(self.store, ignore_errors=True)
        return text, disk


def api_get(port, path, timeout=CATCH_UP_LIMIT):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise Fatal(f"GET {path}: {response.status} {body[:200]!r}")
        return json.loads(body)
    finally:
        conn.close()


def run_load(phase, server, args):
    """Runs one load against `server`; returns (seconds, extra figures)."""
    if phase == "pipe":
        command = [args.pipeline_send, "127.0.0.1", str(server.smtp), str(args.pipe_messages),
                   str(args.pipe_size)]
    else:
        command = [SOURCE, "-s", str(args.sessions), "-m", str(args.messages), "-l",
                   str(args.size), "-f", "from@bench.test", "-t", "to@bench.test"]
        if phase == "reused":
            command.append("-d")
        command.append(f"127.0.0.1:{server.smtp}")
    start = time.monotonic()
    done = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=1800)
    seconds = time.monotonic() - start
    if done.returncode != 0:
        raise Fatal(f"{' '.join(command)} failed ({done.returncode}): {done.stdout}{done.stderr}")
    extra = {}
    if phase == "pipe":
        extra = {k: float(v) for k, v in re.findall(r"(\w+)=([\d.]+)", done.stdout)}
        seconds = extra["secs"]
    return seconds, extra


def catch_up(server, expected, marker_word):
    """After a load on sokkel: delivers one marker message holding `marker_word`,
    then times (from just before the marker) until the API lists every message and
    until a search for the word finds the marker. Returns (listed_s, indexed_s)."""
    start = time.monotonic()
    with smtplib.SMTP("127.0.0.1", server.smtp, timeout=60) as smtp:
        smtp.sendmail("marker@bench.test", ["to@bench.test"],
                      f"Subject: marker\r\n\r\nthe last one: {marker_word}\r\n")
    deadline = start + CATCH_UP_LIMIT
    listed = indexed = None
    while listed is None or indexed is None:
        if time.monotonic() > deadline:
            raise Fatal(f"sokkel did not catch up within {CATCH_UP_LIMIT} s")
        if listed is None:
            total = api_get(server.http, "/api/v1/messages?limit=1")["total"]
            if total >= expected + 1:
                listed = time.monotonic() - start
                if total != expected + 1:
                    raise Fatal(f"sokkel lists {total} messages, sent {expected + 1}")
        if indexed is None:
            query = urllib.parse.quote(marker_word)
            found = api_get(server.http, f"/api/v1/search?query={query}")["messages"]
            if found:
                indexed = time.monotonic() - start
        if listed is None or indexed is None:
            time.sleep(0.01)
    return listed, indexed


def stored_bytes(server):
    """The sum of the stored messages' sizes, from the web API's pages."""
    total, before = 0, None
    while True:
        page = api_get(server.http, "/api/v1/messages?limit=1000"
                       + (f"&before={before}" if before else ""))["messages"]
        if not page:
            return total
        total += sum(m["Size"] for m in page)
        before = page[-1]["ID"]


def close_fields(stderr):
    """The `key=number` fields of the store's close line: the last stderr line that
    has the log's ack wait in it (the line's wording is the store's)."""
    lines = [line for line in stderr.splitlines() if "ack_p50" in line or "ack p50" in line]
    if not lines:
        return None, {}
    line = re.sub(r"\x1b\[[0-9;]*m", "", lines[-1])
    return line, {k: float(v) for k, v in re.findall(r"(\w+)=([\d.]+)\b", line)}


def measure(name, phase, args, work, round_no):
    server = Server(name, args, work)
    ours = name in args.sokkel
    try:
        before = thread_ticks(server.proc.pid) if ours else {}
        before_total = process_ticks(server.proc.pid)
        seconds, extra = run_load(phase, server, args)
        after = thread_ticks(server.proc.pid) if ours else {}
        after_total = process_ticks(server.proc.pid)
        count = args.pipe_messages if phase == "pipe" else args.messages
        result = {"rate": count / seconds, "cpu_us": (after_total - before_total) / HZ / count * 1e6}
        result.update(extra)
        if ours:
            result["threads_us"] = {
                t: (after.get(t, 0) - before.get(t, 0)) / HZ / count * 1e6
                for t in after if after.get(t, 0) > before.get(t, 0)}
            listed, indexed = catch_up(server, count, f"zqmark{round_no}{phase}x")
            result["listed_s"], result["indexed_s"] = listed, indexed
            result["rss_mb"] = peak_rss_mb(server.proc.pid)
            result["raw_bytes"] = stored_bytes(server)
            result["disk_serving"] = server.disk()
    finally:
        stderr, disk = server.close()
    if ours:
        result["close_line"], result["close"] = close_fields(stderr)
        result["disk_closed"] = disk
    return result


def med(values):
    return statistics.median(values) if values else float("nan")


def spread(values, fmt):
    """`median (min–max)` of values."""
    if not values:
        return "–"
    return f"{fmt(med(values))} ({fmt(min(values))}–{fmt(max(values))})"


def report(args, rounds, load_before, load_after, started):
    commit = subprocess.run(["git", "-C", HERE, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    builds = ", ".join(f"{name} = {path}" for name, path in args.sokkel.items())
    print()
    print(f"{started} UTC, {os.cpu_count()} cores, {os.uname().release}, work tree at "
          f"{commit}; {builds}; load average before {load_before}, after {load_after}")
    print(f"new/reused: smtp-source -s {args.sessions} -m {args.messages} -l {args.size} "
          f"[-d]; pipe: one connection, {args.pipe_messages} messages of {args.pipe_size} B "
          f"bodies, MAIL+RCPT+DATA in one write")
    print()
    names = ["smtp-sink", *args.sokkel]
    print("| round | " + " | ".join(f"{n} new / reused / pipe (msg/s)" for n in names) + " | "
          + " | ".join(f"{n} / smtp-sink" for n in args.sokkel) + " |")
    print("|---:|" + "---:|" * len(names) + "---|" * len(args.sokkel))
    ratios = {(n, p): [] for n in args.sokkel for p in PHASES}
    for number, r in enumerate(rounds, 1):
        for n in args.sokkel:
            for p in PHASES:
                ratios[n, p].append(r[n][p]["rate"] / r["smtp-sink"][p]["rate"])
        rates = [" / ".join(f"{r[n][p]['rate']:,.0f}" for p in PHASES) for n in names]
        shown = [" / ".join(f"{ratios[n, p][-1]:.2f}×" for p in PHASES) for n in args.sokkel]
        print(f"| {number} | " + " | ".join(rates + shown) + " |")
    print()
    x = lambda v: f"{v:.2f}×"  # noqa: E731
    us = lambda v: f"{v:.0f} µs"  # noqa: E731
    secs = lambda v: f"{v:.2f} s"  # noqa: E731
    for n in args.sokkel:
        print(f"- {n} / smtp-sink over {len(rounds)} rounds, median (min–max): "
              + "; ".join(f"{p} {spread(ratios[n, p], x)}" for p in PHASES))
    for n in args.sokkel:
        print()
        print(f"{n}, each figure the median over rounds (min–max):")
        print()
        print("| | new | reused | pipe |")
        print("|---|---|---|---|")

        def row(label, get, fmt):
            cells = []
            for p in PHASES:
                values = [v for v in (get(r[n][p]) for r in rounds) if v is not None]
                cells.append(spread(values, fmt))
            print(f"| {label} | " + " | ".join(cells) + " |")
        row("server CPU per message", lambda m: m["cpu_us"], us)
        threads = sorted({t for r in rounds for p in PHASES for t in r[n][p]["threads_us"]})
        for t in threads:
            row(f"thread `{t}` CPU per message", lambda m, t=t: m["threads_us"].get(t, 0.0), us)
        row("end of the load until listed", lambda m: m["listed_s"], secs)
        row("... until a search finds the last message", lambda m: m["indexed_s"], secs)
        row("peak RSS (MB)", lambda m: m["rss_mb"], lambda v: f"{v:.1f}")
        mb = lambda v: f"{v / 1e6:.1f} MB"  # noqa: E731
        row("messages' raw bytes", lambda m: m["raw_bytes"], mb)
        for when in ("serving", "closed"):
            for part in ("db", "wal", "log"):
                row(f"on disk {when}: {part}", lambda m, w=when, p=part: m[f"disk_{w}"][p], mb)
            row(f"on disk {when}: all / raw bytes",
                lambda m, w=when: sum(m[f"disk_{w}"].values()) / m["raw_bytes"],
                lambda v: f"{v:.2f}×")
        keys = sorted({k for r in rounds for p in PHASES for k in r[n][p]["close"]})
        for k in keys:
            row(f"close line `{k}`", lambda m, k=k: m["close"].get(k),
                lambda v: f"{v:,.0f}" if v >= 10 else f"{v:.2f}")
    print()
    sink_cpu = {p: [r["smtp-sink"][p]["cpu_us"] for r in rounds] for p in PHASES}
    print("smtp-sink CPU per message: " + ", ".join(f"{p} {spread(sink_cpu[p], us)}" for p in PHASES))
    for n in names:
        waits = lambda key: [r[n]["pipe"][key] for r in rounds]  # noqa: E731
        print(f"{n}, pipe, end of DATA to 250 at the client: p50 "
              f"{spread(waits('wait_p50_us'), us)}, p99 {spread(waits('wait_p99_us'), us)}")
    for n in args.sokkel:
        lines = [r[n][p]["close_line"] for r in rounds for p in PHASES if r[n][p]["close_line"]]
        if lines:
            print()
            print(f"{n}: the store's close line, last round's pipe phase:")
            print()
            print(f"    {lines[-1]}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sokkel", required=True, action="append",
                        help="a sokkel binary (a release build), as PATH or NAME=PATH; repeat "
                             "to measure several builds in the same rounds")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--pipe-messages", type=int, default=20000)
    parser.add_argument("--pipe-size", type=int, default=1024)
    parser.add_argument("--dir", default=None, help="where the stores go (default: $TMPDIR)")
    parser.add_argument("--json", help="also write every figure to this file")
    args = parser.parse_args()
    for program in (SOURCE, SINK):
        if not os.access(program, os.X_OK):
            raise Fatal(f"{program} missing: apt-get install -y postfix")
    builds = {}
    for given in args.sokkel:
        name, _, path = given.rpartition("=")
        builds[name or "sokkel"] = os.path.abspath(path)
    if "smtp-sink" in builds or len(builds) != len(args.sokkel):
        raise Fatal("give each --sokkel a name of its own (NAME=PATH), not smtp-sink")
    args.sokkel = builds
    work = tempfile.mkdtemp(dir=args.dir, prefix="ingest.")
    try:
        args.pipeline_send = os.path.join(work, "pipeline_send")
        subprocess.run(["cc", "-O2", "-Wall", "-o", args.pipeline_send,
                        os.path.join(HERE, "pipeline_send.c")], check=True)
        started = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
        load_before = open("/proc/loadavg").read().split()[0:3]
        rounds = []
        for n in range(1, args.rounds + 1):
            servers = ["smtp-sink", *args.sokkel]
            order = servers[(n - 1) % len(servers):] + servers[:(n - 1) % len(servers)]
            result = {name: {} for name in order}
            for phase in PHASES:
                for name in order:
                    m = measure(name, phase, args, work, n)
                    result[name][phase] = m
                    log(f"round {n} {phase:6} {name:9} {m['rate']:8,.0f} msg/s"
                        + (f"  listed after {m['listed_s']:.2f} s, indexed after {m['indexed_s']:.2f} s"
                           if name in args.sokkel else ""))
            rounds.append(result)
        load_after = open("/proc/loadavg").read().split()[0:3]
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"args": vars(args), "rounds": rounds}, f, indent=1)
        report(args, rounds, " ".join(load_before), " ".join(load_after), started)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    try:
        main()
    except Fatal as error:
        sys.exit(f"ingest.py: {error}")
    except KeyboardInterrupt:
        sys.exit(130)
