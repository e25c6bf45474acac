#!/usr/bin/env bash
# Webhook cost benchmark (issue #14): SMTP ingest of `sokkel mail serve` fed by
# Postfix's smtp-source, without a webhook and with one posting to a receiver
# that accepts connections and never answers (the worst receiver there is), in
# the same run, alternating, so the ratio compares like with like.
#
#   bash bench/webhook.sh          (from the repo root; about a minute with the defaults)
#
# Needs cargo, python3 and /usr/sbin/smtp-source (apt-get install -y postfix);
# installs nothing, fails if one is missing. Loopback only; every process
# started here is stopped when this script exits.
#
# Settings (environment):
#   WEBHOOK_BENCH_SESSIONS=20     parallel smtp-source sessions
#   WEBHOOK_BENCH_MESSAGES=10000  messages per run
#   WEBHOOK_BENCH_SIZE=4096       message size in bytes
#   WEBHOOK_BENCH_ROUNDS=3        rounds of (without, with)
#   WEBHOOK_BENCH_SOKKEL=PATH     use this sokkel binary instead of building the work tree
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SESSIONS=${WEBHOOK_BENCH_SESSIONS:-20}
MESSAGES=${WEBHOOK_BENCH_MESSAGES:-10000}
SIZE=${WEBHOOK_BENCH_SIZE:-4096}
ROUNDS=${WEBHOOK_BENCH_ROUNDS:-3}
SOURCE=/usr/sbin/smtp-source

die() { echo "webhook.sh: $*" >&2; exit 1; }
[ -x "$SOURCE" ] || die "smtp-source missing: apt-get install -y postfix"
while IFS= read -r var; do unset "$var"; done < <(compgen -e | grep '^SOKKEL_' || true)

if [ -n "${WEBHOOK_BENCH_SOKKEL:-}" ]; then
    SOKKEL=$WEBHOOK_BENCH_SOKKEL
else
    cargo build --release -q -p sokkel
    SOKKEL=${CARGO_TARGET_DIR:-target}/release/sokkel
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

# The receiver that never answers: accepts and holds every connection.
HOOK_PORT=$(free_port)
python3 - "$HOOK_PORT" <<'PY' &
import socket, sys, time
listener = socket.socket()
listener.bind(("127.0.0.1", int(sys.argv[1])))
listener.listen(1024)
listener.settimeout(1)
held, end = [], time.monotonic() + 3600
while time.monotonic() < end:
    try:
        held.append(listener.accept()[0])
    except socket.timeout:
        pass
PY
PIDS+=($!)
wait_listening "$HOOK_PORT"

# One run: a fresh store, smtp-source with a new connection per message; prints
# msg/s and the server's CPU milliseconds per 1,000 messages.
run() {  # with|without
    local port db start end pid stored
    port=$(free_port)
    db="$WORK/$1-$RANDOM.db"
    local hook=()
    [ "$1" = with ] && hook=(--webhook-url "http://127.0.0.1:$HOOK_PORT/hook" --webhook-limit 0)
    "$SOKKEL" mail serve --smtp "127.0.0.1:$port" --db "$db" --no-http --no-pop3 --no-imap \
        "${hook[@]}" >"$WORK/serve.out" 2>"$WORK/serve.err" &
    pid=$!
    PIDS+=("$pid")
    wait_listening "$port"
    start=$(date +%s.%N)
    "$SOURCE" -s "$SESSIONS" -m "$MESSAGES" -l "$SIZE" \
        -f from@bench.test -t to@bench.test "127.0.0.1:$port" >"$WORK/source.out" 2>&1 \
        || { cat "$WORK/source.out" >&2; die "smtp-source failed"; }
    end=$(date +%s.%N)
    # The server's own CPU time (user + system), which other load on the machine
    # disturbs far less than the rate does.
    local ticks
    ticks=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    kill -TERM "$pid"
    wait "$pid" 2>/dev/null || true
    stored=$(count_stored "$db")
    [ "$stored" -eq "$MESSAGES" ] || die "sokkel stored $stored of $MESSAGES messages ($1 webhook)"
    if [ "$1" = with ]; then
        grep -q "webhook: message .* dropped" "$WORK/serve.err" || die "no webhook drop was logged"
        grep -o 'webhook: [0-9]* posted.*' "$WORK/serve.err" | tail -1 >"$WORK/counts" || true
    fi
    rm -f "$db" "$db"-*
    python3 -c "print(f'{$MESSAGES / ($end - $start):.0f} {$ticks * 1000 / $(getconf CLK_TCK) / ($MESSAGES / 1000):.0f}')"
}

echo "smtp-source -s $SESSIONS -m $MESSAGES -l $SIZE, new connection per message;" \
    "$(nproc) cores, $(uname -r), $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "| round | without webhook: msg/s | CPU ms per 1,000 msgs | with a webhook that never answers: msg/s | CPU ms per 1,000 msgs | rate with / without | CPU with / without |"
echo "|---:|---:|---:|---:|---:|---:|---:|"
for round in $(seq "$ROUNDS"); do
    result=$(run without)
    read -r without without_cpu <<<"$result"
    result=$(run with)
    read -r with with_cpu <<<"$result"
    ratio=$(python3 -c "print(f'{$with / $without:.2f}')")
    cpu_ratio=$(python3 -c "print(f'{$with_cpu / $without_cpu:.2f}')")
    echo "| $round | $without | $without_cpu | $with | $with_cpu | ${ratio}x | ${cpu_ratio}x |"
done
echo
echo "last run with the webhook: $(cat "$WORK/counts" 2>/dev/null || echo '(no counts logged)')"
