#!/usr/bin/env bash
# SMTP ingest benchmark: sokkel's catcher (storing every message durably) against
# Postfix's smtp-sink (stores nothing) and aiosmtpd (stores nothing), all fed by
# Postfix's smtp-source in the same run.
#
#   bash bench/smtp.sh            (from the repo root; a few minutes with the defaults)
#
# Needs cargo, python3, /usr/sbin/smtp-source and smtp-sink (apt-get install -y postfix)
# and aiosmtpd (pip install aiosmtpd); installs nothing, fails if one is missing.
# Loopback only; every server started here is stopped when this script exits.
#
# Settings (environment):
#   SMTP_BENCH_SESSIONS=20      parallel smtp-source sessions
#   SMTP_BENCH_MESSAGES=20000   messages per run
#   SMTP_BENCH_SIZE=4096        message size in bytes
#   SMTP_BENCH_SERVERS="sokkel sokkel-t2 smtp-sink aiosmtpd"   (sokkel-t2: --threads 2)
#   SMTP_BENCH_LIST_FILL=100000 messages in the store for the `mail list` timing (0: skip)
#   SMTP_BENCH_SOKKEL=PATH      use this sokkel binary instead of building the work tree
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SESSIONS=${SMTP_BENCH_SESSIONS:-20}
MESSAGES=${SMTP_BENCH_MESSAGES:-20000}
SIZE=${SMTP_BENCH_SIZE:-4096}
SERVERS=${SMTP_BENCH_SERVERS:-sokkel sokkel-t2 smtp-sink aiosmtpd}
LIST_FILL=${SMTP_BENCH_LIST_FILL:-100000}
SOURCE=/usr/sbin/smtp-source
SINK=/usr/sbin/smtp-sink

die() { echo "smtp.sh: $*" >&2; exit 1; }
[ -x "$SOURCE" ] && [ -x "$SINK" ] || die "smtp-source/smtp-sink missing: apt-get install -y postfix"
python3 -c 'import aiosmtpd' 2>/dev/null || die "aiosmtpd missing: pip install aiosmtpd"
while IFS= read -r var; do unset "$var"; done < <(compgen -e | grep '^SOKKEL_' || true)

if [ -n "${SMTP_BENCH_SOKKEL:-}" ]; then
    SOKKEL=$SMTP_BENCH_SOKKEL
else
    cargo build --release -q -p sokkel
    SOKKEL=target/release/sokkel
fi

WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# shellcheck source=bench/lib.sh
source bench/lib.sh

start_server() {  # name port -> sets SERVER_PID
    local name=$1 port=$2
    case $name in
        sokkel | sokkel-t2)
            local threads=1
            [ "$name" = sokkel-t2 ] && threads=2
            DB="$WORK/$name.db"
            # Only SMTP is measured: no web page, no POP3, no IMAP (set through the
            # environment, which builds from before those existed ignore).
            SOKKEL_NO_HTTP=true SOKKEL_NO_POP3=true SOKKEL_NO_IMAP=true \
                "$SOKKEL" mail serve --smtp "127.0.0.1:$port" --db "$DB" --threads "$threads" \
                >"$WORK/$name.out" 2>"$WORK/$name.err" &
            ;;
        smtp-sink)
            # 256: listen backlog. -u: smtp-sink refuses to run as root otherwise.
            "$SINK" -u nobody "127.0.0.1:$port" 256 >/dev/null 2>&1 &
            ;;
        aiosmtpd)
            python3 -m aiosmtpd -n -l "127.0.0.1:$port" >/dev/null 2>&1 &
            ;;
        *) die "unknown server $name" ;;
    esac
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    wait_listening "$port"
}

# Runs smtp-source; prints messages per second.
run_source() {  # port extra-flags...
    local port=$1; shift
    local start end
    start=$(date +%s.%N)
    "$SOURCE" "$@" -s "$SESSIONS" -m "$MESSAGES" -l "$SIZE" \
        -f from@bench.test -t to@bench.test "127.0.0.1:$port" >"$WORK/source.out" 2>&1 \
        || { cat "$WORK/source.out" >&2; die "smtp-source failed"; }
    end=$(date +%s.%N)
    python3 -c "print(f'{$MESSAGES / ($end - $start):.0f}')"
}

declare -A RATE RSS
for server in $SERVERS; do
    port=$(free_port)
    start_server "$server" "$port"
    RATE[$server,new]=$(run_source "$port")
    RATE[$server,reused]=$(run_source "$port" -d)
    if [[ $server == sokkel* ]]; then
        stored=$(wait_stored "$DB" $((2 * MESSAGES)))
        [ "$stored" -eq $((2 * MESSAGES)) ] || die "sokkel stored $stored of $((2 * MESSAGES)) messages"
        RSS[$server]=$(awk '/VmHWM/ {printf "%.1f MB", $2/1024}' "/proc/$SERVER_PID/status")
        if [ "$server" = sokkel ] && [ "$LIST_FILL" -gt 0 ]; then
            while [ "$(count_stored "$DB")" -lt "$LIST_FILL" ]; do
                run_source "$port" -d >/dev/null
            done
            SOKKEL_RSS_FILL=$(awk '/VmHWM/ {printf "%.1f MB", $2/1024}' "/proc/$SERVER_PID/status")
            LIST_MS=$(python3 - "$SOKKEL" "$DB" <<'PY'
import subprocess, sys, time
times = []
for _ in range(20):
    t = time.perf_counter()
    subprocess.run([sys.argv[1], "mail", "list", "--limit", "50", "--db", sys.argv[2]],
                   check=True, stdout=subprocess.DEVNULL)
    times.append((time.perf_counter() - t) * 1000)
# The first run starts right after the fill, so with the log (issue #16) it waits
# for the rows of the last messages to be written: shown apart.
first, rest = times[0], sorted(times[1:])
print(f"first run {first:.1f} ms, then median {rest[len(rest)//2]:.1f} ms, max {rest[-1]:.1f} ms")
PY
)
            LIST_COUNT=$(count_stored "$DB")
        fi
    fi
    kill -TERM "$SERVER_PID"
    wait "$SERVER_PID" 2>/dev/null || true
done

echo
echo "smtp-source -s $SESSIONS -m $MESSAGES -l $SIZE, $(nproc) cores, $(uname -r), $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "| server | new connection per message (msg/s) | reused connections, -d (msg/s) | stores |"
echo "|---|---:|---:|---|"
for server in $SERVERS; do
    case $server in sokkel*) stores="durably (fsync before 250)" ;; *) stores="nothing" ;; esac
    echo "| $server | ${RATE[$server,new]} | ${RATE[$server,reused]} | $stores |"
done
if [[ " $SERVERS " == *" sokkel "* && " $SERVERS " == *" smtp-sink "* ]]; then
    echo
    for s in $SERVERS; do
        [[ $s == sokkel* ]] || continue
        python3 -c "print(f'$s / smtp-sink: new connections {${RATE[$s,new]}/${RATE[smtp-sink,new]}:.2f}x, reused {${RATE[$s,reused]}/${RATE[smtp-sink,reused]}:.2f}x')"
    done
fi
for server in $SERVERS; do
    [ -n "${RSS[$server]:-}" ] && echo "$server peak RSS after $((2 * MESSAGES)) messages: ${RSS[$server]}"
done
if [ -n "${LIST_MS:-}" ]; then
    echo "sokkel peak RSS after filling to $LIST_COUNT messages: $SOKKEL_RSS_FILL"
    echo "sokkel mail list --limit 50 with $LIST_COUNT messages stored (whole process, 20 runs): $LIST_MS"
fi
