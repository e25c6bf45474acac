// sokkel's web page: the message list (live over /api/events, paged with the
// `before` cursor), search as you type, the tag sidebar, selection, the message
// view, and the dialogs. Plain DOM, no build step; every string from a message
// goes in through textContent.
//
// Every view has a URL, so a link can be pasted to a colleague on the same
// catcher: `/` is the list, `/?q=QUERY` a search (a tag is `/?q=tag:NAME`),
// `/view/ID` an open message (with `?q=` if a search is on), `/view/latest`
// the newest message (replaced by its ID once known). Navigation pushes history
// entries and popstate restores them.
//
// The server may serve all of it under a web root (`--webroot /mail/`, behind a
// reverse proxy) and writes it into the page (`<html data-root>`, and the
// root-absolute URLs of index.html). Every URL here is written relative
// (`api/v1/...`) and goes through `at`, or starts with ROOT. No `<base>`: the
// page's policy forbids one (base-uri 'none').
//
// checks.js adds tabs beside ours; it learns what happens here from events on
// `document`: `sokkel:message` {id, message} when a message opens,
// `sokkel:closed` when the view closes and `sokkel:tab` {tab, id} when a tab
// shows. Any button in #tabs with data-tab switches to the panel #panel-NAME.
"use strict";

const PAGE = 50;
/// The most requests one action on a selection has in flight at once (tags,
/// release), so a large selection does not flood the server. Below the
/// server's four release slots (MAX_RELEASES), so one page's release leaves
/// room for another; a 503 (all slots busy) is tried again a few times.
const PARALLEL = 2;
const BUSY_RETRIES = 4;
const BUSY_WAIT_MS = 500;
/// New-mail notifications: at most one this often; the ones between are
/// counted into the next ("5 new messages").
const NOTIFY_MS = 1000;
/// Tag counts are fetched again at most this often while events arrive.
const TAG_REFRESH_MS = 500;
const $ = (id) => document.getElementById(id);
/// The web root the server writes into `<html data-root>`: "/" or "/mail/".
const ROOT = document.documentElement.dataset.root || "/";
/// A URL written relative to the root (`api/v1/info`) as this page must ask
/// for it: on a deep link (/mail/view/3) it would resolve against /mail/view/.
const at = (path) => new URL(path, location.origin + ROOT).href;

const state = {
  query: "",         // the active search, "" for the plain list
  rows: new Map(),   // ID -> <li>
  summaries: new Map(), // ID -> the list summary (Read, Flagged, Tags)
  oldest: null,      // the smallest ID shown, the cursor for the next page
  done: false,       // no more pages
  loading: false,
  generation: 0,     // bumps on every reload, so late answers are dropped
  cursor: null,      // the highlighted row's ID (keyboard position)
  open: null,        // the open message's ID
  message: null,     // the open message's JSON
  selected: new Set(), // IDs ticked in the list
  anchor: null,      // the last row ticked, for shift-click ranges
  typing: false,     // the last history entry came from typing a search
  webui: null,       // /api/v1/webui
  notify: false,     // the user turned notifications on
};

async function api(path, options = {}) {
  const response = await fetch(at(path), options);
  if (!response.ok) {
    const text = (await response.text()).trim();
    const error = new Error(text || `${response.status} ${response.statusText}`);
    error.status = response.status;
    throw error;
  }
  const type = response.headers.get("content-type") || "";
  return type.startsWith("application/json") ? response.json() : response.text();
}

function send(method, path, body) {
  return api(path, {
    method,
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
}

/// Runs `work` on every item, at most PARALLEL at once; the results in order,
/// each {ok, value} or {ok: false, error}.
async function eachLimited(items, work) {
  const results = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      try { results[i] = { ok: true, value: await work(items[i]) }; }
      catch (error) { results[i] = { ok: false, error }; }
    }
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL, items.length) }, worker));
  return results;
}

/// `work()`, tried again after a short wait while the server answers 503
/// (busy), a bounded number of times.
async function retryBusy(work) {
  for (let attempt = 0; ; attempt++) {
    try {
      return await work();
    } catch (error) {
      if (error.status !== 503 || attempt >= BUSY_RETRIES) throw error;
      await new Promise((resolve) => setTimeout(resolve, BUSY_WAIT_MS * (attempt + 1)));
    }
  }
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

function debounce(fn, ms) {
  let timer;
  return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
}

/// Runs `fn` at most once per `ms`, and once more after the last call, so a
/// flood of events costs a few requests, never one each.
function throttle(fn, ms) {
  let timer = null;
  let again = false;
  const run = () => {
    timer = null;
    if (again) { again = false; fn(); timer = setTimeout(run, ms); }
  };
  return () => {
    if (timer) { again = true; return; }
    fn();
    timer = setTimeout(run, ms);
  };
}

// ---- theme --------------------------------------------------------------------

/// "auto" follows prefers-color-scheme (CSS alone does that); "light" and
/// "dark" set html[data-theme], which wins over the media query.
function applyTheme(theme) {
  if (theme === "light" || theme === "dark") document.documentElement.dataset.theme = theme;
  else delete document.documentElement.dataset.theme;
  $("theme").value = theme === "light" || theme === "dark" ? theme : "auto";
}

function storage(key, value) {
  try {
    if (value === undefined) return localStorage.getItem(key);
    if (value === null) localStorage.removeItem(key); else localStorage.setItem(key, value);
  } catch {
    // Storage off (private mode, policy): the choice lasts for this page only.
  }
  return null;
}

// ---- links and history --------------------------------------------------------

function urlFor(id, query) {
  const path = id ? `${ROOT}view/${id}` : ROOT;
  return query ? `${path}?q=${encodeURIComponent(query)}` : path;
}

function tagOfQuery(query) {
  const match = /^tag:(?:"([^"]*)"|(\S+))$/.exec(query);
  return match ? (match[1] ?? match[2]) : null;
}

function tagQuery(name) {
  return /[\s"]/.test(name) ? `tag:"${name.replaceAll('"', "")}"` : `tag:${name}`;
}

function updateTitle() {
  let title = "sokkel mail";
  const tag = tagOfQuery(state.query);
  if (tag !== null) title = `Tag ${tag} · sokkel`;
  else if (state.query) title = `Search: ${state.query} · sokkel`;
  if (state.open && state.message) title = `${state.message.Subject || "(no subject)"} · sokkel`;
  else if (state.open) title = `Message ${state.open} · sokkel`;
  document.title = title;
}

/// Records the view in the address bar: "push" for a new entry, "replace" to
/// correct the current one.
function syncUrl(mode) {
  if (mode) {
    const url = urlFor(state.open, state.query);
    if (url !== location.pathname + location.search) {
      if (mode === "push") history.pushState(null, "", url);
      else history.replaceState(null, "", url);
    }
  }
  updateTitle();
}

function route() {
  const inRoot = location.pathname.startsWith(ROOT) ? location.pathname.slice(ROOT.length) : "";
  const match = /^view\/(\d+|latest)\/?$/.exec(inRoot);
  const query = (new URLSearchParams(location.search).get("q") || "").trim();
  return { id: match ? match[1] : null, query };
}

/// Shows what the address bar names (at start and on back/forward).
async function applyRoute() {
  const wanted = route();
  if (wanted.query !== state.query) {
    $("search").value = wanted.query;
    setQuery(wanted.query, null);
  }
  let id = wanted.id;
  if (id === "latest") {
    try {
      const latest = await api("api/v1/message/latest");
      id = latest.ID;
      history.replaceState(null, "", urlFor(id, state.query));
    } catch (error) {
      showError(new Error(`No latest message: ${error.message}`));
      history.replaceState(null, "", urlFor(null, state.query));
      id = null;
    }
  }
  if (id && id !== state.open) openMessage(id, null);
  else if (!id && state.open) closeMessage(null);
  updateTitle();
}

function setQuery(query, mode) {
  state.query = query;
  state.typing = false;
  markActiveTag();
  reload();
  syncUrl(mode);
}

// ---- the list -------------------------------------------------------------

/// A row's tags. Spans, not a list: `#list li` are the rows only.
function chipList(tags) {
  const box = el("span", "chips");
  for (const tag of tags || []) box.append(el("span", "chip", tag));
  return box;
}

function row(summary) {
  const li = el("li");
  li.id = `m-${summary.ID}`;
  li.dataset.id = summary.ID;
  li.setAttribute("role", "option");
  li.setAttribute("aria-selected", String(state.selected.has(summary.ID)));
  const check = el("span", "check");
  check.setAttribute("aria-hidden", "true");
  check.title = "Select (x); shift-click selects a range";
  const star = el("span", "star");
  star.setAttribute("aria-hidden", "true");
  star.title = "Star (s)";
  const to = summary.To.map(shortAddress).join(", ");
  li.append(
    check,
    star,
    el("span", "from", shortAddress(summary.From) || "(no sender)"),
    el("span", "meta", formatTime(summary.Created)),
    el("span", "subject", summary.Subject || "(no subject)"),
    el("span", "meta size", formatSize(summary.Size)),
    el("span", "to", to ? `to ${to}` : ""),
    el("span", summary.Attachments > 0 ? "meta clip" : "meta", ""),
    el("span", "snippet", summary.Snippet),
    el("span", "visually-hidden state", ""),
  );
  li.title = new Date(summary.Created).toLocaleString();
  paintRow(li, summary);
  return li;
}

/// Brings a row's read, star and tag marks up to date with its summary.
function paintRow(li, summary) {
  li.classList.toggle("unread", !summary.Read);
  li.classList.toggle("flagged", Boolean(summary.Flagged));
  const old = li.querySelector(".chips");
  const chips = chipList(summary.Tags);
  if (old) old.replaceWith(chips); else li.append(chips);
  const words = [summary.Read ? "" : "unread", summary.Flagged ? "starred" : ""].filter(Boolean);
  li.querySelector(".state").textContent = words.length ? `(${words.join(", ")})` : "";
}

function updateSummary(id, change) {
  const summary = state.summaries.get(id);
  if (!summary) return;
  Object.assign(summary, change);
  const li = state.rows.get(id);
  if (li) paintRow(li, summary);
}

function addRows(messages, atTop) {
  const list = $("list");
  const fresh = messages.filter((m) => !state.rows.has(m.ID));
  const nodes = fresh.map((m) => {
    const li = row(m);
    state.rows.set(m.ID, li);
    state.summaries.set(m.ID, { ...m, Tags: m.Tags || [] });
    return li;
  });
  if (atTop) list.prepend(...nodes); else list.append(...nodes);
  markCursor();
  showEmpty();
}

function removeRow(id) {
  const li = state.rows.get(id);
  if (li) li.remove();
  state.rows.delete(id);
  state.summaries.delete(id);
  if (state.selected.delete(id)) paintSelection();
  if (state.cursor === id) state.cursor = null;
  showEmpty();
}

function showEmpty() {
  const none = state.rows.size === 0 && !state.loading;
  $("empty").hidden = !none || Boolean(state.query);
  $("no-match").hidden = !none || !state.query;
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
    return `api/v1/search?${params}`;
  }
  return `api/v1/messages?${params}`;
}

async function loadPage() {
  if (state.loading || state.done) return;
  state.loading = true;
  const generation = state.generation;
  try {
    const page = await api(pagePath());
    if (generation !== state.generation) return;
    showError(null);
    state.loading = false;
    addRows(page.messages, false);
    const last = page.messages[page.messages.length - 1];
    if (last) state.oldest = last.ID;
    state.done = page.messages.length < PAGE;
    setCounts(page.total, page.unread, page.messages_count);
  } catch (error) {
    if (generation === state.generation) showError(error);
    state.done = true;
  } finally {
    if (generation === state.generation) { state.loading = false; showEmpty(); }
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
  newRows = [];
  state.rows.clear();
  state.summaries.clear();
  state.selected.clear();
  state.anchor = null;
  state.oldest = null;
  state.done = false;
  state.loading = false;
  $("list").replaceChildren();
  $("empty").hidden = true;
  $("no-match").hidden = true;
  paintSelection();
  return loadPage();
}

// ---- the cursor and the selection ------------------------------------------------

/// The row marked as the cursor, so that moving the mark touches two rows
/// rather than scanning a list that may hold tens of thousands.
let markedRow = null;

function markCursor() {
  const li = state.cursor && state.rows.get(state.cursor);
  if (markedRow && markedRow !== li) markedRow.classList.remove("current");
  markedRow = li || null;
  if (li) {
    li.classList.add("current");
    $("list").setAttribute("aria-activedescendant", li.id);
  } else {
    $("list").removeAttribute("aria-activedescendant");
  }
}

function setCursor(id) {
  state.cursor = id;
  markCursor();
  const li = id && state.rows.get(id);
  if (li) li.scrollIntoView({ block: "nearest" });
}

function paintSelection() {
  for (const [id, li] of state.rows) li.setAttribute("aria-selected", String(state.selected.has(id)));
  const count = state.selected.size;
  $("sel-count").textContent = `${count} selected`;
  $("sel-actions").hidden = count === 0;
}

function toggleSelected(id, on = !state.selected.has(id)) {
  if (on) state.selected.add(id); else state.selected.delete(id);
  state.anchor = id;
  paintSelection();
}

/// Ticks every row between the last ticked one and `id`, both included.
function selectRange(id) {
  // The list's order, not the map's: live rows are prepended.
  const ids = [...$("list").children].map((li) => li.dataset.id);
  const from = ids.indexOf(state.anchor ?? id);
  const to = ids.indexOf(id);
  if (from < 0 || to < 0) { toggleSelected(id, true); return; }
  for (let i = Math.min(from, to); i <= Math.max(from, to); i++) state.selected.add(ids[i]);
  state.anchor = id;
  paintSelection();
}

/// What an action applies to: the ticked rows, or else the open message (or
/// the row under the cursor).
function targets() {
  if (state.selected.size) return [...state.selected];
  const id = state.open || state.cursor;
  return id ? [id] : [];
}

// ---- live events ------------------------------------------------------------

function connect() {
  const url = new URL(at("api/events"));
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  const socket = new WebSocket(url);
  socket.addEventListener("open", () => {
    $("live").classList.add("on");
    $("live").title = "live: new mail appears by itself";
    $("live").setAttribute("aria-label", "live");
  });
  socket.addEventListener("close", () => {
    $("live").classList.remove("on");
    $("live").title = "not live; reconnecting";
    $("live").setAttribute("aria-label", "not live");
    setTimeout(() => { connect(); reload(); refreshTags(); }, 2000);
  });
  socket.addEventListener("message", (event) => {
    let frame;
    try { frame = JSON.parse(event.data); } catch { return; }
    handleEvent(frame.Type, frame.Data);
  });
}

/// New rows wait here a moment and go into the list together: at hundreds of
/// messages a second, one insertion (and one style and layout pass) per
/// message would keep the page's thread busy and the list would fall behind.
const NEW_ROWS_FLUSH_MS = 50;
let newRows = [];
let newRowsTimer = null;

function queueNewRow(summary) {
  newRows.push(summary);
  if (!newRowsTimer) newRowsTimer = setTimeout(flushNewRows, NEW_ROWS_FLUSH_MS);
}

function flushNewRows() {
  newRowsTimer = null;
  const batch = newRows.reverse(); // newest first, as the list shows them
  newRows = [];
  if (!state.query && batch.length) addRows(batch, true);
}

function handleEvent(type, data) {
  switch (type) {
    case "new":
      // A search shows what matched when it ran; the plain list grows live.
      if (!state.query) queueNewRow(data);
      notifyNew(data);
      if (data.Tags && data.Tags.length) refreshTags();
      break;
    case "delete":
      removeRow(data.ID);
      if (state.open === data.ID) closeMessage("replace");
      refreshTags();
      break;
    case "update": {
      const change = {};
      for (const key of ["Read", "Flagged", "Tags"]) if (key in data) change[key] = data[key];
      updateSummary(data.ID, change);
      if (state.open === data.ID && state.message) {
        Object.assign(state.message, change);
        if ("Read" in data) setReadButton(data.Read);
        if ("Flagged" in data) setStarButton(data.Flagged);
        if ("Tags" in data) paintMessageTags();
      }
      if ("Read" in data || "Tags" in data) refreshTags();
      break;
    }
    case "stats":
      if (!state.query) setCounts(data.Total, data.Unread, data.Total);
      break;
    case "prune":
      reload();
      refreshTags();
      break;
  }
}

// ---- notifications -------------------------------------------------------------

/// Notifications are opt-in and remembered. They show for new mail while on,
/// also when this page has the focus: the page often sits beside the program
/// under test, and a notification is how one sees mail arrive there. A burst
/// makes one notification a second at most ("5 new messages"), never one per
/// message, and one `tag` makes each replace the last instead of piling up.
function paintNotify() {
  const supported = "Notification" in window;
  const on = supported && state.notify && Notification.permission === "granted";
  $("notify").setAttribute("aria-pressed", String(on));
  $("notify").textContent = on ? "Notify: on" : "Notify: off";
  $("notify").disabled = !supported;
  if (!supported) $("notify").title = "This browser has no notifications";
  else if (Notification.permission === "denied") $("notify").title = "Notifications are blocked for this site in the browser's settings";
}

async function toggleNotify() {
  if (!("Notification" in window)) return;
  if (state.notify) {
    state.notify = false;
  } else {
    let permission = Notification.permission;
    if (permission === "default") permission = await Notification.requestPermission();
    state.notify = permission === "granted";
  }
  storage("sokkel.notify", state.notify ? "1" : null);
  paintNotify();
}

/// New mail not yet notified: how many, and the newest. O(1) per message.
const pendingNote = { count: 0, newest: null, timer: null };

/// Counts a new message into the next notification, which shows NOTIFY_MS
/// after the first message of a burst, so the burst's later messages join it.
function notifyNew(summary) {
  if (!state.notify || !("Notification" in window) || Notification.permission !== "granted") return;
  pendingNote.count += 1;
  pendingNote.newest = summary;
  if (!pendingNote.timer) pendingNote.timer = setTimeout(showNote, NOTIFY_MS);
}

function showNote() {
  const { count, newest } = pendingNote;
  pendingNote.count = 0;
  pendingNote.newest = null;
  pendingNote.timer = null;
  if (!count || !newest || !state.notify) return;
  const sender = formatAddress(newest.From) || "(no sender)";
  const subject = newest.Subject || "(no subject)";
  const title = count === 1 ? subject : `${count} new messages`;
  const body = count === 1 ? `From ${sender}` : `Newest: ${subject}, from ${sender}`;
  try {
    const note = new Notification(title, { body, tag: "sokkel-new", icon: at("static/favicon.svg") });
    note.addEventListener("click", () => { window.focus(); openMessage(newest.ID, "push"); note.close(); });
  } catch {
    // Some browsers allow notifications only from a service worker.
  }
}

// ---- the tag sidebar ------------------------------------------------------------

/// Tag counts asked for and painted, numbered: a slow answer that arrives after
/// a newer one is dropped rather than painting older counts last.
const tagCounts = { asked: 0, painted: 0 };

const refreshTags = throttle(async () => {
  const seq = ++tagCounts.asked;
  try {
    const tags = await api("api/v1/tag-counts");
    if (seq < tagCounts.painted) return;
    tagCounts.painted = seq;
    paintTags(tags);
  } catch (error) {
    if (seq > tagCounts.painted) showError(error);
  }
}, TAG_REFRESH_MS);

function paintTags(tags) {
  const list = $("tag-list");
  const keep = list.firstElementChild; // "All mail"
  const items = tags.map((tag) => {
    const button = el("button", "tag-filter");
    button.type = "button";
    button.dataset.query = tagQuery(tag.Name);
    button.dataset.tag = tag.Name;
    const count = el("span", tag.Unread ? "count unread" : "count", tag.Unread ? String(tag.Unread) : String(tag.Total));
    // The words that make the number make sense are in the button's text for
    // a screen reader, not in an aria-label: a label that left out the visible
    // text would not match what a voice-control user says.
    const words = tag.Unread
      ? ` unread of ${tag.Total}`
      : ` message${tag.Total === 1 ? "" : "s"}, none unread`;
    count.title = tag.Unread ? `${tag.Unread} unread of ${tag.Total}` : `${tag.Total} messages, none unread`;
    button.append(el("span", "name", tag.Name), " ", count, el("span", "visually-hidden", words));
    const li = el("li");
    li.append(button);
    return li;
  });
  list.replaceChildren(keep, ...items);
  $("no-tags").hidden = tags.length > 0;
  markActiveTag();
}

function markActiveTag() {
  for (const button of $("tag-list").querySelectorAll("button.tag-filter")) {
    if (button.dataset.query === state.query) button.setAttribute("aria-current", "true");
    else button.removeAttribute("aria-current");
  }
}

// ---- tags, stars, read -------------------------------------------------------------

/// Gives every message in `ids` exactly `tags` (PUT /api/v1/tags replaces).
async function setTags(ids, tags) {
  await send("PUT", "api/v1/tags", { IDs: ids, Tags: tags });
  const sorted = [...tags].sort();
  for (const id of ids) updateSummary(id, { Tags: sorted });
  if (state.message && ids.includes(state.open)) { state.message.Tags = sorted; paintMessageTags(); }
}

function tagsOf(id) {
  if (state.open === id && state.message) return state.message.Tags || [];
  return (state.summaries.get(id) || {}).Tags || [];
}

/// Tag changes run one after another: PUT /api/v1/tags replaces the whole set,
/// so each change computes its set from what the one before it left (not from
/// the moment it was asked for), or two quick edits would undo each other.
let tagQueue = Promise.resolve();

/// Adds or removes one tag on messages, after every change asked for before.
function changeTag(ids, name, add) {
  const step = tagQueue.then(() => changeTagNow(ids, name, add));
  tagQueue = step.catch(() => {});
  return step;
}

/// Each message gets its full new set; messages whose new sets are equal share
/// one request, messages that already agree are left alone, so a selection
/// costs one request per distinct set.
async function changeTagNow(ids, name, add) {
  const groups = new Map(); // the new set, as JSON -> IDs
  for (const id of ids) {
    if (tagsOf(id).includes(name) === add) continue;
    const now = tagsOf(id).filter((t) => t !== name);
    if (add) now.push(name);
    const key = JSON.stringify(now.sort());
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(id);
  }
  const results = await eachLimited([...groups], ([key, group]) => setTags(group, JSON.parse(key)));
  const failed = results.find((r) => !r.ok);
  if (failed) throw failed.error;
}

function paintMessageTags() {
  const m = state.message;
  const list = $("message-tags");
  list.replaceChildren(...(m ? m.Tags || [] : []).map((tag) => {
    const li = el("li", "chip");
    li.append(el("span", "", tag));
    const remove = el("button", "", "×");
    remove.type = "button";
    remove.setAttribute("aria-label", `Remove tag ${tag}`);
    remove.addEventListener("click", async () => {
      try { await changeTag([m.ID], tag, false); $("tag-input").focus(); } catch (error) { showError(error); }
    });
    li.append(remove);
    return li;
  }));
}

async function setFlagged(ids, flagged) {
  await send("PUT", "api/v1/messages", { IDs: ids, Flagged: flagged });
  for (const id of ids) updateSummary(id, { Flagged: flagged });
  if (state.message && ids.includes(state.message.ID)) setStarButton(flagged);
}

async function setRead(ids, read) {
  await send("PUT", "api/v1/messages", { IDs: ids, Read: read });
  for (const id of ids) updateSummary(id, { Read: read });
  if (state.message && ids.includes(state.message.ID)) setReadButton(read);
}

function starred(id) {
  if (state.open === id && state.message) return Boolean(state.message.Flagged);
  return Boolean((state.summaries.get(id) || {}).Flagged);
}

async function toggleStar(id) {
  if (!id) return;
  try { await setFlagged([id], !starred(id)); } catch (error) { showError(error); }
}

async function deleteIds(ids) {
  if (!ids.length) return;
  const last = ids[ids.length - 1];
  let next = neighbour(last, 1) || neighbour(ids[0], -1);
  while (next && ids.includes(next)) next = neighbour(next, 1);
  try {
    await send("DELETE", "api/v1/messages", { IDs: ids });
    const focusLost = $("message").contains(document.activeElement) || $("list-pane").contains(document.activeElement);
    for (const id of ids) removeRow(id);
    if (state.open && ids.includes(state.open)) closeMessage("replace");
    // The button pressed may be gone: keep the keyboard in the list.
    if (focusLost || document.activeElement === document.body) $("list").focus();
    if (next) setCursor(next);
    refreshTags();
  } catch (error) {
    showError(error);
  }
}

// ---- the message view ---------------------------------------------------------

function setReadButton(read) {
  if (state.message) state.message.Read = read;
  $("toggle-read").textContent = read ? "Mark unread" : "Mark read";
  $("toggle-read").dataset.read = read ? "1" : "0";
}

function setStarButton(flagged) {
  if (state.message) state.message.Flagged = flagged;
  $("star").setAttribute("aria-pressed", String(flagged));
  $("star").textContent = flagged ? "★ Starred" : "☆ Star";
}

async function openMessage(id, mode = "push") {
  state.open = id;
  state.typing = false;
  setCursor(id);
  syncUrl(mode);
  try {
    const [message, envelope] = await Promise.all([
      api(`api/v1/message/${id}`),
      api(`api/v1/message/${id}/envelope`),
    ]);
    if (state.open !== id) return;
    showError(null);
    state.message = message;
    showMessage(message, envelope);
    updateSummary(id, { Read: true, Flagged: message.Flagged, Tags: message.Tags || [] });
    updateTitle();
    // The tab first, then the news: a tab of checks.js that was showing is
    // hidden by then, so it does not fetch a check for a panel nobody sees.
    showTab(message.HTML ? "html" : "text");
    document.dispatchEvent(new CustomEvent("sokkel:message", { detail: { id, message } }));
  } catch (error) {
    if (state.open === id) showError(error);
  }
}

function showMessage(m, envelope) {
  document.body.classList.add("reading");
  $("welcome").hidden = true;
  $("message").hidden = false;
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
  setStarButton(Boolean(m.Flagged));
  paintMessageTags();
  $("download-raw").href = at(`api/v1/message/${m.ID}/raw?dl=1`);

  const list = $("attachments");
  list.replaceChildren();
  for (const part of [...m.Attachments, ...m.Inline]) {
    const a = el("a", "attachment");
    a.href = at(`api/v1/message/${m.ID}/part/${part.PartID}`);
    a.download = part.FileName;
    a.dataset.part = part.PartID;
    if ((part.ContentType || "").toLowerCase().startsWith("image/")) {
      // The thumbnail endpoint may be missing or refuse the image: then the
      // link shows without it.
      const img = el("img", "thumb");
      img.alt = part.FileName || "image";
      img.loading = "lazy";
      img.width = 180;
      img.height = 120;
      img.addEventListener("error", () => { img.hidden = true; });
      img.src = at(`api/v1/message/${m.ID}/part/${part.PartID}/thumb`);
      a.append(img);
    }
    a.append(el("span", "name", `${part.FileName} `), el("span", "type", `${part.ContentType}, ${formatSize(part.Size)}`));
    const li = el("li");
    li.append(a);
    list.append(li);
  }

  const relays = m.Relays || [];
  $("relays").hidden = relays.length === 0;
  $("relay-list").replaceChildren(...relays.map((r) => {
    const li = el("li", r.OK ? "good" : "bad",
      `${new Date(r.Time).toLocaleString()}: ${r.OK ? "sent" : "failed"} to ${r.To.join(", ") || "nobody"}`
      + (r.Skipped && r.Skipped.length ? ` (skipped ${r.Skipped.join(", ")})` : "")
      + (r.Reply ? `: ${r.Reply}` : ""));
    return li;
  }));

  const envelopeList = $("envelope-list");
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
  $("header-table").tBodies[0].replaceChildren();
  $("tab-html").disabled = !m.HTML;
  $("remote-bar").hidden = !m.HTML;
  newFrame(null);
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
  newFrame(at(`view/${m.ID}.html${remote ? "?remote=1" : ""}`));
  $("remote-bar").hidden = remote;
}

function setPreview(width) {
  const known = ["phone", "tablet", "desktop"];
  const chosen = known.includes(width) ? width : "desktop";
  $("panel-html").dataset.preview = chosen;
  for (const button of document.querySelectorAll("#preview-buttons .preview")) {
    button.setAttribute("aria-pressed", String(button.dataset.preview === chosen));
  }
  storage("sokkel.preview", chosen);
}

function tabButtons() {
  return [...$("tabs").querySelectorAll("button[data-tab]")];
}

async function showTab(name) {
  for (const button of tabButtons()) {
    const on = button.dataset.tab === name;
    button.setAttribute("aria-selected", String(on));
    button.tabIndex = on ? 0 : -1;
  }
  for (const panel of $("panels").querySelectorAll(":scope > .panel")) panel.hidden = panel.id !== `panel-${name}`;
  const m = state.message;
  if (!m) return;
  document.dispatchEvent(new CustomEvent("sokkel:tab", { detail: { tab: name, id: m.ID } }));
  try {
    if (name === "html" && !$("html-frame").getAttribute("src")) frameHtml(false);
    if (name === "raw" && !$("panel-raw").textContent) {
      const raw = await api(`api/v1/message/${m.ID}/raw`);
      if (state.message === m) $("panel-raw").textContent = raw;
    }
    const body = $("header-table").tBodies[0];
    if (name === "headers" && !body.childElementCount) {
      const headers = await api(`api/v1/message/${m.ID}/headers`);
      if (state.message !== m) return;
      for (const [key, values] of Object.entries(headers)) {
        for (const value of values) {
          const tr = el("tr");
          tr.append(el("td", "", key), el("td", "", value));
          body.append(tr);
        }
      }
    }
  } catch (error) {
    showError(error);
  }
}

function closeMessage(mode = "push") {
  const wasOpen = state.open !== null;
  state.open = null;
  state.message = null;
  $("message").hidden = true;
  $("welcome").hidden = false;
  newFrame(null);
  document.body.classList.remove("reading");
  syncUrl(mode);
  if (wasOpen) document.dispatchEvent(new CustomEvent("sokkel:closed"));
}

// ---- the empty state ------------------------------------------------------------

/// The first SMTP address the server listens on, as a host a client can reach:
/// a wildcard address (0.0.0.0, ::) becomes localhost.
function smtpEndpoint() {
  const first = ((state.webui && state.webui.SMTPAddresses) || [])[0];
  if (!first) return null;
  const colon = first.lastIndexOf(":");
  let host = first.slice(0, colon);
  const port = first.slice(colon + 1);
  const bare = host.replace(/^\[|\]$/g, "");
  if (bare === "0.0.0.0" || bare === "::" || bare === "") host = "localhost";
  return { host, port, bare: host.replace(/^\[|\]$/g, "") };
}

function paintWelcome() {
  const smtp = smtpEndpoint();
  const where = smtp ? `${smtp.host}:${smtp.port}` : "the SMTP port";
  for (const code of document.querySelectorAll(".smtp-address")) code.textContent = where;
  const host = smtp ? smtp.bare : "localhost";
  const port = smtp ? smtp.port : "1025";
  $("howto-python").textContent =
    `python3 -c "import smtplib; smtplib.SMTP('${host}', ${port}).sendmail('me@example.com', ['you@example.com'], 'Subject: Hello\\n\\nHello from smtplib')"`;
  $("howto-swaks").textContent =
    `swaks --server ${host} --port ${port} --from me@example.com --to you@example.com --header "Subject: Hello"`;
}

async function copyText(id) {
  const text = $(id).textContent;
  try {
    await navigator.clipboard.writeText(text);
    $("copied").textContent = "Copied.";
  } catch {
    // No clipboard (a non-secure origin): select the text for Ctrl+C.
    const range = document.createRange();
    range.selectNodeContents($(id));
    const selection = getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    $("copied").textContent = "Selected: press Ctrl+C to copy.";
  }
}

// ---- dialogs -------------------------------------------------------------------

function showHelp() {
  if (!$("help-dialog").open) $("help-dialog").showModal();
}

function openTagDialog() {
  const ids = targets();
  if (!ids.length) return;
  $("tag-title").textContent = ids.length === 1 ? "Tags of the message" : `Tags of ${ids.length} messages`;
  $("tag-dialog-error").textContent = "";
  $("tag-dialog-input").value = "";
  paintSelectionTags(ids);
  $("tag-dialog").dataset.ids = ids.join(",");
  $("tag-dialog").showModal();
  $("tag-dialog-input").focus();
}

function dialogIds() {
  return ($("tag-dialog").dataset.ids || "").split(",").filter(Boolean);
}

function paintSelectionTags(ids) {
  const counts = new Map();
  for (const id of ids) for (const tag of tagsOf(id)) counts.set(tag, (counts.get(tag) || 0) + 1);
  const names = [...counts.keys()].sort();
  $("tag-dialog-note").textContent = names.length ? "× removes a tag from every selected message that has it." : "None of them has a tag.";
  $("selection-tags").className = "chips";
  $("selection-tags").replaceChildren(...names.map((tag) => {
    const li = el("li", "chip");
    li.append(el("span", "", counts.get(tag) === ids.length ? tag : `${tag} (${counts.get(tag)} of ${ids.length})`));
    const remove = el("button", "", "×");
    remove.type = "button";
    remove.setAttribute("aria-label", `Remove tag ${tag}`);
    remove.addEventListener("click", () => dialogChange(tag, false));
    li.append(remove);
    return li;
  }));
}

async function dialogChange(name, add) {
  const ids = dialogIds();
  $("tag-dialog-error").textContent = "";
  try {
    await changeTag(ids, name, add);
  } catch (error) {
    $("tag-dialog-error").textContent = String(error.message || error);
  }
  paintSelectionTags(ids);
  refreshTags();
  // The × pressed is gone with the old chips: stay in the dialog.
  if (!$("tag-dialog").contains(document.activeElement)) $("tag-dialog-input").focus();
}

function relayEnabled() {
  return Boolean(state.webui && state.webui.MessageRelay && state.webui.MessageRelay.Enabled);
}

function paintRelay() {
  for (const button of document.querySelectorAll(".release-button")) {
    button.disabled = !relayEnabled();
    button.title = relayEnabled() ? `Send through ${state.webui.MessageRelay.SMTPServer}` : "No relay configured (mail serve --relay-config FILE)";
  }
}

/// The relay's recipient patterns as JS regular expressions. They are Rust
/// regex syntax: a leading inline flag group such as `(?i)` becomes JS flags;
/// a pattern JS still cannot compile is left to the server (its 400 says why).
function relayRules() {
  const relay = (state.webui && state.webui.MessageRelay) || {};
  const compile = (source) => {
    if (!source) return null;
    const inline = /^\(\?([ims]+)\)/.exec(source);
    const flags = inline ? [...new Set(inline[1])].join("") : "";
    try { return new RegExp(inline ? source.slice(inline[0].length) : source, `u${flags}`); } catch { return undefined; }
  };
  return { allowed: compile(relay.AllowedRecipients), blocked: compile(relay.BlockedRecipients), relay };
}

/// The recipients typed, split on the commas between them: a comma inside
/// quotes ("Doe, John" <j@x>) or angle brackets is part of a name.
function splitRecipients(text) {
  const out = [];
  let current = "";
  let quoted = false;
  let angle = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === "\\" && quoted && i + 1 < text.length) { current += c + text[++i]; continue; }
    if (c === '"' && !angle) quoted = !quoted;
    else if (c === "<" && !quoted) angle = true;
    else if (c === ">" && !quoted) angle = false;
    if (c === "," && !quoted && !angle) { out.push(current); current = ""; continue; }
    current += c;
  }
  out.push(current);
  return out.map((s) => s.trim()).filter(Boolean);
}

/// The address in an entry, as the server takes it (address_of): the part in
/// the last <...> if the entry ends with one, else the whole entry.
function addressOf(entry) {
  const match = /<([^>]*)>\s*$/.exec(entry);
  return (match ? match[1] : entry).trim();
}

function openReleaseDialog(ids) {
  if (!relayEnabled()) return;
  if (!ids.length) return;
  const { relay } = relayRules();
  $("release-dialog").dataset.ids = ids.join(",");
  $("release-what").textContent = ids.length === 1
    ? `Send message ${ids[0]}${state.message && state.message.ID === ids[0] ? ` (“${state.message.Subject || "no subject"}”)` : ""} as it was received.`
    : `Send ${ids.length} messages, each as it was received.`;
  $("release-server").textContent = relay.SMTPServer || "";
  const rules = [];
  if (relay.AllowedRecipients) rules.push(`Allowed: ${relay.AllowedRecipients}`);
  if (relay.BlockedRecipients) rules.push(`Blocked: ${relay.BlockedRecipients}`);
  $("release-rules").textContent = rules.join(" · ");
  $("release-check").textContent = "";
  $("release-dialog").dataset.warned = "";
  $("release-outcome").replaceChildren();
  $("release-send").disabled = false;
  $("release-dialog").showModal();
  $("release-to").focus();
}

async function sendRelease(event) {
  event.preventDefault();
  const ids = ($("release-dialog").dataset.ids || "").split(",").filter(Boolean);
  const typed = $("release-to").value;
  const to = splitRecipients(typed);
  $("release-outcome").replaceChildren();
  if (!to.length) { $("release-check").textContent = "Name at least one recipient."; return; }
  // The page's reading of the rules is a warning, not the last word: the
  // patterns are Rust regex syntax, which JS may read differently. The server
  // checks every recipient before it sends anything, and its 400 is shown.
  // So a first Send with a recipient the page thinks refused only warns; a
  // second Send of the same recipients goes to the server.
  const { allowed, blocked } = relayRules();
  const refused = to.filter((entry) => {
    const address = addressOf(entry);
    return (blocked && blocked.test(address)) || (allowed && !allowed.test(address));
  });
  const dialog = $("release-dialog");
  if (refused.length && dialog.dataset.warned !== typed) {
    dialog.dataset.warned = typed;
    $("release-check").textContent = `Not allowed by the relay's rules: ${refused.join(", ")}. Nothing was sent; press Send again to let the server decide.`;
    return;
  }
  dialog.dataset.warned = "";
  $("release-check").textContent = "";
  $("release-send").disabled = true;
  const results = await eachLimited(ids, (id) =>
    retryBusy(() => send("POST", `api/v1/message/${id}/release`, { To: to })));
  $("release-send").disabled = false;
  $("release-outcome").replaceChildren(...results.map((result, i) => {
    const text = result.ok
      ? `Message ${ids[i]}: sent to ${to.join(", ")}.`
      : `Message ${ids[i]}: not sent: ${result.error.message || result.error}`;
    return el("li", result.ok ? "ok" : "failed", text);
  }));
  if (state.open && ids.includes(state.open)) openMessage(state.open, null);
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
  const from = state.cursor || state.open;
  if (!from || !state.rows.has(from)) {
    const first = $("list").firstElementChild;
    target = first && first.dataset.id;
  } else {
    target = neighbour(from, step);
  }
  if (target) {
    setCursor(target);
    if (step > 0 && !neighbour(target, 1)) loadPage();
  }
}

function toggleReadOf(ids) {
  if (!ids.length) return;
  const read = ids.length === 1 && state.open === ids[0] && state.message
    ? !state.message.Read
    : ids.some((id) => !(state.summaries.get(id) || {}).Read);
  setRead(ids, read).catch(showError);
}

function onKey(event) {
  if (event.defaultPrevented) return;
  // An open dialog has the keys (Esc closes it), wherever focus is.
  if (document.querySelector("dialog[open]")) return;
  const typing = event.target.matches("input, textarea, select");
  if (typing) {
    // Esc leaves the box for the list (and does not clear a search box).
    if (event.key === "Escape") { event.preventDefault(); event.target.blur(); $("list").focus(); }
    return;
  }
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  const onControl = event.target.matches("button, a, summary, [role=tab]");
  switch (event.key) {
    case "/": event.preventDefault(); $("search").focus(); break;
    case "?": event.preventDefault(); showHelp(); break;
    case "j": event.preventDefault(); move(1); break;
    case "k": event.preventDefault(); move(-1); break;
    case "ArrowDown": case "ArrowUp":
      // Arrows scroll whatever has the focus (the text and raw panels are
      // focusable for that); they move the cursor only from the list itself.
      if (event.target !== $("list") && event.target !== document.body) return;
      event.preventDefault();
      move(event.key === "ArrowDown" ? 1 : -1);
      break;
    case "Enter": case "o":
      if (onControl && event.key === "Enter") return;
      if (state.cursor) openMessage(state.cursor);
      break;
    case "x": if (state.cursor) toggleSelected(state.cursor); break;
    case "s": toggleStar(state.open || state.cursor); break;
    case "t":
      event.preventDefault();
      if (state.selected.size || !state.open) openTagDialog(); else $("tag-input").focus();
      break;
    case "u": toggleReadOf(targets()); break;
    case "Delete": case "#": deleteIds(targets()); break;
    case "Escape":
      if (state.open) { closeMessage(); $("list").focus(); }
      else if (state.selected.size) { state.selected.clear(); paintSelection(); }
      break;
    default: return;
  }
}

/// Arrow keys move between tabs (the tablist pattern); a click or Enter on a
/// tab shows it. Delegated, so tabs checks.js adds later work the same.
function onTabs(event) {
  const button = event.target.closest("button[data-tab]");
  if (!button || !$("tabs").contains(button)) return;
  if (event.type === "click") { showTab(button.dataset.tab); return; }
  if (event.key !== "ArrowRight" && event.key !== "ArrowLeft") return;
  event.preventDefault();
  event.stopPropagation();
  const buttons = tabButtons().filter((b) => !b.disabled && !b.hidden);
  const at = buttons.indexOf(button);
  const next = buttons[(at + (event.key === "ArrowRight" ? 1 : -1) + buttons.length) % buttons.length];
  if (next) { next.focus(); showTab(next.dataset.tab); }
}

// ---- wiring -------------------------------------------------------------------

function onListClick(event) {
  const li = event.target.closest("li[data-id]");
  if (!li) return;
  const id = li.dataset.id;
  if (event.shiftKey) { event.preventDefault(); selectRange(id); setCursor(id); return; }
  if (event.target.closest(".check") || event.ctrlKey || event.metaKey) { toggleSelected(id); setCursor(id); return; }
  if (event.target.closest(".star")) { setCursor(id); toggleStar(id); return; }
  openMessage(id);
}

async function loadWebui() {
  try {
    state.webui = await api("api/v1/webui");
  } catch (error) {
    showError(error);
  }
  paintWelcome();
  paintRelay();
}

function start() {
  applyTheme(storage("sokkel.theme") || "auto");
  state.notify = storage("sokkel.notify") === "1";
  paintNotify();
  setPreview(storage("sokkel.preview") || "desktop");
  paintWelcome();
  paintRelay();
  paintSelection();

  $("search").addEventListener("input", debounce(() => {
    const query = $("search").value.trim();
    if (query === state.query) return;
    // One history entry per search typed, not one per key.
    const mode = state.typing ? "replace" : "push";
    setQuery(query, mode);
    state.typing = true;
  }, 200));
  $("theme").addEventListener("change", () => {
    const theme = $("theme").value;
    storage("sokkel.theme", theme === "auto" ? null : theme);
    applyTheme(theme);
  });
  $("notify").addEventListener("click", toggleNotify);
  $("help").addEventListener("click", showHelp);
  $("welcome-back").addEventListener("click", () => document.body.classList.remove("reading"));
  $("home").addEventListener("click", (event) => {
    event.preventDefault();
    $("search").value = "";
    if (state.query) setQuery("", "push");
    if (state.open) closeMessage("push");
  });
  $("tag-list").addEventListener("click", (event) => {
    const button = event.target.closest("button.tag-filter");
    if (!button) return;
    const query = button.dataset.query;
    $("search").value = query;
    if (query !== state.query) setQuery(query, "push");
  });
  $("list").addEventListener("click", onListClick);
  // Shift-click selects rows, not the text between two clicks.
  $("list").addEventListener("mousedown", (event) => { if (event.shiftKey) event.preventDefault(); });
  $("back").addEventListener("click", () => { closeMessage(); $("list").focus(); });
  $("delete").addEventListener("click", () => state.open && deleteIds([state.open]));
  $("toggle-read").addEventListener("click", () => state.open && toggleReadOf([state.open]));
  $("star").addEventListener("click", () => toggleStar(state.open));
  // The view's Release is for the open message; the selection stays as it was.
  $("release").addEventListener("click", () => { if (state.open) openReleaseDialog([state.open]); });
  $("load-remote").addEventListener("click", () => frameHtml(true));
  $("tabs").addEventListener("click", onTabs);
  $("tabs").addEventListener("keydown", onTabs);
  for (const button of document.querySelectorAll("#preview-buttons .preview")) {
    button.addEventListener("click", () => setPreview(button.dataset.preview));
  }
  $("tag-input").addEventListener("keydown", async (event) => {
    if (event.key !== "Enter") return;
    event.preventDefault();
    const name = $("tag-input").value.trim();
    if (!name || !state.message) return;
    // Cleared at once, so the next tag can be typed while this one is saved.
    $("tag-input").value = "";
    try {
      await changeTag([state.message.ID], name, true);
      refreshTags();
    } catch (error) {
      showError(error);
      if (!$("tag-input").value) $("tag-input").value = name;
    }
  });
  $("tag-dialog-input").addEventListener("keydown", async (event) => {
    if (event.key !== "Enter") return;
    event.preventDefault();
    const name = $("tag-dialog-input").value.trim();
    if (!name) return;
    $("tag-dialog-input").value = "";
    await dialogChange(name, true);
    if ($("tag-dialog-error").textContent && !$("tag-dialog-input").value) $("tag-dialog-input").value = name;
  });
  for (const button of document.querySelectorAll("button.copy")) {
    button.addEventListener("click", () => copyText(button.dataset.copy));
  }
  $("show-howto").addEventListener("click", () => {
    document.body.classList.add("reading");
    $("welcome").hidden = false;
    $("welcome").querySelector("h2").tabIndex = -1;
    $("welcome").querySelector("h2").focus();
  });

  $("sel-all").addEventListener("click", () => {
    for (const id of state.rows.keys()) state.selected.add(id);
    paintSelection();
  });
  $("sel-clear").addEventListener("click", () => { state.selected.clear(); paintSelection(); });
  $("sel-delete").addEventListener("click", () => deleteIds([...state.selected]));
  $("sel-read").addEventListener("click", () => setRead([...state.selected], true).catch(showError));
  $("sel-unread").addEventListener("click", () => setRead([...state.selected], false).catch(showError));
  $("sel-tag").addEventListener("click", openTagDialog);
  $("sel-release").addEventListener("click", () => openReleaseDialog([...state.selected]));
  $("release-form").addEventListener("submit", sendRelease);
  $("release-close").addEventListener("click", () => $("release-dialog").close());

  $("delete-all").addEventListener("click", async () => {
    if (!confirm("Delete every message?")) return;
    try {
      await api("api/v1/messages", { method: "DELETE" });
      closeMessage("replace");
      reload();
      refreshTags();
    } catch (error) { showError(error); }
  });
  $("read-all").addEventListener("click", async () => {
    try {
      await send("PUT", "api/v1/messages", { Read: true });
      for (const id of state.rows.keys()) updateSummary(id, { Read: true });
      refreshTags();
    } catch (error) { showError(error); }
  });
  document.addEventListener("keydown", onKey);
  window.addEventListener("popstate", () => { state.typing = false; applyRoute(); });
  new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting)) loadPage();
  }, { root: $("list-pane"), rootMargin: "200px" }).observe($("more"));

  connect();
  const first = route();
  state.query = first.query;
  $("search").value = first.query;
  reload();
  refreshTags();
  loadWebui();
  applyRoute();
}

start();
