"""Sends three messages made to tell Mailpit's search operators apart:
send_search_corpus.py PORT. Raw bytes through smtplib's sendmail, so a Bcc
header and the envelope stay exactly as written."""
import smtplib
import sys
from email.message import EmailMessage

port = int(sys.argv[1])

alpha = EmailMessage()
alpha["From"] = "Alice Able <alice@alpha.test>"
alpha["To"] = "Tom <tom@alpha.test>"
alpha["Cc"] = "Carol <carol@alpha.test>"
alpha["Reply-To"] = "Replies <replies@alpha.test>"
alpha["Subject"] = "Quarterly report"
alpha["Message-ID"] = "<alpha-1@alpha.test>"
alpha["X-Tags"] = "finance, urgent"
alpha.set_content("The quarterly numbers are attached.")
alpha.add_attachment(b"%PDF-1.4\n" + b"0" * 1000, maintype="application",
                     subtype="pdf", filename="report.pdf")

beta = EmailMessage()
beta["From"] = "Bob <bob@beta.test>"
beta["To"] = "Tina <tina@beta.test>"
beta["Bcc"] = "Hidden <hidden@beta.test>"
beta["Subject"] = "Holiday photos"
beta["Message-ID"] = "<beta-2@beta.test>"
beta.set_content("Photos from the trip.")
beta.add_alternative('<p>Photos <img src="cid:photo1"></p>', subtype="html")
# With a file name, Python makes a part an attachment unless told otherwise.
beta.get_payload()[1].add_related(b"\x89PNG" + b"\x00" * 30000, maintype="image",
                                  subtype="png", cid="<photo1>", filename="photo1.png",
                                  disposition="inline")

gamma = EmailMessage()
gamma["From"] = "Gary <gary@gamma.test>"
gamma["To"] = "Tom <tom@alpha.test>"
gamma["Subject"] = "Lunch tomorrow"
gamma["Message-ID"] = "<gamma-3@gamma.test>"
gamma.set_content("Shall we meet at noon? Quarterly plans can wait.")

with smtplib.SMTP("127.0.0.1", port) as smtp:
    smtp.sendmail("alice@alpha.test", ["tom@alpha.test", "carol@alpha.test", "blind@alpha.test"],
                  alpha.as_bytes())
    smtp.sendmail("bob@beta.test", ["tina@beta.test", "hidden@beta.test"], beta.as_bytes())
    smtp.sendmail("gary@gamma.test", ["tom@alpha.test"], gamma.as_bytes())
