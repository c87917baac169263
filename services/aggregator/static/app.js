// The alliance network page. Plain JavaScript over the query API of the aggregator that
// serves it: /graph (one page or one company's neighbourhood: never the whole view),
// /companies?q= (type-ahead), /companies/{name}, /alliances/{id}/history, and the change
// stream /changes/stream for live updates. Every data call carries the API token when one
// is set; news text is only ever inserted as text (never as HTML).
"use strict";

const STAGES = ["rumored", "talks", "agreed", "active", "failed", "ended"];
const CLOSED = new Set(["failed", "ended"]);
const COLORS = Object.fromEntries(STAGES.map(
  (s) => [s, getComputedStyle(document.documentElement).getPropertyValue(`--${s}`).trim()]));
const PAGE_SIZE = 200;
const TOKEN_KEY = "radar-api-token";

const $ = (id) => document.getElementById(id);
const state = {
  alliances: new Map(),   // alliance_id -> {alliance_id, parties, stage, episode, last_changed}
  labels: new Map(),      // company slug -> name
  cursor: null,           // next page of the unfiltered view
  openAlliance: null,     // alliance id whose timeline the panel shows
  loads: 0,               // finished graph loads (tests wait on it)
  stream: null,           // AbortController of the change stream
  lastEventId: null,      // resumable position in the change stream
  pending: null,          // changes that arrived while the graph was loading
  list: null,             // the "alliances in view" list (moved in and out of the panel)
  generation: 0,          // bumped by every change of filters: late answers are dropped
};

// ------------------------------------------------------------------ helpers

/** The server's company key (shared/contracts.py slug): ASCII, lower case, '-' runs. */
function slug(name) {
  return name.normalize("NFKD").replace(/[^\x00-\x7f]/g, "").toLowerCase()
    .replace(/[^a-z0-9]+/g, "-").replace(/^-+|-+$/g, "");
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c !== null && c !== undefined) node.append(c instanceof Node ? c : String(c));
  }
  return node;
}

const stageTag = (stage) => el("span", { class: `stage ${stage}` }, stage);
const day = (iso) => (iso ? iso.slice(0, 10) : "");

function filters() {
  return {
    company: $("company").value.trim(), depth: $("depth").value, stage: $("stage").value,
    since: $("since").value, until: $("until").value,
  };
}

function setFilters(f) {
  for (const k of ["company", "stage", "since", "until"]) $(k).value = f[k] || "";
  $("depth").value = f.depth || "1";
}

function authHeaders() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return token ? { Authorization: `Bearer ${token}` } : {};
}

function apiUrl(path, params = {}) {
  const url = new URL(path, location.origin);
  for (const [k, v] of Object.entries(params)) if (v) url.searchParams.set(k, v);
  return url;
}

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(path, params) {
  const resp = await fetch(apiUrl(path, params), { headers: authHeaders() });
  if (resp.status === 401) $("token-form").hidden = false;
  const body = await resp.json().catch(() => ({}));
  if (!resp.ok) throw new ApiError(resp.status, body.error || `${path} answered ${resp.status}`);
  return body;
}

function status(text, isError = false) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

// ------------------------------------------------------------------ the graph

let cy = null;

function makeGraph() {
  cy = cytoscape({
    container: $("graph"),
    minZoom: 0.2, maxZoom: 3,
    style: [
      { selector: "node.company", style: {
        label: "data(label)", "background-color": "#4a5568", color: "#1d2330",
        width: "mapData(count, 1, 8, 22, 58)", height: "mapData(count, 1, 8, 22, 58)",
        "font-size": 12, "text-valign": "bottom", "text-margin-y": 4,
        "text-outline-color": "#fff", "text-outline-width": 2 } },
      { selector: "node.focus", style: { "background-color": "#1d2330" } },
      { selector: "node.hub", style: {
        shape: "diamond", width: 20, height: 20, "background-color": "#fff",
        "border-width": 3, "border-color": "data(color)" } },
      { selector: "edge", style: {
        width: 3, "line-color": "data(color)", "curve-style": "bezier" } },
      { selector: "edge.closed", style: { "line-style": "dashed" } },
      { selector: "edge.spoke", style: { width: 2 } },
      { selector: ".fresh", style: { "underlay-color": "#ffd43b", "underlay-opacity": 0.7,
                                     "underlay-padding": 6 } },
      { selector: ":selected", style: { "overlay-color": "#2e7fd8", "overlay-opacity": 0.2 } },
    ],
  });
  cy.on("tap", "node.company", (e) => showCompany(e.target.data("label")));
  cy.on("tap", "node.hub, edge", (e) => showAlliance(e.target.data("alliance")));
}

/** Nodes and edges of one alliance: a line for two parties, a hub joined to each party for
 * three or more (so a consortium reads as one alliance, not n(n-1)/2 lines). */
function allianceElements(a) {
  const ids = a.parties.map(slug);
  const common = { alliance: a.alliance_id, stage: a.stage, color: COLORS[a.stage] };
  const classes = CLOSED.has(a.stage) ? "closed" : "";
  if (ids.length === 2) {
    return [{ group: "edges", classes,
              data: { id: `e:${a.alliance_id}`, source: ids[0], target: ids[1], ...common } }];
  }
  const hub = `hub:${a.alliance_id}`;
  return [{ group: "nodes", classes: "hub", data: { id: hub, ...common } },
    ...ids.map((id) => ({ group: "edges", classes: `spoke ${classes}`,
                          data: { id: `s:${a.alliance_id}:${id}`, source: hub, target: id,
                                  ...common } }))];
}

function dropAlliance(id) {
  cy.remove(`[alliance = ${JSON.stringify(id)}]`);
  state.alliances.delete(id);
}

/** Add or replace one alliance; returns the elements added. */
function putAlliance(a) {
  if (state.alliances.has(a.alliance_id)) dropAlliance(a.alliance_id);
  state.alliances.set(a.alliance_id, a);
  const fresh = [];
  for (const name of a.parties) {
    const id = slug(name);
    state.labels.set(id, name);
    if (cy.getElementById(id).empty()) {
      fresh.push({ group: "nodes", classes: "company", data: { id, label: name, count: 0 } });
    }
  }
  return cy.add([...fresh, ...allianceElements(a)]);
}

/** Node size follows the alliances each company has in view. */
function recount() {
  const count = new Map();
  for (const a of state.alliances.values()) {
    for (const p of a.parties) count.set(slug(p), (count.get(slug(p)) || 0) + 1);
  }
  cy.nodes(".company").forEach((n) => {
    const c = count.get(n.id()) || 0;
    if (c === 0) n.remove(); else n.data("count", c);
  });
  const focus = slug(filters().company || "");
  cy.nodes(".company").forEach((n) => n.toggleClass("focus", n.id() === focus));
}

function layout(randomize) {
  cy.layout({ name: "cose", animate: false, randomize, nodeDimensionsIncludeLabels: true,
              idealEdgeLength: () => 90, nodeRepulsion: () => 9000, padding: 30 }).run();
  // a handful of nodes would otherwise be blown up to fill the pane
  if (cy.zoom() > 1.2) { cy.zoom(1.2); cy.center(); }
}

/** Alliances from /graph's edges: one per alliance id, parties from the edges' ends. */
function alliancesOf(graph) {
  const label = new Map(graph.nodes.map((n) => [n.id, n.label]));
  const byId = new Map();
  for (const e of graph.edges) {
    let a = byId.get(e.alliance_id);
    if (!a) {
      a = { alliance_id: e.alliance_id, parties: new Set(), stage: e.stage,
            episode: e.episode, last_changed: e.last_changed };
      byId.set(e.alliance_id, a);
    }
    a.parties.add(label.get(e.source) || e.source);
    a.parties.add(label.get(e.target) || e.target);
  }
  return [...byId.values()].map((a) => ({ ...a, parties: [...a.parties].sort() }));
}

function graphParams(cursor) {
  const f = filters();
  const params = { stage: f.stage, since: f.since, until: f.until, limit: String(PAGE_SIZE),
                   cursor };
  if (f.company) Object.assign(params, { company: f.company, depth: f.depth });
  return params;
}

async function loadGraph({ more = false } = {}) {
  const params = graphParams(more ? state.cursor : null);
  status("loading…");
  $("more").hidden = true;
  state.pending = state.pending || [];
  const generation = state.generation;
  let graph;
  try {
    graph = await api("/graph", params);
    if (generation !== state.generation) return;   // the filters changed meanwhile
  } catch (err) {
    if (generation !== state.generation) return;
    status(err.message, true);
    if (err.status === 503) setTimeout(() => loadGraph({ more }), 2000);
    else state.pending = null;
    return;
  }
  if (!more) {
    cy.elements().remove();
    state.alliances.clear();
  }
  cy.batch(() => alliancesOf(graph).forEach(putAlliance));
  const queued = state.pending;
  state.pending = null;
  queued.forEach(applyChange);
  recount();
  layout(true);
  state.cursor = graph.next_cursor || null;
  $("more").hidden = !state.cursor;
  renderList();
  const n = state.alliances.size;
  status(n ? `${n} alliance${n === 1 ? "" : "s"}, ${cy.nodes(".company").length} companies` +
             (graph.truncated ? ` (the walk stopped at ${PAGE_SIZE} alliances: narrow the ` +
                                "filters or lower the depth)" : "")
           : "no alliances match these filters");
  state.loads += 1;
  document.body.dataset.loads = String(state.loads);
}

function renderList() {
  const rows = [...state.alliances.values()]
    .sort((x, y) => (y.last_changed > x.last_changed ? 1 : -1));
  state.list.replaceChildren(...rows.map((a) => el("li", { "data-alliance": a.alliance_id },
    el("a", { class: "alliance", onclick: () => showAlliance(a.alliance_id) },
       a.parties.join(" · ")), " ", stageTag(a.stage),
    el("span", { class: "meta" }, ` ${day(a.last_changed)}`))));
}

// ------------------------------------------------------------------ side panel

function panel(...children) {
  $("panel").replaceChildren(
    el("p", {}, el("a", { id: "back", class: "company", onclick: showList }, "← alliances in view")),
    ...children);
}

function showList() {
  state.openAlliance = null;
  $("panel").replaceChildren(el("h2", {}, "Alliances in view"), state.list);
}

async function showCompany(name) {
  state.openAlliance = null;
  let view;
  try {
    view = await api(`/companies/${encodeURIComponent(name)}`);
  } catch (err) {
    panel(el("p", { class: "error" }, err.message));
    return;
  }
  const groups = STAGES.filter((s) => view.partners_by_stage[s]).map((s) => [
    el("h3", {}, stageTag(s), ` ${view.partners_by_stage[s].length}`),
    el("ul", { class: "partners" }, view.partners_by_stage[s].map((p) => el("li", {},
      el("a", { class: "company", onclick: () => focusCompany(p) }, p)))),
  ]);
  panel(el("h2", { id: "company-title" }, view.company),
    el("p", { class: "meta" }, `${view.alliance_count} alliance${view.alliance_count === 1 ? "" : "s"} · `,
       el("a", { class: "company", onclick: () => focusCompany(view.company) },
          "show its network")),
    ...groups.flat(),
    el("h3", {}, "Its alliances"),
    el("ul", {}, view.alliances.map((a) => el("li", {},
      el("a", { class: "alliance", onclick: () => showAlliance(a.alliance_id) },
         [view.company, ...a.partners].join(" · ")), " ", stageTag(a.stage),
      el("span", { class: "meta" }, ` ${day(a.last_changed)}`)))));
}

function focusCompany(name) {
  $("company").value = name;
  apply();
}

/** The evidence sentence with its cue (offsets into the article) marked. */
function evidenceQuote(ev) {
  const text = ev.sentence;
  if (ev.cue_start === null || ev.cue_start === undefined) {
    return el("blockquote", { class: "evidence" }, text);
  }
  const from = ev.cue_start - ev.start;
  const to = ev.cue_end - ev.start;
  return el("blockquote", { class: "evidence" }, text.slice(0, from),
            el("mark", { class: "cue" }, text.slice(from, to)), text.slice(to));
}

function articleLink(articleId, url) {
  // Only http(s) links: an article URL is data from the news, not trusted markup.
  if (url && /^https?:\/\//i.test(url)) {
    return el("a", { href: url, target: "_blank", rel: "noopener noreferrer" }, articleId);
  }
  return el("span", { title: "no URL known for this article" }, articleId);
}

async function showAlliance(id) {
  state.openAlliance = id;
  let h;
  try {
    h = await api(`/alliances/${encodeURIComponent(id)}/history`);
  } catch (err) {
    panel(el("p", { class: "error" }, err.message));
    return;
  }
  if (state.openAlliance !== id) return;   // another click came first
  const byEvent = new Map(h.observations.map((o) => [o.event_id, o]));
  const steps = h.history.map((t) => {
    const obs = byEvent.get(t.event_id);
    return el("li", { class: "transition", "data-stage": t.stage },
      el("div", {}, el("span", { class: "when" }, day(t.changed_at)),
         t.previous_stage ? [stageTag(t.previous_stage), " → "] : "new: ", stageTag(t.stage),
         el("span", { class: "meta" }, ` episode ${t.episode}`)),
      t.evidence.map(evidenceQuote),
      el("div", { class: "meta" }, `source: ${obs ? obs.source : "unknown"} · article: `,
         articleLink(t.article_id, t.article_url || (obs && obs.article_url))));
  });
  const support = [...h.observations].reverse().map((o) => el("li", {},
    el("span", { class: "when" }, day(o.published_at)), stageTag(o.stage), " ",
    articleLink(o.article_id, o.article_url),
    el("span", { class: "meta" }, ` ${o.source} · confidence ${o.confidence.toFixed(2)}`)));
  panel(el("h2", { id: "alliance-title", "data-alliance": h.alliance_id },
           h.parties.join(" · ")),
    el("p", {}, "now ", stageTag(h.stage), el("span", { class: "meta" }, ` episode ${h.episode}`)),
    el("h3", {}, "Timeline"),
    el("ol", { class: "timeline" }, steps),
    el("h3", {}, `Supporting articles (${h.observations.length})`),
    el("ul", { class: "support" }, support));
  cy.elements().unselect();
  cy.elements(`[alliance = ${JSON.stringify(id)}]`).select();
}

// ------------------------------------------------------------------ live updates

/** Whether a change belongs in the current view (the stream already filtered it by company
 * and stage when it could). */
function inView(change) {
  const f = filters();
  if (f.stage && change.stage !== f.stage) return false;
  const at = day(change.changed_at);
  if (f.since && at < f.since) return false;
  if (f.until && at > f.until) return false;
  if (!f.company) return true;
  if (f.depth === "1") return change.parties.some((p) => slug(p) === slug(f.company));
  // deeper neighbourhoods: a change joining a company already shown
  return change.parties.some((p) => !cy.getElementById(slug(p)).empty());
}

function applyChange(change) {
  if (state.pending) { state.pending.push(change); return; }
  const known = state.alliances.get(change.alliance_id);
  if (known && known.last_changed > change.changed_at) return;   // older than what we show
  if (!inView(change)) {
    if (known) { dropAlliance(change.alliance_id); recount(); renderList(); }
    return;
  }
  const isNew = !known;
  const added = putAlliance({ alliance_id: change.alliance_id, parties: change.parties,
                              stage: change.stage, episode: change.episode,
                              last_changed: change.changed_at });
  // new companies start beside a partner already placed, then the layout settles
  added.nodes(".company").forEach((n) => {
    const placed = n.neighborhood("node.company").filter((m) => !added.contains(m));
    if (placed.nonempty()) n.position({ ...placed[0].position() });
  });
  recount();
  if (isNew) layout(false);
  renderList();
  added.addClass("fresh");
  setTimeout(() => added.removeClass("fresh"), 4000);
  const row = state.list.querySelector(`li[data-alliance="${CSS.escape(change.alliance_id)}"]`);
  if (row) row.classList.add("fresh");
  if (state.openAlliance === change.alliance_id) showAlliance(change.alliance_id);
  const n = state.alliances.size;
  status(`${n} alliance${n === 1 ? "" : "s"}, ${cy.nodes(".company").length} companies · ` +
         `${change.parties.join(" · ")} now ${change.stage}`);
}

function setLive(on, why = "") {
  $("live").textContent = on ? "live" : `live: ${why || "reconnecting"}`;
  $("live").className = on ? "on" : "";
}

const sleep = (ms, signal) => new Promise((resolve) => {
  const timer = setTimeout(resolve, ms);
  signal.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
});

/** One Server-Sent Events block (lines up to a blank line) as {id, event, data}. */
function parseEvent(block) {
  const out = { id: null, event: "message", data: [] };
  for (const line of block.split(/\r?\n/)) {
    if (!line || line.startsWith(":")) continue;   // comments are heartbeats
    const at = line.indexOf(":");
    const field = at < 0 ? line : line.slice(0, at);
    const value = at < 0 ? "" : line.slice(at + 1).replace(/^ /, "");
    if (field === "data") out.data.push(value);
    else if (field === "id") out.id = value;
    else if (field === "event") out.event = value;
  }
  return out;
}

/** Read /changes/stream with fetch rather than EventSource: EventSource cannot send the
 * Authorization header. Reconnects with Last-Event-ID, so a dropped connection loses
 * nothing (the server resumes after that position). */
async function streamChanges(signal, onReady) {
  let backoff = 1000;
  while (!signal.aborted) {
    try {
      const f = filters();
      const params = { stage: f.stage, company: f.depth === "1" ? f.company : "" };
      const headers = authHeaders();
      if (state.lastEventId) headers["Last-Event-ID"] = state.lastEventId;
      const resp = await fetch(apiUrl("/changes/stream", params),
                               { headers, signal, cache: "no-store" });
      if (resp.status === 401) {
        $("token-form").hidden = false;
        setLive(false, "needs token");
        onReady();
        return;
      }
      if (!resp.ok) throw new Error(`the stream answered ${resp.status}`);
      setLive(true);
      backoff = 1000;
      const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.search(/\r?\n\r?\n/)) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, "");
          const ev = parseEvent(block);
          if (ev.id) state.lastEventId = ev.id;
          if (ev.event === "ready") onReady();
          if (ev.event === "change" && ev.data.length) applyChange(JSON.parse(ev.data.join("\n")));
        }
      }
    } catch (err) {
      if (signal.aborted) return;
      setLive(false, err.message);
      onReady();   // no stream for now: load the graph anyway
    }
    await sleep(backoff, signal);
    backoff = Math.min(backoff * 2, 15000);
  }
}

/** (Re)open the stream for the current filters; resolves once it has started (its `ready`
 * event: from then on every change arrives), or has failed, or after 5 s. Loading the graph
 * after that leaves no gap between the graph's snapshot and the first change streamed. */
function restartStream() {
  if (state.stream) state.stream.abort();
  state.stream = new AbortController();
  state.lastEventId = null;   // new filters: live from now on, the graph load covers the past
  setLive(false, "connecting");
  return new Promise((resolve) => {
    setTimeout(resolve, 5000);
    streamChanges(state.stream.signal, resolve);
  });
}

// ------------------------------------------------------------------ filters

function apply() {
  const f = filters();
  const query = new URLSearchParams(Object.entries(f).filter(([k, v]) => v && !(k === "depth" && v === "1")));
  history.replaceState(null, "", query.toString() ? `?${query}` : location.pathname);
  state.pending = [];
  const generation = ++state.generation;
  restartStream().then(() => { if (generation === state.generation) loadGraph(); });
}

let typeahead = null;
async function suggest() {
  const prefix = $("company").value.trim();
  if (!prefix) return;
  try {
    const found = await api("/companies", { q: prefix, limit: "10" });
    if ($("company").value.trim() !== prefix) return;   // typed on meanwhile
    $("company-options").replaceChildren(
      ...found.companies.map((c) => el("option", { value: c.name },
        `${c.alliance_count} alliance${c.alliance_count === 1 ? "" : "s"}`)));
  } catch (err) {
    $("company-options").replaceChildren();
  }
}

function legend() {
  $("legend").replaceChildren(
    ...STAGES.map((s) => el("div", {},
      el("span", { class: `swatch${CLOSED.has(s) ? " dashed" : ""}`,
                   style: `background:${COLORS[s]};border-color:${COLORS[s]}` }), s)),
    el("div", {}, el("span", { class: "hub" }), "alliance of 3+ companies"),
    el("div", {}, el("span", { class: "dot", style: "width:.5rem;height:.5rem" }),
       el("span", { class: "dot", style: "width:.9rem;height:.9rem" }),
       "company, by alliances in view"));
}

function init() {
  state.list = $("alliance-list");
  makeGraph();
  legend();
  window.radar = { cy, state };   // for the browser tests and the console
  const params = new URLSearchParams(location.search);
  setFilters(Object.fromEntries(params));
  $("filters").addEventListener("submit", (e) => { e.preventDefault(); apply(); });
  $("clear").addEventListener("click", () => { setFilters({}); apply(); });
  $("more").addEventListener("click", () => loadGraph({ more: true }));
  $("company").addEventListener("input", () => {
    clearTimeout(typeahead);
    typeahead = setTimeout(suggest, 150);
  });
  $("token").value = sessionStorage.getItem(TOKEN_KEY) || "";
  $("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
    $("token-form").hidden = true;
    apply();
  });
  apply();
}

if (typeof cytoscape === "undefined") {
  document.body.prepend(el("p", { class: "error" },
    "The graph library is missing: run `make assets` (it copies cytoscape from node_modules)."));
} else {
  init();
}
