// Every Mailpit search operator through the npm client's own search call,
// pointed at sokkel: node mailpit_search.mjs BASE_URL. The three messages of
// send_search_corpus.py were sent before; prints "ok".
import assert from "node:assert/strict";
import { MailpitClient } from "mailpit-api";

const mailpit = new MailpitClient(process.argv[2]);

const all = await mailpit.listMessages();
assert.equal(all.total, 3);
const id = Object.fromEntries(all.messages.map((m) => [m.Subject.split(" ")[0].toLowerCase(), m.ID]));
// Gamma is read; the others are not.
await mailpit.setReadStatus({ IDs: [id.lunch], Read: true });

async function subjects(query, tz) {
  const found = await mailpit.searchMessages(tz ? { query, tz } : { query });
  assert.equal(found.messages_count, found.messages.length, query);
  return found.messages.map((m) => m.Subject.split(" ")[0].toLowerCase()).sort();
}

const cases = [
  ["quarterly", ["lunch", "quarterly"]],
  ['"quarterly report"', ["quarterly"]],
  ["-quarterly", ["holiday"]],
  ["!quarterly", ["holiday"]],
  ["from:alice@alpha.test", ["quarterly"]],
  ["from:bob", ["holiday"]],
  ["to:tom@alpha.test", ["lunch", "quarterly"]],
  ["cc:carol", ["quarterly"]],
  ["bcc:hidden@beta.test", ["holiday"]],
  ["reply-to:replies", ["quarterly"]],
  ["addressed:carol@alpha.test", ["quarterly"]],
  ["addressed:gary", ["lunch"]],
  ["subject:photos", ["holiday"]],
  ["message-id:beta-2@beta.test", ["holiday"]],
  ["tag:finance", ["quarterly"]],
  ["tag:Urgent", ["quarterly"]],
  ["-tag:finance", ["holiday", "lunch"]],
  ["is:tagged", ["quarterly"]],
  ["is:read", ["lunch"]],
  ["is:unread", ["holiday", "quarterly"]],
  ["has:attachment", ["quarterly"]],
  ["has:inline", ["holiday"]],
  ["larger:10k", ["holiday"]],
  ["smaller:10k", ["lunch", "quarterly"]],
  ["after:2020-01-01", ["holiday", "lunch", "quarterly"]],
  ["before:2020-01-01", []],
  ["to:tom@alpha.test -is:read", ["quarterly"]],
];
for (const [query, want] of cases) {
  assert.deepEqual(await subjects(query), want, query);
}

// tz moves the day boundary: it is always "today" somewhere at UTC+14, and that
// day has not begun yet at UTC-12.
const kiritimati = new Intl.DateTimeFormat("en-CA", { timeZone: "Pacific/Kiritimati" }).format(new Date());
assert.deepEqual(await subjects(`after:${kiritimati}`, "Pacific/Kiritimati"), ["holiday", "lunch", "quarterly"]);
assert.deepEqual(await subjects(`after:${kiritimati}`, "Etc/GMT+12"), []);
assert.deepEqual(await subjects(`before:${kiritimati}`, "Etc/GMT+12"), ["holiday", "lunch", "quarterly"]);

// Something that cannot be parsed is a 400 naming the term, not a silent match.
await assert.rejects(mailpit.searchMessages({ query: "larger:lots" }), /400/);
console.log("ok");
