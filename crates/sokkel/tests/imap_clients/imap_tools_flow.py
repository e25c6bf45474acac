"""imap-tools (PyPI) as its users write it: MailBox.fetch with criteria and without
marking seen, fetch that marks seen, flag, move to Trash (a delete for the catcher),
append to the INBOX, and a sent copy appended to Sent, which stays out of the
caught mail. Each change is checked in the web API."""

from imap_tools import AND, MailBoxUnencrypted, MailMessageFlags

from catcher import check, main

SUBJECTS = ["imap-tools one", "imap-tools two", "imap-tools three"]


def flow(catcher):
    for subject in SUBJECTS:
        catcher.send(subject, f"body of {subject}")
    with MailBoxUnencrypted(catcher.host, port=catcher.imap_port).login(
        catcher.user, catcher.password, initial_folder="INBOX"
    ) as mailbox:
        unseen = list(mailbox.fetch(AND(seen=False), mark_seen=False))
        check(sorted(m.subject for m in unseen) == sorted(SUBJECTS),
              f"fetch unseen: {[m.subject for m in unseen]}")
        by_subject = {m.subject: m for m in unseen}
        one = by_subject["imap-tools one"]
        check(one.text.strip() == "body of imap-tools one", f"the text body: {one.text!r}")
        check(one.from_ == "rick@example.test", f"the sender: {one.from_!r}")
        check(not catcher.message("imap-tools one")["Read"], "mark_seen=False leaves it unread")

        read = list(mailbox.fetch(AND(subject="imap-tools two")))
        check([m.subject for m in read] == ["imap-tools two"], f"fetch by subject: {read}")
        catcher.wait_message("imap-tools two", "read after a fetch", lambda m: m["Read"])

        mailbox.flag(one.uid, MailMessageFlags.FLAGGED, True)
        catcher.wait_message("imap-tools one", "starred", lambda m: m["Flagged"])
        flagged = [m.subject for m in mailbox.fetch(AND(flagged=True), mark_seen=False)]
        check(flagged == ["imap-tools one"], f"fetch flagged: {flagged}")

        mailbox.move(by_subject["imap-tools three"].uid, "Trash")
        catcher.wait_gone("imap-tools three")
        left = sorted(m.subject for m in mailbox.fetch(mark_seen=False))
        check(left == ["imap-tools one", "imap-tools two"], f"left in INBOX: {left}")

        mailbox.append(
            b"From: <morty@example.test>\r\nSubject: imap-tools appended\r\n\r\nsaved\r\n",
            "INBOX", flag_set=[MailMessageFlags.SEEN],
        )
        catcher.wait_message("imap-tools appended", "stored read by APPEND", lambda m: m["Read"])

        # A mail program saves what it sent in Sent; that is no caught mail.
        mailbox.append(
            b"From: <morty@example.test>\r\nSubject: imap-tools sent copy\r\n\r\nsent\r\n",
            "Sent", flag_set=[MailMessageFlags.SEEN],
        )
        mailbox.folder.set("Sent")
        sent = [m.subject for m in mailbox.fetch(mark_seen=False)]
        check(sent == ["imap-tools sent copy"], f"the Sent folder holds the copy: {sent}")
        check(catcher.message("imap-tools sent copy") is None, "a Sent copy is not in the API")


if __name__ == "__main__":
    main(flow)
