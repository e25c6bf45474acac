"""Sends one message per subject to the catcher with smtplib, in order:
send_named.py PORT SUBJECT [SUBJECT ...].

Each has a text and an HTML body and comes from "Summer Smith
<summer@example.com>", so the page's tests can find every row by its subject."""
import smtplib
import sys
from email.message import EmailMessage

port, subjects = int(sys.argv[1]), sys.argv[2:]
with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
    for subject in subjects:
        m = EmailMessage()
        m["From"] = "Summer Smith <summer@example.com>"
        m["To"] = "Beth <beth@example.com>"
        m["Subject"] = subject
        m.set_content(f"Text of {subject}.")
        m.add_alternative(f"<p>HTML of <b>{subject}</b>.</p>", subtype="html")
        smtp.send_message(m)
