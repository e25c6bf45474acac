// The release dialog in headless Chromium: node page_release.mjs BASE_URL SMTP_PORT RELAY.
// The catcher relays to aiosmtpd at RELAY and allows only @allowed.test. A
// recipient outside that is warned about in the dialog before any request, and
// a second Send lets the server refuse it; an allowed one is sent and the
// dialog says so; a selection of two sends each; "Name <addr>" entries and a
// quoted name with a comma pass the check as the server reads them.
// The Rust test then checks what aiosmtpd got. Prints "ok".
import assert from "node:assert/strict";
import {
  assertNoCspViolations, assertStayedInRoot, feature, launch, openPage, row, rowCount, sendMail,
} from "./page_kit.mjs";

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
    // Send again: the page's reading was a warning; the server has the last
    // word, refuses, and says why. aiosmtpd gets nothing (the Rust test).
    await page.click("#release-send");
    const refused = page.locator("#release-outcome li.failed");
    await refused.waitFor();
    assert.ok((await refused.textContent()).includes("boss@elsewhere.test"), await refused.textContent());
    assert.equal(releases.length, 1, "the second Send asked the server");
    releases.length = 0;
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
    await page.click("#release-close");
  });

  await feature("release dialog reads \"Name <addr>\" entries as the server does", async () => {
    await page.click("#sel-clear");
    sendMail(smtpPort, "Named recipients");
    await row(page, "Named recipients").click();
    await page.locator("#subject", { hasText: "Named recipients" }).waitFor();
    // A selection made before stays when the view's Release is used.
    await row(page, "Batch one").locator(".check").click();
    await page.locator("#sel-count", { hasText: "1 selected" }).waitFor();
    await page.click("#release");
    await page.locator("#release-dialog[open]").waitFor();
    assert.ok((await page.textContent("#release-what")).includes("Named recipients"), "the open message, not the selection");
    await page.fill("#release-to", 'Bob <bob@allowed.test>, "Doe, John" <j@allowed.test>');
    await page.click("#release-send");
    const outcome = page.locator("#release-outcome li.ok");
    await outcome.waitFor();
    assert.equal(await page.textContent("#release-check"), "", "no warning for allowed addresses in names");
    assert.equal(await page.locator("#release-outcome li").count(), 1);
    assert.equal(releases.length, 4);
    await page.click("#release-close");
    assert.equal(await page.textContent("#sel-count"), "1 selected", "the selection was kept");
  });
  assertNoCspViolations();
  // The server refuses the recipient the relay does not allow, on purpose.
  assertStayedInRoot([/^400 POST \S+\/api\/v1\/message\/\d+\/release$/]);
  console.log("ok");
} finally {
  await browser.close();
}
