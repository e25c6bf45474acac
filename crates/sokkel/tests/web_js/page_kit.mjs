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

export function launch() {
  return chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--no-first-run"],
  });
}

/// Sends one message per subject through the catcher's SMTP port.
export function sendMail(smtpPort, ...subjects) {
  execFileSync("python3", [join(here, "send_named.py"), String(smtpPort), ...subjects], { timeout: 30000 });
}

export async function getJson(base, path) {
  const response = await fetch(new URL(path, base));
  assert.equal(response.status, 200, `GET ${path}: ${response.status}`);
  return response.json();
}

export async function putJson(base, path, body) {
  const response = await fetch(new URL(path, base), {
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

/// A new page in `context` on `path`, live.
export async function openPage(context, base, path = "") {
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  page.on("console", (message) => {
    if (/Content Security Policy/i.test(message.text())) cspViolations.push(`${page.url()}: ${message.text()}`);
  });
  await page.goto(new URL(path, base).href);
  await page.waitForSelector("#live.on");
  return page;
}

export const row = (page, subject) => page.locator("#list li", { hasText: subject });

export async function rowCount(page, count) {
  await page.waitForFunction((n) => document.querySelectorAll("#list li").length === n, count);
}
