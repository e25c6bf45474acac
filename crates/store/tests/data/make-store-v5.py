"""Make crates/store/tests/data/store-v5.db with the release before schema 6."""
import json, os, signal, smtplib, socket, sqlite3, subprocess, sys, time, urllib.request
from email.message import EmailMessage

binary, db = sys.argv[1], sys.argv[2]

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

smtp_port, http_port = free_port(), free_port()
server = subprocess.Popen([binary, "mail", "serve", "--db", db, "--smtp", f"127.0.0.1:{smtp_port}",
                           "--http", f"127.0.0.1:{http_port}", "--hostname", "old.test"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
try:
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", smtp_port), 0.2).close(); break
        except OSError:
            time.sleep(0.1)
    else:
        sys.exit("server did not start")

    msgs = []  # (envelope from, envelope recipients, message bytes or EmailMessage)
    def plain(i, subject, body, to, cc=None, frm="Alice Sender <alice@old.test>"):
        m = EmailMessage()
        m["From"] = frm; m["To"] = to
        if cc: m["Cc"] = cc
        m["Subject"] = subject
        m["Date"] = f"Mon, 0{1 + i % 9} Jun 2025 10:00:00 +0000"
        m["Message-ID"] = f"<old-{i}@old.test>"
        m.set_content(body)
        return m
    words = ["zebra", "quokka", "narwhal", "axolotl", "pangolin", "okapi", "tapir", "wombat",
             "capybara", "dugong", "fossa", "gharial", "hoatzin", "ibex", "jerboa", "kinkajou",
             "lemur", "margay", "numbat", "olm"]
    for i in range(20):
        w = words[i]
        rcpt = [f"user{i % 4}@old.test"]
        if i % 5 == 0:
            m = plain(i, f"Plain {w} {i}", f"The body speaks of the {w}.\n", "Morty <Morty@Example.COM>", cc="rick@example.com")
            rcpt = ["Morty@Example.COM", "rick@example.com"]
        elif i % 5 == 1:
            m = plain(i, f"Résumé für {w} ✓", f"Unicode body with {w} and ünïcödé.\n", f"user{i % 4}@old.test")
        elif i % 5 == 2:
            m = plain(i, f"With attachment {w}", f"See the attached {w} report.\n", f"user{i % 4}@old.test", cc="Carol <carol@other.test>")
            m.add_attachment(f"{w},1,2,3\n".encode(), maintype="text", subtype="csv", filename=f"{w}.csv")
        elif i % 5 == 3:
            m = EmailMessage()
            m["From"] = "html@old.test"; m["To"] = f"user{i % 4}@old.test"
            m["Subject"] = f"HTML only {w}"; m["Message-ID"] = f"<old-{i}@old.test>"
            m.set_content(f"<html><body><p>An <b>{w}</b> in HTML.</p></body></html>", subtype="html")
        else:
            m = None  # raw, below
        if m is None:
            raw = f"this is not a header line\r\n\r\n{w} without headers {i}\r\n".encode()
        else:
            raw = m.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        msgs.append(("sender@old.test" if i != 7 else "", rcpt, raw))
    with smtplib.SMTP("127.0.0.1", smtp_port) as smtp:
        for frm, rcpt, raw in msgs:
            smtp.sendmail(frm, rcpt, raw)
    base = f"http://127.0.0.1:{http_port}/api/v1/messages"
    def call(method, body):
        req = urllib.request.Request(base, data=json.dumps(body).encode(), method=method,
                                     headers={"Content-Type": "application/json"})
        urllib.request.urlopen(req, timeout=10).read()
    # Ids 1..20: read some, delete a few (gaps in the ids).
    call("PUT", {"IDs": ["2", "3", "5", "8", "13", "20"], "Read": True})
    call("DELETE", {"IDs": ["4", "10", "11", "17"]})
finally:
    server.send_signal(signal.SIGTERM)
    server.wait(timeout=30)

conn = sqlite3.connect(db)
conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
print("user_version", conn.execute("PRAGMA user_version").fetchone()[0],
      "messages", conn.execute("SELECT count(*) FROM messages").fetchone()[0],
      "read", conn.execute("SELECT group_concat(id) FROM messages WHERE read").fetchone()[0])
conn.close()
# The disk reserve that store keeps next to its file is no part of the fixture.
for leftover in (db + "-reserve", db + "-wal", db + "-shm"):
    if os.path.exists(leftover):
        os.remove(leftover)
