// The release dialog in headless Chromium: node page_release.mjs BASE_URL SMTP_PORT RELAY.
// The catcher relays to aiosmtpd at RELAY and allows only @allowed.test. A
// recipient outside that is refused in the dialog before any request; an
// allowed one is sent and the dialog says so; a selection of two sends each.
// The Rust test then checks what aiosmtpd got. Prints "ok".
import assert from "node:assert/strict";
import { assertNoCspViolations, feature, launch, openPage, row, rowCount, sendMail } from "./page_kit.mjs";

const [base, smtpPort, relay] = process.argv.slice(2);

const browser = await launch();
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await openPage(context, base);
  const releases = [];
  page.on("request", (request) => {
    if (request.method() === "POST" && request.url().includes("/release")) releases.push(request.url());
  });
  sendMail(smtpPort, "Release me");
  await row(page, "Release me").click();
  await page.locator("#subject", { hasText: "Release me" }).waitFor();

  await feature("release dialog refuses a recipient the relay does not allow", async () => {
    assert.equal(await page.isEnabled("#release"), true, "Release is enabled with a relay");
    await page.click("#release");
    await page.locator("#release-dialog[open]").waitFor();
    assert.ok((await page.textContent("#release-server")).startsWith(relay), "the relay server is named");
    await page.fill("#release-to", "qa@allowed.test, boss@elsewhere.test");
    await page.click("#release-send");
    await page.locator("#release-check", { hasText: "boss@elsewhere.test" }).waitFor();
    const said = await page.textContent("#release-check");
    assert.ok(said.includes("Not allowed") && !said.includes("qa@allowed.test"), said);
    await page.waitForTimeout(300);
    assert.deepEqual(releases, [], "nothing was sent");
    assert.equal(await page.locator("#release-outcome li").count(), 0);
  });

  await feature("release dialog sends to an allowed recipient and shows the outcome", async () => {
    await page.fill("#release-to", "qa@allowed.test");
    await page.click("#release-send");
    const outcome = page.locator("#release-outcome li.ok");
    await outcome.waitFor();
    assert.ok((await outcome.textContent()).includes("sent to qa@allowed.test"));
    assert.equal(await page.textContent("#release-check"), "");
    assert.equal(releases.length, 1);
    await page.click("#release-close");
    await page.locator("#release-dialog").waitFor({ state: "hidden" });
    // The view lists the relay attempt.
    await page.locator("#relay-list li.good", { hasText: "qa@allowed.test" }).waitFor();
  });

  await feature("release of a selection sends each message", async () => {
    sendMail(smtpPort, "Batch one", "Batch two");
    await rowCount(page, 3);
    await row(page, "Batch one").locator(".check").click();
    await row(page, "Batch two").locator(".check").click();
    await page.locator("#sel-count", { hasText: "2 selected" }).waitFor();
    await page.click("#sel-release");
    await page.locator("#release-dialog[open]").waitFor();
    assert.ok((await page.textContent("#release-what")).includes("2 messages"));
    await page.fill("#release-to", "qa@allowed.test");
    await page.click("#release-send");
    await page.waitForFunction(() => document.querySelectorAll("#release-outcome li.ok").length === 2);
    assert.equal(releases.length, 3);
  });
  assertNoCspViolations();
  console.log("ok");
} finally {
  await browser.close();
}
