"""imapclient (PyPI) as its users write it: select_folder, search, fetch ENVELOPE
and BODYSTRUCTURE, add_flags, folder_status, a tag folder made, filled, renamed
and deleted, move to Trash, idle / idle_check while mail arrives over SMTP, a
UTF-8 search, and uid_expunge.
Each change is checked in the web API."""

import time

from imapclient import DELETED, FLAGGED, SEEN, IMAPClient

from catcher import PROMPT, check, main

SUBJECTS = ["imapclient one", "imapclient two", "imapclient three"]


def flow(catcher):
    for subject in SUBJECTS:
        catcher.send(subject, f"body of {subject}")
    client = IMAPClient(catcher.host, port=catcher.imap_port, ssl=False, timeout=PROMPT)
    client.login(catcher.user, catcher.password)
    check(client.has_capability("IMAP4REV1") and client.has_capability("MOVE"),
          f"IMAP4rev1 and MOVE advertised: {client.capabilities()}")
    selected = client.select_folder("INBOX")
    check(selected[b"EXISTS"] == 3, f"select_folder INBOX: {selected}")
    check(selected[b"UIDVALIDITY"] > 0, f"a UIDVALIDITY: {selected}")

    uids = client.search(["UNSEEN"])
    check(len(uids) == 3, f"search UNSEEN finds all three: {uids}")
    fetched = client.fetch(uids, ["ENVELOPE", "FLAGS", "RFC822.SIZE", "BODYSTRUCTURE"])
    by_subject = {data[b"ENVELOPE"].subject.decode(): uid for uid, data in fetched.items()}
    check(sorted(by_subject) == sorted(SUBJECTS), f"ENVELOPE subjects: {fetched}")
    one, two, three = (by_subject[s] for s in SUBJECTS)
    sender = fetched[one][b"ENVELOPE"].from_[0]
    check((sender.mailbox, sender.host) == (b"rick", b"example.test"),
          f"ENVELOPE from: {fetched[one]}")
    check(fetched[one][b"BODYSTRUCTURE"][0].lower() == b"text",
          f"BODYSTRUCTURE of a plain message: {fetched[one]}")

    client.add_flags([one], [SEEN, FLAGGED])
    catcher.wait_message("imapclient one", "read and starred",
                         lambda m: m["Read"] and m["Flagged"])
    status = client.folder_status("INBOX", ["MESSAGES", "UNSEEN", "UIDNEXT"])
    check(status[b"MESSAGES"] == 3 and status[b"UNSEEN"] == 2
          and status[b"UIDNEXT"] > max(uids), f"folder_status INBOX: {status}")

    client.create_folder("project")
    client.copy([two], "project")
    catcher.wait_message("imapclient two", "tagged project", lambda m: m["Tags"] == ["project"])
    client.rename_folder("project", "archive")
    catcher.wait_message("imapclient two", "tagged archive after the rename",
                         lambda m: m["Tags"] == ["archive"])
    names = [name for _flags, _sep, name in client.list_folders()]
    check("archive" in names and "project" not in names, f"list_folders: {names}")
    client.delete_folder("archive")
    catcher.wait_message("imapclient two", "untagged after the folder is deleted",
                         lambda m: m["Tags"] == [])

    client.move([three], "Trash")
    catcher.wait_gone("imapclient three")
    check(client.search(["ALL"]) == sorted([one, two]), "the moved message left the INBOX")

    client.idle()
    sent = time.monotonic()
    catcher.send("imapclient four", "arrived while idling")
    responses = []
    while not any(r[1] == b"EXISTS" for r in responses if len(r) > 1):
        check(time.monotonic() - sent < PROMPT, f"idle_check saw EXISTS: {responses}")
        responses += client.idle_check(timeout=1)
    client.idle_done()
    check(len(client.search(["UNSEEN"])) == 2, "the new message is unseen")

    # A search for non-ASCII text: imapclient sends it as a literal with CHARSET.
    catcher.send("=?utf-8?q?bl=C3=A5b=C3=A6rsyltet=C3=B8y?=", "jam")
    client.noop()  # a search sees what the session was told of, as in Dovecot
    found = client.search(["SUBJECT", "blåbærsyltetøy"], charset="UTF-8")
    check(len(found) == 1, f"SEARCH CHARSET UTF-8 SUBJECT finds the encoded subject: {found}")

    # UID EXPUNGE (UIDPLUS) deletes only the UIDs it names, \Deleted or not.
    check(catcher.message("blåbærsyltetøy") is not None, "the API lists the decoded subject")
    client.add_flags([one, found[0]], [DELETED])
    client.uid_expunge([found[0]])
    catcher.wait_gone("blåbærsyltetøy")
    check(catcher.message("imapclient one") is not None, "UID EXPUNGE left the other")
    client.remove_flags([one], [DELETED])
    client.logout()


if __name__ == "__main__":
    main(flow)
