"""aioimaplib (PyPI) as its users write it: login, select, UID SEARCH (it sends
`CHARSET utf-8`), UID FETCH, UID STORE, and idle_start / wait_server_push while
a message arrives over SMTP. Each change is checked in the web API."""

import asyncio
import re

from aioimaplib import IMAP4

from catcher import PROMPT, check, main


async def async_flow(catcher):
    catcher.send("aioimaplib one", "body of aioimaplib one")
    client = IMAP4(host=catcher.host, port=catcher.imap_port, timeout=PROMPT)
    await client.wait_hello_from_server()
    response = await client.login(catcher.user, catcher.password)
    check(response.result == "OK", f"login: {response}")
    check(client.protocol.imap_version == "IMAP4REV1",
          f"IMAP4rev1 advertised: {client.protocol.capabilities}")
    response = await client.select("INBOX")
    check(response.result == "OK" and any(b"1 EXISTS" in line for line in response.lines),
          f"select INBOX: {response}")

    response = await client.uid_search("ALL")
    check(response.result == "OK", f"UID SEARCH CHARSET utf-8 ALL: {response}")
    uids = response.lines[0].split()
    check(len(uids) == 1, f"one UID: {response}")
    uid = uids[0].decode()
    response = await client.uid("fetch", uid, "(FLAGS BODY.PEEK[])")
    check(response.result == "OK" and any(b"body of aioimaplib one" in bytes(line)
                                          for line in response.lines),
          f"UID FETCH BODY.PEEK[]: {response}")
    response = await client.uid("store", uid, r"+FLAGS (\Flagged \Seen)")
    check(response.result == "OK", f"UID STORE: {response}")
    await asyncio.to_thread(catcher.wait_message, "aioimaplib one", "read and starred",
                            lambda m: m["Read"] and m["Flagged"])

    idle = await client.idle_start(timeout=PROMPT)
    await asyncio.to_thread(catcher.send, "aioimaplib two", "arrived while idling")
    seen = []
    while not any(re.match(rb"\d+ EXISTS", line) for line in seen):
        pushed = await asyncio.wait_for(client.wait_server_push(), PROMPT)
        check(pushed != "stop_wait_server_push", f"a push before IDLE ended: {seen}")
        seen += [line for line in pushed if isinstance(line, bytes)]
    client.idle_done()
    response = await asyncio.wait_for(idle, PROMPT)
    check(response.result == "OK", f"IDLE ends OK: {response}")
    response = await client.uid_search("UNSEEN")
    check(len(response.lines[0].split()) == 1, f"only the new message is unseen: {response}")
    await client.logout()


def flow(catcher):
    asyncio.run(async_flow(catcher))


if __name__ == "__main__":
    main(flow)
