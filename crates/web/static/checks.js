// sokkel: the message view's "HTML check" and "Link check" tabs (issue #17).
//
// app.js owns the list, the message view and the tab bar; this file adds two
// tabs to #tabs and their panels to #panels, and learns which message is open
// from app.js's events (sokkel:message, sokkel:closed, sokkel:tab); app.js
// switches to these tabs as to its own.
//
// Nothing is fetched until its tab is shown, and the link check, the one
// thing that makes the server reach outside, runs only when the user presses
// "Check links". Every string from a message or the server goes in through
// textContent.
(() => {
  "use strict";

  const tabs = document.getElementById("tabs");
  const panels = document.getElementById("panels");
  if (!tabs || !panels) return;

  // caniemail's names for its platforms (its nicenames).
  const PLATFORMS = {
    "desktop-app": "Desktop",
    "desktop-webmail": "Desktop Webmail",
    "mobile-webmail": "Mobile Webmail",
    webmail: "Webmail",
    ios: "iOS",
    android: "Android",
    windows: "Windows",
    macos: "macOS",
    "windows-mail": "Windows Mail",
    "outlook-com": "Outlook.com",
  };

  const state = {
    id: null, // the open message
    hasHtml: false,
    check: null, // {id, data} of the last HTML check
    checking: null, // the id whose HTML check is being fetched
    platform: "", // the HTML check's platform filter, "" for all
    // The running link check's AbortController: a new message or a closed
    // view aborts it, so its request stops holding one of the server's check
    // slots and the button is free for the next message.
    links: null,
  };

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  // Mailpit-shaped descriptions and notes are HTML (code spans and links):
  // shown as their text. DOMParser runs no script and loads nothing.
  function plainText(html) {
    if (!html) return "";
    return new DOMParser().parseFromString(String(html), "text/html").body.textContent || "";
  }

  function percent(value) {
    const rounded = Math.round(value * 10) / 10;
    return `${rounded}%`;
  }

  /// `path` (relative, `api/v1/...`) under the web root the server wrote into
  /// `<html data-root>`, whatever the page's own URL (a deep link).
  const root = new URL(document.documentElement.dataset.root || "/", location.origin);

  async function getJson(path, signal) {
    const response = await fetch(new URL(path, root), { headers: { Accept: "application/json" }, signal });
    if (!response.ok) {
      const text = (await response.text()).trim();
      throw new Error(text || `${response.status} ${response.statusText}`);
    }
    return response.json();
  }

  // ---- tabs and panels ----------------------------------------------------------

  function addTab(name, label) {
    const button = el("button", "check-tab", label);
    button.type = "button";
    button.id = `tab-${name}`;
    button.dataset.tab = name;
    button.setAttribute("role", "tab");
    button.setAttribute("aria-selected", "false");
    button.setAttribute("aria-controls", `panel-${name}`);
    tabs.append(button);
    const panel = el("section", "panel check-panel");
    panel.id = `panel-${name}`;
    panel.setAttribute("role", "tabpanel");
    panel.setAttribute("aria-labelledby", button.id);
    panel.hidden = true;
    panels.append(panel);
    return { button, panel };
  }

  const html = addTab("html-check", "HTML check");
  const links = addTab("link-check", "Link check");
  html.button.hidden = true;

  // ---- the HTML check -------------------------------------------------------------

  const htmlParts = (() => {
    const panel = html.panel;
    panel.setAttribute("aria-busy", "false");
    const intro = el("p", "check-intro",
      "How this message's HTML and CSS fare in mail clients, from caniemail.com's data (built in; nothing is fetched).");
    const status = el("p", "check-status");
    status.setAttribute("role", "status");
    status.setAttribute("aria-live", "polite");
    const controls = el("div", "check-controls");
    const label = el("label", "", "Platform ");
    const select = el("select");
    select.id = "html-check-platform";
    label.htmlFor = select.id;
    controls.append(label, select);
    const score = el("div", "hc-score");
    const warnings = el("ol", "hc-warnings");
    warnings.setAttribute("aria-label", "Features with limited support");
    const quiet = el("p", "check-muted");
    panel.append(intro, controls, status, score, warnings, quiet);
    select.addEventListener("change", () => {
      state.platform = select.value;
      if (state.check && state.check.id === state.id) renderCheck(state.check.data);
    });
    return { status, select, score, warnings, quiet, controls };
  })();

  function resetHtmlCheck() {
    htmlParts.status.textContent = "";
    htmlParts.score.replaceChildren();
    htmlParts.warnings.replaceChildren();
    htmlParts.quiet.textContent = "";
    htmlParts.controls.hidden = true;
  }

  async function runHtmlCheck() {
    const id = state.id;
    if (!id || !state.hasHtml) return;
    if ((state.check && state.check.id === id) || state.checking === id) return;
    state.checking = id;
    resetHtmlCheck();
    html.panel.setAttribute("aria-busy", "true");
    htmlParts.status.textContent = "Checking the HTML…";
    try {
      const data = await getJson(`api/v1/message/${encodeURIComponent(id)}/html-check`);
      if (state.id !== id) return;
      state.check = { id, data };
      fillPlatforms(data.Platforms || {});
      renderCheck(data);
    } catch (error) {
      if (state.id === id) htmlParts.status.textContent = `The HTML check failed: ${error.message}`;
    } finally {
      if (state.checking === id) state.checking = null;
      if (state.id === id) html.panel.setAttribute("aria-busy", "false");
    }
  }

  function fillPlatforms(platforms) {
    const select = htmlParts.select;
    select.replaceChildren(el("option", "", "All platforms"));
    select.firstChild.value = "";
    for (const key of Object.keys(platforms).sort()) {
      const option = el("option", "", PLATFORMS[key] || key);
      option.value = key;
      select.append(option);
    }
    select.value = Object.prototype.hasOwnProperty.call(platforms, state.platform) ? state.platform : "";
    state.platform = select.value;
    htmlParts.controls.hidden = false;
  }

  // The warnings for the chosen platform, each with its score over that
  // platform's clients, and the overall score weighed as the server does
  // (share of the message's elements using it; pseudo-classes and at-rules
  // at 5%).
  function summarize(data) {
    const nodes = Math.max(1, (data.Total && data.Total.Nodes) || 1);
    const out = [];
    let partialMax = 0;
    let unsupportedMax = 0;
    for (const warning of data.Warnings || []) {
      const all = warning.Results || [];
      const results = state.platform ? all.filter((r) => r.Platform === state.platform) : all;
      let score = warning.Score;
      if (all.length) {
        if (!results.length) continue;
        const count = (support) => results.filter((r) => r.Support === support).length;
        score = {
          Found: warning.Score.Found,
          Supported: (count("yes") / results.length) * 100,
          Partial: (count("partial") / results.length) * 100,
          Unsupported: (count("no") / results.length) * 100,
        };
      }
      const slug = String(warning.Slug || "");
      const weight = slug.startsWith("css-pseudo-") || slug.startsWith("css-at-")
        ? 0.05 : Math.min(1, score.Found / nodes);
      partialMax = Math.max(partialMax, score.Partial * weight);
      unsupportedMax = Math.max(unsupportedMax, score.Unsupported * weight);
      out.push({ warning, results, score, badness: (score.Partial + score.Unsupported) * weight });
    }
    partialMax = Math.min(partialMax, 100 - unsupportedMax);
    out.sort((a, b) => b.badness - a.badness);
    return {
      warnings: out,
      total: { Supported: 100 - partialMax - unsupportedMax, Partial: partialMax, Unsupported: unsupportedMax },
    };
  }

  function renderCheck(data) {
    const summary = summarize(data);
    const total = summary.total;
    htmlParts.status.textContent = "";

    const score = htmlParts.score;
    score.replaceChildren();
    const grade = total.Unsupported < 5 && total.Partial < 10 ? "good"
      : total.Unsupported < 10 && total.Partial < 15 ? "warn" : "bad";
    const headline = el("p", `hc-headline hc-${grade}`);
    headline.append(el("strong", "hc-supported", `${percent(total.Supported)} supported`));
    headline.append(el("span", "hc-partial", ` · ${percent(total.Partial)} partially supported`));
    headline.append(el("span", "hc-unsupported", ` · ${percent(total.Unsupported)} not supported`));
    const bar = el("div", "hc-bar");
    bar.setAttribute("aria-hidden", "true");
    for (const [kind, value] of [["supported", total.Supported], ["partial", total.Partial], ["unsupported", total.Unsupported]]) {
      const part = el("span", `hc-bar-${kind}`);
      part.style.width = `${Math.max(0, Math.min(100, value))}%`;
      bar.append(part);
    }
    const nodes = el("p", "check-muted",
      `${data.Total.Nodes} elements, ${data.Total.Tests} features looked for, ${summary.warnings.length} found.`);
    score.append(headline, bar, nodes);

    const list = htmlParts.warnings;
    list.replaceChildren();
    let quiet = 0;
    for (const item of summary.warnings) {
      if (item.score.Partial === 0 && item.score.Unsupported === 0) {
        quiet++;
        continue;
      }
      list.append(renderWarning(item));
    }
    htmlParts.quiet.textContent = quiet
      ? `${quiet} more ${quiet === 1 ? "feature is" : "features are"} supported by every client tested${state.platform ? " on this platform" : ""}.`
      : "";
    if (!list.childElementCount) {
      htmlParts.status.textContent = "Every feature found is supported by every client tested.";
    }
  }

  function renderWarning({ warning, results, score }) {
    const li = el("li", "hc-warning");
    const head = el("div", "hc-warning-head");
    head.append(el("h4", "hc-title", warning.Title));
    head.append(el("span", `hc-category hc-category-${warning.Category === "css" ? "css" : "html"}`, String(warning.Category || "").toUpperCase()));
    const scoreText = [];
    if (score.Unsupported > 0) scoreText.push(`${percent(score.Unsupported)} not supported`);
    if (score.Partial > 0) scoreText.push(`${percent(score.Partial)} partial`);
    const badge = el("span", score.Unsupported > 0 ? "hc-badge hc-badge-bad" : "hc-badge hc-badge-warn", scoreText.join(", "));
    head.append(badge);
    li.append(head);

    const description = plainText(warning.Description);
    if (description) li.append(el("p", "hc-description", description));

    const facts = el("p", "hc-facts check-muted");
    const found = Number(warning.Score.Found) || 0;
    facts.append(`Used ${found} time${found === 1 ? "" : "s"}`);
    const lines = warning.Lines || [];
    if (lines.length) {
      facts.append(`, on line${lines.length === 1 ? "" : "s"} `);
      facts.append(el("span", "hc-lines", lines.join(", ") + (lines.length < found && lines.length >= 20 ? ", …" : "")));
    }
    facts.append(".");
    li.append(facts);

    const notes = new Set();
    for (const [support, label] of [["no", "Not supported"], ["partial", "Partially supported"]]) {
      const matching = results.filter((r) => r.Support === support);
      if (!matching.length) continue;
      const block = el("div", `hc-clients hc-clients-${support === "no" ? "bad" : "warn"}`);
      block.append(el("h5", "", label));
      const ul = el("ul");
      for (const [family, entries] of groupByFamily(matching)) {
        const item = el("li");
        item.append(el("strong", "", family), " ");
        item.append(entries.map((r) => {
          // "1" or, for several notes, "1,6".
          const numbers = String(r.NoteNumber || "").split(",").filter(Boolean);
          for (const number of numbers) notes.add(number);
          return `${PLATFORMS[r.Platform] || r.Platform} ${r.Version}${numbers.length ? ` [${numbers.join(", ")}]` : ""}`;
        }).join(", "));
        ul.append(item);
      }
      block.append(ul);
      li.append(block);
    }
    const byNumber = warning.NotesByNumber || {};
    const noted = [...notes].filter((n) => byNumber[n]).sort((a, b) => Number(a) - Number(b));
    if (noted.length) {
      const ol = el("ul", "hc-notes");
      ol.setAttribute("aria-label", "Notes");
      for (const number of noted) ol.append(el("li", "", `[${number}] ${plainText(byNumber[number])}`));
      li.append(ol);
    }
    const url = String(warning.URL || "");
    if (url.startsWith("https://www.caniemail.com/")) {
      const a = el("a", "hc-more", "More on caniemail.com");
      a.href = url;
      a.target = "_blank";
      a.rel = "noopener noreferrer";
      li.append(a);
    }
    return li;
  }

  // Results grouped by client family: the family's name is the result's
  // Name before " <platform> (<version>)".
  function groupByFamily(results) {
    const groups = new Map();
    for (const r of results) {
      const suffix = ` ${PLATFORMS[r.Platform] || r.Platform} (${r.Version})`;
      const name = String(r.Name || "");
      const family = name.endsWith(suffix) ? name.slice(0, -suffix.length) : String(r.Family || name);
      if (!groups.has(family)) groups.set(family, []);
      groups.get(family).push(r);
    }
    return groups;
  }

  // ---- the link check ---------------------------------------------------------

  const linkParts = (() => {
    const panel = links.panel;
    panel.setAttribute("aria-busy", "false");
    const intro = el("p", "check-intro",
      "Asks each link and image of this message for its HTTP status. This is the only thing sokkel fetches from outside, and only when you press the button.");
    const controls = el("div", "check-controls");
    const follow = el("input");
    follow.type = "checkbox";
    follow.id = "link-check-follow";
    const followLabel = el("label", "", " Follow redirects");
    followLabel.htmlFor = follow.id;
    followLabel.prepend(follow);
    const run = el("button", "lc-run", "Check links");
    run.type = "button";
    run.id = "link-check-run";
    controls.append(run, followLabel);
    const status = el("p", "check-status");
    status.setAttribute("role", "status");
    status.setAttribute("aria-live", "polite");
    const table = el("table", "lc-table");
    table.hidden = true;
    const caption = el("caption", "check-sr", "Links and their HTTP status");
    const thead = el("thead");
    const headRow = el("tr");
    for (const title of ["URL", "Status code", "Status"]) {
      const th = el("th", "", title);
      th.scope = "col";
      headRow.append(th);
    }
    thead.append(headRow);
    const tbody = el("tbody");
    table.append(caption, thead, tbody);
    panel.append(intro, controls, status, table);
    run.addEventListener("click", runLinkCheck);
    return { follow, run, status, table, tbody };
  })();

  function resetLinkCheck() {
    linkParts.status.textContent = "";
    linkParts.tbody.replaceChildren();
    linkParts.table.hidden = true;
  }

  function stopLinkCheck() {
    if (state.links) state.links.abort();
    state.links = null;
    links.panel.setAttribute("aria-busy", "false");
    linkParts.run.disabled = false;
    linkParts.run.textContent = "Check links";
  }

  async function runLinkCheck() {
    const id = state.id;
    if (!id || state.links) return;
    const controller = new AbortController();
    state.links = controller;
    resetLinkCheck();
    links.panel.setAttribute("aria-busy", "true");
    linkParts.run.disabled = true;
    linkParts.run.textContent = "Checking…";
    linkParts.status.textContent = "Checking links…";
    const follow = linkParts.follow.checked ? "true" : "false";
    try {
      const data = await getJson(`api/v1/message/${encodeURIComponent(id)}/link-check?follow=${follow}`,
        controller.signal);
      if (state.links !== controller) return;
      renderLinks(data);
    } catch (error) {
      if (state.links === controller) linkParts.status.textContent = `The link check failed: ${error.message}`;
    } finally {
      // An aborted run was already reset by whoever aborted it.
      if (state.links === controller) stopLinkCheck();
    }
  }

  function renderLinks(data) {
    const rows = data.Links || [];
    const errors = Number(data.Errors) || 0;
    let text = rows.length
      ? `${rows.length} link${rows.length === 1 ? "" : "s"} checked, ${errors} with errors.`
      : "This message has no http or https links.";
    if (data.LinksCut) text += ` ${data.LinksCut} more were not checked (at most ${rows.length} per message).`;
    linkParts.status.textContent = text;
    const tbody = linkParts.tbody;
    tbody.replaceChildren();
    for (const link of rows) {
      const bad = !link.StatusCode || link.StatusCode >= 400;
      const tr = el("tr", bad ? "lc-bad" : link.StatusCode >= 300 ? "lc-redirect" : "lc-ok");
      const url = el("td", "lc-url", link.URL);
      const code = el("td", "lc-code", link.StatusCode ? link.StatusCode : "—");
      const status = el("td", "lc-status", link.Status);
      tr.append(url, code, status);
      tbody.append(tr);
    }
    linkParts.table.hidden = rows.length === 0;
  }

  // ---- which message is open --------------------------------------------------

  function onMessage(id, hasHtml) {
    id = id ? String(id) : null;
    if (id === state.id && hasHtml === state.hasHtml) return;
    state.id = id;
    state.hasHtml = Boolean(hasHtml);
    state.check = null;
    stopLinkCheck();
    resetHtmlCheck();
    resetLinkCheck();
    html.button.hidden = !state.hasHtml;
    // A tab of ours left showing a message it does not fit (no HTML) falls
    // back to app.js's choice when it opens the next message. Nothing is
    // fetched here: only sokkel:tab, when our tab shows, fetches.
    if (!state.hasHtml && !html.panel.hidden) html.panel.hidden = true;
  }

  function onClosed() {
    state.id = null;
    state.check = null;
    stopLinkCheck();
    resetHtmlCheck();
    resetLinkCheck();
  }

  function shown(name) {
    if (name === "html-check") runHtmlCheck();
  }

  document.addEventListener("sokkel:message", (event) => {
    const detail = event.detail || {};
    const message = detail.message || {};
    onMessage(detail.id || message.ID, Boolean(message.HTML));
  });
  document.addEventListener("sokkel:closed", onClosed);
  document.addEventListener("sokkel:tab", (event) => {
    const detail = event.detail || {};
    if (detail.id && String(detail.id) !== state.id) return;
    shown(detail.tab);
  });
})();
