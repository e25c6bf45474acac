"""Sends one message per subject to the catcher with smtplib, in order:
send_named.py PORT [--png] SUBJECT [SUBJECT ...].

Each has a text and an HTML body and comes from "Summer Smith
<summer@example.com>", so the page's tests can find every row by its subject.
With --png each also has a 2x2 PNG attached as pixel.png."""
import base64
import smtplib
import sys
from email.message import EmailMessage

# A valid 2x2 RGB PNG.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAEElEQVR4nGM4YWMDRAwQCgAlPgUBdJmUYAAAAABJRU5ErkJggg==")

port, subjects = int(sys.argv[1]), sys.argv[2:]
png = subjects[:1] == ["--png"]
if png:
    subjects = subjects[1:]
with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
    for subject in subjects:
        m = EmailMessage()
        m["From"] = "Summer Smith <summer@example.com>"
        m["To"] = "Beth <beth@example.com>"
        m["Subject"] = subject
        m.set_content(f"Text of {subject}.")
        m.add_alternative(f"<p>HTML of <b>{subject}</b>.</p>", subtype="html")
        if png:
            m.add_attachment(PNG, maintype="image", subtype="png", filename="pixel.png")
        smtp.send_message(m)
