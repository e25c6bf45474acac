// sokkel's web page: the message list (live over /api/events, paged with the
// `before` cursor), search as you type, and the message view. Plain DOM, no
// build step; every string from a message goes in through textContent.
"use strict";

const PAGE = 50;
const $ = (id) => document.getElementById(id);

const state = {
  query: "",         // the active search, "" for the plain list
  rows: new Map(),   // ID -> <li>
  oldest: null,      // the smallest ID shown, the cursor for the next page
  done: false,       // no more pages
  loading: false,
  generation: 0,     // bumps on every reload, so late answers are dropped
  current: null,     // the open message's ID
  message: null,     // the open message's JSON
};

async function api(path, options = {}) {
  const response = await fetch(path, options);
  if (!response.ok) {
    const text = (await response.text()).trim();
    throw new Error(text || `${response.status} ${response.statusText}`);
  }
  const type = response.headers.get("content-type") || "";
  return type.startsWith("application/json") ? response.json() : response.text();
}

function showError(error) {
  const box = $("error");
  box.textContent = error ? String(error.message || error) : "";
  box.hidden = !error;
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function formatAddress(a) {
  if (!a) return "";
  return a.Name ? `${a.Name} <${a.Address}>` : a.Address;
}

function shortAddress(a) {
  return a ? (a.Name || a.Address) : "";
}

function formatSize(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

function formatTime(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso || "";
  const today = new Date();
  return date.toDateString() === today.toDateString()
    ? date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" })
    : date.toLocaleDateString([], { year: "numeric", month: "short", day: "numeric" });
}

// ---- the list -------------------------------------------------------------

function row(summary) {
  const li = el("li");
  li.dataset.id = summary.ID;
  li.classList.toggle("unread", !summary.Read);
  li.classList.toggle("flagged", Boolean(summary.Flagged));
  li.setAttribute("role", "option");
  const to = summary.To.map(shortAddress).join(", ");
  li.append(
    el("span", "from", shortAddress(summary.From) || "(no sender)"),
    el("span", "meta", formatTime(summary.Created)),
    el("span", "subject", summary.Subject || "(no subject)"),
    el("span", "meta size", formatSize(summary.Size)),
    el("span", "to", to ? `to ${to}` : ""),
    el("span", summary.Attachments > 0 ? "meta clip" : "meta", ""),
    el("span", "snippet", summary.Snippet),
  );
  li.title = new Date(summary.Created).toLocaleString();
  li.addEventListener("click", () => openMessage(summary.ID));
  return li;
}

function addRows(messages, atTop) {
  const list = $("list");
  const fresh = messages.filter((m) => !state.rows.has(m.ID));
  const nodes = fresh.map((m) => {
    const li = row(m);
    state.rows.set(m.ID, li);
    return li;
  });
  if (atTop) list.prepend(...nodes); else list.append(...nodes);
  if (state.current && state.rows.has(state.current)) state.rows.get(state.current).classList.add("current");
  $("empty").hidden = state.rows.size > 0;
}

function setCounts(total, unread, matches) {
  const parts = [];
  if (state.query) parts.push(`${matches} found`);
  parts.push(`${total} message${total === 1 ? "" : "s"}`, `${unread} unread`);
  $("counts").textContent = parts.join(" · ");
}

function pagePath() {
  const params = new URLSearchParams({ limit: String(PAGE) });
  if (state.oldest) params.set("before", state.oldest);
  if (state.query) {
    params.set("query", state.query);
    return `/api/v1/search?${params}`;
  }
  return `/api/v1/messages?${params}`;
}

async function loadPage() {
  if (state.loading || state.done) return;
  state.loading = true;
  const generation = state.generation;
  try {
    const page = await api(pagePath());
    if (generation !== state.generation) return;
    showError(null);
    addRows(page.messages, false);
    const last = page.messages[page.messages.length - 1];
    if (last) state.oldest = last.ID;
    state.done = page.messages.length < PAGE;
    setCounts(page.total, page.unread, page.messages_count);
  } catch (error) {
    if (generation === state.generation) showError(error);
    state.done = true;
  } finally {
    if (generation === state.generation) state.loading = false;
  }
  // Keep loading while the sentinel is still on screen.
  if (generation === state.generation && !state.done && sentinelVisible()) loadPage();
}

function sentinelVisible() {
  const pane = $("list-pane").getBoundingClientRect();
  const more = $("more").getBoundingClientRect();
  return more.top <= pane.bottom + 200;
}

function reload() {
  state.generation += 1;
  state.rows.clear();
  state.oldest = null;
  state.done = false;
  state.loading = false;
  $("list").replaceChildren();
  $("empty").hidden = true;
  return loadPage();
}

// ---- live events ------------------------------------------------------------

function connect() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const socket = new WebSocket(`${scheme}//${location.host}/api/events`);
  socket.addEventListener("open", () => {
    $("live").classList.add("on");
    $("live").title = "live: new mail appears by itself";
  });
  socket.addEventListener("close", () => {
    $("live").classList.remove("on");
    $("live").title = "not live; reconnecting";
    setTimeout(() => { connect(); reload(); }, 2000);
  });
  socket.addEventListener("message", (event) => {
    let frame;
    try { frame = JSON.parse(event.data); } catch { return; }
    handleEvent(frame.Type, frame.Data);
  });
}

function handleEvent(type, data) {
  switch (type) {
    case "new":
      // A search shows what matched when it ran; the plain list grows live.
      if (!state.query) addRows([data], true);
      break;
    case "delete": {
      const li = state.rows.get(data.ID);
      if (li) { li.remove(); state.rows.delete(data.ID); }
      if (state.current === data.ID) closeMessage();
      $("empty").hidden = state.rows.size > 0;
      break;
    }
    case "update": {
      const li = state.rows.get(data.ID);
      if (li && "Read" in data) li.classList.toggle("unread", !data.Read);
      if (li && "Flagged" in data) li.classList.toggle("flagged", data.Flagged);
      if (state.current === data.ID && "Read" in data) setReadButton(data.Read);
      break;
    }
    case "stats":
      if (!state.query) setCounts(data.Total, data.Unread, data.Total);
      break;
    case "prune":
      reload();
      break;
  }
}

// ---- the message view ---------------------------------------------------------

function setReadButton(read) {
  if (state.message) state.message.Read = read;
  $("toggle-read").textContent = read ? "Mark unread" : "Mark read";
  $("toggle-read").dataset.read = read ? "1" : "0";
}

function selectRow(id) {
  for (const li of $("list").querySelectorAll("li.current")) li.classList.remove("current");
  const li = state.rows.get(id);
  if (li) {
    li.classList.add("current");
    li.scrollIntoView({ block: "nearest" });
  }
}

async function openMessage(id) {
  state.current = id;
  selectRow(id);
  try {
    const [message, envelope] = await Promise.all([
      api(`/api/v1/message/${id}`),
      api(`/api/v1/message/${id}/envelope`),
    ]);
    if (state.current !== id) return;
    state.message = message;
    showMessage(message, envelope);
    const li = state.rows.get(id);
    if (li) li.classList.remove("unread");
  } catch (error) {
    showError(error);
  }
}

function showMessage(m, envelope) {
  document.body.classList.add("reading");
  $("view").hidden = false;
  $("subject").textContent = m.Subject || "(no subject)";
  const dl = $("key-headers");
  dl.replaceChildren();
  const add = (name, value) => {
    if (!value) return;
    dl.append(el("dt", "", name), el("dd", "", value));
  };
  add("From", formatAddress(m.From));
  add("To", m.To.map(formatAddress).join(", "));
  add("Cc", m.Cc.map(formatAddress).join(", "));
  add("Bcc", m.Bcc.map(formatAddress).join(", "));
  add("Reply-To", m.ReplyTo.map(formatAddress).join(", "));
  add("Date", new Date(m.Date).toLocaleString());
  add("Size", formatSize(m.Size));
  $("bare-lf").hidden = !envelope.BareLF;
  setReadButton(true);
  $("download-raw").href = `/api/v1/message/${m.ID}/raw?dl=1`;

  const list = $("attachments");
  list.replaceChildren();
  for (const part of [...m.Attachments, ...m.Inline]) {
    const a = el("a", "attachment");
    a.href = `/api/v1/message/${m.ID}/part/${part.PartID}`;
    a.download = part.FileName;
    a.dataset.part = part.PartID;
    a.append(el("span", "name", `${part.FileName} `), el("span", "type", `${part.ContentType}, ${formatSize(part.Size)}`));
    const li = el("li");
    li.append(a);
    list.append(li);
  }

  const envelopeList = $("panel-envelope");
  envelopeList.replaceChildren();
  const env = (name, value) => envelopeList.append(el("dt", "", name), el("dd", "", value));
  env("MAIL FROM", `<${envelope.MailFrom}>`);
  env("RCPT TO", envelope.RcptTo.map((r) => `<${r}>`).join(", "));
  env("Client", `${envelope.ClientAddr} (HELO ${envelope.Helo})`);
  env("Received", new Date(envelope.Received).toLocaleString());
  env("TLS", envelope.TLS ? `${envelope.TLS.Version} ${envelope.TLS.Cipher}` : "no");
  env("SMTPUTF8", envelope.SMTPUTF8 ? "yes" : "no");
  env("Bare LF", envelope.BareLF ? "yes" : "no");
  if (envelope.AuthUser) env("AUTH user", envelope.AuthUser);

  $("panel-text").textContent = m.Text;
  $("panel-raw").textContent = "";
  $("panel-headers").replaceChildren();
  $("tab-html").disabled = !m.HTML;
  $("remote-bar").hidden = !m.HTML;
  newFrame(null);
  showTab(m.HTML ? "html" : "text");
}

// A new frame for every document, so a message's frame never has the history
// (or the process) of another message's.
function newFrame(src) {
  const frame = document.createElement("iframe");
  frame.id = "html-frame";
  frame.title = "HTML body";
  frame.setAttribute("sandbox", "allow-popups allow-popups-to-escape-sandbox");
  frame.setAttribute("referrerpolicy", "no-referrer");
  if (src) frame.src = src;
  $("html-frame").replaceWith(frame);
}

function frameHtml(remote) {
  const m = state.message;
  if (!m || !m.HTML) return;
  newFrame(`/view/${m.ID}.html${remote ? "?remote=1" : ""}`);
  $("remote-bar").hidden = remote;
}

async function showTab(name) {
  for (const button of $("tabs").querySelectorAll("button")) {
    button.setAttribute("aria-selected", String(button.dataset.tab === name));
  }
  for (const panel of document.querySelectorAll(".panel")) panel.hidden = panel.id !== `panel-${name}`;
  const m = state.message;
  if (!m) return;
  try {
    if (name === "html" && !$("html-frame").getAttribute("src")) frameHtml(false);
    if (name === "raw" && !$("panel-raw").textContent) {
      $("panel-raw").textContent = await api(`/api/v1/message/${m.ID}/raw`);
    }
    if (name === "headers" && !$("panel-headers").childElementCount) {
      const headers = await api(`/api/v1/message/${m.ID}/headers`);
      for (const [key, values] of Object.entries(headers)) {
        for (const value of values) {
          const tr = el("tr");
          tr.append(el("td", "", key), el("td", "", value));
          $("panel-headers").append(tr);
        }
      }
    }
  } catch (error) {
    showError(error);
  }
}

function closeMessage() {
  state.current = null;
  state.message = null;
  $("view").hidden = true;
  newFrame(null);
  document.body.classList.remove("reading");
  for (const li of $("list").querySelectorAll("li.current")) li.classList.remove("current");
}

async function deleteCurrent() {
  const id = state.current;
  if (!id) return;
  const next = neighbour(id, 1) || neighbour(id, -1);
  try {
    await api("/api/v1/messages", {
      method: "DELETE",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ IDs: [id] }),
    });
    const li = state.rows.get(id);
    if (li) { li.remove(); state.rows.delete(id); }
    closeMessage();
    if (next) { state.current = next; selectRow(next); }
    $("empty").hidden = state.rows.size > 0;
  } catch (error) {
    showError(error);
  }
}

async function toggleRead() {
  const m = state.message;
  if (!m) return;
  const read = $("toggle-read").dataset.read !== "1";
  try {
    await api("/api/v1/messages", {
      method: "PUT",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ IDs: [m.ID], Read: read }),
    });
    setReadButton(read);
    const li = state.rows.get(m.ID);
    if (li) li.classList.toggle("unread", !read);
  } catch (error) {
    showError(error);
  }
}

// ---- keyboard -----------------------------------------------------------------

function neighbour(id, step) {
  const li = state.rows.get(id);
  if (!li) return null;
  const other = step > 0 ? li.nextElementSibling : li.previousElementSibling;
  return other ? other.dataset.id : null;
}

function move(step) {
  let target;
  if (!state.current) {
    const first = $("list").firstElementChild;
    target = first && first.dataset.id;
  } else {
    target = neighbour(state.current, step);
  }
  if (target) {
    state.current = target;
    selectRow(target);
    if (step > 0 && !neighbour(target, 1)) loadPage();
  }
}

document.addEventListener("keydown", (event) => {
  const typing = event.target.matches("input, textarea");
  if (typing) {
    if (event.key === "Escape") { event.target.blur(); $("list").focus(); }
    return;
  }
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  switch (event.key) {
    case "/": event.preventDefault(); $("search").focus(); break;
    case "j": case "ArrowDown": event.preventDefault(); move(1); break;
    case "k": case "ArrowUp": event.preventDefault(); move(-1); break;
    case "Enter": if (state.current) openMessage(state.current); break;
    case "Delete": case "#": deleteCurrent(); break;
    case "u": toggleRead(); break;
    case "Escape": closeMessage(); $("list").focus(); break;
    default: return;
  }
});

// ---- wiring -------------------------------------------------------------------

function debounce(fn, ms) {
  let timer;
  return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
}

function start() {
  $("search").addEventListener("input", debounce(() => {
    const query = $("search").value.trim();
    if (query === state.query) return;
    state.query = query;
    reload();
  }, 200));
  $("back").addEventListener("click", closeMessage);
  $("delete").addEventListener("click", deleteCurrent);
  $("toggle-read").addEventListener("click", toggleRead);
  $("load-remote").addEventListener("click", () => frameHtml(true));
  for (const button of $("tabs").querySelectorAll("button")) {
    button.addEventListener("click", () => showTab(button.dataset.tab));
  }
  $("delete-all").addEventListener("click", async () => {
    if (!confirm("Delete every message?")) return;
    try {
      await api("/api/v1/messages", { method: "DELETE" });
      closeMessage();
      reload();
    } catch (error) { showError(error); }
  });
  $("read-all").addEventListener("click", async () => {
    try {
      await api("/api/v1/messages", {
        method: "PUT",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ Read: true }),
      });
      for (const li of state.rows.values()) li.classList.remove("unread");
    } catch (error) { showError(error); }
  });
  new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting)) loadPage();
  }, { root: $("list-pane"), rootMargin: "200px" }).observe($("more"));
  connect();
  reload();
}

start();
