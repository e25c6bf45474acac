// The page's features in headless Chromium: node page_features.mjs BASE_URL SMTP_PORT.
// Deep links and history, tags (sidebar, editing, filtering), selection, stars,
// dark mode and notifications, each as a user meets it; the API is read back to
// check that what the page shows is what the server holds. Prints "ok".
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import {
  CONTEXT, WAIT_MS, assertNoCspViolations, assertStayedInRoot, allMessages, feature, getJson, idOf, launch, nodeUrl, openPage,
  putJson, row, rowCount, sendMail,
} from "./page_kit.mjs";

const [base, smtpPort] = process.argv.slice(2);
/// The web root BASE_URL names: "/", or "/mail/" behind a reverse proxy. The
/// paths below are written as under "/".
const root = new URL(base).pathname;
const path = (page) => { const url = new URL(page.url()); return `/${url.pathname.slice(root.length)}${url.search}`; };
const waitPath = (page, want) => page.waitForFunction((w) => location.pathname + location.search === w, root + want.slice(1));
const subject = (page, text) => page.locator("#subject", { hasText: text }).waitFor();
const sidebarTag = (page, name) => page.locator(`#tag-list button[data-tag="${name}"]`);
/// The sidebar button of tag `name` reads `label` (its text, as a screen reader
/// says it: name, count and the hidden words around the count).
const tagLabel = (page, name, label) => page.waitForFunction(
  ([n, l]) => document.querySelector(`#tag-list button[data-tag="${n}"]`)?.textContent.replace(/\s+/g, " ").trim() === l,
  [name, label]);
const message = (id) => getJson(base, `api/v1/message/${id}`);
/// Summaries (not the full message: reading that would mark it read).
const summary = async (id) => (await allMessages(base)).find((m) => m.ID === id);

/// A wait that says what it waited for when it times out.
const labelled = (what, wait) => wait.catch((error) => { throw new Error(`${what}: ${error.message}`, { cause: error }); });

const browser = await launch();
try {
  sendMail(smtpPort, "Alpha one", "Beta two", "Gamma three");
  const gamma = await idOf(base, "Gamma three");
  await putJson(base, "api/v1/tags", { IDs: [gamma], Tags: ["urgent"] });

  await feature("deep links and history", async () => {
    const context = await browser.newContext({ ...CONTEXT, viewport: { width: 1280, height: 800 } });
    const page = await openPage(context, base);
    await rowCount(page, 3);
    const beta = await idOf(base, "Beta two");
    const alpha = await idOf(base, "Alpha one");

    await row(page, "Beta two").click();
    await subject(page, "Beta two");
    assert.equal(path(page), `/view/${beta}`);
    assert.equal(await page.title(), "Beta two · sokkel");

    await page.fill("#search", "subject:alpha");
    await waitPath(page, `/view/${beta}?q=${encodeURIComponent("subject:alpha")}`);
    await rowCount(page, 1);
    assert.equal(await page.title(), "Beta two · sokkel", "a search keeps the open message");

    await page.locator("#list").focus();
    await page.keyboard.press("Escape"); // close the message
    await waitPath(page, `/?q=${encodeURIComponent("subject:alpha")}`);
    assert.equal(await page.title(), "Search: subject:alpha · sokkel");

    await sidebarTag(page, "urgent").click();
    await waitPath(page, `/?q=${encodeURIComponent("tag:urgent")}`);
    await page.waitForFunction(() => {
      const rows = [...document.querySelectorAll("#list li")];
      return rows.length === 1 && rows[0].textContent.includes("Gamma three");
    });
    assert.equal(await page.title(), "Tag urgent · sokkel");
    assert.equal(await sidebarTag(page, "urgent").getAttribute("aria-current"), "true");
    assert.equal(await page.inputValue("#search"), "tag:urgent");

    await page.goBack();
    await waitPath(page, `/?q=${encodeURIComponent("subject:alpha")}`);
    await page.waitForFunction(() => {
      const rows = [...document.querySelectorAll("#list li")];
      return rows.length === 1 && rows[0].textContent.includes("Alpha one");
    });
    assert.equal(await page.inputValue("#search"), "subject:alpha");
    assert.equal(await page.locator("#message").isHidden(), true);

    await page.goBack();
    await waitPath(page, `/view/${beta}?q=${encodeURIComponent("subject:alpha")}`);
    await subject(page, "Beta two");
    assert.equal(await page.locator("#message").isVisible(), true);

    await page.goBack();
    await waitPath(page, `/view/${beta}`);
    await rowCount(page, 3);
    assert.equal(await page.inputValue("#search"), "");
    await subject(page, "Beta two");

    await page.goBack();
    await waitPath(page, "/");
    await page.locator("#message").waitFor({ state: "hidden" });
    await page.locator("#welcome").waitFor();
    assert.equal(await page.title(), "sokkel mail");

    await page.goForward();
    await waitPath(page, `/view/${beta}`);
    await subject(page, "Beta two");
    await page.goForward();
    await page.goForward();
    await page.goForward();
    await waitPath(page, `/?q=${encodeURIComponent("tag:urgent")}`);
    await page.waitForFunction(() => document.querySelectorAll("#list li").length === 1
      && document.querySelector("#list li").textContent.includes("Gamma three"));
    await page.close();

    // A pasted link opens the page on that message; /view/latest on the newest.
    const fresh = await openPage(context, base, `view/${alpha}`);
    await subject(fresh, "Alpha one");
    assert.equal(path(fresh), `/view/${alpha}`);
    await fresh.locator(`#list li.current[data-id="${alpha}"]`).waitFor();
    await fresh.close();
    const latest = await openPage(context, base, "view/latest");
    await subject(latest, "Gamma three");
    await waitPath(latest, `/view/${gamma}`);
    const search = await openPage(context, base, `?q=${encodeURIComponent("subject:beta")}`);
    await search.waitForFunction(() => document.querySelectorAll("#list li").length === 1
      && document.querySelector("#list li").textContent.includes("Beta two"));
    assert.equal(await search.inputValue("#search"), "subject:beta");
    await context.close();
  });

  await feature("tags: editing, live sidebar counts, filtering", async () => {
    sendMail(smtpPort, "Delta four");
    const delta = await idOf(base, "Delta four");
    const alpha = await idOf(base, "Alpha one");
    const beta = await idOf(base, "Beta two");
    const context = await browser.newContext({ ...CONTEXT, viewport: { width: 1280, height: 800 } });
    const page = await openPage(context, base);
    await rowCount(page, 4);
    // The sidebar came with the page: urgent is on Gamma, read by now.
    await tagLabel(page, "urgent", "urgent 1 message, none unread");

    // On the open message: t focuses the editor, Enter adds.
    await row(page, "Alpha one").click();
    await subject(page, "Alpha one");
    await page.locator("#list").focus();
    await page.keyboard.press("t");
    assert.equal(await page.evaluate(() => document.activeElement.id), "tag-input");
    await page.keyboard.type("invoices");
    await page.keyboard.press("Enter");
    await page.locator("#message-tags .chip", { hasText: "invoices" }).waitFor();
    await tagLabel(page, "invoices", "invoices 1 message, none unread");
    assert.deepEqual((await summary(alpha)).Tags, ["invoices"]);
    await row(page, "Alpha one").locator(".chip", { hasText: "invoices" }).waitFor();

    // On a selection (Delta, unread): the dialog.
    await row(page, "Delta four").locator(".check").click();
    await page.locator("#list").focus();
    await page.keyboard.press("t");
    await page.locator("#tag-dialog[open]").waitFor();
    await page.fill("#tag-dialog-input", "invoices");
    await page.press("#tag-dialog-input", "Enter");
    await page.locator("#selection-tags .chip", { hasText: "invoices" }).waitFor();
    await page.locator("#tag-dialog").getByRole("button", { name: "Close" }).click();
    await tagLabel(page, "invoices", "invoices 1 unread of 2");
    assert.deepEqual((await summary(delta)).Tags, ["invoices"]);
    assert.equal((await summary(delta)).Read, false);

    // Opening Delta reads it: the unread count falls without a reload.
    await page.evaluate(() => { window.sameDocument = true; });
    await row(page, "Delta four").click();
    await subject(page, "Delta four");
    await tagLabel(page, "invoices", "invoices 2 messages, none unread");

    // A change made elsewhere (the API) reaches the sidebar live.
    await putJson(base, "api/v1/tags", { IDs: [beta], Tags: ["elsewhere"] });
    await tagLabel(page, "elsewhere", "elsewhere 1 message, none unread");
    await row(page, "Beta two").locator(".chip", { hasText: "elsewhere" }).waitFor();

    // Click a tag: only its messages.
    await sidebarTag(page, "invoices").click();
    await page.waitForFunction(() => {
      const text = [...document.querySelectorAll("#list li")].map((li) => li.textContent);
      return text.length === 2 && text.some((t) => t.includes("Alpha one")) && text.some((t) => t.includes("Delta four"));
    });

    // Remove with ×.
    await page.getByRole("button", { name: "Remove tag invoices" }).click();
    await page.locator("#message-tags .chip").waitFor({ state: "detached" });
    await tagLabel(page, "invoices", "invoices 1 message, none unread");
    assert.deepEqual((await summary(delta)).Tags, []);
    assert.equal(await page.evaluate(() => window.sameDocument), true, "no reload");
    await context.close();
  });

  await feature("multi-select: click, shift-click, x; read, unread, tag, delete", async () => {
    sendMail(smtpPort, "Sel A", "Sel B", "Sel C", "Sel D", "Sel E");
    const ids = {};
    for (const name of ["A", "B", "C", "D", "E"]) ids[name] = await idOf(base, `Sel ${name}`);
    const context = await browser.newContext({ ...CONTEXT, viewport: { width: 1280, height: 800 } });
    const page = await openPage(context, base);
    await rowCount(page, 9);
    // Newest first: E D C B A. Click E's box, shift-click C's: E, D, C.
    await row(page, "Sel E").locator(".check").click();
    await row(page, "Sel C").locator(".check").click({ modifiers: ["Shift"] });
    await page.locator("#sel-count", { hasText: "3 selected" }).waitFor();
    const selected = await page.$$eval("#list li[aria-selected=true]", (lis) => lis.map((li) => li.dataset.id));
    assert.deepEqual(selected.sort(), [ids.C, ids.D, ids.E].sort());
    assert.equal(await page.locator("#message").isHidden(), true, "ticking a box opens nothing");

    await page.click("#sel-read");
    await page.waitForFunction(() => document.querySelectorAll("#list li.unread").length === 2);
    for (const name of ["C", "D", "E"]) assert.equal((await summary(ids[name])).Read, true, `Sel ${name} read`);
    assert.equal((await summary(ids.B)).Read, false, "Sel B untouched");
    await page.click("#sel-unread");
    await page.waitForFunction(() => document.querySelectorAll("#list li.unread").length === 5);
    for (const name of ["C", "D", "E"]) assert.equal((await summary(ids[name])).Read, false, `Sel ${name} unread`);

    await page.click("#sel-tag");
    await page.fill("#tag-dialog-input", "batch");
    await page.press("#tag-dialog-input", "Enter");
    await page.locator("#selection-tags .chip", { hasText: "batch" }).waitFor();
    await page.keyboard.press("Escape");
    await page.locator("#tag-dialog").waitFor({ state: "hidden" });
    for (const name of ["C", "D", "E"]) assert.deepEqual((await summary(ids[name])).Tags, ["batch"], `Sel ${name} tagged`);
    assert.deepEqual((await summary(ids.B)).Tags, [], "Sel B untagged");
    await tagLabel(page, "batch", "batch 3 unread of 3");

    // A mixed selection: C has batch, B not; × removes it where it is.
    await page.click("#sel-clear");
    await row(page, "Sel B").locator(".check").click();
    await row(page, "Sel C").locator(".check").click();
    await page.click("#sel-tag");
    await page.locator("#selection-tags .chip", { hasText: "batch (1 of 2)" }).waitFor();
    await page.locator("#tag-dialog").getByRole("button", { name: "Remove tag batch" }).click();
    await page.locator("#selection-tags .chip").waitFor({ state: "detached" });
    await page.keyboard.press("Escape");
    assert.deepEqual((await summary(ids.C)).Tags, [], "Sel C untagged");
    assert.deepEqual((await summary(ids.D)).Tags, ["batch"], "Sel D keeps its tag");
    await tagLabel(page, "batch", "batch 2 unread of 2");

    await page.click("#sel-clear");
    await page.locator("#sel-count", { hasText: "0 selected" }).waitFor();

    // The keyboard: the cursor is on C (clicked last); k k up to E, x; j j j
    // down to B, x; Delete deletes both.
    await page.locator("#list").focus();
    await page.keyboard.press("k");
    await page.keyboard.press("k");
    await page.keyboard.press("x");
    for (let i = 0; i < 3; i++) await page.keyboard.press("j");
    await page.keyboard.press("x");
    await page.locator("#sel-count", { hasText: "2 selected" }).waitFor();
    const ticked = await page.$$eval("#list li[aria-selected=true]", (lis) => lis.map((li) => li.dataset.id));
    assert.deepEqual(ticked.sort(), [ids.B, ids.E].sort());
    await page.keyboard.press("Delete");
    await rowCount(page, 7);
    const left = (await allMessages(base)).map((m) => m.Subject);
    assert.ok(!left.includes("Sel E") && !left.includes("Sel B"), `deleted: ${left}`);
    assert.ok(left.includes("Sel D") && left.includes("Sel C") && left.includes("Sel A"), `kept: ${left}`);
    await context.close();
  });

  await feature("star from the list and the view", async () => {
    const context = await browser.newContext({ ...CONTEXT, viewport: { width: 1280, height: 800 } });
    let page = await openPage(context, base);
    const a = await idOf(base, "Sel A");
    const c = await idOf(base, "Sel C");
    const d = await idOf(base, "Sel D");
    await row(page, "Sel A").locator(".star").click();
    await row(page, "Sel A").and(page.locator(".flagged")).waitFor();
    assert.equal((await summary(a)).Flagged, true);
    assert.equal(await page.locator("#message").isHidden(), true, "the star opens nothing");

    await row(page, "Sel C").click();
    await subject(page, "Sel C");
    await page.click("#star");
    await page.locator("#star[aria-pressed=true]").waitFor();
    await row(page, "Sel C").and(page.locator(".flagged")).waitFor();
    assert.equal((await summary(c)).Flagged, true);

    // s on the row under the cursor.
    await page.keyboard.press("Escape");
    await page.locator("#list").focus();
    await page.keyboard.press("k"); // from C up to D
    await page.keyboard.press("s");
    await row(page, "Sel D").and(page.locator(".flagged")).waitFor();
    assert.equal((await summary(d)).Flagged, true);
    await page.keyboard.press("s");
    await page.waitForFunction((id) => !document.querySelector(`#m-${id}`).classList.contains("flagged"), d);
    assert.equal((await summary(d)).Flagged, false);

    await page.reload();
    await page.waitForSelector("#live.on");
    await row(page, "Sel A").and(page.locator(".flagged")).waitFor();
    await row(page, "Sel C").and(page.locator(".flagged")).waitFor();
    assert.equal(await row(page, "Sel D").evaluate((li) => li.classList.contains("flagged")), false);
    await row(page, "Sel C").click();
    await page.locator("#star[aria-pressed=true]").waitFor();
    assert.equal((await message(c)).Flagged, true);
    await context.close();
  });

  await feature("dark mode: system setting, toggle, remembered", async () => {
    const background = (page) => page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    const context = await browser.newContext({ ...CONTEXT, colorScheme: "dark", viewport: { width: 1280, height: 800 } });
    const page = await openPage(context, base);
    assert.equal(await background(page), "rgb(20, 24, 31)", "dark by the system setting");
    await row(page, "Alpha one").click();
    await page.frameLocator("#html-frame").locator("b", { hasText: "Alpha one" }).waitFor();
    assert.equal(await page.locator("#html-frame").evaluate((f) => getComputedStyle(f).backgroundColor),
      "rgb(255, 255, 255)", "the mail's frame stays light");
    await page.selectOption("#theme", "light");
    assert.equal(await background(page), "rgb(255, 255, 255)");
    await page.reload();
    await page.waitForSelector("#live.on");
    assert.equal(await background(page), "rgb(255, 255, 255)", "light after a reload");
    assert.equal(await page.inputValue("#theme"), "light");
    // The saved choice is applied by theme.js in <head>, before the first
    // paint: it holds even when app.js (deferred) never runs.
    const early = await context.newPage();
    await early.route("**/static/app.js", (route) => route.abort());
    await early.goto(base);
    assert.equal(await early.evaluate(() => document.documentElement.dataset.theme), "light");
    assert.equal(await background(early), "rgb(255, 255, 255)", "light before app.js");
    await early.close();
    await page.selectOption("#theme", "auto");
    assert.equal(await background(page), "rgb(20, 24, 31)", "auto follows the system again");
    await context.close();
  });

  await feature("notification for new mail, opt-in; a burst makes one", async () => {
    const context = await browser.newContext({ ...CONTEXT, viewport: { width: 1280, height: 800 } });
    await context.grantPermissions(["notifications"], { origin: new URL(base).origin });
    // Record each Notification the page constructs (the real one still runs).
    await context.addInitScript(() => {
      const Real = window.Notification;
      window.notes = [];
      class Recorded extends Real {
        constructor(title, options) {
          window.notes.push({ title, body: options && options.body });
          super(title, options);
        }
        static get permission() { return Real.permission; }
        static requestPermission(...args) { return Real.requestPermission(...args); }
      }
      window.Notification = Recorded;
    });
    const page = await openPage(context, base);
    assert.equal(await page.getAttribute("#notify", "aria-pressed"), "false");
    sendMail(smtpPort, "Before opting in");
    await row(page, "Before opting in").waitFor();
    assert.deepEqual(await page.evaluate(() => window.notes), [], "no notification before opting in");
    await page.click("#notify");
    await page.locator("#notify[aria-pressed=true]").waitFor();
    sendMail(smtpPort, "Wubba lubba dub dub");
    await page.waitForFunction(() => window.notes.length === 1, null, { timeout: WAIT_MS });
    const [note] = await page.evaluate(() => window.notes);
    assert.equal(note.title, "Wubba lubba dub dub");
    assert.ok(note.body.includes("Summer Smith") && note.body.includes("summer@example.com"), note.body);
    // Remembered: on after a reload.
    await page.reload();
    await page.waitForSelector("#live.on");
    assert.equal(await page.getAttribute("#notify", "aria-pressed"), "true");

    // A burst: one notification that counts it, named by the newest message.
    sendMail(smtpPort, "Burst 1", "Burst 2", "Burst 3", "Burst 4", "Burst 5");
    await row(page, "Burst 5").waitFor();
    await page.waitForFunction(() => window.notes.length >= 1, null, { timeout: WAIT_MS });
    // Long enough for a second notification, were the burst split.
    await page.waitForTimeout(1500);
    const burst = await page.evaluate(() => window.notes);
    assert.equal(burst.length, 1, `one notification for the burst: ${JSON.stringify(burst)}`);
    assert.equal(burst[0].title, "5 new messages");
    assert.ok(burst[0].body.includes("Burst 5") && burst[0].body.includes("summer@example.com"), burst[0].body);
    await context.close();
  });
  await feature("empty state: the real SMTP address, copy buttons, and the example works", async () => {
    const context = await browser.newContext({ ...CONTEXT, viewport: { width: 1280, height: 800 } });
    await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: new URL(base).origin });
    const page = await openPage(context, base);
    await page.locator("#welcome .smtp-address", { hasText: `127.0.0.1:${smtpPort}` }).waitFor();
    await page.getByRole("button", { name: "Copy the smtplib example" }).click();
    await page.locator("#copied", { hasText: "Copied" }).waitFor();
    const copied = await page.evaluate(() => navigator.clipboard.readText());
    assert.equal(copied, await page.textContent("#howto-python"));
    assert.ok(copied.includes(`smtplib.SMTP('127.0.0.1', ${smtpPort})`), copied);
    // What the page tells a user to paste does deliver mail here.
    execFileSync("sh", ["-c", copied], { timeout: 30000 });
    await row(page, "Hello").waitFor();
    await page.getByRole("button", { name: "Copy the swaks example" }).click();
    const swaks = await page.evaluate(() => navigator.clipboard.readText());
    assert.ok(swaks.startsWith(`swaks --server 127.0.0.1 --port ${smtpPort} `), swaks);
    await context.close();
  });

  await feature("previews: phone, tablet and desktop widths, remembered", async () => {
    const context = await browser.newContext({ ...CONTEXT, viewport: { width: 1700, height: 900 } });
    let page = await openPage(context, base);
    const width = () => page.locator("#html-frame").evaluate((f) => Math.round(f.getBoundingClientRect().width));
    // The frame's width once layout has settled on `want` (the page may still be
    // laying out on a busy machine); the assertion then says what it was.
    const settled = async (want) => {
      await page.waitForFunction((w) => Math.round(document.getElementById("html-frame")
        .getBoundingClientRect().width) === w, want, { timeout: 5000 }).catch(() => {});
      return width();
    };
    const showAlpha = async () => {
      await row(page, "Alpha one").click();
      await page.frameLocator("#html-frame").locator("b", { hasText: "Alpha one" }).waitFor();
    };
    await showAlpha();
    const full = await width();
    assert.ok(full > 800, `desktop fills the pane: ${full}`);
    await page.click("button.preview[data-preview=phone]");
    assert.equal(await settled(375), 375);
    await page.click("button.preview[data-preview=tablet]");
    assert.equal(await settled(768), 768);
    await page.click("button.preview[data-preview=desktop]");
    assert.equal(await settled(full), full);
    await page.click("button.preview[data-preview=phone]");
    await page.reload();
    await page.waitForSelector("#live.on");
    await showAlpha();
    assert.equal(await settled(375), 375, "phone width remembered");
    assert.equal(await page.getAttribute("button.preview[data-preview=phone]", "aria-pressed"), "true");
    await page.click("button.preview[data-preview=desktop]");
    await context.close();
  });

  await feature("thumbnails of image attachments", async () => {
    sendMail(smtpPort, "--png", "With a picture");
    const id = await idOf(base, "With a picture");
    const part = (await message(id)).Attachments.find((a) => a.FileName === "pixel.png");
    assert.ok(part, "the PNG is an attachment");
    const context = await browser.newContext({ ...CONTEXT, viewport: { width: 1280, height: 800 } });
    const page = await openPage(context, base);
    await row(page, "With a picture").click();
    await page.locator("#subject", { hasText: "With a picture" }).waitFor();
    const img = page.locator("#attachments a.attachment img.thumb");
    await img.waitFor({ state: "attached" });
    assert.equal(await img.getAttribute("alt"), "pixel.png");
    assert.equal(await img.getAttribute("loading"), "lazy");
    assert.equal(new URL(await img.getAttribute("src"), base).pathname, `${root}api/v1/message/${id}/part/${part.PartID}/thumb`);
    // Shown once the server's 180x120 JPEG loads.
    await page.waitForFunction(() => {
      const i = document.querySelector("#attachments img.thumb");
      return i.hidden || (i.complete && i.naturalWidth > 0);
    });
    const size = await img.evaluate((i) => (i.hidden ? "hidden" : `${i.naturalWidth}x${i.naturalHeight}`));
    assert.equal(size, "180x120", "the thumbnail shows");
    await page.locator("a.attachment", { hasText: "pixel.png" }).waitFor();
    await context.close();
  });

  await feature("tabs added later (checks.js) switch like ours and hear the events", async () => {
    const context = await browser.newContext({ ...CONTEXT, viewport: { width: 1280, height: 800 } });
    const page = await openPage(context, base);
    const alpha = await idOf(base, "Alpha one");
    await page.evaluate(() => {
      window.heard = [];
      for (const name of ["sokkel:message", "sokkel:closed", "sokkel:tab"]) {
        document.addEventListener(name, (e) => window.heard.push({
          name, id: e.detail && e.detail.id, tab: e.detail && e.detail.tab,
          subject: e.detail && e.detail.message && e.detail.message.Subject,
        }));
      }
      const button = document.createElement("button");
      button.type = "button";
      button.setAttribute("role", "tab");
      button.dataset.tab = "extra";
      button.textContent = "Extra";
      document.getElementById("tabs").append(button);
      const panel = document.createElement("div");
      panel.id = "panel-extra";
      panel.className = "panel";
      panel.textContent = "extra panel";
      document.getElementById("panels").append(panel);
    });
    await row(page, "Alpha one").click();
    await page.locator("#subject", { hasText: "Alpha one" }).waitFor();
    await page.click("#tabs button[data-tab=extra]");
    await page.locator("#panel-extra").waitFor();
    assert.equal(await page.locator("#panel-html").isHidden(), true);
    assert.equal(await page.getAttribute("#tabs button[data-tab=extra]", "aria-selected"), "true");
    await page.click("#tab-text");
    await page.locator("#panel-extra").waitFor({ state: "hidden" });
    await page.locator("#list").focus();
    await page.keyboard.press("Escape");
    await page.waitForFunction(() => window.heard.some((h) => h.name === "sokkel:closed"));
    const heard = await page.evaluate(() => window.heard);
    assert.deepEqual(heard.find((h) => h.name === "sokkel:message"),
      { name: "sokkel:message", id: alpha, tab: undefined, subject: "Alpha one" });
    assert.ok(heard.some((h) => h.name === "sokkel:tab" && h.tab === "extra" && h.id === alpha), JSON.stringify(heard));
    assert.ok(heard.some((h) => h.name === "sokkel:tab" && h.tab === "text"), JSON.stringify(heard));
    await context.close();
  });
  await feature("paging: one page at first, the rest as the list scrolls", async () => {
    sendMail(smtpPort, ...Array.from({ length: 110 }, (_, i) => `Bulk ${i}`));
    const total = (await getJson(base, "api/v1/messages?limit=1")).total;
    assert.ok(total > 110, `total ${total}`);
    const context = await browser.newContext({ ...CONTEXT, viewport: { width: 1280, height: 800 } });
    const page = await openPage(context, base);
    const requests = [];
    page.on("request", (r) => { if (r.url().includes("/api/v1/messages?")) requests.push(r.url()); });
    await rowCount(page, 50);
    await page.waitForTimeout(300);
    assert.equal(await page.locator("#list li").count(), 50, "only the first page, not everything");
    for (let i = 0; i < 20 && await page.locator("#list li").count() < total; i++) {
      await page.locator("#list-pane").evaluate((pane) => { pane.scrollTop = pane.scrollHeight; });
      await page.waitForTimeout(150);
    }
    assert.equal(await page.locator("#list li").count(), total, "scrolling loads every page");
    const ids = await page.$$eval("#list li", (lis) => lis.map((li) => Number(li.dataset.id)));
    assert.deepEqual(ids, [...ids].sort((a, b) => b - a), "newest first, no repeats");
    assert.equal(new Set(ids).size, ids.length);
    assert.ok(requests.every((url) => url.includes("before=")), "later pages by cursor");
    await context.close();
  });
  await feature("tags: rapid repeated edits all count", async () => {
    sendMail(smtpPort, "Quick tags");
    const id = await idOf(base, "Quick tags");
    const context = await browser.newContext({ ...CONTEXT, viewport: { width: 1280, height: 800 } });
    const page = await openPage(context, base);
    // Each tag request is held back a moment on its way, so the second edit
    // is made while the first is still unanswered, as with a slow server.
    const puts = [];
    await page.route("**/api/v1/tags", async (route) => {
      puts.push(route.request().postDataJSON());
      await new Promise((resolve) => setTimeout(resolve, 300));
      await route.continue();
    });
    await row(page, "Quick tags").click();
    await subject(page, "Quick tags");
    await page.fill("#tag-input", "a");
    await page.press("#tag-input", "Enter");
    await page.fill("#tag-input", "b");
    await page.press("#tag-input", "Enter");
    await page.locator("#message-tags .chip", { hasText: "b" }).waitFor();
    await page.waitForFunction(() => document.querySelectorAll("#message-tags .chip").length === 2);
    await page.waitForFunction(() => document.getElementById("tag-input").value === "");
    assert.deepEqual((await summary(id)).Tags, ["a", "b"], `Enter a, Enter b: ${JSON.stringify(puts)}`);

    // Two × in a row, the second before the first is answered.
    puts.length = 0;
    await page.getByRole("button", { name: "Remove tag a" }).click();
    await page.getByRole("button", { name: "Remove tag b" }).click();
    await page.locator("#message-tags .chip").first().waitFor({ state: "detached" });
    for (let i = 0; i < 50 && (await summary(id)).Tags.length; i++) await page.waitForTimeout(100);
    assert.deepEqual((await summary(id)).Tags, [], `two × clicks: ${JSON.stringify(puts)}`);
    assert.equal(await page.locator("#message-tags .chip").count(), 0);
    assert.ok(puts.length >= 2, `the second × waited for the first: ${JSON.stringify(puts)}`);
    await context.close();
  });

  await feature("keys: arrows scroll a focused panel, j and k move the list", async () => {
    const lines = Array.from({ length: 400 }, (_, i) => `Line ${i} of a long message.`).join("\n");
    const sent = await fetch(nodeUrl("api/v1/send", base), {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ From: { Email: "summer@example.com" }, To: [{ Email: "beth@example.com" }],
        Subject: "Long raw", Text: lines }),
    });
    assert.equal(sent.status, 200, await sent.text());
    const context = await browser.newContext({ ...CONTEXT, viewport: { width: 1280, height: 800 } });
    const page = await openPage(context, base);
    await row(page, "Long raw").click();
    await subject(page, "Long raw");
    const id = await idOf(base, "Long raw");
    const cursor = () => page.evaluate(() => document.querySelector("#list li.current")?.dataset.id);
    assert.equal(await cursor(), id);
    await page.click("#tab-raw");
    await page.locator("#panel-raw", { hasText: "Line 399 of a long message." }).waitFor();
    await page.locator("#panel-raw").focus();
    // The raw panel is not a scroll box itself: the message pane around it scrolls.
    const scrolled = () => page.evaluate(() => document.getElementById("view").scrollTop);
    const start = await scrolled(); // focusing may have scrolled the panel into view
    for (let i = 0; i < 5; i++) await page.keyboard.press("ArrowDown");
    await labelled("the arrows scroll the message pane", page.waitForFunction((s) => document.getElementById("view").scrollTop > s, start));
    assert.equal(await cursor(), id, "ArrowDown in the raw panel left the list cursor alone");
    assert.equal(await page.evaluate(() => document.activeElement.id), "panel-raw");
    // Keyboard scrolling is smooth: the pane's position once it stops moving.
    const settled = () => page.evaluate(() => new Promise((resolve) => {
      const view = document.getElementById("view");
      let last = -1;
      let same = 0;
      const frame = () => {
        same = view.scrollTop === last ? same + 1 : 0;
        last = view.scrollTop;
        if (same >= 5) resolve(last); else requestAnimationFrame(frame);
      };
      requestAnimationFrame(frame);
    }));
    const down = await settled();
    await page.keyboard.press("ArrowUp");
    await labelled("ArrowUp scrolls back up", page.waitForFunction((d) => document.getElementById("view").scrollTop < d, down));
    assert.equal(await cursor(), id, "ArrowUp in the raw panel left the list cursor alone");
    // j still moves the list from anywhere that is not a text box.
    await page.keyboard.press("j");
    await labelled("j moves the cursor from the raw panel", page.waitForFunction((was) => document.querySelector("#list li.current")?.dataset.id !== was, id));
    // And the arrows move it from the list itself.
    await page.locator("#list").focus();
    const before = await cursor();
    await page.keyboard.press("ArrowUp");
    await labelled("ArrowUp moves the cursor from the list", page.waitForFunction((was) => document.querySelector("#list li.current")?.dataset.id !== was, before));
    assert.equal(await cursor(), id);
    await context.close();
  });

  assertNoCspViolations();
  assertStayedInRoot();
  console.log("ok");
} finally {
  await browser.close();
}
