// ugro dashboard: fills the static pages from the read-only JSON API and keeps them live.
// Everything from the API is set as text (textContent, attribute values), never as markup:
// a node's output can only ever show as the characters it is.
"use strict";

const POLL_MS = 500; // a sweep shows within a second; an unchanged answer is a bodiless 304
const SYMBOLS = {
  healthy: "✓", degraded: "▲", unhealthy: "✗", unreachable: "⊘", unknown: "?", stale: "⌛",
};
const STATUSES = ["unreachable", "unhealthy", "stale", "unknown", "degraded", "healthy"];
const SVG = "http://www.w3.org/2000/svg";

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("data-")) node.dataset[key.slice(5).replace(/-(.)/g, (_, c) => c.toUpperCase())] = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function badge(status) {
  return el("span", { class: `badge s-${status}`, "data-status": status },
    `${SYMBOLS[status] || "?"} ${status}`);
}

function setText(id, text) {
  document.getElementById(id).textContent = text;
}

function when(iso) {
  if (!iso) return "-";
  const moment = new Date(iso);
  return Number.isNaN(moment.getTime()) ? iso : moment.toLocaleString();
}

function setupTheme() {
  const root = document.documentElement;
  const saved = localStorage.getItem("ugro-theme");
  if (saved === "dark" || saved === "light") root.dataset.theme = saved;
  document.getElementById("theme").addEventListener("click", () => {
    const dark = root.dataset.theme === "dark" ||
      (!root.dataset.theme && matchMedia("(prefers-color-scheme: dark)").matches);
    root.dataset.theme = dark ? "light" : "dark";
    localStorage.setItem("ugro-theme", root.dataset.theme);
  });
}

function live(text, kind) {
  const badgeNode = document.getElementById("live");
  badgeNode.textContent = text;
  badgeNode.className = `live ${kind || ""}`;
}

// Fetch `url` every POLL_MS; call `render` with the document whenever it changed.
function poll(url, render) {
  let etag = null;
  let timer = null;
  async function once() {
    try {
      const headers = etag ? { "If-None-Match": etag } : {};
      const response = await fetch(url(), { headers, cache: "no-store", credentials: "same-origin" });
      if (response.status === 200) {
        etag = response.headers.get("ETag");
        render(await response.json());
      } else if (response.status !== 304) {
        live(`error: ${response.status} ${(await response.text()).slice(0, 200)}`, "error");
      }
      if (response.status === 200 || response.status === 304) {
        live(`live · ${new Date().toLocaleTimeString()}`);
      }
    } catch (error) {
      live("connection lost: retrying", "error");
    }
    timer = setTimeout(once, POLL_MS);
  }
  once();
  return {
    refresh() { etag = null; clearTimeout(timer); once(); },
  };
}

// ---- cluster overview ------------------------------------------------------------------

function overviewPage() {
  const nameFilter = document.getElementById("filter-name");
  const statusFilter = document.getElementById("filter-status");
  for (const status of STATUSES) {
    statusFilter.append(el("option", { value: status, text: status }));
  }
  let latest = null;
  const redraw = () => latest && drawOverview(latest, nameFilter.value.trim().toLowerCase(), statusFilter.value);
  nameFilter.addEventListener("input", redraw);
  statusFilter.addEventListener("change", redraw);
  document.getElementById("counts").addEventListener("click", (event) => {
    const button = event.target.closest("button");
    if (!button) return;
    statusFilter.value = statusFilter.value === button.dataset.status ? "" : button.dataset.status;
    redraw();
  });
  poll(() => "/api/v1/overview", (doc) => { latest = doc; redraw(); });
}

function drawOverview(doc, name, status) {
  const banner = document.getElementById("banner");
  const lines = [...doc.notes, ...doc.findings.map((f) => `drift: ${f}`)];
  if (doc.source !== "daemon") lines.unshift("read-only: served from the state files, no daemon is answering here");
  banner.replaceChildren(...lines.map((line) => el("p", { text: line })));
  banner.hidden = lines.length === 0;

  document.getElementById("counts").replaceChildren(...STATUSES.filter((s) => doc.counts[s]).map((s) =>
    el("li", {}, el("button", { type: "button", "data-status": s, "aria-pressed": String(status === s) },
      badge(s), el("span", { text: String(doc.counts[s]) })))));

  const firing = doc.firing.map((a) => el("li", {}, `${a.severity} · ${a.node} · ${a.summary} (since ${when(a.started_at)})`));
  document.getElementById("firing").replaceChildren(...firing);
  document.getElementById("firing-section").hidden = firing.length === 0;
  const cordoned = doc.cordoned.map((c) => el("li", {},
    el("a", { href: `/node/${encodeURIComponent(c.node)}`, text: c.node }),
    ` by ${c.user || c.by} since ${when(c.since)}: ${c.reason}`));
  document.getElementById("cordoned").replaceChildren(...cordoned);
  document.getElementById("cordon-section").hidden = cordoned.length === 0;
  const groups = doc.groups.map((g) => el("li", {}, `${g.nodes.length} nodes: ${g.problem} — ${g.nodes.slice(0, 20).join(", ")}${g.nodes.length > 20 ? ", …" : ""}`));
  document.getElementById("groups").replaceChildren(...groups);
  document.getElementById("group-section").hidden = groups.length === 0;

  const shown = doc.nodes.filter((n) => (!status || n.status === status) && (!name || n.name.toLowerCase().includes(name)));
  const fragment = document.createDocumentFragment();
  for (const n of shown) {
    const meta = n.score === null ? "never checked" : `score ${n.score} · ${n.age} ago`;
    fragment.append(el("li", { "data-node": n.name, "data-status": n.status },
      el("a", { class: `tile s-${n.status}`, href: `/node/${encodeURIComponent(n.name)}` },
        el("div", { class: "name", text: n.name }),
        el("div", {}, badge(n.status), n.cordon ? el("span", { class: "badge s-degraded", title: n.cordon, text: "cordoned" }) : null),
        el("div", { class: "meta", text: meta }),
        n.problem ? el("div", { class: "problem", text: n.problem }) : null)));
  }
  document.getElementById("tiles").replaceChildren(fragment);
  setText("shown", `${shown.length} of ${doc.nodes.length} nodes`);
}

// ---- node page -------------------------------------------------------------------------

function nodePage() {
  const name = decodeURIComponent(location.pathname.slice("/node/".length));
  document.title = `ugro — ${name}`;
  setText("node-name", name);
  let since = "24h";
  const charts = poll(() => `/api/v1/history?node=${encodeURIComponent(name)}&since=${since}`, drawCharts);
  for (const button of document.querySelectorAll("[data-window]")) {
    button.addEventListener("click", () => {
      since = button.dataset.window;
      for (const other of document.querySelectorAll("[data-window]")) {
        other.setAttribute("aria-pressed", String(other === button));
      }
      charts.refresh();
    });
  }
  poll(() => `/api/v1/nodes/${encodeURIComponent(name)}`, drawNode);
}

function row(...cells) {
  return el("tr", {}, ...cells.map((c) => (c instanceof Node && c.tagName === "TD" ? c : el("td", {}, c))));
}

function number(value, unit) {
  if (value === null || value === undefined) return "-";
  return `${Math.round(value * 100) / 100}${unit ? ` ${unit}` : ""}`;
}

function drawNode(doc) {
  document.getElementById("node-status").replaceWith(Object.assign(badge(doc.status), { id: "node-status" }));
  setText("node-summary", doc.checked
    ? `score ${Math.round(doc.health_score)} · checked ${doc.age} ago (${when(doc.last_check)}) · ${doc.address}`
    : "never checked: the daemon has not reached this node yet");
  setText("node-problem", doc.problem || "");
  const cordon = doc.cordon;
  document.getElementById("cordon-section").hidden = !cordon;
  if (cordon) {
    setText("cordon", `by ${cordon.user || cordon.by}${cordon.escalated ? " (escalated)" : ""} since ${when(cordon.since)}: ${cordon.reason}`);
  }
  document.querySelector("#checks tbody").replaceChildren(...(doc.checks || []).map((c) => row(
    c.name, el("td", {}, el("span", { class: `badge s-${c.status}`, "data-check": c.name, text: c.status })),
    number(c.value, c.unit), `${Math.round(c.duration_ms)} ms`, el("td", { class: "message", text: c.message }))));
  document.querySelector("#gpus tbody").replaceChildren(...(doc.gpus || []).map((g) => row(
    String(g.index), g.name, number(g.temperature_c, "°C"), number(g.utilization_pct, "%"),
    g.memory_total_mib ? `${number(g.memory_used_mib)} / ${number(g.memory_total_mib, "MiB")}` : "-",
    g.power_limit_w ? `${number(g.power_draw_w)} / ${number(g.power_limit_w, "W")}` : number(g.power_draw_w, "W"))));
  document.querySelector("#versions tbody").replaceChildren(...Object.entries(doc.versions || {}).map(([k, v]) => row(k, v)));
  document.getElementById("drift").replaceChildren(...(doc.drift || []).map((d) => el("li", { text: `drift: ${d}` })));
  document.getElementById("transitions").replaceChildren(...doc.transitions.slice().reverse().map((t) =>
    el("li", {}, `${when(t.at)}: ${t.before} → ${t.after} (${t.reason})`)));
}

function drawCharts(doc) {
  for (const [key, points] of Object.entries(doc.series)) {
    const svg = document.getElementById(`chart-${key}`);
    if (svg) drawChart(svg, points, Date.parse(doc.since), Date.parse(doc.until));
  }
}

function drawChart(svg, points, start, end) {
  const width = 300;
  const height = 110;
  const pad = { left: 34, right: 6, top: 8, bottom: 16 };
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.dataset.points = String(points.length);
  const parts = [];
  const text = (x, y, value, anchor) => {
    const node = document.createElementNS(SVG, "text");
    node.setAttribute("x", x); node.setAttribute("y", y); node.setAttribute("class", "axis");
    node.setAttribute("text-anchor", anchor || "start");
    node.textContent = value;
    return node;
  };
  if (points.length === 0) {
    parts.push(text(width / 2, height / 2, "no data in this window", "middle"));
    svg.replaceChildren(...parts);
    return;
  }
  const values = points.map((p) => p[1]);
  let low = Math.min(...values);
  let high = Math.max(...values);
  if (high === low) { high += 1; low -= 1; }
  const x = (t) => pad.left + ((t - start) / Math.max(1, end - start)) * (width - pad.left - pad.right);
  const y = (v) => pad.top + (1 - (v - low) / (high - low)) * (height - pad.top - pad.bottom);
  for (const v of [low, high]) {
    const line = document.createElementNS(SVG, "line");
    line.setAttribute("x1", pad.left); line.setAttribute("x2", width - pad.right);
    line.setAttribute("y1", y(v)); line.setAttribute("y2", y(v)); line.setAttribute("class", "grid");
    parts.push(line, text(pad.left - 3, y(v) + 3, String(Math.round(v * 10) / 10), "end"));
  }
  parts.push(text(pad.left, height - 3, new Date(start).toLocaleString()));
  parts.push(text(width - pad.right, height - 3, new Date(end).toLocaleString(), "end"));
  const line = document.createElementNS(SVG, "polyline");
  line.setAttribute("class", "line");
  line.setAttribute("points", points.map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" "));
  parts.push(line);
  for (const p of points) {
    const dot = document.createElementNS(SVG, "circle");
    dot.setAttribute("class", "dot"); dot.setAttribute("r", "1.6");
    dot.setAttribute("cx", x(p[0]).toFixed(1)); dot.setAttribute("cy", y(p[1]).toFixed(1));
    parts.push(dot);
  }
  svg.replaceChildren(...parts);
}

// ---- alerts page -----------------------------------------------------------------------

function alertsPage() {
  poll(() => "/api/v1/alerts", (doc) => {
    for (const [id, rows, moment] of [["firing", doc.firing, "started_at"], ["resolved", doc.resolved, "resolved_at"]]) {
      const body = document.querySelector(`#${id} tbody`);
      body.replaceChildren(...rows.map((a) => row(a.severity, a.node, `${a.summary}${a.grouped ? " (held)" : ""}`,
        when(a[moment]), el("td", { class: "message", text: (a.details || []).join("\n") }))));
      if (rows.length === 0) body.replaceChildren(row(el("td", { colspan: "5", class: "muted", text: id === "firing" ? "no firing alerts" : "nothing resolved recently" })));
    }
    const delivery = Object.entries(doc.delivery || {});
    document.querySelector("#delivery tbody").replaceChildren(...delivery.map(([sink, s]) =>
      row(sink, String(s.sent || 0), String(s.retries || 0), String(s.failed || 0), s.last_error || "-")));
  });
}

setupTheme();
({ overview: overviewPage, node: nodePage, alerts: alertsPage })[document.body.dataset.page]();
