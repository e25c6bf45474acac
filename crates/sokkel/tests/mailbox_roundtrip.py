"""Mailboxes written and read by Python's `mailbox` module, for import_export.rs.

write-mbox PATH         an mbox file of MBOX_MESSAGES, as mailbox.mbox writes it
write-maildir DIR       a Maildir (and a Maildir++ folder .Archive) of MAILDIR_MESSAGES;
                        those named seen are in cur/ with the S flag
compare-mbox A B        the messages of both, as mailbox.mbox reads them (get_bytes),
                        must be equal and in the same order; prints the count
compare-maildir A B     the messages of both Maildirs (with their folders), keyed by
                        Message-ID: bytes and the S flag must be equal; prints the count
"""

import email.message
import mailbox
import os
import sys


def attachment_message():
    msg = email.message.EmailMessage()
    msg["From"] = "Carol <carol@example.com>"
    msg["To"] = "dave@example.com"
    msg["Subject"] = "with an attachment"
    msg["Message-ID"] = "<attach@example.com>"
    msg.set_content("See the attached file.\nFrom here it is binary.\n")
    msg.add_attachment(bytes(range(256)) * 8, maintype="application",
                       subtype="octet-stream", filename="blob.bin")
    return msg.as_bytes()


MBOX_MESSAGES = [
    (b"From alice@example.com Mon Nov 30 10:00:00 2026\n",
     b"From: Alice <alice@example.com>\nTo: bob@example.com\nSubject: from lines\n"
     b"Message-ID: <from-lines@example.com>\n\n"
     b"From the start of a line.\n>From quoted already.\n>>From twice.\nFrom\n\nend\n"),
    (b"From bob@example.com Mon Nov 30 10:01:00 2026\n",
     b"From: bob@example.com\r\nTo: alice@example.com\r\nSubject: crlf\r\n"
     b"Message-ID: <crlf@example.com>\r\n\r\nCRLF lines\r\n.\r\n..dots\r\n"),
    (b"From carol@example.com Mon Nov 30 10:02:00 2026\n",
     "From: carol@example.com\nTo: alice@example.com\nSubject: 8-bit Grüße\n"
     "Message-ID: <eight-bit@example.com>\nContent-Type: text/plain; charset=latin-1\n"
     "Content-Transfer-Encoding: 8bit\n\n".encode() + "Grüße, café\n".encode("latin-1")),
    (b"From dave@example.com Mon Nov 30 10:03:00 2026\n",
     b"From: dave@example.com\nTo: alice@example.com\nSubject: no newline at the end\n"
     b"Message-ID: <no-newline@example.com>\n\nlast line without a line break"),
    (b"From carol@example.com Mon Nov 30 10:04:00 2026\n", attachment_message()),
    (b"From erin@example.com Mon Nov 30 10:05:00 2026\n",
     b"From: erin@example.com\nTo: alice@example.com\nSubject: blank lines at the end\n"
     b"Message-ID: <blank-end@example.com>\n\nbody\n\n\n"),
]

MAILDIR_MESSAGES = [
    # (folder, seen, bytes)
    ("", False, b"From: a@example.com\nTo: b@example.com\nSubject: new one\n"
                b"Message-ID: <md-new@example.com>\n\nunread\nFrom the start\n"),
    ("", True, b"From: a@example.com\r\nTo: b@example.com\r\nSubject: seen one\r\n"
               b"Message-ID: <md-seen@example.com>\r\n\r\nread\r\n"),
    ("", True, "From: c@example.com\nTo: b@example.com\nSubject: seen, 8-bit\n"
               "Message-ID: <md-8bit@example.com>\n\n".encode() + "é\xff".encode("latin-1")),
    ("Archive", False, b"From: d@example.com\nTo: b@example.com\nSubject: archived\n"
                       b"Message-ID: <md-archived@example.com>\n\nin a folder\n"),
]


def write_mbox(path):
    box = mailbox.mbox(path, create=True)
    box.lock()
    for from_line, raw in MBOX_MESSAGES:
        box.add(from_line + raw)
    box.flush()
    box.unlock()
    box.close()


def write_maildir(path):
    top = mailbox.Maildir(path, create=True)
    for folder, seen, raw in MAILDIR_MESSAGES:
        box = top
        if folder:
            box = top.add_folder(folder) if folder not in top.list_folders() else top.get_folder(folder)
        key = box.add(raw)
        if seen:
            # Renamed rather than rewritten, so the bytes stay exactly these.
            os.rename(os.path.join(box._path, "new", key),
                      os.path.join(box._path, "cur", key + ":2,S"))


def mbox_bytes(path):
    box = mailbox.mbox(path, create=False)
    return [box.get_bytes(key) for key in box.keys()]


def compare_mbox(a, b):
    left, right = mbox_bytes(a), mbox_bytes(b)
    if len(left) != len(right):
        sys.exit(f"{a} has {len(left)} messages, {b} has {len(right)}")
    for n, (x, y) in enumerate(zip(left, right)):
        if x != y:
            sys.exit(f"message {n + 1} differs:\n{x!r}\n{y!r}")
    print(len(left))


def maildir_messages(path):
    found = {}
    boxes = [mailbox.Maildir(path, create=False)]
    boxes += [boxes[0].get_folder(name) for name in boxes[0].list_folders()]
    for box in boxes:
        for key in box.keys():
            raw = box.get_bytes(key)
            message_id = box.get_message(key)["Message-ID"]
            found[message_id] = (raw, "S" in box.get_message(key).get_flags())
    return found


def compare_maildir(a, b):
    left, right = maildir_messages(a), maildir_messages(b)
    if left != right:
        sys.exit(f"the Maildirs differ:\n{left!r}\n{right!r}")
    print(len(left))


COMMANDS = {
    "write-mbox": write_mbox,
    "write-maildir": write_maildir,
    "compare-mbox": compare_mbox,
    "compare-maildir": compare_maildir,
}

if __name__ == "__main__":
    COMMANDS[sys.argv[1]](*sys.argv[2:])
