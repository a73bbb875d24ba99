// The hakeeper dashboard: one stream (/v1/events/stream) keeps the page current; the token
// stays in this tab's sessionStorage. Everything from the server is written as text, never
// as HTML. No build step: plain browser JavaScript.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { token: sessionStorage.getItem("hakeeper-token") || "", last: null,
                nodes: [], failovers: [], reader: null,
                availability: { running: false, again: false } };
// The page's own ?window=30d&target=99.9% go to /v1/availability (the cluster file has no
// targets: the page address names one).
const page = new URLSearchParams(window.location.search);

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

function say(text, bad) {
  $("message").textContent = text;
  $("message").className = bad ? "bad" : "dim";
}

function headers(json) {
  const h = { Authorization: "Bearer " + state.token };
  if (json) h["Content-Type"] = "application/json";
  return h;
}

async function act(path, body) {
  const response = await fetch(path, { method: "POST", headers: headers(true),
                                       body: JSON.stringify(body || {}) });
  const answer = await response.json().catch(() => ({ error: response.statusText }));
  if (response.ok) say(answer.lines.join("\n"), answer.exit_code !== 0);
  else say(response.status + ": " + answer.error, true);
}

function button(label, path, body, confirmText) {
  const b = el("button", label);
  b.addEventListener("click", () => {
    if (confirmText && !window.confirm(confirmText)) return;
    act(path, typeof body === "function" ? body() : body);
  });
  return b;
}

function renderStatus(s) {
  $("cluster").textContent = s.cluster;
  $("quorum").textContent = s.quorum ? "yes" : "NO";
  $("quorum").className = "badge " + (s.quorum ? "ok" : "bad");
  $("controller").textContent = s.controller ? s.controller.node : "none";
  state.nodes = s.nodes.map((n) => n.name);
  const nodes = $("nodes");
  nodes.replaceChildren(...s.nodes.map((n) => {
    const tr = el("tr");
    tr.dataset.node = n.name;
    tr.dataset.state = n.state;
    tr.append(el("td", n.name + (n.controller ? " ★" : "")));
    const badge = el("span", n.state, "badge " + (n.state === "online" ? "ok" : "bad"));
    const st = el("td"); st.append(badge); tr.append(st);
    tr.append(el("td", [n.standby && "standby", n.maintenance && "maintenance", n.note]
                          .filter(Boolean).join(", "), "dim"));
    const actions = el("td");
    const base = "/v1/nodes/" + encodeURIComponent(n.name);
    actions.append(n.standby ? button("online", base + "/online")
                             : button("standby", base + "/standby"),
                   button(n.maintenance ? "end maint." : "maint.", base + "/maintenance",
                          { off: n.maintenance }));
    tr.append(actions);
    return tr;
  }));
  const resources = $("resources");
  resources.replaceChildren(...s.resources.map((r) => {
    const tr = el("tr");
    tr.dataset.resource = r.id;
    tr.dataset.running = r.running.join(", ");
    tr.append(el("td", r.id + (r.unit !== r.id ? " (" + r.unit + ")" : "")));
    const running = el("td");
    if (r.running.length === 0) running.append(el("span", "not running", "badge warn"));
    for (const where of r.running) {
      const ok = /(started|promoted|unpromoted)$/.test(where);
      running.append(el("span", where, "badge " + (ok ? "ok" : "bad")), " ");
    }
    tr.append(running);
    tr.append(el("td", r.why.concat(r.failcounts.map((f) => "fails " + f)).join("; "), "dim"));
    const actions = el("td");
    const base = "/v1/resources/" + encodeURIComponent(r.unit);
    const pick = el("select");
    for (const name of state.nodes) pick.append(el("option", name));
    actions.append(pick, button("move", base + "/move", () => ({ node: pick.value })),
                   button("clear", base + "/clear"), button("cleanup", base + "/cleanup"),
                   button("restart", base + "/restart", {}, "Restart " + r.unit + " everywhere?"));
    tr.append(actions);
    return tr;
  }));
}

function when(ts) {
  return new Date(ts * 1000).toLocaleTimeString();
}

function describe(e) {
  const skip = new Set(["kind", "ts", "revision"]);
  const shown = (v) => (typeof v === "number" && !Number.isInteger(v) ? v.toFixed(2) : v);
  return Object.entries(e).filter(([k]) => !skip.has(k)).map(([k, v]) => k + "=" + shown(v))
    .join(" ");
}

function percent(a) {
  return a === null ? "—" : (a * 100).toFixed(a >= 0.9999 ? 4 : 3) + " %";
}

function span(seconds) {
  const s = Math.abs(seconds);
  const text = s < 10 ? s.toFixed(1) + " s" : s < 120 ? s.toFixed(0) + " s" : s < 7200 ? (s / 60).toFixed(0) + " min"
    : s < 172800 ? (s / 3600).toFixed(1) + " h" : (s / 86400).toFixed(1) + " d";
  return (seconds < 0 ? "−" : "") + text;
}

const VERDICT = { met: "ok", at_risk: "warn", missed: "bad" };

function renderAvailability(a) {
  $("availability-window").textContent = "last " + span(a.window.length)
    + (a.target === null ? "" : ", target " + percent(a.target));
  $("availability-note").textContent = a.target === null
    ? "No target: open this page as /?target=99.9% to compare each service with one."
    : "Green: under 75 % of the error budget spent; amber: up to all of it; red: target missed.";
  $("availability").replaceChildren(...a.services.map((s) => {
    const tr = el("tr");
    tr.dataset.service = s.name;
    tr.dataset.verdict = s.verdict;
    tr.dataset.failovers = String(s.failovers.count);
    tr.append(el("td", s.name + (s.up_now === false ? " (down)" : "")));
    const shown = el("td");
    shown.append(el("span", percent(s.availability), "badge " + (VERDICT[s.verdict] || "dim")));
    const failovers = el("td", s.failovers.count);
    if (s.failovers.max !== null) failovers.append(el("div", "max " + span(s.failovers.max), "dim"));
    tr.append(shown, el("td", s.budget_left === null ? "—" : span(s.budget_left)), failovers);
    return tr;
  }));
}

// Fetched once after the log is loaded and again on each failover the stream shows: one
// request at a time, and at most one more queued however many events arrive meanwhile.
async function refreshAvailability() {
  const a = state.availability;
  if (a.running) { a.again = true; return; }
  a.running = true;
  try {
    do {
      a.again = false;
      const query = new URLSearchParams();
      for (const key of ["window", "target"]) if (page.get(key)) query.set(key, page.get(key));
      const response = await fetch("/v1/availability?" + query, { headers: headers() });
      const body = await response.json().catch(() => ({ error: response.statusText }));
      if (response.ok) renderAvailability(body);
      else $("availability-note").textContent = "availability: " + response.status + ": " + body.error;
    } while (a.again);
  } catch (err) {
    $("availability-note").textContent = "availability: " + String(err.message || err);
  } finally {
    a.running = false;
  }
}

function addEvent(e, live) {
  const li = el("li");
  li.dataset.kind = e.kind;
  const bad = /failed|lost|fenced/.test(e.kind);
  li.append(el("span", when(e.ts) + " ", "dim"), el("span", e.kind, "badge " + (bad ? "bad" : "ok")),
            " " + describe(e));
  $("timeline").prepend(li);
  while ($("timeline").children.length > 200) $("timeline").lastChild.remove();
  if (e.kind === "failover.finished") addFailover(e);
  if (live && e.kind.startsWith("failover.")) refreshAvailability();
}

function addFailover(f) {
  const tr = el("tr");
  tr.dataset.resource = f.resource;
  tr.append(el("td", when(f.ts)), el("td", f.resource), el("td", f.from_node + " → " + f.to_node),
            el("td", f.duration.toFixed(2) + " s"));
  $("failovers").prepend(tr);
}

async function load() {
  const response = await fetch("/v1/events?since=0", { headers: headers() });
  if (!response.ok) throw new Error(response.status === 401 ? "token refused (401)" : response.statusText);
  const body = await response.json();
  $("timeline").replaceChildren();
  $("failovers").replaceChildren();
  for (const e of body.events.slice(-200)) addEvent(e, false);
  state.last = body.revision;
  refreshAvailability();
}

// Server-sent events over fetch (EventSource cannot send an Authorization header).
async function follow() {
  const h = headers();
  if (state.last !== null) h["Last-Event-ID"] = String(state.last);
  const response = await fetch("/v1/events/stream", { headers: h });
  if (!response.ok) throw new Error("stream: " + response.status);
  $("live").textContent = "live"; $("live").className = "badge ok";
  const reader = response.body.getReader();
  state.reader = reader;
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const fields = {};
      for (const line of block.split("\n")) {
        if (line.startsWith(":")) continue;
        const i = line.indexOf(": ");
        if (i > 0) fields[line.slice(0, i)] = line.slice(i + 2);
      }
      if (!fields.data) continue;
      const data = JSON.parse(fields.data);
      if (fields.event === "status") renderStatus(data);
      else if (fields.event === "event") {
        state.last = Number(fields.id);
        addEvent(data, true);
      }
    }
  }
}

async function run() {
  for (;;) {
    try {
      if (state.last === null) await load();
      say("");
      await follow();
    } catch (err) {
      say(String(err.message || err), true);
      if (/401|403/.test(String(err.message))) { $("live").textContent = "signed out"; return; }
    }
    $("live").textContent = "reconnecting"; $("live").className = "badge warn";
    await new Promise((r) => setTimeout(r, 2000));
  }
}

$("login").addEventListener("submit", (ev) => {
  ev.preventDefault();
  state.token = $("token").value.trim();
  sessionStorage.setItem("hakeeper-token", state.token);
  $("token").value = "";
  state.last = null;
  if (state.reader) state.reader.cancel();
  else run();
});

if (state.token) run();
