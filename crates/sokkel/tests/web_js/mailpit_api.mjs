// The npm client test suites use against Mailpit, pointed at sokkel:
// node mailpit_api.mjs BASE_URL. Two messages were sent before; prints "ok".
// Searching by tag needs the search's `tag:` operator (issue #12).
import assert from "node:assert/strict";
import { MailpitClient } from "mailpit-api";

const mailpit = new MailpitClient(process.argv[2]);

const info = await mailpit.getInfo();
assert.equal(info.Messages, 2);
assert.equal(typeof info.Version, "string");

const list = await mailpit.listMessages();
assert.equal(list.total, 2);
assert.equal(list.unread, 2);
assert.equal(list.messages.length, 2);
const [newest, oldest] = list.messages;
assert.equal(newest.Subject, "Portal fluid invoice");
assert.equal(newest.From.Address, "rick@example.com");
assert.equal(newest.To[0].Name, "Morty");
assert.equal(newest.Attachments, 1);
assert.ok(!Number.isNaN(Date.parse(newest.Created)));

const message = await mailpit.getMessageSummary(newest.ID);
assert.equal(message.ID, newest.ID);
assert.match(message.Text, /invoice is attached/);
assert.match(message.HTML, /<b>Morty<\/b>/);
assert.equal(message.Attachments[0].FileName, "fluid.bin");
const blob = await mailpit.getMessageAttachment(newest.ID, message.Attachments[0].PartID);
const bytes = Buffer.from(await blob.arrayBuffer());
assert.equal(bytes.length, 1024);
assert.equal(bytes[255], 255);

const headers = await mailpit.getMessageHeaders(newest.ID);
assert.deepEqual(headers.Subject, ["Portal fluid invoice"]);
const source = await mailpit.getMessageSource(newest.ID);
assert.match(source, /Subject: Portal fluid invoice/);
const latest = await mailpit.getMessageSummary();
assert.equal(latest.ID, newest.ID);

const found = await mailpit.searchMessages({ query: "subject:harmless" });
assert.equal(found.messages_count, 1);
assert.equal(found.messages[0].ID, oldest.ID);

assert.equal((await mailpit.setReadStatus({ IDs: [oldest.ID], Read: true })).trim(), "ok");
assert.equal((await mailpit.listMessages()).unread, 0, "both read now");
await mailpit.setReadStatus({ IDs: [oldest.ID], Read: false });
assert.equal((await mailpit.listMessages()).unread, 1);

// Tags: set, list, rename, search by, delete, clear; a bad name is a 400.
assert.equal((await mailpit.setTags({ IDs: [newest.ID, oldest.ID], Tags: ["Portal", "to do"] })).trim(), "ok");
await mailpit.setTags({ IDs: [newest.ID], Tags: ["Portal", "to do", "invoices"] });
assert.deepEqual(await mailpit.getTags(), ["invoices", "Portal", "to do"]);
const tagged = await mailpit.listMessages();
assert.deepEqual(tagged.tags, ["invoices", "Portal", "to do"]);
assert.deepEqual(tagged.messages[0].Tags, ["invoices", "Portal", "to do"]);
assert.deepEqual(tagged.messages[1].Tags, ["Portal", "to do"]);
assert.deepEqual((await mailpit.getMessageSummary(oldest.ID)).Tags, ["Portal", "to do"]);
assert.deepEqual((await mailpit.getInfo()).Tags, { invoices: 1, Portal: 2, "to do": 2 });
assert.equal((await mailpit.renameTag("to do", "done")).trim(), "ok");
assert.deepEqual(await mailpit.getTags(), ["done", "invoices", "Portal"]);
const byTag = await mailpit.searchMessages({ query: "tag:invoices" });
assert.equal(byTag.messages_count, 1);
assert.equal(byTag.messages[0].ID, newest.ID);
assert.deepEqual(byTag.tags, ["done", "invoices", "Portal"]);
assert.equal((await mailpit.searchMessages({ query: 'tag:"done"' })).messages_count, 2);
assert.equal((await mailpit.deleteTag("Portal")).trim(), "ok");
assert.deepEqual(await mailpit.getTags(), ["done", "invoices"]);
await mailpit.setTags({ IDs: [newest.ID, oldest.ID] });
assert.deepEqual(await mailpit.getTags(), [], "setTags without Tags clears them");
await assert.rejects(mailpit.setTags({ IDs: [oldest.ID], Tags: ["semi;colon"] }), /400/);
await assert.rejects(mailpit.deleteTag("no such tag"), /404/);

await mailpit.deleteMessagesBySearch({ query: "subject:harmless" });
assert.equal((await mailpit.listMessages()).total, 1);
await mailpit.deleteMessages({ IDs: [newest.ID] });
assert.equal((await mailpit.listMessages()).total, 0);

await assert.rejects(mailpit.getMessageSummary("999"), /404/);
console.log("ok");
