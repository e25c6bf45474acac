// Releasing through the npm client test suites use against Mailpit, pointed at
// sokkel with a relay configured: node mailpit_release.mjs BASE_URL. One message
// was caught before; the relay allows only @allowed.test. Prints "ok".
import assert from "node:assert/strict";
import { MailpitClient } from "mailpit-api";

const mailpit = new MailpitClient(process.argv[2]);

const released = await mailpit.releaseMessage("latest", { To: ["dev@allowed.test"] });
assert.equal(released.trim(), "ok");

await assert.rejects(
  mailpit.releaseMessage("latest", { To: ["boss@elsewhere.test"] }),
  /400.*boss@elsewhere\.test/s,
  "a recipient the relay does not allow is refused, naming it",
);

const message = await mailpit.getMessageSummary("latest");
assert.equal(message.Relays.length, 1, "the refused release sent nothing and recorded nothing");
assert.deepEqual(message.Relays[0].To, ["dev@allowed.test"]);
assert.equal(message.Relays[0].OK, true);
console.log("ok");
