#!/usr/bin/env python3
"""Memory held by an echo server for many idle TCP connections.

Usage (from the repo root):
    python3 bench/idle_conns.py [--conns 10000] [--max-rss-mb 60] -- SERVER_CMD...

SERVER_CMD must bind 127.0.0.1 port 0 and print "listening on tcp 127.0.0.1:PORT" as
its first stdout line (sokkel echo serve, bench/epoll_echo and bench/asyncio_echo.py
all do), e.g.
    python3 bench/idle_conns.py -- target/release/sokkel echo serve --listen 127.0.0.1:0 --quiet

The script starts the server in its own process group, reads its VmRSS while idle,
opens N connections that send nothing, waits until the server side shows N
established connections (ss) and its VmRSS stops moving, then reads VmRSS, VmHWM,
thread count and the kernel's TCP memory (/proc/net/sockstat, outside RSS), closes
everything, stops the server and prints one JSON object. Exit status 1 if
--max-rss-mb is given and VmRSS is over it, 2 on any failure. Everything is bounded
by --deadline seconds.
"""

import argparse
import json
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import threading
import time


def status(pid: int) -> dict:
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "Threads"):
                out[key] = int(value.split()[0])  # kB for Vm*, a count for Threads
    return out


def tcp_mem_pages() -> int:
    with open("/proc/net/sockstat") as f:
        for line in f:
            if line.startswith("TCP:"):
                m = re.search(r"\bmem (\d+)", line)
                return int(m.group(1)) if m else -1
    return -1


def established(port: int) -> int:
    out = subprocess.run(
        ["ss", "-Htn", "state", "established", f"( sport = :{port} )"],
        capture_output=True, text=True, timeout=20, check=True,
    ).stdout
    return sum(1 for line in out.splitlines() if line.strip())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--conns", type=int, default=10000)
    ap.add_argument("--max-rss-mb", type=float, default=None,
                    help="exit 1 if the server's VmRSS with all connections open is above this")
    ap.add_argument("--deadline", type=float, default=120.0, help="seconds for the whole run")
    ap.add_argument("--label", default=None)
    ap.add_argument("server", nargs="+")
    args = ap.parse_args()
    t_end = time.monotonic() + args.deadline

    # The client needs one descriptor per connection: raise the soft limit to the hard one.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = args.conns + 256
    if hard != resource.RLIM_INFINITY and hard < want:
        print(f"idle_conns: hard RLIMIT_NOFILE {hard} < {want}", file=sys.stderr)
        return 2
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))

    server = subprocess.Popen(args.server, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              stdin=subprocess.DEVNULL, start_new_session=True)
    socks = []
    try:
        first = ""
        ready = threading.Event()

        def drain():  # the first line names the port; later ones (connects) are dropped
            nonlocal first
            first = server.stdout.readline().decode(errors="replace")
            ready.set()
            for _ in server.stdout:
                pass

        threading.Thread(target=drain, daemon=True).start()
        if not ready.wait(10):
            raise RuntimeError("server printed nothing in 10 s")
        m = re.search(r"listening on tcp 127\.0\.0\.1:(\d+)", first)
        if not m:
            raise RuntimeError(f"unexpected first line from server: {first!r}")
        port = int(m.group(1))
        time.sleep(0.5)
        before = status(server.pid)
        mem_before = tcp_mem_pages()

        t0 = time.monotonic()
        for i in range(args.conns):
            if time.monotonic() > t_end:
                raise RuntimeError(f"deadline while connecting ({i} open)")
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(10)
            s.connect(("127.0.0.1", port))
            socks.append(s)
        connect_secs = time.monotonic() - t0

        # Wait until the server has accepted them all and its RSS has settled.
        seen, last_rss, stable = 0, -1, 0
        while time.monotonic() < t_end:
            seen = established(port)
            rss = status(server.pid)["VmRSS"]
            stable = stable + 1 if (seen >= args.conns and rss == last_rss) else 0
            last_rss = rss
            if stable >= 3:
                break
            time.sleep(0.5)
        if seen < args.conns:
            raise RuntimeError(f"only {seen} of {args.conns} connections established server-side")
        after = status(server.pid)
        mem_after = tcp_mem_pages()
        page_kb = os.sysconf("SC_PAGE_SIZE") // 1024
        result = {
            "label": args.label or os.path.basename(args.server[0]),
            "server": " ".join(args.server),
            "conns": args.conns,
            "established": seen,
            "connect_secs": round(connect_secs, 2),
            "rss_idle_kb": before["VmRSS"],
            "rss_kb": after["VmRSS"],
            "hwm_kb": after["VmHWM"],
            "threads": after["Threads"],
            "rss_per_conn_bytes": round((after["VmRSS"] - before["VmRSS"]) * 1024 / args.conns),
            "kernel_tcp_mem_kb": (mem_after - mem_before) * page_kb,
        }
    except Exception as err:  # noqa: BLE001 - report any failure in one line
        print(f"idle_conns: {err}", file=sys.stderr)
        return 2
    finally:
        for s in socks:
            s.close()
        try:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(server.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            server.wait(timeout=5)

    print(json.dumps(result))
    if args.max_rss_mb is not None and after["VmRSS"] / 1024 > args.max_rss_mb:
        print(f"idle_conns: VmRSS {after['VmRSS'] / 1024:.1f} MB > {args.max_rss_mb} MB",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
