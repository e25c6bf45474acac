#!/usr/bin/env bash
# Web API benchmark (issue #5): `sokkel mail serve` with 100,000 messages, filled
# through SMTP, answering the Mailpit-style API under wrk, and its memory with the web
# page open in headless Chromium while mail arrives at 500 msg/s.
#
#   bash bench/web.sh                                  (from the repo root; ~5 minutes)
#   WEB_BENCH_FILL=20000 WEB_BENCH_DURATION=3s WEB_BENCH_RATE_SECS=10 bash bench/web.sh
#
# Needs cargo (unless WEB_BENCH_SOKKEL is set), python3, wrk (apt-get install -y wrk),
# node and chromium (apt-get install -y nodejs npm chromium) and playwright-core in
# crates/sokkel/tests/web_js (`npm ci` there; .ci/run does it). Installs nothing and
# stops with a message naming what is missing. Loopback only; every process started
# here runs in its own process group and is killed when this script exits.
#
# Settings (environment):
#   WEB_BENCH_FILL=100000        messages put in the store through SMTP before measuring
#   WEB_BENCH_FILL_CONNS=8       parallel SMTP connections for the fill (each reused)
#   WEB_BENCH_WRK_THREADS=2      wrk -t
#   WEB_BENCH_WRK_CONNS=8        wrk -c
#   WEB_BENCH_DURATION=10s       wrk -d, per request kind
#   WEB_BENCH_RATE=500           msg/s sent while the page is open (0: skip that part)
#   WEB_BENCH_RATE_SECS=30       for this many seconds
#   WEB_BENCH_SERVER_THREADS=1   sokkel mail serve --threads (its default is 1)
#   WEB_BENCH_SOKKEL=PATH        use this sokkel binary (SOKKEL=PATH also works)
#                                instead of building the work tree
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

FILL=${WEB_BENCH_FILL:-100000}
FILL_CONNS=${WEB_BENCH_FILL_CONNS:-8}
WRK_THREADS=${WEB_BENCH_WRK_THREADS:-2}
WRK_CONNS=${WEB_BENCH_WRK_CONNS:-8}
DURATION=${WEB_BENCH_DURATION:-10s}
RATE=${WEB_BENCH_RATE:-500}
RATE_SECS=${WEB_BENCH_RATE_SECS:-30}
SERVER_THREADS=${WEB_BENCH_SERVER_THREADS:-1}
SOKKEL=${WEB_BENCH_SOKKEL:-${SOKKEL:-}}
WEB_JS=crates/sokkel/tests/web_js

die() { echo "web.sh: $*" >&2; exit 1; }
command -v python3 >/dev/null || die "python3 missing: apt-get install -y python3"
command -v wrk >/dev/null || die "wrk missing: apt-get install -y wrk"
if [ "$RATE" != 0 ]; then
    command -v node >/dev/null || die "node missing: apt-get install -y nodejs npm"
    [ -x /usr/bin/chromium ] || die "/usr/bin/chromium missing: apt-get install -y chromium"
    [ -d "$WEB_JS/node_modules/playwright-core" ] \
        || die "playwright-core missing: (cd $WEB_JS && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci)"
fi
[ "$FILL" -ge 100 ] || die "WEB_BENCH_FILL must be at least 100"
while IFS= read -r var; do unset "$var"; done < <(compgen -e | grep '^SOKKEL_' || true)

if [ -z "$SOKKEL" ]; then
    cargo build --release -q -p sokkel
    SOKKEL=target/release/sokkel
fi
[ -x "$SOKKEL" ] || die "no sokkel binary at $SOKKEL"

WORK=$(mktemp -d)
DB="$WORK/mail.db"
GROUPS_STARTED=()
cleanup() {
    for pgid in "${GROUPS_STARTED[@]}"; do kill -TERM -- "-$pgid" 2>/dev/null || true; done
    sleep 0.5
    for pgid in "${GROUPS_STARTED[@]}"; do kill -KILL -- "-$pgid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
# Signals end the script through `exit`, so the EXIT trap runs for them too.
trap 'exit 130' INT
trap 'exit 143' TERM

# Starts a command in a process group of its own (so it and its children can be
# killed together), under `timeout` as a last resort; sets STARTED_PID.
start_group() {  # limit-seconds command...
    local limit=$1; shift
    setsid timeout "$limit" "$@" &
    STARTED_PID=$!
    GROUPS_STARTED+=("$STARTED_PID")
}

stop_group() {  # pid
    kill -TERM -- "-$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

# shellcheck source=bench/lib.sh
source bench/lib.sh

# Starts the catcher on the store; sets SERVER_PID (the sokkel process), SMTP, HTTP.
start_server() {  # log-name
    SMTP=$(free_port)
    HTTP=$(free_port)
    start_group 3600 "$SOKKEL" mail serve --db "$DB" --smtp "127.0.0.1:$SMTP" \
        --http "127.0.0.1:$HTTP" --no-pop3 --no-imap --threads "$SERVER_THREADS" \
        >"$WORK/$1.out" 2>"$WORK/$1.err"
    SERVER_GROUP=$STARTED_PID
    wait_listening "$SMTP"
    wait_listening "$HTTP"
    SERVER_PID=$(pgrep -g "$SERVER_GROUP" -x sokkel | head -n1)
    [ -n "$SERVER_PID" ] || die "cannot find the sokkel process; stderr: $(cat "$WORK/$1.err")"
    BASE="http://127.0.0.1:$HTTP/"
}

# One field of a JSON answer from the API, e.g. `api 'api/v1/messages?limit=1' total`.
api() {  # path python-expression-on-j
    python3 - "$BASE$1" "$2" <<'PY'
import json, sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=30) as response:
    j = json.load(response)
print(eval(sys.argv[2], {"j": j}))
PY
}

memory() {  # field (VmHWM, VmRSS) -> MB
    awk -v f="$1:" '$1 == f {printf "%.1f", $2/1024}' "/proc/$SERVER_PID/status"
}

# ---- 1. fill the store through SMTP -------------------------------------------------

echo "web.sh: filling the store with $FILL messages over $FILL_CONNS SMTP connections" >&2
start_server serve
LOAD_AT_START=$(cut -d' ' -f1-3 /proc/loadavg)
FILL_LINE=$(timeout 3600 python3 bench/web_fill.py fill "$SMTP" "$FILL" "$FILL_CONNS") \
    || die "the fill failed"
echo "web.sh: $FILL_LINE" >&2
STORED=$(api 'api/v1/messages?limit=1' 'j["total"]')
[ "$STORED" -eq "$FILL" ] || die "the API lists $STORED messages, $FILL were sent"
FILL_HWM=$(memory VmHWM)
DB_MB=$(du -sm "$WORK" | cut -f1)

# ---- 2. the API under wrk ------------------------------------------------------------

DEEP=$((FILL / 2 < 50000 ? FILL / 2 : 50000))
CURSOR=$(api "api/v1/messages?limit=1&start=$DEEP" 'j["messages"][0]["ID"]')
RARE=$(api 'api/v1/search?query=zanzibar&limit=1' 'j["messages_count"]')
COMMON=$(api 'api/v1/search?query=quarterly&limit=1' 'j["messages_count"]')
[ "$RARE" -gt 0 ] || die "the search for zanzibar found nothing"
TAGGED=$(api 'api/v1/tag-counts' 'sum(t["Total"] for t in j)')

# kind | path | matches | target p99 (ms, empty: for information)
CASES=(
    "list, newest|api/v1/messages?limit=50|$FILL|20"
    "list, deep offset|api/v1/messages?limit=50&start=$DEEP|$FILL|20"
    "list, cursor at offset $DEEP|api/v1/messages?limit=50&before=$CURSOR|$FILL|20"
    "search, rare word|api/v1/search?query=zanzibar&limit=50|$RARE|50"
    "search, common word|api/v1/search?query=quarterly&limit=50|$COMMON|"
    "tag counts (the page's sidebar)|api/v1/tag-counts|$TAGGED|"
)

run_wrk() {  # path duration -> RESULT line
    local limit
    limit=$(( ${2%s} + 30 ))
    timeout "$limit" wrk -t "$WRK_THREADS" -c "$WRK_CONNS" -d "$2" --latency \
        -s bench/wrk_latency.lua "$BASE$1" >"$WORK/wrk.out" 2>&1 \
        || { cat "$WORK/wrk.out" >&2; die "wrk failed on $1"; }
    grep '^RESULT ' "$WORK/wrk.out" || { cat "$WORK/wrk.out" >&2; die "no RESULT from wrk"; }
}

echo "web.sh: wrk -t$WRK_THREADS -c$WRK_CONNS -d$DURATION on ${#CASES[@]} requests" >&2
run_wrk "api/v1/messages?limit=50" 2s >/dev/null   # warm-up, not reported
declare -A RESULT HWM
for case in "${CASES[@]}"; do
    IFS='|' read -r kind path _ _ <<<"$case"
    RESULT[$kind]=$(run_wrk "$path" "$DURATION")
    field() { sed -E "s/.* $1=([^ ]+).*/\1/" <<<"${RESULT[$kind]}"; }
    if [ "$(field non2xx)" != 0 ] || [ "$(field errors)" != 0 ]; then
        die "$kind: wrk saw failures: ${RESULT[$kind]}"
    fi
    HWM[$kind]=$(memory VmHWM)
done
stop_group "$SERVER_GROUP"

# ---- 3. memory with the page open and mail arriving ------------------------------------

if [ "$RATE" != 0 ]; then
    # A fresh process on the same store, so its VmHWM covers this part alone.
    start_server serve-live
    echo "web.sh: page open in chromium, $RATE msg/s for $RATE_SECS s" >&2
    DONE_FILE="$WORK/sender-done"
    start_group $((RATE_SECS + 180)) node bench/web_rss.mjs "$BASE" "$DONE_FILE" \
        $((RATE_SECS + 60)) >"$WORK/page.out" 2>"$WORK/page.err"
    PAGE_GROUP=$STARTED_PID
    for _ in $(seq 600); do
        grep -q '^ready' "$WORK/page.out" && break
        kill -0 "$PAGE_GROUP" 2>/dev/null || break
        sleep 0.1
    done
    grep -q '^ready' "$WORK/page.out" || die "the page did not open: $(cat "$WORK/page.err")"
    IDLE_RSS=$(memory VmRSS)
    start_group $((RATE_SECS + 120)) python3 bench/web_fill.py pace "$SMTP" "$RATE" \
        "$RATE_SECS" 8 "$WORK/last-subject" >"$WORK/pace.out" 2>&1
    PACE_GROUP=$STARTED_PID
    MAX_RSS=0
    while kill -0 "$PACE_GROUP" 2>/dev/null; do
        MAX_RSS=$(python3 -c "print(max($MAX_RSS, $(memory VmRSS)))")
        sleep 0.5
    done
    wait "$PACE_GROUP" || die "the paced sender failed: $(cat "$WORK/pace.out")"
    touch "$DONE_FILE"
    PACE_LINE=$(cat "$WORK/pace.out")
    wait "$PAGE_GROUP" || die "the page check failed: $(cat "$WORK/page.err" "$WORK/page.out")"
    LIVE_LINE=$(grep '^live ok' "$WORK/page.out")
    LIVE_HWM=$(memory VmHWM)
    LIVE_RSS=$(memory VmRSS)
    LIVE_TOTAL=$(api 'api/v1/messages?limit=1' 'j["total"]')
    stop_group "$SERVER_GROUP"
fi

# ---- report --------------------------------------------------------------------------

echo
echo "sokkel web API, $FILL messages filled through SMTP; wrk -t$WRK_THREADS -c$WRK_CONNS -d$DURATION"
echo "machine: $(nproc) cores, $(uname -r), load average at start $LOAD_AT_START; $(date -u +%Y-%m-%dT%H:%MZ)"
echo "command: WEB_BENCH_SOKKEL=$SOKKEL WEB_BENCH_FILL=$FILL WEB_BENCH_DURATION=$DURATION WEB_BENCH_RATE=$RATE WEB_BENCH_RATE_SECS=$RATE_SECS bash bench/web.sh"
echo
echo "Fill: $FILL_LINE ($FILL_CONNS smtplib connections, each reused); store $DB_MB MB on disk"
echo
echo "| request | matches | p50 ms | p90 ms | p99 ms | max ms | req/s | p99 target | server VmHWM after (MB) |"
echo "|---|---:|---:|---:|---:|---:|---:|---|---:|"
for case in "${CASES[@]}"; do
    IFS='|' read -r kind path matches target <<<"$case"
    line=${RESULT[$kind]}
    field() { sed -E "s/.* $1=([^ ]+).*/\1/" <<<"$line"; }
    verdict="(information)"
    if [ -n "$target" ]; then
        if python3 -c "import sys; sys.exit(0 if $(field p99) < $target else 1)"; then
            verdict="< $target ms: met"
        else
            verdict="< $target ms: MISSED"
        fi
    fi
    echo "| \`GET /$path\` ($kind) | $matches | $(field p50) | $(field p90) | $(field p99) | $(field max) | $(field rps) | $verdict | ${HWM[$kind]} |"
done
echo
echo "Server peak RSS (VmHWM) after the fill: $FILL_HWM MB; the last column is the same figure after each wrk run"
if [ "$RATE" != 0 ]; then
    verdict=$(python3 -c "print('met' if $LIVE_HWM < 80 else 'MISSED')")
    echo
    echo "Page open in headless Chromium, mail at $RATE msg/s for $RATE_SECS s (fresh server process on the same store):"
    echo "- sender: $PACE_LINE; store now $LIVE_TOTAL messages"
    echo "- server VmRSS: $IDLE_RSS MB with the page open before the mail, at most $MAX_RSS MB sampled every 0.5 s, $LIVE_RSS MB at the end"
    echo "- server VmHWM (peak RSS): $LIVE_HWM MB (target < 80 MB: $verdict)"
    echo "- page: $LIVE_LINE"
fi
echo
echo "Ingest with indexing on is bench/smtp.sh's job:"
echo "  SMTP_BENCH_SERVERS=\"sokkel smtp-sink\" SMTP_BENCH_LIST_FILL=0 bash bench/smtp.sh"
