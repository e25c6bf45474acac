"""The network-programming course's echo clients, as students write them.

Run by tests/echo.rs against `sokkel echo serve`; what the course's code does is the
point, so it stays as plain as the course teaches it.

    course_client.py plain HOST PORT HEX...               one connection per message
    course_client.py ascii-length PAD HOST PORT HEX...    one connection, 4-digit headers
                                                          padded with PAD ("0" or " ")

Messages come in as hex on the command line; each reply goes out as one hex line.
"""

import socket
import sys


def echo_once(host, port, message):
    """The course's first client: connect, sendall, recv until it is all back, close."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.connect((host, port))
    sock.sendall(message)
    received = b""
    while len(received) < len(message):
        data = sock.recv(1024)
        if not data:
            break
        received += data
    sock.shutdown(socket.SHUT_RDWR)
    sock.close()
    return received


def send_message(sock, message, pad):
    header = str(len(message)).rjust(4, pad).encode()
    sock.sendall(header + message)


def receive_message(sock):
    """The course's framed receive: a 4-digit ASCII length, then that many bytes."""
    length = int(sock.recv(4).decode())
    data = b""
    while len(data) < length:
        chunk = sock.recv(length - len(data))
        if not chunk:
            break
        data += chunk
    return data


def main(argv):
    mode = argv[1]
    if mode == "plain":
        host, port, messages = argv[2], int(argv[3]), argv[4:]
        for hex_message in messages:
            print(echo_once(host, port, bytes.fromhex(hex_message)).hex(), flush=True)
    elif mode == "ascii-length":
        pad, host, port, messages = argv[2], argv[3], int(argv[4]), argv[5:]
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.connect((host, port))
        for hex_message in messages:
            send_message(sock, bytes.fromhex(hex_message), pad)
            print(receive_message(sock).hex(), flush=True)
        sock.shutdown(socket.SHUT_RDWR)
        sock.close()
    else:
        sys.exit("unknown mode " + mode)


if __name__ == "__main__":
    main(sys.argv)
