# Helpers the benchmark scripts share: `source bench/lib.sh` from the repo root, after
# defining `die`. Everything stays on 127.0.0.1.

# A TCP port free on 127.0.0.1 right now.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Waits up to 10 s for something to listen on 127.0.0.1:PORT, or dies.
wait_listening() {  # port
    for _ in $(seq 100); do
        python3 - "$1" <<'PY' 2>/dev/null && return 0
import socket, sys
socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=0.2).close()
PY
        sleep 0.1
    done
    die "nothing listens on port $1"
}

# How many messages the sokkel store at DB holds.
count_stored() {  # db
    python3 - "$1" <<'PY'
import sqlite3, sys
print(sqlite3.connect(sys.argv[1]).execute("select count(*) from messages").fetchone()[0])
PY
}

# Waits up to 60 s until the store at DB holds COUNT messages (with the log in
# front of SQLite, issue #16, rows are written a moment after the 250); prints
# what it holds then.
wait_stored() {  # db count
    local stored
    for _ in $(seq 600); do
        stored=$(count_stored "$1")
        [ "$stored" -ge "$2" ] && break
        sleep 0.1
    done
    echo "$stored"
}
