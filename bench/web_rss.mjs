// The web page, open in headless Chromium while bench/web.sh sends mail at a steady
// rate: node bench/web_rss.mjs BASE_URL DONE_FILE TIMEOUT_SECONDS
//
// Opens the page, waits until it is live (its WebSocket is open), prints "ready",
// then waits (at most TIMEOUT_SECONDS) for DONE_FILE, which the sender writes when it
// has finished. Then the page must show, as its first row and without a reload, the
// newest message the API lists. Prints "live ok: ..." or fails with a message.
//
// Uses playwright-core from crates/sokkel/tests/web_js/node_modules (`npm ci` there;
// .ci/run does it) and Debian's /usr/bin/chromium; downloads nothing.
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const [base, doneFile, timeoutSeconds] = process.argv.slice(2);
const here = dirname(fileURLToPath(import.meta.url));
const webJs = join(here, "..", "crates", "sokkel", "tests", "web_js");
const require = createRequire(join(webJs, "package.json"));
const { chromium } = require("playwright-core");

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  page.setDefaultTimeout(30000);
  // Each fetch of the plain list's first page is a (re)load: the page reloads when the
  // server tells it that it fell behind the event stream ("prune").
  let listLoads = 0;
  page.on("request", (request) => {
    const url = new URL(request.url());
    if (url.pathname === "/api/v1/messages" && !url.searchParams.has("before")) listLoads += 1;
  });
  await page.goto(base);
  await page.waitForSelector("#live.on");
  await page.evaluate(() => { window.sameDocument = true; });
  console.log("ready");

  const deadline = Date.now() + Number(timeoutSeconds) * 1000;
  while (!existsSync(doneFile)) {
    if (Date.now() > deadline) throw new Error(`no ${doneFile} within ${timeoutSeconds} s`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }

  const newest = (await (await fetch(`${base}api/v1/messages?limit=1`)).json()).messages[0].Subject;
  try {
    await page.waitForFunction(
      (want) => document.querySelector("#list li .subject")?.textContent === want,
      newest, { timeout: 15000 });
  } catch {
    const shown = await page.evaluate(() => document.querySelector("#list li .subject")?.textContent);
    throw new Error(`the page is not live: its first row is ${JSON.stringify(shown)}, the API's newest ${JSON.stringify(newest)}`);
  }
  if (!(await page.evaluate(() => window.sameDocument))) throw new Error("the page reloaded");
  const rows = await page.evaluate(() => document.querySelectorAll("#list li").length);
  console.log(`live ok: first row ${JSON.stringify(newest)}, ${rows} rows in the page, ` +
    `${listLoads - 1} reload(s) of the list after falling behind`);
} finally {
  await browser.close();
}
