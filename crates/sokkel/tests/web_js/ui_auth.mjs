// The page behind a login over HTTPS (issue #18): node ui_auth.mjs BASE SMTP_PORT USER PASSWORD.
// BASE is https:// with a self-signed certificate. Without credentials the page is a
// 401; with them it loads, its WebSocket (wss, with the login) goes live, and a mail
// sent over SMTP appears without a reload, and its HTML shows in its frame. Prints "ok".
import assert from "node:assert/strict";
import { launch, row, sendMail, WAIT_MS } from "./page_kit.mjs";

const [base, smtpPort, username, password] = process.argv.slice(2);
assert.ok(base.startsWith("https://"), `not an https URL: ${base}`);

const browser = await launch();
try {
  // No login, or a wrong one: the browser gets a 401 and nothing of the page
  // (headless Chromium, which cannot ask the user, ends such a navigation with
  // ERR_INVALID_AUTH_CREDENTIALS).
  const strangers = [
    ["no login", undefined],
    ["a wrong password", { username, password: `${password}-wrong` }],
  ];
  for (const [what, httpCredentials] of strangers) {
    const stranger = await browser.newContext({ ignoreHTTPSErrors: true, httpCredentials });
    const answer = await stranger.request.get(base);
    assert.equal(answer.status(), 401, `the page with ${what}`);
    assert.match(answer.headers()["www-authenticate"] ?? "", /^Basic realm="sokkel"/, what);
    const page = await stranger.newPage();
    const navigated = await page.goto(base).then(
      (response) => response.status(),
      (error) => error.message,
    );
    assert.match(String(navigated), /^401$|ERR_INVALID_AUTH_CREDENTIALS/, `the page with ${what}`);
    assert.equal(await page.locator("#list").count(), 0, `the page shown with ${what}`);
    await stranger.close();
  }

  const context = await browser.newContext({
    ignoreHTTPSErrors: true,
    httpCredentials: { username, password },
  });
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  const sockets = [];
  page.on("websocket", (socket) => sockets.push(socket.url()));
  const loaded = await page.goto(base);
  assert.equal(loaded.status(), 200, "the page with the login");
  await page.waitForSelector("#live.on");
  assert.ok(sockets.some((url) => url.startsWith("wss://")), `no wss WebSocket: ${sockets}`);
  await page.evaluate(() => { window.sameDocument = true; });

  sendMail(smtpPort, "Behind the login");
  await row(page, "Behind the login").waitFor();
  assert.equal(await page.evaluate(() => window.sameDocument), true, "no reload");
  await row(page, "Behind the login").click();
  await page.locator("#subject", { hasText: "Behind the login" }).waitFor();
  // The message's HTML frame may be framed by the page over https too
  // (issue #18: its policy named only http://, and Chromium blocked it).
  await page.frameLocator("#html-frame").locator("b", { hasText: "Behind the login" }).waitFor();
  console.log("ok");
} finally {
  await browser.close();
}
