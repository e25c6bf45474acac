// The message view's HTML check and link check tabs in headless Chromium:
// node checks.mjs BASE_URL SITE_URL ARTIFACTS.
// SITE_URL is a local HTTP server the Rust test runs: /ok 200, /missing 404,
// /hang never answers, and /count says how many other requests it has read.
// Prints "ok".
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const [base, site, artifacts] = process.argv.slice(2);
mkdirSync(artifacts, { recursive: true });
const shot = (page, name) => page.screenshot({ path: join(artifacts, `${name}.png`), fullPage: true });
const siteRequests = async () => Number(await (await fetch(new URL("/count", site))).text());

// The message: features caniemail knows some clients lack, and three links.
const html = `<!doctype html>
<html><head><style>
a:hover { color: red }
</style></head><body>
<div style="display: flex">Flex box</div>
<div style="position: absolute; top: 0">Absolute</div>
<form action="https://example.com/subscribe"><input type="text" name="q"></form>
<p><a href="${new URL("/ok", site)}">fine</a> <a href="${new URL("/missing", site)}">gone</a>
<img src="${new URL("/hang", site)}" alt="slow"></p>
</body></html>`;
const sent = await fetch(new URL("api/v1/send", base), {
  method: "POST",
  headers: { "Content-Type": "application/json" },
  body: JSON.stringify({
    From: { Email: "rick@example.com", Name: "Rick" },
    To: [{ Email: "morty@example.com" }],
    Subject: "Check my newsletter",
    Text: "The newsletter, as text.",
    HTML: html,
  }),
});
assert.equal(sent.status, 200, await sent.text());

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run"],
});
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  const failures = [];
  page.on("pageerror", (error) => failures.push(String(error)));
  await page.goto(base);
  const row = page.locator("#list li", { hasText: "Check my newsletter" });
  await row.click();
  await page.locator("#subject", { hasText: "Check my newsletter" }).waitFor();

  // The HTML check: its tab shows for an HTML message; the score and a
  // warning naming a client that lacks the feature.
  const htmlTab = page.locator('#tabs [data-tab="html-check"]');
  await htmlTab.waitFor({ state: "visible" });
  assert.equal(await htmlTab.getAttribute("role"), "tab");
  await htmlTab.click();
  const panel = page.locator("#panel-html-check");
  await panel.waitFor({ state: "visible" });
  await panel.locator(".hc-headline").waitFor();
  const headline = await panel.locator(".hc-headline").textContent();
  assert.match(headline, /\d+(\.\d)?% supported/, headline);
  assert.match(headline, /not supported/, headline);
  const flex = panel.locator(".hc-warning", { has: page.locator(".hc-title", { hasText: "display:flex" }) });
  await flex.waitFor();
  const unsupported = await flex.locator(".hc-clients-bad").textContent();
  assert.match(unsupported, /Outlook/, unsupported);
  assert.match(await flex.locator(".hc-lines").textContent(), /^5$/);
  const form = panel.locator(".hc-warning", { has: page.locator(".hc-title", { hasText: "<form> element" }) });
  await form.waitFor();
  const more = form.locator("a.hc-more");
  assert.equal(await more.getAttribute("rel"), "noopener noreferrer");
  assert.equal(await more.getAttribute("target"), "_blank");
  assert.match(await more.getAttribute("href"), /^https:\/\/www\.caniemail\.com\//);
  // Other panels are hidden while this one shows.
  assert.equal(await page.locator("#panel-text").isVisible(), false);
  // The platform filter narrows the clients: on iOS there is no Outlook for Windows.
  await panel.locator("select").selectOption("windows");
  await panel.locator(".hc-headline").waitFor();
  const windowsOnly = await panel.locator(".hc-clients").allTextContents();
  assert.ok(windowsOnly.every((text) => !/\biOS\b/.test(text)), windowsOnly.join("\n"));
  await panel.locator("select").selectOption("");
  await shot(page, "checks-1-html-check");

  // The link check: nothing is requested until the button is pressed.
  const linkTab = page.locator('#tabs [data-tab="link-check"]');
  await linkTab.click();
  const links = page.locator("#panel-link-check");
  await links.waitFor({ state: "visible" });
  assert.equal(await page.locator("#panel-html-check").isVisible(), false);
  await page.waitForTimeout(500);
  assert.equal(await siteRequests(), 0, "a link was requested before the button was pressed");
  await page.getByLabel("Follow redirects").waitFor();
  const run = links.getByRole("button", { name: "Check links" });
  await run.click();
  await page.waitForFunction(() => document.querySelector("#panel-link-check").getAttribute("aria-busy") === "true"
    || document.querySelectorAll("#panel-link-check tbody tr").length > 0);
  await links.locator("tbody tr").nth(2).waitFor({ timeout: 30000 });
  const rows = await links.locator("tbody tr").evaluateAll((trs) => trs.map((tr) => ({
    cells: [...tr.cells].map((td) => td.textContent),
    bad: tr.classList.contains("lc-bad"),
  })));
  const byPath = (path) => rows.find((r) => r.cells[0].endsWith(path));
  assert.deepEqual(byPath("/ok"), { cells: [new URL("/ok", site).href, "200", "OK"], bad: false }, JSON.stringify(rows));
  assert.deepEqual(byPath("/missing"), { cells: [new URL("/missing", site).href, "404", "Not Found"], bad: true });
  assert.deepEqual(byPath("/hang"), { cells: [new URL("/hang", site).href, "—", "timeout"], bad: true });
  assert.match(await links.locator("[role=status]").textContent(), /3 links checked, 2 with errors/);
  assert.equal(await links.getAttribute("aria-busy"), "false");
  assert.ok(await siteRequests() >= 3, "the links were requested after the press");
  await shot(page, "checks-2-link-check");

  // A narrow window: the results wrap instead of running off the side.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.waitForTimeout(200);
  const overflow = await links.evaluate((panel) => panel.scrollWidth - panel.clientWidth);
  assert.ok(overflow <= 1, `the link table overflows a narrow window by ${overflow}px`);
  await shot(page, "checks-3-link-check-narrow");
  await htmlTab.click();
  const htmlOverflow = await panel.evaluate((p) => p.scrollWidth - p.clientWidth);
  assert.ok(htmlOverflow <= 1, `the HTML check overflows a narrow window by ${htmlOverflow}px`);
  await shot(page, "checks-4-html-check-narrow");
  await page.setViewportSize({ width: 1280, height: 900 });

  // A text-only message has no HTML check tab.
  const text = await fetch(new URL("api/v1/send", base), {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ From: { Email: "rick@example.com" }, To: [{ Email: "morty@example.com" }],
      Subject: "Only words", Text: "No HTML here." }),
  });
  assert.equal(text.status, 200);
  await page.locator("#list li", { hasText: "Only words" }).click();
  await page.locator("#subject", { hasText: "Only words" }).waitFor();
  await page.waitForFunction(() => document.querySelector('#tabs [data-tab="html-check"]').hidden);
  // Back to the HTML message: app.js's events bring the tab back and run the
  // check again; closing the view clears it.
  await page.locator("#list li", { hasText: "Check my newsletter" }).click();
  await page.locator("#subject", { hasText: "Check my newsletter" }).waitFor();
  await htmlTab.waitFor({ state: "visible" });
  await htmlTab.click();
  await panel.locator(".hc-warning .hc-title", { hasText: "display:flex" }).waitFor();

  // Another message opened during a link check (the /hang link keeps it
  // running): the check is dropped and the button works for the new message.
  const runButton = page.locator("#link-check-run");
  await linkTab.click();
  await runButton.click();
  await page.locator("#link-check-run", { hasText: "Checking…" }).waitFor();
  await page.locator("#list li", { hasText: "Only words" }).click();
  await page.locator("#subject", { hasText: "Only words" }).waitFor();
  await linkTab.click();
  await links.waitFor({ state: "visible" });
  assert.equal(await runButton.textContent(), "Check links", "the button is reset on the next message");
  assert.equal(await runButton.isEnabled(), true);
  assert.equal(await links.getAttribute("aria-busy"), "false");
  assert.equal(await links.locator("tbody tr").count(), 0, "no rows of the other message");
  await runButton.click();
  await links.locator("[role=status]", { hasText: "no http or https links" }).waitFor();
  console.log("feature ok: link check resets when another message opens");

  await page.locator("#list").focus();
  await page.keyboard.press("Escape");
  await page.waitForFunction(() => !document.querySelector("#panel-html-check .hc-warning"));
  assert.deepEqual(failures, [], "no script errors on the page");
} finally {
  await browser.close();
}
console.log("ok");
