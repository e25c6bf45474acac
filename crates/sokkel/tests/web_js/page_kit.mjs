// What the page's browser tests share: Debian's chromium through playwright-core,
// mail sent with smtplib, the API read back with fetch, and `feature`, which
// names the feature in a failure so one broken feature says which it is.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

export const here = dirname(fileURLToPath(import.meta.url));

/// How long any one wait in the page may take.
export const WAIT_MS = 15000;

/// The host name the browser resolves to 127.0.0.1, as the public name a
/// reverse proxy answers to (tests/proxy.rs sets PAGE_MAP_HOST=mail.test and
/// opens http://mail.test:PORT/mail/); unset, the browser resolves as usual.
export const MAP_HOST = process.env.PAGE_MAP_HOST || undefined;

/// Whether the script checks at its end that the page stayed inside its root
/// and got no error answers (PAGE_STRICT_ROOT=1, set by the runs through a
/// reverse proxy, where a URL that escapes the root fails only sometimes).
export const STRICT_ROOT = process.env.PAGE_STRICT_ROOT === "1";

export function launch({ mapHost = MAP_HOST } = {}) {
  const args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run"];
  if (mapHost) args.push(`--host-resolver-rules=MAP ${mapHost} 127.0.0.1`);
  return chromium.launch({ executablePath: "/usr/bin/chromium", args });
}

/// Options for every browser context: an https BASE (a test's nginx) has a
/// self-signed certificate.
export const CONTEXT = { ignoreHTTPSErrors: true };

/// `path` under `base` as node's fetch can reach it: the browser's mapped host
/// name is 127.0.0.1 here (sokkel answers loopback names too).
export function nodeUrl(path, base) {
  const url = new URL(path, base);
  if (MAP_HOST && url.hostname === MAP_HOST) url.hostname = "127.0.0.1";
  return url;
}

/// Sends one message per subject through the catcher's SMTP port.
export function sendMail(smtpPort, ...subjects) {
  execFileSync("python3", [join(here, "send_named.py"), String(smtpPort), ...subjects], { timeout: 30000 });
}

export async function getJson(base, path) {
  const response = await fetch(nodeUrl(path, base));
  assert.equal(response.status, 200, `GET ${path}: ${response.status}`);
  return response.json();
}

export async function putJson(base, path, body) {
  const response = await fetch(nodeUrl(path, base), {
    method: "PUT",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  assert.equal(response.status, 200, `PUT ${path}: ${await response.text()}`);
}

/// Every message in the catcher, newest first (the tests send a few dozen at most).
export async function allMessages(base) {
  return (await getJson(base, "api/v1/messages?limit=1000")).messages;
}

export async function idOf(base, subject) {
  const found = (await allMessages(base)).find((m) => m.Subject === subject);
  assert.ok(found, `no message with subject ${subject}`);
  return found.ID;
}

/// Runs one feature's checks; a failure names the feature.
export async function feature(name, body) {
  try {
    await body();
    console.log(`feature ok: ${name}`);
  } catch (error) {
    console.error(`FEATURE BROKE: ${name}`);
    throw new Error(`feature "${name}" broke: ${error.message}`, { cause: error });
  }
}

/// What the page's Content-Security-Policy refused, on every page openPage made:
/// the page itself must need nothing its policy forbids (no inline style or
/// script), or it breaks in ways a screenshot does not show.
export const cspViolations = [];

export function assertNoCspViolations() {
  assert.deepEqual(cspViolations, [], "the page broke its own Content-Security-Policy");
}

/// Requests of the pages openPage made that left the root (`METHOD URL`), and
/// answers with a status of 400 or more (`STATUS METHOD URL`): under a web
/// root behind a proxy, a URL written absolute by mistake goes outside the
/// root, where the proxy may answer anything; only both lists together catch it.
export const outsideRoot = [];
export const failedAnswers = [];

/// With STRICT_ROOT, that every request stayed under `base` and every answer
/// was below 400, but for the answers matching one of `expected` (regular
/// expressions over `STATUS METHOD URL`).
export function assertStayedInRoot(expected = []) {
  if (!STRICT_ROOT) return;
  assert.deepEqual(outsideRoot, [], "the page asked for URLs outside its root");
  const unexpected = failedAnswers.filter((line) => !expected.some((re) => re.test(line)));
  assert.deepEqual(unexpected, [], "the page got error answers");
}

/// Records what `page` asks for outside `base` and what is answered 400 or more.
/// A request the page's Content-Security-Policy stopped never left the browser
/// (a mail's remote image, say): it does not count.
export function watchRoot(page, base) {
  const root = new URL(base).href;
  const line = (request) => `${request.method()} ${request.url()}`;
  page.on("request", (request) => {
    const url = request.url();
    if (/^(https?|wss?):/.test(url) && !url.replace(/^ws/, "http").startsWith(root)) {
      outsideRoot.push(line(request));
    }
  });
  page.on("requestfailed", (request) => {
    const at = outsideRoot.indexOf(line(request));
    if (at < 0) return;
    const reason = request.failure()?.errorText;
    // Chromium names it "csp" (net::ERR_BLOCKED_BY_CSP in the console).
    if (reason === "csp" || reason === "net::ERR_BLOCKED_BY_CSP") outsideRoot.splice(at, 1);
    else outsideRoot[at] += ` (failed: ${reason})`;
  });
  page.on("response", (response) => {
    if (response.status() >= 400) {
      failedAnswers.push(`${response.status()} ${response.request().method()} ${response.url()}`);
    }
  });
}

/// A new page in `context` on `path`, live.
export async function openPage(context, base, path = "") {
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  page.on("console", (message) => {
    if (/Content Security Policy/i.test(message.text())) cspViolations.push(`${page.url()}: ${message.text()}`);
  });
  watchRoot(page, base);
  await page.goto(new URL(path, base).href);
  await page.waitForSelector("#live.on");
  return page;
}

export const row = (page, subject) => page.locator("#list li", { hasText: subject });

export async function rowCount(page, count) {
  await page.waitForFunction((n) => document.querySelectorAll("#list li").length === n, count);
}
