#!/usr/bin/env bash
# Where the CPU goes during SMTP ingest: runs smtp-source against one server and
# reports messages per second, the server's CPU per message (and per thread), the
# client's CPU per message, and how many of the machine's cores were busy. Used to
# tell a server that is short of CPU from one that is waiting (docs/benchmarks.md).
#
#   bash bench/smtp_cpu.sh sokkel [smtp-source flags, e.g. -d]
#   bash bench/smtp_cpu.sh smtp-sink
#   SMTP_CPU_ROUNDS=3 bash bench/smtp_cpu.sh sokkel
#
# Settings (environment): SMTP_CPU_MESSAGES=20000, SMTP_CPU_SESSIONS=20,
# SMTP_CPU_SIZE=4096, SMTP_CPU_ROUNDS=1, SMTP_CPU_DIR (where sokkel's store goes; a
# new temporary directory under it, default /tmp), SMTP_BENCH_SOKKEL=PATH (else
# the work tree's release build). Loopback only; the server is stopped at exit.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SERVER=${1:?usage: bench/smtp_cpu.sh sokkel|smtp-sink [smtp-source flags]}
shift
MESSAGES=${SMTP_CPU_MESSAGES:-20000}
SESSIONS=${SMTP_CPU_SESSIONS:-20}
SIZE=${SMTP_CPU_SIZE:-4096}
ROUNDS=${SMTP_CPU_ROUNDS:-1}
SOURCE=/usr/sbin/smtp-source
SINK=/usr/sbin/smtp-sink

die() { echo "smtp_cpu.sh: $*" >&2; exit 1; }
[ -x "$SOURCE" ] && [ -x "$SINK" ] || die "smtp-source/smtp-sink missing: apt-get install -y postfix"
[ -x /usr/bin/time ] || die "/usr/bin/time missing: apt-get install -y time"
while IFS= read -r var; do unset "$var"; done < <(compgen -e | grep '^SOKKEL_' || true)
if [ "$SERVER" = sokkel ]; then
    if [ -n "${SMTP_BENCH_SOKKEL:-}" ]; then
        SOKKEL=$SMTP_BENCH_SOKKEL
    else
        cargo build --release -q -p sokkel
        SOKKEL=target/release/sokkel
    fi
fi

WORK=$(mktemp -d "${SMTP_CPU_DIR:-/tmp}/smtp-cpu.XXXXXX")
PID=
cleanup() {
    [ -n "$PID" ] && kill -TERM "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

ticks() {  # pid -> utime+stime of the process, in clock ticks
    awk '{print $14 + $15}' "/proc/$1/stat"
}
thread_ticks() {  # pid -> "name ticks" per thread
    for task in /proc/"$1"/task/*; do
        echo "$(tr ' ' _ <"$task/comm") $(awk '{print $14 + $15}' "$task/stat")"
    done
}

for round in $(seq "$ROUNDS"); do
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    case $SERVER in
        sokkel)
            SOKKEL_NO_HTTP=true SOKKEL_NO_POP3=true SOKKEL_NO_IMAP=true "$SOKKEL" mail serve \
                --smtp "127.0.0.1:$port" --db "$WORK/mail-$round.db" >/dev/null 2>"$WORK/err" &
            ;;
        smtp-sink) "$SINK" -u nobody "127.0.0.1:$port" 256 >/dev/null 2>&1 & ;;
        *) die "unknown server $SERVER (sokkel or smtp-sink)" ;;
    esac
    PID=$!
    for _ in $(seq 50); do
        python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), timeout=0.2).close()" 2>/dev/null && break
        sleep 0.1
    done
    before=$(ticks "$PID")
    thread_ticks "$PID" >"$WORK/threads0"
    start=$(date +%s.%N)
    /usr/bin/time -f "%U %S" -o "$WORK/time" "$SOURCE" "$@" -s "$SESSIONS" -m "$MESSAGES" -l "$SIZE" \
        -f from@bench.test -t to@bench.test "127.0.0.1:$port" >"$WORK/source.out" 2>&1 \
        || { cat "$WORK/source.out" >&2; die "smtp-source failed"; }
    end=$(date +%s.%N)
    after=$(ticks "$PID")
    thread_ticks "$PID" >"$WORK/threads1"
    read -r user system <"$WORK/time"
    hz=$(getconf CLK_TCK)
    python3 - "$SERVER" "$MESSAGES" "$start" "$end" "$before" "$after" "$user" "$system" "$hz" \
        "$WORK/threads0" "$WORK/threads1" <<'PY'
import sys
server, n, start, end, before, after, user, system, hz = sys.argv[1:10]
n, wall, hz = int(n), float(end) - float(start), int(hz)
server_cpu = (int(after) - int(before)) / hz
source_cpu = float(user) + float(system)
print(f"{server}: {n / wall:.0f} msg/s; server {server_cpu / n * 1e6:.0f} us CPU/msg, "
      f"smtp-source {source_cpu / n * 1e6:.0f} us CPU/msg; "
      f"{(server_cpu + source_cpu) / wall:.2f} cores busy")
def load(path):
    return dict(line.rsplit(" ", 1) for line in open(path).read().splitlines())
t0, t1 = load(sys.argv[10]), load(sys.argv[11])
for name, ticks in t1.items():
    busy = (int(ticks) - int(t0.get(name, 0))) / hz
    if busy > 0:
        print(f"  thread {name}: {busy / wall:.2f} cores, {busy / n * 1e6:.0f} us/msg")
PY
    kill -TERM "$PID"
    wait "$PID" 2>/dev/null || true
    PID=
done
