// imapflow (npm) as its users write it: connect, mailboxOpen, fetch with envelope
// and source, messageFlagsAdd, messageMove to Trash, and idle with an `exists`
// event while a message arrives over SMTP. Each change is checked in the web API.
//
// node imapflow.mjs IMAP_PORT SMTP_PORT HTTP_PORT; prints `ok` or exits 1 with the
// failed check.

import net from 'node:net';
import { ImapFlow } from 'imapflow';

const [imapPort, smtpPort, httpPort] = process.argv.slice(2).map(Number);
const HOST = '127.0.0.1';
const PROMPT_MS = 10_000;

function check(condition, what) {
  if (!condition) throw new Error(`check failed: ${what}`);
}

async function waitUntil(probe, what) {
  const deadline = Date.now() + PROMPT_MS;
  for (;;) {
    const value = await probe();
    if (value) return value;
    check(Date.now() < deadline, `${what} within ${PROMPT_MS} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

// One message over SMTP, a command at a time; resolves at the 250 after DATA.
function send(subject, body) {
  const commands = [
    'EHLO imapflow.test',
    'MAIL FROM:<rick@example.test>',
    'RCPT TO:<morty@example.test>',
    'DATA',
    `From: <rick@example.test>\r\nTo: <morty@example.test>\r\nSubject: ${subject}\r\n\r\n${body}\r\n.`,
    'QUIT',
  ];
  return new Promise((resolve, reject) => {
    const socket = net.connect(smtpPort, HOST);
    socket.setTimeout(PROMPT_MS, () => reject(new Error('SMTP timed out')));
    let buffer = '';
    let step = -1;
    socket.on('data', (chunk) => {
      buffer += chunk;
      // A reply is complete at a line whose code is followed by a space.
      while (/^\d{3} .*\r\n/m.test(buffer)) {
        const reply = buffer.match(/^(?:\d{3}-.*\r\n)*\d{3} .*\r\n/)[0];
        buffer = buffer.slice(reply.length);
        if (!/^[23]/.test(reply)) return reject(new Error(`SMTP said ${reply}`));
        step += 1;
        if (step === commands.length) return;
        if (step === commands.length - 1) resolve();
        socket.write(`${commands[step]}\r\n`);
      }
    });
    socket.on('error', reject);
  });
}

async function api(method, path, body) {
  const response = await fetch(`http://${HOST}:${httpPort}${path}`, {
    method,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  check(response.ok, `${method} ${path}: ${response.status}`);
  return method === 'GET' ? response.json() : response.text();
}

async function summary(subject) {
  const list = await api('GET', '/api/v1/messages?limit=1000');
  return list.messages.find((m) => m.Subject === subject);
}

async function main() {
  await send('imapflow one', 'body of imapflow one');
  await send('imapflow two', 'body of imapflow two');
  const client = new ImapFlow({
    host: HOST,
    port: imapPort,
    secure: false,
    doSTARTTLS: false,
    auth: { user: 'morty', pass: 'secret' },
    logger: false,
  });
  await client.connect();
  const mailbox = await client.mailboxOpen('INBOX');
  check(mailbox.exists === 2, `mailboxOpen INBOX: ${mailbox.exists} messages`);
  check(mailbox.uidValidity > 0n, `a UIDVALIDITY: ${mailbox.uidValidity}`);

  const uids = {};
  for await (const message of client.fetch('1:*', { uid: true, envelope: true, flags: true, source: true })) {
    uids[message.envelope.subject] = message.uid;
    check(message.source.toString().includes(`body of ${message.envelope.subject}`),
      `the source of ${message.envelope.subject}`);
    check(!message.flags.has('\\Seen'), `${message.envelope.subject} unseen`);
  }
  check(uids['imapflow one'] && uids['imapflow two'], `fetched both: ${JSON.stringify(uids)}`);

  await client.messageFlagsAdd({ uid: uids['imapflow one'] }, ['\\Seen', '\\Flagged'], { uid: true });
  await waitUntil(async () => {
    const m = await summary('imapflow one');
    return m && m.Read && m.Flagged;
  }, 'the web API shows imapflow one read and starred');

  const moved = await client.messageMove(String(uids['imapflow two']), 'Trash', { uid: true });
  check(moved, 'messageMove to Trash');
  await waitUntil(async () => !(await summary('imapflow two')), 'the web API no longer lists imapflow two');

  const exists = new Promise((resolve) => client.on('exists', resolve));
  const idling = client.idle();
  await send('imapflow three', 'arrived while idling');
  const event = await Promise.race([
    exists,
    new Promise((_, reject) => setTimeout(() => reject(new Error('check failed: no exists event')), PROMPT_MS)),
  ]);
  check(event.path === 'INBOX' && event.count === 2, `exists event: ${JSON.stringify(event)}`);
  await client.logout();
  await idling.catch(() => {});
  console.log('ok');
}

main().catch((error) => {
  console.error(error.message);
  process.exit(1);
});
