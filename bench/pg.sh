#!/usr/bin/env bash
# SMTP ingest on PostgreSQL (issue #15): one `sokkel mail serve` node on a
# throwaway PostgreSQL cluster against one on SQLite, fed by Postfix's smtp-source
# in the same run, then 1, 2 and 3 nodes on one database; for each, messages per
# second and the CPU each message costs the node(s) and PostgreSQL (utime+stime
# from /proc before and after), and from those, on paper, how many cores a
# cluster needs for 10,000 and 50,000 messages a second.
#
#   bash bench/pg.sh            (from the repo root; a few minutes with the defaults)
#
# Needs cargo, python3, /usr/sbin/smtp-source (apt-get install -y postfix) and
# PostgreSQL's server programs (apt-get install -y postgresql; found under PG_BIN,
# else the newest /usr/lib/postgresql/*/bin). The cluster is initdb'd in a
# temporary directory with PostgreSQL's defaults (fsync and synchronous_commit
# on: a 250 means committed, as SQLite's synchronous=FULL does), listens on a
# free 127.0.0.1 port, and is stopped and removed at exit, as is every node.
# With several nodes, each gets its own smtp-source (sessions and messages
# split evenly), so no balancer's CPU is counted.
#
# Settings (environment):
#   PG_BENCH_SESSIONS=20       parallel smtp-source sessions in all
#   PG_BENCH_MESSAGES=20000    messages per run (as bench/smtp.sh)
#   PG_BENCH_SIZE=4096         message size in bytes
#   PG_BENCH_NODES="1 2 3"     node counts for the CPU table
#   PG_BENCH_SOKKEL=PATH       use this sokkel binary instead of building the work tree
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SESSIONS=${PG_BENCH_SESSIONS:-20}
MESSAGES=${PG_BENCH_MESSAGES:-20000}
SIZE=${PG_BENCH_SIZE:-4096}
NODE_COUNTS=${PG_BENCH_NODES:-1 2 3}
SOURCE=/usr/sbin/smtp-source

die() { echo "pg.sh: $*" >&2; exit 1; }
[ -x "$SOURCE" ] || die "smtp-source missing: apt-get install -y postfix"
if [ -n "${PG_BIN:-}" ]; then
    PGBIN=$PG_BIN
else
    PGBIN=$(find /usr/lib/postgresql -maxdepth 2 -name bin 2>/dev/null | sort -V | tail -1)
fi
[ -x "$PGBIN/initdb" ] || die "PostgreSQL's initdb missing: apt-get install -y postgresql, or set PG_BIN"
# Neither sokkel's settings nor libpq's (PGHOST, PGPASSWORD ...) from this shell.
while IFS= read -r var; do unset "$var"; done < <(compgen -e | grep -E '^(SOKKEL_|PG[A-Z]+$)' || true)

if [ -n "${PG_BENCH_SOKKEL:-}" ]; then
    SOKKEL=$PG_BENCH_SOKKEL
else
    cargo build --release -q -p sokkel
    SOKKEL=${CARGO_TARGET_DIR:-target}/release/sokkel
fi

# shellcheck source=bench/lib.sh
source bench/lib.sh

WORK=$(mktemp -d)
NODE_PIDS=()
AS_PG=()
[ "$(id -u)" -eq 0 ] && { chown postgres "$WORK"; AS_PG=(runuser -u postgres --); }
PGPORT=$(free_port)
cleanup() {
    for pid in "${NODE_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    "${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$WORK/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

"${AS_PG[@]}" "$PGBIN/initdb" -A trust -U postgres -E UTF8 --locale=C -D "$WORK/data" >/dev/null
"${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$WORK/data" -l "$WORK/pg.log" -w start \
    -o "-p $PGPORT -k $WORK -c listen_addresses=127.0.0.1 -c max_connections=200" >/dev/null
PGPID=$(head -1 "$WORK/data/postmaster.pid")
psql_run() { "${AS_PG[@]}" "$PGBIN/psql" -X -q -A -t -h "$WORK" -p "$PGPORT" -U postgres "$@"; }
HZ=$(getconf CLK_TCK)

ticks() {  # pids... -> their utime+stime summed, in clock ticks (gone ones count 0)
    local sum=0 pid
    for pid in "$@"; do
        [ -r "/proc/$pid/stat" ] && sum=$((sum + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)))
    done
    echo "$sum"
}
pg_pids() {  # the postmaster and every process it started (backends, WAL writer ...)
    echo "$PGPID" $(ps -o pid= --ppid "$PGPID")
}

start_node() {  # db-location port -> appends to NODE_PIDS
    SOKKEL_NO_HTTP=true SOKKEL_NO_POP3=true SOKKEL_NO_IMAP=true \
        "$SOKKEL" mail serve --smtp "127.0.0.1:$2" --db "$1" \
        >>"$WORK/nodes.out" 2>>"$WORK/nodes.err" &
    NODE_PIDS+=("$!")
    wait_listening "$2"
}

# One run: NODES nodes on DB, each fed by its own smtp-source; sets RATE,
# NODE_CPU_MS and PG_CPU_MS (CPU milliseconds per message).
run() {  # db-location nodes
    local db=$1 nodes=$2 ports=() n
    NODE_PIDS=()
    for n in $(seq "$nodes"); do
        ports+=("$(free_port)")
        start_node "$db" "${ports[-1]}"
    done
    # Every node has opened its pool and migrated before the clock starts.
    sleep 1
    local node_before pg_before start end
    node_before=$(ticks "${NODE_PIDS[@]}")
    pg_before=$(ticks $(pg_pids))
    start=$(date +%s.%N)
    local sources=()
    for n in $(seq "$nodes"); do
        "$SOURCE" -s $((SESSIONS / nodes)) -m $((MESSAGES / nodes)) -l "$SIZE" \
            -f from@bench.test -t to@bench.test "127.0.0.1:${ports[n - 1]}" \
            >"$WORK/source-$n.out" 2>&1 &
        sources+=("$!")
    done
    for pid in "${sources[@]}"; do
        wait "$pid" || { cat "$WORK"/source-*.out >&2; die "smtp-source failed"; }
    done
    end=$(date +%s.%N)
    local node_after pg_after sent=$(((MESSAGES / nodes) * nodes))
    node_after=$(ticks "${NODE_PIDS[@]}")
    pg_after=$(ticks $(pg_pids))
    RATE=$(python3 -c "print(f'{$sent / ($end - $start):.0f}')")
    NODE_CPU_MS=$(python3 -c "print(f'{($node_after - $node_before) * 1000 / $HZ / $sent:.3f}')")
    PG_CPU_MS=$(python3 -c "print(f'{($pg_after - $pg_before) * 1000 / $HZ / $sent:.3f}')")
    for pid in "${NODE_PIDS[@]}"; do kill -TERM "$pid"; wait "$pid" || true; done
    NODE_PIDS=()
    STORED_EXPECTED=$sent
}

stored_pg() {  # database -> messages in it
    psql_run -d "$1" -c "select count(*) from messages"
}

echo "sokkel $("$SOKKEL" --version | awk '{print $2}'), PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}'), $(nproc) cores, smtp-source -s $SESSIONS -m $MESSAGES -l $SIZE"

# SQLite and PostgreSQL, one node each, one after the other in the same run.
run "$WORK/sqlite.db" 1
[ "$(count_stored "$WORK/sqlite.db")" -eq "$STORED_EXPECTED" ] || die "SQLite stored $(count_stored "$WORK/sqlite.db") of $STORED_EXPECTED"
SQLITE_RATE=$RATE SQLITE_CPU=$NODE_CPU_MS
psql_run -d postgres -c "create database one"
run "postgres://postgres@127.0.0.1:$PGPORT/one" 1
[ "$(stored_pg one)" -eq "$STORED_EXPECTED" ] || die "PostgreSQL stored $(stored_pg one) of $STORED_EXPECTED"
echo
echo "| store | msg/s | node CPU ms/msg | PostgreSQL CPU ms/msg |"
echo "|---|---:|---:|---:|"
echo "| SQLite | $SQLITE_RATE | $SQLITE_CPU | - |"
echo "| PostgreSQL | $RATE | $NODE_CPU_MS | $PG_CPU_MS |"
python3 -c "print(f'\nPostgreSQL / SQLite: {$RATE / $SQLITE_RATE:.2f}x (goal: at least 0.5x)')"

echo
echo "| nodes | msg/s | nodes' CPU ms/msg | PostgreSQL CPU ms/msg | cores for 10,000 msg/s | cores for 50,000 msg/s |"
echo "|---:|---:|---:|---:|---:|---:|"
for nodes in $NODE_COUNTS; do
    db="n$nodes"
    psql_run -d postgres -c "create database $db"
    run "postgres://postgres@127.0.0.1:$PGPORT/$db" "$nodes"
    [ "$(stored_pg "$db")" -eq "$STORED_EXPECTED" ] || die "$nodes nodes stored $(stored_pg "$db") of $STORED_EXPECTED"
    # On paper: CPU seconds per message times the rate, for the nodes and for
    # PostgreSQL; the client's CPU and the balancer's are not counted.
    python3 -c "
node, pg = $NODE_CPU_MS / 1000, $PG_CPU_MS / 1000
print(f'| $nodes | $RATE | $NODE_CPU_MS | $PG_CPU_MS | {10000 * node:.1f} + {10000 * pg:.1f} | {50000 * node:.1f} + {50000 * pg:.1f} |')"
done
echo
echo "cores: nodes + PostgreSQL, from each run's CPU per message; PostgreSQL's part is one"
echo "server's, and its commits are serialised by the cluster-wide write lock, so past one"
echo "server's commit rate more nodes add latency, not throughput."
