"""Parses one message from stdin with Python's email package and prints it as JSON.

The send tests compare what a server stored with what `sokkel mail send` was asked to
send; parsing with a library nobody here wrote keeps that comparison honest. Payloads
are printed as hex so binary attachments compare byte for byte. Text parts are
printed with LF line ends: the email package keeps CRLF in a 7bit part but gives LF
for a quoted-printable one, and the tests compare lines, not how they were encoded
(they check the wire for CRLF separately).
"""

import email
import email.policy
import json
import sys


def addresses(message, name):
    header = message[name]
    if header is None:
        return None
    return [[a.display_name, a.addr_spec] for a in header.addresses]


def main():
    raw = sys.stdin.buffer.read()
    message = email.message_from_bytes(raw, policy=email.policy.default)
    parts = []
    defects = [repr(d) for d in message.defects]
    for part in message.walk():
        defects += [repr(d) for d in part.defects]
        if part.is_multipart():
            continue
        payload = part.get_payload(decode=True) or b""
        parts.append(
            {
                "content_type": part.get_content_type(),
                "charset": part.get_content_charset(),
                "disposition": part.get_content_disposition(),
                "filename": part.get_filename(),
                "text": (
                    part.get_content().replace("\r\n", "\n")
                    if part.get_content_maintype() == "text"
                    else None
                ),
                "hex": payload.hex(),
            }
        )
    date = message["Date"]
    print(
        json.dumps(
            {
                "content_type": message.get_content_type(),
                "headers": [[name, str(value)] for name, value in message.items()],
                "from": addresses(message, "From"),
                "to": addresses(message, "To"),
                "cc": addresses(message, "Cc"),
                "bcc": addresses(message, "Bcc"),
                "subject": None if message["Subject"] is None else str(message["Subject"]),
                "date_parses": date is not None and date.datetime is not None,
                "message_id": None if message["Message-ID"] is None else str(message["Message-ID"]),
                "defects": defects,
                "parts": parts,
            }
        )
    )


if __name__ == "__main__":
    main()
