#!/usr/bin/env bash
# Echo benchmark: sokkel against a C epoll loop, ncat, socat and Python asyncio.
#
#   bash bench/echo.sh            (from the repo root; about 5 minutes with the defaults)
#
# Needs cargo, cc, python3, ss, ncat, socat and strace; installs nothing, fails if
# one is missing. Loopback only. Every server it starts runs in its own process group
# under `timeout`, and is stopped when its runs are over or when this script exits.
# Raw JSON and the report go to bench/results/ (ignored by git).
#
# Settings (environment):
#   ECHO_BENCH_SOKKEL=PATH      use this sokkel binary instead of building the work tree
#   ECHO_BENCH_SMALL_SECS=10    seconds per 64 B run
#   ECHO_BENCH_BIG_SECS=5       seconds per 4 KiB and 64 KiB run
#   ECHO_BENCH_CONNS=50         connections for 64 B and 4 KiB
#   ECHO_BENCH_BIG_CONNS=50     connections for 64 KiB
#   ECHO_BENCH_ROUNDS=2         passes of the 64 B comparison (the first pass also runs 4 KiB/64 KiB)
#   ECHO_BENCH_BIG=1            0: skip the 4 KiB and 64 KiB runs
#   ECHO_BENCH_QUIET_WAIT=60    before each server, wait up to this many seconds for the machine
#                               to be idle (under 10 % busy for 2 s); the table's "other load"
#                               column shows what other processes used during each run anyway
#   ECHO_BENCH_WARMUP_SECS=1    warm-up run per server, not reported (0: none)
#   ECHO_BENCH_CLIENT_THREADS=1 threads of the load generator (sokkel echo bench --threads)
#   ECHO_BENCH_PIN=0            1: pin the load generator to CPU 0 and the server (all its
#                               threads) to CPU 1 with taskset, which takes the scheduler's
#                               placement out of the comparison
#   ECHO_BENCH_STRACE_REQUESTS=50000   round trips counted under strace (0: skip)
#   ECHO_BENCH_IDLE_CONNS=10000 idle connections for the memory test (0: skip)
#   ECHO_BENCH_SERVERS="sokkel sokkel-t1 c-epoll ncat socat asyncio"   which servers, in order
#   ECHO_BENCH_OUT=bench/results/echo-DATE   where the results go
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

SMALL_SECS=${ECHO_BENCH_SMALL_SECS:-10}
BIG_SECS=${ECHO_BENCH_BIG_SECS:-5}
CONNS=${ECHO_BENCH_CONNS:-50}
BIG_CONNS=${ECHO_BENCH_BIG_CONNS:-50}
ROUNDS=${ECHO_BENCH_ROUNDS:-2}
BIG=${ECHO_BENCH_BIG:-1}
WARMUP_SECS=${ECHO_BENCH_WARMUP_SECS:-1}
QUIET_WAIT=${ECHO_BENCH_QUIET_WAIT:-60}
PIN=${ECHO_BENCH_PIN:-0}
CLIENT_THREADS=${ECHO_BENCH_CLIENT_THREADS:-1}
STRACE_REQUESTS=${ECHO_BENCH_STRACE_REQUESTS:-50000}
IDLE_CONNS=${ECHO_BENCH_IDLE_CONNS:-10000}
SERVERS=${ECHO_BENCH_SERVERS:-sokkel sokkel-t1 c-epoll ncat socat asyncio}
OUT=${ECHO_BENCH_OUT:-bench/results/echo-$(date +%Y%m%d-%H%M%S)}
# A server never outlives this, even if this script is killed with SIGKILL.
SERVER_LIFETIME=600

for n in SMALL_SECS BIG_SECS CONNS BIG_CONNS ROUNDS BIG QUIET_WAIT PIN WARMUP_SECS CLIENT_THREADS STRACE_REQUESTS IDLE_CONNS; do
    [[ ${!n} =~ ^[0-9]+$ ]] || { echo "echo.sh: ECHO_BENCH_$n must be a whole number, got '${!n}'" >&2; exit 2; }
done

die() { echo "echo.sh: $*" >&2; exit 1; }

# sokkel reads settings from SOKKEL_* variables; none may leak into the runs.
while IFS= read -r var; do unset "$var"; done < <(compgen -e | grep '^SOKKEL_' || true)

missing=()
for tool in ncat socat strace; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if ((${#missing[@]})); then
    die "missing: ${missing[*]}. Install with: apt-get install -y ncat socat strace"
fi
SERVER_PIN=() CLIENT_PIN=()
if ((PIN)); then
    (($(nproc) >= 2)) || die "ECHO_BENCH_PIN=1 needs two CPUs"
    SERVER_PIN=(taskset -c 1) CLIENT_PIN=(taskset -c 0)
fi
for tool in cargo cc python3 ss timeout setsid taskset; do
    command -v "$tool" >/dev/null || die "missing: $tool"
done

mkdir -p "$OUT"
# One line per measurement: kind (run, strace, idle), server, size, conns, round, JSON file,
# then for runs: server CPU s, client CPU s, other load (cores); for strace: the strace file.
RESULTS=$OUT/results.tsv
: >"$RESULTS"

if [[ -n ${ECHO_BENCH_SOKKEL:-} ]]; then
    SOKKEL=$(realpath "$ECHO_BENCH_SOKKEL")
    [[ -x $SOKKEL ]] || die "ECHO_BENCH_SOKKEL=$ECHO_BENCH_SOKKEL is not an executable"
    SOKKEL_FROM="$SOKKEL (given by ECHO_BENCH_SOKKEL)"
else
    echo "== build" >&2
    cargo build --release -p sokkel >&2 || die "cargo build --release -p sokkel failed"
    SOKKEL=$PWD/target/release/sokkel
    SOKKEL_FROM="target/release/sokkel built from $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- crates Cargo.toml Cargo.lock 2>/dev/null || echo ' plus uncommitted changes')"
fi
cc -O2 -Wall -o bench/epoll_echo bench/epoll_echo.c
EPOLL=$PWD/bench/epoll_echo

# ---------------------------------------------------------------- servers

TPID=""   # the `timeout` wrapper: leader of the server's process group
SPID=""   # the server itself
PORT=""
LOG=""

stop_server() {
    [[ -n $TPID ]] || return 0
    kill -TERM -- "-$TPID" 2>/dev/null || true
    for _ in $(seq 50); do
        kill -0 "$TPID" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL -- "-$TPID" 2>/dev/null || true
    wait "$TPID" 2>/dev/null || true
    TPID="" SPID="" PORT=""
}
CHILD=""         # the client or helper running now
STRACE_PID=""

# run_fg CMD...: runs CMD and waits for it; in the background, so that INT and TERM
# are acted on at once instead of after CMD.
run_fg() {
    local rc=0
    "$@" &
    CHILD=$!
    wait "$CHILD" || rc=$?
    CHILD=""
    return "$rc"
}

cleanup() {
    local pid
    for pid in "$CHILD" "$STRACE_PID"; do
        [[ -n $pid ]] && kill -TERM "$pid" 2>/dev/null
    done
    stop_server
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_server NAME: sets TPID, SPID, PORT.
start_server() {
    local name=$1 port=0
    LOG=$OUT/server-$name.log
    case $name in
        ncat | socat) port=$(free_port) ;;
    esac
    local -a cmd
    case $name in
        sokkel)    cmd=("$SOKKEL" echo serve --listen "127.0.0.1:$port" --quiet) ;;
        sokkel-t1) cmd=("$SOKKEL" echo serve --listen "127.0.0.1:$port" --quiet --threads 1) ;;
        c-epoll)   cmd=("$EPOLL" "$port") ;;
        ncat)      cmd=(ncat -l 127.0.0.1 "$port" --keep-open --exec /bin/cat) ;;
        socat)     cmd=(socat "TCP-LISTEN:$port,bind=127.0.0.1,reuseaddr,fork" EXEC:cat) ;;
        asyncio)   cmd=(python3 bench/asyncio_echo.py "$port") ;;
        *) die "unknown server $name" ;;
    esac
    # stdout holds one line per connection for sokkel: only the first line is needed.
    setsid timeout -k 5 "$SERVER_LIFETIME" "${SERVER_PIN[@]}" "${cmd[@]}" >"$LOG" 2>"$LOG.err" </dev/null &
    TPID=$!
    for _ in $(seq 100); do
        SPID=$(awk '{print $1}' "/proc/$TPID/task/$TPID/children" 2>/dev/null || true)
        if [[ $port == 0 ]]; then
            PORT=$(sed -n '1s/^listening on tcp 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$LOG")
        elif ss -Hltn "sport = :$port" | grep -q .; then
            PORT=$port
        fi
        [[ -n $SPID && -n $PORT ]] && return 0
        kill -0 "$TPID" 2>/dev/null || break
        sleep 0.1
    done
    cat "$LOG.err" >&2 || true
    die "$name did not start listening (see $LOG.err)"
}

# Server CPU seconds so far, its reaped children included (ncat and socat fork).
server_cpu() {
    local tck
    tck=$(getconf CLK_TCK)
    awk -v t="$tck" '{ sub(/^.*\) /, ""); print ($12 + $13 + $14 + $15) / t }' "/proc/$SPID/stat" 2>/dev/null ||
        echo 0
}

# Busy CPU seconds of the whole machine (user + nice + system, all cores).
machine_cpu() {
    awk -v t="$(getconf CLK_TCK)" '/^cpu / { print ($2 + $3 + $4) / t }' /proc/stat
}

# bench NAME SIZE CONNS SECS ROUND: one measured run, recorded in $RESULTS with the
# CPU seconds the server used, the client used, and everything else on the machine
# used ("other": compilers and tests of other people show up there).
bench() {
    local name=$1 size=$2 conns=$3 secs=$4 round=$5 file rc=0 t0 t1 m0 m1 s0 s1 client
    file=$OUT/$name-$size-c$conns-r$round.json
    t0=$(date +%s.%N) m0=$(machine_cpu) s0=$(server_cpu)
    # Exit status 1 with a full report means some round trips failed: the report counts them.
    local TIMEFORMAT='%U %S'
    { time run_fg timeout $((secs + 60)) "${CLIENT_PIN[@]}" "$SOKKEL" echo bench "127.0.0.1:$PORT" --conns "$conns" --size "$size" \
        --duration "${secs}s" --threads "$CLIENT_THREADS" --json >"$file" 2>"$file.err" || rc=$?; } 2>"$file.time"
    ((rc == 0)) || echo "   (sokkel echo bench exited $rc $(tail -n 3 "$file.err"))" >&2
    sleep 0.3   # lets ncat and socat reap their per-connection children
    t1=$(date +%s.%N) m1=$(machine_cpu) s1=$(server_cpu)
    client=$(awk '{ print $1 + $2 }' "$file.time" 2>/dev/null || echo 0)
    printf 'run\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$size" "$conns" "$round" "$file" \
        "$(awk -v a="$s0" -v b="$s1" 'BEGIN { print b - a }')" "$client" \
        "$(awk -v a="$m0" -v b="$m1" -v s0="$s0" -v s1="$s1" -v c="$client" -v w0="$t0" -v w1="$t1" \
            'BEGIN { o = (b - a) - (s1 - s0) - c; print (o < 0 ? 0 : o) / (w1 - w0) }')" \
        >>"$RESULTS"
    echo "   $name $size x$conns round $round: $(python3 -c 'import json,sys
try: r = json.load(open(sys.argv[1])); print("%.0f rt/s, errors %d %s" % (r["round_trips_per_sec"], r["errors"], r["error_samples"][:1]))
except Exception: print("no result")' "$file")" >&2
}

warmup() {
    ((WARMUP_SECS > 0)) || return 0
    run_fg timeout $((WARMUP_SECS + 30)) "${CLIENT_PIN[@]}" "$SOKKEL" echo bench "127.0.0.1:$PORT" --conns "$CONNS" --size 64 \
        --duration "${WARMUP_SECS}s" --json >/dev/null 2>&1 || true
}

# Waits (at most QUIET_WAIT seconds) until the machine is under 10 % busy for 2 s.
wait_quiet() {
    local end=$((SECONDS + QUIET_WAIT)) a b busy
    while :; do
        read -r -a a < <(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $2 + $3 + $4 + $5 + $6 + $7 + $8 }' /proc/stat)
        sleep 2
        read -r -a b < <(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $2 + $3 + $4 + $5 + $6 + $7 + $8 }' /proc/stat)
        busy=$(( (b[0] - a[0]) * 100 / (b[1] - a[1] > 0 ? b[1] - a[1] : 1) ))
        ((busy < 10)) && return 0
        if ((SECONDS >= end)); then
            echo "   (machine still ${busy} % busy after ${QUIET_WAIT} s of waiting: measuring anyway)" >&2
            return 0
        fi
    done
}

load_note() {
    echo "load $(cut -d' ' -f1-3 /proc/loadavg); busiest: $(top -bn1 -o %CPU | sed -n '8,10p' | awk '{printf "%s %s%%; ", $12, $9}')"
}

# ---------------------------------------------------------------- throughput

echo "== machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1), kernel $(uname -r)" >&2
echo "== before: $(load_note)" >&2
LOAD_BEFORE=$(load_note)

read -r -a server_list <<<"$SERVERS"
for round in $(seq "$ROUNDS"); do
    for name in "${server_list[@]}"; do
        echo "== $name (round $round)" >&2
        wait_quiet
        start_server "$name"
        warmup
        bench "$name" 64 "$CONNS" "$SMALL_SECS" "$round"
        if ((round == 1 && BIG)); then
            bench "$name" 4KiB "$CONNS" "$BIG_SECS" 1
            bench "$name" 64KiB "$BIG_CONNS" "$BIG_SECS" 1
        fi
        stop_server
    done
done

# ---------------------------------------------------------------- syscalls

if ((STRACE_REQUESTS > 0)); then
    for name in sokkel sokkel-t1 c-epoll; do
        echo "== strace $name ($STRACE_REQUESTS round trips, 64 B x $CONNS)" >&2
        start_server "$name"
        trace=$OUT/strace-$name.txt
        json=$OUT/strace-$name.json
        timeout 120 strace -c -f -o "$trace" -p "$SPID" 2>"$trace.err" &
        STRACE_PID=$!
        # strace says "Process N attached" on stderr once it holds the process.
        for _ in $(seq 50); do grep -q attached "$trace.err" && break; sleep 0.1; done
        sleep 0.3
        run_fg timeout 120 "$SOKKEL" echo bench "127.0.0.1:$PORT" --conns "$CONNS" --size 64 \
            --requests "$STRACE_REQUESTS" --json >"$json" 2>/dev/null || true
        sleep 1   # the server closes its side of each connection after the client has gone
        kill -INT "$STRACE_PID" 2>/dev/null || true
        wait "$STRACE_PID" 2>/dev/null || true
        STRACE_PID=""
        printf 'strace\t%s\t64\t%s\t1\t%s\t%s\n' "$name" "$CONNS" "$json" "$trace" >>"$RESULTS"
        stop_server
    done
fi

# ---------------------------------------------------------------- idle memory

if ((IDLE_CONNS > 0)); then
    for name in sokkel c-epoll; do
        echo "== $IDLE_CONNS idle connections: $name" >&2
        json=$OUT/idle-$name.json
        case $name in
            sokkel)  cmd=("$SOKKEL" echo serve --listen 127.0.0.1:0 --quiet) ;;
            c-epoll) cmd=("$EPOLL" 0) ;;
        esac
        run_fg timeout 200 python3 bench/idle_conns.py --conns "$IDLE_CONNS" --deadline 150 --label "$name" \
            -- "${cmd[@]}" >"$json" || echo "echo.sh: idle connections against $name failed" >&2
        printf 'idle\t%s\t0\t%s\t1\t%s\t\n' "$name" "$IDLE_CONNS" "$json" >>"$RESULTS"
    done
fi

LOAD_AFTER=$(load_note)
echo "== after: $LOAD_AFTER" >&2

# ---------------------------------------------------------------- report

python3 - "$RESULTS" "$OUT/report.md" "$LOAD_BEFORE" "$LOAD_AFTER" "$CLIENT_THREADS" "$SOKKEL_FROM" "$PIN" <<'PY'
import json, platform, subprocess, sys, time
from collections import defaultdict

results, report, load_before, load_after, client_threads, sokkel_from, pin = sys.argv[1:8]
rows = [line.rstrip("\n").split("\t") for line in open(results) if line.strip()]

def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None

NAMES = {
    "sokkel": "sokkel (default threads)",
    "sokkel-t1": "sokkel --threads 1",
    "c-epoll": "C epoll (1 thread)",
    "ncat": "ncat --keep-open --exec /bin/cat",
    "socat": "socat fork EXEC:cat",
    "asyncio": "Python asyncio",
}
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
out = []
out.append(f"Machine: {subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()} cores, {cpu}, "
           f"kernel {platform.release()}, {time.strftime('%Y-%m-%d %H:%M %Z')}")
out.append(f"sokkel: {sokkel_from}")
out.append(f"Load before: {load_before}")
out.append(f"Load after: {load_after}")
out.append(f"Client: sokkel echo bench --threads {client_threads}, "
           + ("pinned to CPU 0; every server pinned to CPU 1 (ECHO_BENCH_PIN=1)." if pin == "1"
              else "on the same cores as the server, placed by the scheduler."))
out.append("CPU µs/rt: CPU time (user + system) per round trip, server (its reaped children included) and client. "
           "Other load: cores' worth of CPU used by everything else on the machine during the run "
           "(0.00 on a quiet machine; loopback softirq time is not counted).")
out.append("")

runs = [r for r in rows if r[0] == "run"]
groups = defaultdict(list)
for kind, name, size, conns, rnd, path, cpu_s, client_s, other in runs:
    groups[(size, conns, rnd)].append((name, load(path), float(cpu_s or 0), float(client_s or 0), float(other or 0)))
order = {"64": 0, "4KiB": 1, "64KiB": 2}
for (size, conns, rnd) in sorted(groups, key=lambda k: (order.get(k[0], 9), int(k[2]))):
    entries = groups[(size, conns, rnd)]
    base = next((e[1] for e in entries if e[0] == "c-epoll" and e[1]), None)
    out.append(f"#### {size} B x {conns} connections, round {rnd}" if size == "64"
               else f"#### {size} x {conns} connections, round {rnd}")
    out.append("")
    out.append("| server | round trips/s | vs C epoll | MB/s | p50 µs | p99 µs | errors "
               "| server CPU µs/rt | client CPU µs/rt | other load |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, r, cpu_s, client_s, other in entries:
        label = NAMES.get(name, name)
        if not r:
            out.append(f"| {label} | failed | | | | | | | | {other:.2f} |")
            continue
        rts = r["round_trips_per_sec"]
        ratio = f"{rts / base['round_trips_per_sec']:.2f}×" if base else "–"
        n = r["round_trips"]
        per = f"{cpu_s * 1e6 / n:.1f}" if n else "–"
        cper = f"{client_s * 1e6 / n:.1f}" if n else "–"
        lat = r["latency_us"]
        out.append(f"| {label} | {rts:,.0f} | {ratio} | {r['mb_per_sec']:,.1f} | {lat['p50']:,.0f} | "
                   f"{lat['p99']:,.0f} | {r['errors']} | {per} | {cper} | {other:.2f} |")
    out.append("")

# The acceptance bar: sokkel >= 1.0x the C epoll server at 64 B, in every round.
small = {k: v for k, v in groups.items() if k[0] == "64"}
if small:
    out.append("#### Acceptance: sokkel ≥ 1.0× C epoll at 64 B")
    out.append("")
    out.append("| sokkel | " + " | ".join(f"round {k[2]}" for k in sorted(small, key=lambda k: int(k[2])))
               + " |")
    out.append("|---|" + "---:|" * len(small))
    for who in ("sokkel", "sokkel-t1"):
        cells = []
        for key in sorted(small, key=lambda k: int(k[2])):
            e = {x[0]: x for x in small[key]}
            if who not in e or "c-epoll" not in e or not e[who][1] or not e["c-epoll"][1]:
                cells.append("–")
                continue
            ratio = e[who][1]["round_trips_per_sec"] / e["c-epoll"][1]["round_trips_per_sec"]
            noisy = max(e[who][4], e["c-epoll"][4])
            cells.append(f"{ratio:.3f}× {'met' if ratio >= 1.0 else 'NOT met'}"
                         + (f" (other load {noisy:.2f}: not a fair round)" if noisy > 0.1 else ""))
        if any(c != "–" for c in cells):
            out.append(f"| {NAMES[who]} | " + " | ".join(cells) + " |")
    out.append("")

traces = [r for r in rows if r[0] == "strace"]
if traces:
    out.append("#### System calls per round trip (strace -c -f, 64 B)")
    out.append("")
    cols = ["read", "write", "epoll_wait", "futex", "other", "total"]
    out.append("| server | round trips | " + " | ".join(cols) + " | failed calls | per connection (setup, teardown) |")
    out.append("|---|---:|" + "---:|" * len(cols) + "---:|---|")
    READS = {"read", "recvfrom", "recvmsg", "readv"}
    WRITES = {"write", "sendto", "sendmsg", "writev"}
    EPOLL = {"epoll_wait", "epoll_pwait", "epoll_pwait2"}
    # Made once per connection, not per message: shown per connection, left out of the total.
    SETUP = {"accept", "accept4", "setsockopt", "getsockopt", "getsockname", "getpeername",
             "epoll_ctl", "close", "shutdown", "fcntl", "ioctl"}
    for kind, name, size, conns, rnd, path, trace in (t[:7] for t in traces):
        r = load(path)
        counts, errs, seen = defaultdict(int), 0, defaultdict(set)
        try:
            lines = open(trace).read().splitlines()
        except OSError:
            lines = []
        for line in lines:
            parts = line.split()
            if len(parts) < 5 or not parts[0][0].isdigit() or parts[-1] == "total":
                continue
            sc, calls = parts[-1], int(parts[3])
            errs += int(parts[4]) if len(parts) == 6 else 0
            key = ("read" if sc in READS else "write" if sc in WRITES else "epoll_wait" if sc in EPOLL
                   else "futex" if sc == "futex" else "setup" if sc in SETUP else "other")
            counts[key] += calls
            seen[key].add(sc)
            if key in ("setup", "other"):
                counts[key + ":" + sc] += calls
        counts["total"] = sum(counts[k] for k in ("read", "write", "epoll_wait", "futex", "other"))
        n = r["round_trips"] if r else 0
        label = NAMES.get(name, name)
        if not n:
            out.append(f"| {label} | failed |" + " |" * (len(cols) + 2))
            continue
        calls_used = "/".join(sorted(seen["read"] | seen["write"]))
        setup = ", ".join(f"{k.split(':')[1]} {v / int(conns):.1f}"
                          for k, v in sorted(counts.items(), key=lambda kv: -kv[1]) if k.startswith("setup:"))
        others = ", ".join(f"{k.split(':')[1]} ×{v}"
                           for k, v in sorted(counts.items(), key=lambda kv: -kv[1]) if k.startswith("other:"))
        out.append(f"| {label} ({calls_used}) | {n:,} | " + " | ".join(f"{counts[c] / n:.3f}" for c in cols)
                   + f" | {errs / n:.3f} | {setup} |")
        if others:
            out.append(f"| ↳ other calls in all: {others} |" + " |" * (len(cols) + 3))
    out.append("")
    out.append("Counted on the server only, over a run of a fixed number of round trips; strace slows "
               "everything, so these runs are not timed. Failed calls are reads that found nothing "
               "(EAGAIN) and the odd futex. sokkel's write column is not socket writes (those are "
               "sendto): its two log lines per connection and a few wake-ups.")
    out.append("")

idles = [r for r in rows if r[0] == "idle"]
if idles:
    out.append("#### Idle connections: server memory")
    out.append("")
    out.append("| server | connections | VmRSS idle | VmRSS with all open | VmHWM | per connection | threads |")
    out.append("|---|---:|---:|---:|---:|---:|---:|")
    for kind, name, size, conns, rnd, path, _ in (t[:7] for t in idles):
        r = load(path)
        if not r:
            out.append(f"| {NAMES.get(name, name)} | {conns} | failed | | | | |")
            continue
        out.append(f"| {NAMES.get(name, name)} | {r['established']:,} | {r['rss_idle_kb'] / 1024:.1f} MB | "
                   f"{r['rss_kb'] / 1024:.1f} MB | {r['hwm_kb'] / 1024:.1f} MB | "
                   f"{r['rss_per_conn_bytes']:,} B | {r['threads']} |")
    out.append("")
    s = next((load(t[5]) for t in idles if t[1] == "sokkel"), None)
    if s:
        verdict = "met" if s["rss_kb"] / 1024 < 60 else "NOT met"
        out.append(f"Target VmRSS under 60 MB with {s['conns']:,} idle connections: {verdict} "
                   f"({s['rss_kb'] / 1024:.1f} MB).")
        out.append("")

text = "\n".join(out)
open(report, "w").write(text + "\n")
print(text)
PY
echo "(raw results in $OUT)" >&2
