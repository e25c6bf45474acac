"""Sends one message to the catcher with smtplib: send_mail.py PORT KIND [TRAP_PORT].

KIND is "plain" (text, HTML and a 1 KiB binary attachment whose bytes are
bytes(range(256)) * 4) or "hostile" (HTML with a script, an onerror handler and
a remote image on 127.0.0.1:TRAP_PORT)."""
import smtplib
import sys
from email.message import EmailMessage

port, kind = int(sys.argv[1]), sys.argv[2]
m = EmailMessage()
m["From"] = "Rick Sanchez <rick@example.com>"
m["To"] = "Morty <morty@example.com>"
if kind == "plain":
    m["Subject"] = "Portal fluid invoice"
    m.set_content("Hello Morty, the invoice is attached.")
    m.add_alternative("<p>Hello <b>Morty</b>, the invoice is attached.</p>", subtype="html")
    m.add_attachment(bytes(range(256)) * 4, maintype="application",
                     subtype="octet-stream", filename="fluid.bin")
else:
    trap = int(sys.argv[3])
    m["Subject"] = "Totally harmless"
    m.set_content("Nothing to see.")
    m.add_alternative(
        "<p>Harmless text</p>"
        "<script>window.pwnedByScript = 1; parent.pwnedByScript = 1;</script>"
        "<img src=\"x-broken\" onerror=\"window.pwnedByHandler = 1; parent.pwnedByHandler = 1\">"
        f"<img src=\"http://127.0.0.1:{trap}/remote.png\">"
        f"<div style=\"background:url(http://127.0.0.1:{trap}/bg.png)\">bg</div>",
        subtype="html")
with smtplib.SMTP("127.0.0.1", port) as smtp:
    smtp.send_message(m)
