#!/usr/bin/env bash
# Sending benchmark: how fast `sokkel mail send` pushes messages into Postfix's
# smtp-sink (which stores nothing, so the client is what is measured), beside swaks
# and Python's smtplib sending to the same sink in the same run.
#
#   bash bench/send.sh            (from the repo root; about a minute with the defaults)
#
#   sokkel   one process, --repeat N over one connection (PIPELINING: MAIL, RCPT and
#            DATA in one write per message)
#   smtplib  one process, one connection, N sendmail() calls (no pipelining)
#   swaks    one process and one connection per message, as swaks is used; timed
#            over SEND_BENCH_SWAKS messages
#   sokkel, one process per message: the same, for a like-for-like row beside swaks
#
# Each figure is the median of SEND_BENCH_RUNS runs, timed from outside the process
# (start-up and connection set-up included). Needs cargo, python3, swaks and
# /usr/sbin/smtp-sink (apt-get install -y swaks postfix); installs nothing, fails if
# one is missing. Loopback only; the sink is stopped when this script exits.
#
# Settings (environment):
#   SEND_BENCH_MESSAGES=1000   messages per sokkel and smtplib run
#   SEND_BENCH_SWAKS=200       messages (processes) per swaks run
#   SEND_BENCH_SIZE=1024       body size in bytes
#   SEND_BENCH_RUNS=3          runs per client; the median is reported
#   SEND_BENCH_SOKKEL=PATH     use this sokkel binary instead of building the work tree
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

MESSAGES=${SEND_BENCH_MESSAGES:-1000}
SWAKS_N=${SEND_BENCH_SWAKS:-200}
SIZE=${SEND_BENCH_SIZE:-1024}
RUNS=${SEND_BENCH_RUNS:-3}
SINK=/usr/sbin/smtp-sink

die() { echo "send.sh: $*" >&2; exit 1; }
[ -x "$SINK" ] || die "smtp-sink missing: apt-get install -y postfix"
command -v swaks >/dev/null || die "swaks missing: apt-get install -y swaks"
command -v python3 >/dev/null || die "python3 missing"
while IFS= read -r var; do unset "$var"; done < <(compgen -e | grep '^SOKKEL_' || true)

if [ -n "${SEND_BENCH_SOKKEL:-}" ]; then
    SOKKEL=$SEND_BENCH_SOKKEL
else
    cargo build --release -q -p sokkel
    SOKKEL=target/release/sokkel
fi

WORK=$(mktemp -d)
SINK_PID=""
cleanup() {
    if [ -n "$SINK_PID" ]; then kill -TERM "$SINK_PID" 2>/dev/null || true; fi
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# shellcheck source=bench/lib.sh
source bench/lib.sh

# The body: SIZE bytes of 64-byte text lines.
python3 - "$SIZE" >"$WORK/body.txt" <<'PY'
import sys
size = int(sys.argv[1])
line = "The quick brown fox jumps over the lazy dog 0123456789 abcdefgh\n"
body = (line * (size // len(line) + 1))[:size - 1] + "\n"
sys.stdout.write(body)
PY

PORT=$(free_port)
sink_user=()
[ "$(id -u)" -eq 0 ] && sink_user=(-u nobody)  # smtp-sink refuses to run as root otherwise
"$SINK" "${sink_user[@]}" "127.0.0.1:$PORT" 256 >/dev/null 2>&1 &
SINK_PID=$!
wait_listening "$PORT"
SERVER=127.0.0.1:$PORT

SOKKEL_CMD=("$SOKKEL" mail send --server "$SERVER" --from from@bench.test --to to@bench.test
    --subject bench --body-file "$WORK/body.txt" --repeat "$MESSAGES")
SWAKS_CMD=(swaks --server "$SERVER" --from from@bench.test --to to@bench.test
    --header "Subject: bench" --body "@$WORK/body.txt" --pipeline --silent 2)

cat >"$WORK/smtplib_send.py" <<'PY'
import smtplib, sys
from email.message import EmailMessage
server, count, body_file = sys.argv[1], int(sys.argv[2]), sys.argv[3]
msg = EmailMessage()
msg["From"], msg["To"], msg["Subject"] = "from@bench.test", "to@bench.test", "bench"
msg.set_content(open(body_file).read())
raw = msg.as_bytes()
host, port = server.rsplit(":", 1)
with smtplib.SMTP(host, int(port)) as smtp:
    for _ in range(count):
        smtp.sendmail("from@bench.test", ["to@bench.test"], raw)
PY
SMTPLIB_CMD=(python3 "$WORK/smtplib_send.py" "$SERVER" "$MESSAGES" "$WORK/body.txt")

# Runs a command N times, timing each from outside; prints messages/s of the median.
now() { date +%s.%N; }
rate() {  # messages seconds
    python3 -c "print(f'{$1 / $2:.0f}')"
}
median() {
    python3 -c 'import statistics, sys; print(f"{statistics.median(float(x) for x in sys.argv[1:]):.0f}")' "$@"
}

declare -A RESULT
SOKKEL_SELF=()
rates=()
for _ in $(seq "$RUNS"); do
    start=$(now)
    "${SOKKEL_CMD[@]}" >"$WORK/sokkel.out" 2>&1 || { cat "$WORK/sokkel.out" >&2; die "sokkel mail send failed"; }
    end=$(now)
    rates+=("$(rate "$MESSAGES" "$(python3 -c "print($end - $start)")")")
    SOKKEL_SELF+=("$(sed -n 's/.*(\([0-9]*\) messages\/s).*/\1/p' "$WORK/sokkel.out")")
done
RESULT[sokkel]=$(median "${rates[@]}")
RESULT[sokkel-self]=$(median "${SOKKEL_SELF[@]}")

rates=()
for _ in $(seq "$RUNS"); do
    start=$(now)
    "${SMTPLIB_CMD[@]}" || die "smtplib failed"
    end=$(now)
    rates+=("$(rate "$MESSAGES" "$(python3 -c "print($end - $start)")")")
done
RESULT[smtplib]=$(median "${rates[@]}")

rates=()
for _ in $(seq "$RUNS"); do
    start=$(now)
    for _ in $(seq "$SWAKS_N"); do
        "${SWAKS_CMD[@]}" >/dev/null || die "swaks failed"
    done
    end=$(now)
    rates+=("$(rate "$SWAKS_N" "$(python3 -c "print($end - $start)")")")
done
RESULT[swaks]=$(median "${rates[@]}")

SOKKEL_ONE_CMD=("${SOKKEL_CMD[@]:0:${#SOKKEL_CMD[@]}-2}")
rates=()
for _ in $(seq "$RUNS"); do
    start=$(now)
    for _ in $(seq "$SWAKS_N"); do
        "${SOKKEL_ONE_CMD[@]}" >/dev/null || die "sokkel mail send failed"
    done
    end=$(now)
    rates+=("$(rate "$SWAKS_N" "$(python3 -c "print($end - $start)")")")
done
RESULT[sokkel-one]=$(median "${rates[@]}")

quote() { printf '%q ' "$@" | sed "s|$WORK|\$WORK|g; s|$SERVER|127.0.0.1:PORT|g; s/ $//"; }
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
load=$(cut -d' ' -f1-3 /proc/loadavg)
echo
echo "Sending to Postfix smtp-sink on loopback, $SIZE-byte body; $(nproc) CPUs ($cpu), Linux $(uname -r), load average $load at the end, $(date -u +%Y-%m-%dT%H:%MZ); median of $RUNS runs, wall clock from outside each process"
echo
echo "| client | messages per run | connections | msg/s | command |"
echo "|---|---:|---|---:|---|"
echo "| sokkel mail send --repeat | $MESSAGES | 1, pipelined | ${RESULT[sokkel]} | \`$(quote "${SOKKEL_CMD[@]}")\` |"
echo "| Python smtplib | $MESSAGES | 1 | ${RESULT[smtplib]} | \`python3 smtplib_send.py\` (one SMTP(), $MESSAGES sendmail() calls) |"
echo "| swaks | $SWAKS_N | 1 per message (1 process each) | ${RESULT[swaks]} | \`$(quote "${SWAKS_CMD[@]}")\` |"
echo "| sokkel mail send, once per message | $SWAKS_N | 1 per message (1 process each) | ${RESULT[sokkel-one]} | \`$(quote "${SOKKEL_ONE_CMD[@]}")\` |"
echo
echo "sokkel's own figure (from its first write to the last reply, start-up and connect excluded): ${RESULT[sokkel-self]} msg/s"
