// The web page in headless Chromium: node browser.mjs BASE_URL SMTP_PORT TRAP_PORT ARTIFACTS.
// Mail sent with smtplib appears without a reload; open it, its HTML, download its
// attachment, search, delete; a hostile HTML mail runs no script. Prints "ok".
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { CONTEXT, assertStayedInRoot, launch, nodeUrl, openPage } from "./page_kit.mjs";

const [base, smtpPort, trapPort, artifacts] = process.argv.slice(2);
const here = dirname(fileURLToPath(import.meta.url));
mkdirSync(artifacts, { recursive: true });
const send = (...args) =>
  execFileSync("python3", [join(here, "send_mail.py"), smtpPort, ...args], { timeout: 30000 });
const shot = (page, name) => page.screenshot({ path: join(artifacts, `${name}.png`), fullPage: true });

const browser = await launch();
try {
  const context = await browser.newContext({ ...CONTEXT, acceptDownloads: true, viewport: { width: 1280, height: 800 } });
  const page = await openPage(context, base);
  await page.evaluate(() => { window.sameDocument = true; });

  // Live: the row appears in this very document.
  send("plain");
  const row = page.locator("#list li", { hasText: "Portal fluid invoice" });
  await row.waitFor();
  assert.equal(await page.evaluate(() => window.sameDocument), true, "no reload");
  assert.equal(await row.evaluate((li) => li.classList.contains("unread")), true);
  await shot(page, "1-list");

  // Open it; its HTML shows in the sandboxed frame.
  await row.click();
  await page.locator("#subject", { hasText: "Portal fluid invoice" }).waitFor();
  await page.frameLocator("#html-frame").locator("b", { hasText: "Morty" }).waitFor();
  await shot(page, "2-message-html");

  // Download the attachment and compare bytes.
  const [download] = await Promise.all([
    page.waitForEvent("download"),
    page.locator("a.attachment", { hasText: "fluid.bin" }).click(),
  ]);
  const got = readFileSync(await download.path());
  const want = Buffer.alloc(1024, 0).map((_, i) => i % 256);
  assert.ok(got.equals(Buffer.from(want)), "attachment bytes");

  // The hostile mail.
  send("hostile", trapPort);
  const hostile = page.locator("#list li", { hasText: "Totally harmless" });
  await hostile.waitFor();
  await hostile.click();
  await page.frameLocator("#html-frame").locator("p", { hasText: "Harmless text" }).waitFor();
  await page.waitForTimeout(1000);
  for (const frame of page.frames()) {
    const globals = await frame.evaluate(() => [typeof window.pwnedByScript, typeof window.pwnedByHandler]);
    assert.deepEqual(globals, ["undefined", "undefined"], `a mail script ran in ${frame.url()}`);
  }
  await shot(page, "3-hostile-blocked");

  // Search as you type.
  await page.press("body", "/");
  await page.keyboard.type("subject:portal");
  await page.waitForFunction(() => {
    const rows = [...document.querySelectorAll("#list li")];
    return rows.length === 1 && rows[0].textContent.includes("Portal fluid invoice");
  });
  await shot(page, "4-search");
  await page.fill("#search", "");
  await page.waitForFunction(() => document.querySelectorAll("#list li").length === 2);

  // Delete by keyboard: open the plain one and press Delete.
  await row.click();
  await page.locator("#subject", { hasText: "Portal fluid invoice" }).waitFor();
  await page.locator("#list").focus();
  await page.keyboard.press("Delete");
  await page.waitForFunction(() => document.querySelectorAll("#list li").length === 1);
  const left = await (await fetch(nodeUrl("api/v1/messages", base))).json();
  assert.equal(left.total, 1);
  assert.equal(left.messages[0].Subject, "Totally harmless");
  await page.setViewportSize({ width: 420, height: 800 });
  await shot(page, "5-narrow");
  assertStayedInRoot();
  console.log("ok");
} finally {
  await browser.close();
}
