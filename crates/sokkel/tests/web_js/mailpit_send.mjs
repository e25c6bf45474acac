// The npm client test suites use against Mailpit, sending through sokkel's
// /api/v1/send with every field: node mailpit_send.mjs BASE_URL.
// Prints the answer ({"ID": "..."}) as JSON; the Rust test reads the message back.
import { MailpitClient } from "mailpit-api";

const mailpit = new MailpitClient(process.argv[2]);

// A 1x1 PNG, inline (ContentID), and a text file as a normal attachment.
const png =
  "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";
const answer = await mailpit.sendMessage({
  From: { Email: "app@example.test", Name: "The App" },
  To: [{ Email: "jane@example.test", Name: "Jane Doe" }, { Email: "bob@example.test" }],
  Cc: [{ Email: "boss@example.test", Name: "The Boss" }],
  Bcc: ["audit@example.test"],
  ReplyTo: [{ Email: "help@example.test", Name: "Help Desk" }],
  Subject: "Your invoice – März",
  Text: "Your invoice is attached.",
  HTML: '<p>Your <b>invoice</b> is attached.</p><img src="cid:logo">',
  Attachments: [
    { Content: png, Filename: "logo.png", ContentType: "image/png", ContentID: "logo" },
    { Content: Buffer.from("line one\nline two\n").toString("base64"), Filename: "notes.txt" },
  ],
  Headers: { "X-Campaign": "spring-sale", "X-Mailer-Test": "mailpit-api" },
  Tags: ["invoices", "Test run"],
});
console.log(JSON.stringify(answer));
