// How the page looks and whether everyone can use it, in headless Chromium:
// node page_look.mjs BASE_URL SMTP_PORT ARTIFACTS.
// Screenshots of the empty state, the list and a message at 375, 768 and 1280 px
// in light and dark go to ARTIFACTS as VIEW-WIDTH-THEME.png; axe-core checks the
// list with tags in the sidebar, a message, its HTML check and link check
// panels, the help dialog and the release dialog in both themes at 1280 and
// 390 px, and fails on any serious or critical violation. Prints "ok".
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import {
  assertNoCspViolations, feature, here, idOf, launch, openPage, putJson, row, rowCount, sendMail,
} from "./page_kit.mjs";

const [base, smtpPort, artifacts] = process.argv.slice(2);
mkdirSync(artifacts, { recursive: true });
const WIDTHS = [375, 768, 1280];
const THEMES = ["light", "dark"];

const browser = await launch();

/// A page at `width` in `theme` (the system setting; the page follows it).
async function pageAt(width, theme, options = {}) {
  const context = await browser.newContext({ viewport: { width, height: 800 }, colorScheme: theme, ...options });
  const page = await openPage(context, base);
  return { context, page };
}

async function shot(page, view, width, theme) {
  const file = join(artifacts, `${view}-${width}-${theme}.png`);
  await page.screenshot({ path: file });
  console.log(`screenshot ${file}`);
}

/// axe-core's violations of impact serious or critical in the page as it is now.
async function axe(page, what) {
  const violations = await page.evaluate(async () => {
    // The message's own HTML is in a frame without scripts: axe cannot run in
    // it, and it is the mail's markup, not the page's.
    const result = await window.axe.run(document, { iframes: false, resultTypes: ["violations"] });
    return result.violations
      .filter((v) => v.impact === "serious" || v.impact === "critical")
      .map((v) => `${v.id} (${v.impact}): ${v.help}\n` + v.nodes.map((n) => `    ${n.target.join(" ")}: ${n.failureSummary}`).join("\n"));
  });
  assert.deepEqual(violations, [], `axe in ${what}:\n${violations.join("\n")}`);
  console.log(`axe ok: ${what}`);
}

try {
  await feature("screenshots of the empty state", async () => {
    for (const theme of THEMES) {
      for (const width of WIDTHS) {
        const { context, page } = await pageAt(width, theme);
        // The real SMTP address: in the right pane, or in the list's own
        // empty message on one pane.
        const where = width > 760 ? "#welcome" : "#empty";
        await page.locator(`${where} .smtp-address`, { hasText: `127.0.0.1:${smtpPort}` }).first().waitFor();
        if (width > 760) await page.locator("#howto-python", { hasText: `, ${smtpPort})` }).waitFor();
        await shot(page, "empty", width, theme);
        await context.close();
      }
    }
  });

  sendMail(smtpPort, "Quarterly numbers", "Lunch on Friday", "Your build is green");

  await feature("screenshots of the list and a message", async () => {
    for (const theme of THEMES) {
      for (const width of WIDTHS) {
        const { context, page } = await pageAt(width, theme);
        await rowCount(page, 3);
        await shot(page, "list", width, theme);
        await row(page, "Quarterly numbers").click();
        await page.frameLocator("#html-frame").locator("b", { hasText: "Quarterly numbers" }).waitFor();
        await shot(page, "message", width, theme);
        await context.close();
      }
    }
  });

  await feature("usable at 360 px: no sideways scrolling, back to the list", async () => {
    const { context, page } = await pageAt(360, "light");
    await rowCount(page, 3);
    const wide = () => page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
    assert.equal(await wide(), false, "the list fits");
    await row(page, "Lunch on Friday").click();
    await page.locator("#subject", { hasText: "Lunch on Friday" }).waitFor();
    assert.equal(await page.locator("#list-pane").isHidden(), true, "one pane at a time");
    assert.equal(await wide(), false, "the message fits");
    await page.click("#back");
    await page.locator("#list-pane").waitFor();
    await context.close();
  });

  // For the checks below: tags in the sidebar (one unread), and a message
  // whose links point back at this catcher, so the link check has a result
  // table (one good row, one bad) without reaching outside.
  await putJson(base, "api/v1/tags", { IDs: [await idOf(base, "Quarterly numbers")], Tags: ["finance"] });
  await putJson(base, "api/v1/tags", { IDs: [await idOf(base, "Lunch on Friday")], Tags: ["team", "food"] });
  const sent = await fetch(new URL("api/v1/send", base), {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({
      From: { Email: "summer@example.com", Name: "Summer Smith" }, To: [{ Email: "beth@example.com" }],
      Subject: "Links to check", Text: "Links.",
      HTML: `<p><b>Links to check</b>: <a href="${new URL("api/v1/webui", base)}">the API</a>,
        <a href="${new URL("no-such-page", base)}">a missing page</a>.</p>
        <div style="display: flex">Flex</div>`,
    }),
  });
  assert.equal(sent.status, 200, await sent.text());

  await feature("accessibility (axe-core): no serious or critical violations", async () => {
    for (const width of [1280, 390]) {
      for (const theme of THEMES) {
        const at = `${width} px, ${theme}`;
        // bypassCSP only here: the page's policy (script-src 'self') would block
        // the injected axe script; the features are tested under the real policy.
        const { context, page } = await pageAt(width, theme, { bypassCSP: true });
        await rowCount(page, 4);
        await page.locator('#tag-list button[data-tag="finance"]').waitFor({ state: "attached" });
        await page.locator('#tag-list button[data-tag="team"]').waitFor({ state: "attached" });
        await page.addScriptTag({ path: join(here, "node_modules/axe-core/axe.min.js") });
        await axe(page, `the list with tags in the sidebar (${at})`);
        await row(page, "Links to check").click();
        await page.frameLocator("#html-frame").locator("b", { hasText: "Links to check" }).waitFor();
        await axe(page, `a message (${at})`);
        await page.click('#tabs [data-tab="html-check"]');
        await page.locator("#panel-html-check .hc-headline").waitFor();
        await page.locator("#panel-html-check .hc-warning").first().waitFor();
        await axe(page, `the HTML check panel (${at})`);
        await page.click('#tabs [data-tab="link-check"]');
        await page.click("#link-check-run");
        await page.waitForFunction(() => document.querySelectorAll("#panel-link-check tbody tr").length === 2
          && document.querySelector("#panel-link-check").getAttribute("aria-busy") === "false");
        await page.locator("#panel-link-check tr.lc-bad").waitFor();
        await axe(page, `the link check panel with results (${at})`);
        await page.locator("#list").focus();
        await page.keyboard.press("?");
        await page.locator("#help-dialog[open]").waitFor();
        await axe(page, `the help dialog (${at})`);
        await page.keyboard.press("Escape");
        await page.locator("#help-dialog").waitFor({ state: "hidden" });
        await page.click("#release");
        await page.locator("#release-dialog[open]").waitFor();
        await page.fill("#release-to", "someone@elsewhere.test");
        await page.click("#release-send");
        await page.locator("#release-check", { hasText: "Not allowed" }).waitFor();
        await axe(page, `the release dialog (${at})`);
        await context.close();
      }
    }
  });
  assertNoCspViolations();
  console.log("ok");
} finally {
  await browser.close();
}
