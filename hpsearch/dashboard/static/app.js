/* hpsearch dashboard: a small single-page app over the read-only JSON API (docs/dashboard.md).
 * Routes: #/ studies, #/study/<name>, #/study/<name>/trial/<n>, #/workers.
 * Live: every page polls at POLL_MS (<= 2 s) and redraws what changed. */
"use strict";

const POLL_MS = 1000;
const SVG_POINT_LIMIT = 3000; // above this, scatter plots use WebGL when the browser has it
const HEAVY_REFRESH_MS = 5000;
const PARCOORDS_LIMIT = 1000; // lines drawn in the parallel coordinates plot at most
const PARCOORDS_BEST = 300; // of which the best trials
const PARCOORDS_SOFTWARE_LIMIT = 300; // without a GPU, more lines wait for a click // parameter plots of big studies refresh at most this often
const STATES = ["WAITING", "RUNNING", "COMPLETED", "FAILED", "STOPPED"];
const COLORS = { COMPLETED: "#16a34a", FAILED: "#dc2626", RUNNING: "#2563eb", WAITING: "#9ca3af",
                 STOPPED: "#d97706" };

let view = null; // the page on screen: {poll(), stop()}
let routedAt = 0; // performance.now() when the page on screen was opened
let pollTimer = null;

// -- small helpers --------------------------------------------------------------------------
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "className") el.className = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

async function api(path) {
  const res = await fetch("/api" + path, { cache: "no-store" });
  const body = await res.json();
  if (!res.ok) throw new Error(body.error || res.statusText);
  return body;
}

function fmt(v) {
  if (v === null || v === undefined) return "–";
  if (typeof v === "number") {
    if (Number.isInteger(v)) return String(v);
    const a = Math.abs(v);
    return a !== 0 && (a < 1e-3 || a >= 1e6) ? v.toExponential(3) : String(+v.toPrecision(6));
  }
  if (typeof v === "boolean") return v ? "true" : "false";
  return String(v);
}

// A multi-fidelity trial's budget: "1→3 (bracket 2, rung 1, from #4)".
function fmtFidelity(f) {
  if (!f) return "";
  const from = f.parent === null || f.parent === undefined ? "" : `, from #${f.parent}`;
  return `${f.initial_epoch}→${f.epochs} (bracket ${f.bracket}, rung ${f.round}${from})`;
}

function fmtDuration(s) {
  if (s === null || s === undefined) return "–";
  if (s < 60) return s.toFixed(1) + " s";
  if (s < 3600) return (s / 60).toFixed(1) + " min";
  return (s / 3600).toFixed(2) + " h";
}

function fmtTime(ts) {
  return ts === null || ts === undefined ? "–" : new Date(ts * 1000).toISOString().replace("T", " ").slice(0, 19) + "Z";
}

function ago(ts, now) {
  if (ts === null || ts === undefined) return "–";
  const s = Math.max(0, now - ts);
  if (s < 90) return Math.round(s) + " s ago";
  if (s < 5400) return Math.round(s / 60) + " min ago";
  if (s < 172800) return (s / 3600).toFixed(1) + " h ago";
  return Math.round(s / 86400) + " d ago";
}

function badge(state) { return h("span", { className: "badge " + state }, state); }

function card(label, value, id) {
  return h("div", { className: "card" }, h("div", { className: "label" }, label),
    h("div", { className: "value", id }, value));
}

function enc(s) { return encodeURIComponent(s); }

function setLive(ok, text) {
  const el = document.getElementById("live");
  el.className = "live " + (ok ? "ok" : "err");
  el.textContent = text;
}

function hasPlotly() { return typeof window.Plotly !== "undefined"; }

let webglChecked = null;
let webglSoftware = false; // WebGL emulated on the CPU (no GPU): big WebGL plots are slow
function hasWebGL() {
  if (webglChecked === null) {
    try {
      const c = document.createElement("canvas");
      const gl = c.getContext("webgl") || c.getContext("experimental-webgl");
      webglChecked = !!gl;
      const info = gl && gl.getExtension("WEBGL_debug_renderer_info");
      const renderer = info ? String(gl.getParameter(info.UNMASKED_RENDERER_WEBGL)) : "";
      webglSoftware = /swiftshader|llvmpipe|softpipe|software/i.test(renderer);
    } catch (e) { webglChecked = false; }
  }
  return webglChecked;
}

function nextPaint() {
  return new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));
}

// Run draw() now if el is on screen, else once it scrolls into view (the latest draw wins).
const pendingDraws = new Map();
const visibility = "IntersectionObserver" in window ? new IntersectionObserver((entries) => {
  for (const entry of entries) {
    if (!entry.isIntersecting) continue;
    const draw = pendingDraws.get(entry.target);
    pendingDraws.delete(entry.target);
    visibility.unobserve(entry.target);
    if (draw) nextPaint().then(draw);
  }
}, { rootMargin: "200px" }) : null;

function whenVisible(el, draw) {
  const r = el.getBoundingClientRect();
  if (!visibility || (r.bottom >= -200 && r.top <= window.innerHeight + 200)) {
    pendingDraws.delete(el);
    nextPaint().then(draw);
    return;
  }
  pendingDraws.set(el, draw);
  visibility.observe(el);
}

function scatterType(n) { return n > SVG_POINT_LIMIT && hasWebGL() ? "scattergl" : "scatter"; }

// Milliseconds the last draw of each plot took (read by the benchmark and for debugging).
window.hpsearchTimings = {};

function plot(el, traces, layout) {
  const started = performance.now();
  try { drawPlot(el, traces, layout); } finally {
    window.hpsearchTimings[el.id] = Math.round(performance.now() - started);
    if (!(el.id + "@" in window.hpsearchTimings)) {  // when it was first drawn
      window.hpsearchTimings[el.id + "@"] = Math.round(performance.now() - routedAt);
    }
  }
}

function drawPlot(el, traces, layout) {
  if (!hasPlotly()) {
    el.replaceChildren(h("p", { className: "muted" },
      "Plots need plotly.min.js from the plotly package: pip install plotly"));
    return;
  }
  const base = { margin: { l: 55, r: 15, t: 10, b: 40 }, hovermode: "closest",
                 paper_bgcolor: "#fff", plot_bgcolor: "#fff", showlegend: true,
                 legend: { orientation: "h", y: 1.12 } };
  window.Plotly.react(el, traces, Object.assign(base, layout || {}),
    { displaylogo: false, responsive: true });
}

// -- router ---------------------------------------------------------------------------------
function route() {
  routedAt = performance.now();
  window.hpsearchTimings = {};
  if (view && view.stop) view.stop();
  clearTimeout(pollTimer);
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  const main = document.getElementById("main");
  main.replaceChildren();
  for (const a of document.querySelectorAll("header nav a")) a.classList.remove("active");
  if (parts[0] === "study" && parts[1] && parts[2] === "trial" && parts[3] !== undefined) {
    view = trialView(main, parts[1], parseInt(parts[3], 10));
  } else if (parts[0] === "study" && parts[1]) {
    view = studyView(main, parts[1]);
  } else if (parts[0] === "workers") {
    document.getElementById("nav-workers").classList.add("active");
    view = workersView(main);
  } else {
    document.getElementById("nav-studies").classList.add("active");
    view = studiesView(main);
  }
  loop();
}

async function loop() {
  const current = view;
  try {
    await current.poll();
    if (current === view) setLive(true, "live · " + new Date().toLocaleTimeString());
  } catch (e) {
    if (current === view) {
      setLive(false, "error: " + e.message);
      if (current.fail) current.fail(e);
    }
  }
  if (current === view) pollTimer = setTimeout(loop, POLL_MS);
}

window.addEventListener("hashchange", route);
window.addEventListener("DOMContentLoaded", route);

// -- studies --------------------------------------------------------------------------------
function studiesView(main) {
  const body = h("tbody", { id: "studies-body" });
  main.append(
    h("h1", {}, "Studies"),
    h("div", { className: "panel" },
      h("table", { id: "studies-table" },
        h("thead", {}, h("tr", {}, ["Study", "State", "Objective", "Best", "Trials by state",
          "Progress", "Workers alive", "Last activity"].map((c) => h("th", {}, c)))),
        body)),
    h("p", { className: "note" }, "Click a study to open it. Read-only view of the store."));
  return {
    async poll() {
      const data = await api("/studies");
      if (!data.studies.length) {
        body.replaceChildren(h("tr", {}, h("td", { colspan: 8, className: "muted" },
          "No studies yet: create one with `hpsearch study create FILE`.")));
        return;
      }
      body.replaceChildren(...data.studies.map((s) => h("tr", {
        className: "clickable", "data-study": s.name,
        onclick: () => { location.hash = "#/study/" + enc(s.name); } },
        h("td", {}, h("a", { href: "#/study/" + enc(s.name) }, s.name)),
        h("td", {}, badge(s.state)),
        h("td", {}, `${s.metric} (${s.goal})`),
        h("td", { className: "num" }, fmt(s.best_value)),
        h("td", {}, STATES.filter((st) => s.trials[st]).map((st) =>
          h("span", { className: "badge " + st, title: st }, `${st.toLowerCase()} ${s.trials[st]}`))),
        h("td", {}, `${s.total_trials} / ${s.max_trials}`),
        h("td", { className: "num" }, s.workers_alive),
        h("td", { title: fmtTime(s.last_activity) }, ago(s.last_activity, data.now)))));
    },
  };
}

// -- one study ------------------------------------------------------------------------------
function studyView(main, name) {
  const state = { tableParams: [], revision: null, detail: null, offset: 0, limit: 50, sort: "number",
                  order: "desc", states: new Set(), filters: [], heavyAt: 0, params: null,
                  slice: null, cx: null, cy: null, metric: null, stopped: false };
  const cards = h("div", { className: "cards", id: "study-cards" });
  const notesEl = h("div", { id: "study-notes" });
  const historyEl = h("div", { className: "plot", id: "history-plot" });
  const interEl = h("div", { className: "plot", id: "intermediate-plot" });
  const parcoordsEl = h("div", { className: "plot tall", id: "parcoords-plot" });
  const importanceEl = h("div", { className: "plot", id: "importance-plot" });
  const sliceEl = h("div", { className: "plot", id: "slice-plot" });
  const contourEl = h("div", { className: "plot", id: "contour-plot" });
  const frontEl = h("div", { className: "plot", id: "front-plot" });
  const frontTitle = h("h2", {}, "Pareto front");
  const frontPanel = h("div", { className: "panel", id: "front-panel", style: "display:none" },
    frontTitle, frontEl, h("div", { className: "note", id: "front-note" }));
  const sliceSel = h("select", { id: "slice-param", onchange: () => drawSlice() });
  const cxSel = h("select", { id: "contour-x", onchange: () => drawContour() });
  const cySel = h("select", { id: "contour-y", onchange: () => drawContour() });
  const metricSel = h("select", { id: "intermediate-metric", onchange: () => {
    state.metric = metricSel.value; refreshIntermediate(); } });
  const table = h("table", { id: "trials-table" });
  const pagerText = h("span", { id: "trials-range" });
  const prev = h("button", { id: "trials-prev", onclick: () => { state.offset = Math.max(0, state.offset - state.limit); refreshTable(); } }, "‹ Prev");
  const next = h("button", { id: "trials-next", onclick: () => { state.offset += state.limit; refreshTable(); } }, "Next ›");
  const pageSize = h("select", { id: "trials-page-size", onchange: () => {
    state.limit = parseInt(pageSize.value, 10); state.offset = 0; refreshTable(); } },
    [25, 50, 100, 200].map((n) => h("option", { value: n, selected: n === 50 }, n + " / page")));
  const stateBoxes = h("span", { id: "state-filter" }, STATES.map((st) => h("label", {},
    h("input", { type: "checkbox", value: st, "data-state": st, onchange: (ev) => {
      if (ev.target.checked) state.states.add(st); else state.states.delete(st);
      state.offset = 0; refreshTable(); } }), " " + st.toLowerCase() + " ")));
  const filterParam = h("select", { id: "filter-param", onchange: () => syncFilterInputs() });
  const filterMin = h("input", { type: "number", step: "any", id: "filter-min", placeholder: "min" });
  const filterMax = h("input", { type: "number", step: "any", id: "filter-max", placeholder: "max" });
  const filterEq = h("input", { type: "text", id: "filter-eq", placeholder: "value" });
  const chips = h("span", { id: "filter-chips" });
  const addFilter = h("button", { id: "filter-add", onclick: () => {
    const p = filterParam.value;
    if (!p) return;
    const spec = (state.params || []).find((s) => s.name === p);
    if (spec && !spec.numeric) {
      if (filterEq.value === "") return;
      state.filters.push({ param: p, eq: filterEq.value });
    } else {
      const lo = filterMin.value === "" ? null : parseFloat(filterMin.value);
      const hi = filterMax.value === "" ? null : parseFloat(filterMax.value);
      if (lo === null && hi === null) return;
      state.filters.push({ param: p, min: lo, max: hi });
    }
    filterMin.value = ""; filterMax.value = ""; filterEq.value = "";
    state.offset = 0; refreshTable(); } }, "Add filter");

  function syncFilterInputs() {
    const spec = (state.params || []).find((s) => s.name === filterParam.value);
    const numeric = !spec || spec.numeric;
    filterMin.style.display = filterMax.style.display = numeric ? "" : "none";
    filterEq.style.display = numeric ? "none" : "";
  }

  main.append(
    h("div", { className: "crumbs" }, h("a", { href: "#/" }, "Studies"), " / ", name),
    h("h1", { id: "study-name" }, name), cards, notesEl, frontPanel,
    h("div", { className: "grid2" },
      h("div", { className: "panel" }, h("h2", {}, "Optimization history"), historyEl,
        h("div", { className: "note", id: "history-note" })),
      h("div", { className: "panel" }, h("h2", {}, "Intermediate values ", metricSel), interEl,
        h("div", { className: "note", id: "intermediate-note" }))),
    h("div", { className: "panel" }, h("h2", {}, "Parallel coordinates"), parcoordsEl,
      h("div", { className: "note", id: "parcoords-note" })),
    h("div", { className: "grid2" },
      h("div", { className: "panel" }, h("h2", {}, "Parameter importances"), importanceEl,
        h("div", { className: "note" }, "Share of the objective's variance each parameter explains on its own (ε², normalised); interactions are not counted.")),
      h("div", { className: "panel" }, h("h2", {}, "Slice ", sliceSel), sliceEl)),
    h("div", { className: "panel" }, h("h2", {}, "Contour ", cxSel, " × ", cySel), contourEl,
      h("div", { className: "note" }, "Mean objective per cell of a 20 × 20 grid; dots are trials.")),
    h("div", { className: "panel" }, h("h2", {}, "Trials"),
      h("div", { className: "filters" }, "State:", stateBoxes),
      h("div", { className: "filters" }, "Parameter:", filterParam, filterMin, filterMax, filterEq,
        addFilter, chips),
      h("div", { style: "overflow-x:auto" }, table),
      h("div", { className: "pager" }, prev, next, pagerText, pageSize)));

  async function refreshSummary() {
    const d = await api("/studies/" + enc(name));
    state.detail = d;
    const best = d.best ? h("a", { href: `#/study/${enc(name)}/trial/${d.best.number}` },
      `${fmt(d.best.value)} (#${d.best.number})`) : "–";
    cards.replaceChildren(
      card("State", badge(d.state), "study-state"),
      card("Objective", `${d.metric} (${d.goal})`),
      card("Best value", best, "study-best"),
      card("Trials", `${d.total_trials} / ${d.config.budget.max_trials}`, "study-total"),
      ...STATES.map((st) => card(st.toLowerCase(), String(d.trials[st]), "count-" + st)),
      card("Workers alive", String(d.workers_alive), "study-workers"),
      card("Algorithm", d.config.algorithm));
    notesEl.replaceChildren(annotations(d.note, d.tags, "study"));
  }

  async function refreshHistory(gate) {
    const d = await api(`/studies/${enc(name)}/history`);
    await gate; // the table paints first: it is what a user waits for
    await nextPaint(); // let the table and cards paint before a big plot blocks the thread
    const all = d.completed, s = d.stopped;
    const flags = all.infeasible || all.number.map(() => false);
    const pick = (want) => {
      const idx = flags.map((f, i) => (f === want ? i : -1)).filter((i) => i >= 0);
      return { number: idx.map((i) => all.number[i]), value: idx.map((i) => all.value[i]),
               best: idx.map((i) => all.best[i]) };
    };
    const c = pick(false), bad = pick(true);
    const type = scatterType(c.number.length);
    document.getElementById("history-note").textContent =
      `${c.number.length} completed trials` + (s.number.length ? `, ${s.number.length} stopped early with a value` : "") +
      (bad.number.length ? `, ${bad.number.length} infeasible (never the best)` : "");
    plot(historyEl, [
      { type, mode: "markers", name: "completed", x: c.number, y: c.value,
        marker: { color: COLORS.COMPLETED, size: 6, opacity: 0.75 },
        hovertemplate: "trial %{x}<br>" + d.metric + " %{y}<extra></extra>" },
      { type, mode: "lines", name: "best so far", x: c.number, y: c.best, line: { color: "#111827", shape: "hv" },
        hoverinfo: "skip" },
      { type, mode: "markers", name: "stopped early", x: s.number, y: s.value,
        marker: { color: COLORS.STOPPED, symbol: "x", size: 7 },
        hovertemplate: "trial %{x} (stopped)<br>" + d.metric + " %{y}<extra></extra>" },
      { type, mode: "markers", name: "infeasible", x: bad.number, y: bad.value,
        marker: { color: "#6b7280", symbol: "x", size: 7 },
        hovertemplate: "trial %{x} (infeasible)<br>" + d.metric + " %{y}<extra></extra>" },
    ], { xaxis: { title: { text: "trial" } }, yaxis: { title: { text: d.metric } } });
    historyEl.dataset.points = String(c.number.length);
  }

  // A study with several metrics: its Pareto front (2 metrics: a scatter; 3 or more: the
  // first three in 3-D); with constraints, infeasible trials marked. One metric with
  // constraints: the objective by trial, feasible and infeasible apart.
  async function refreshFront(gate) {
    const cfg = state.detail.config;
    const metrics = cfg.metrics || [cfg.metric];
    if (metrics.length < 2 && !(cfg.constraints || []).length) return;
    frontPanel.style.display = "";
    const d = await api(`/studies/${enc(name)}/front`);
    await gate;
    await nextPaint();
    const t = d.trials, names = d.metrics.map((m) => m.name), k = Math.min(names.length, 3);
    const groups = { front: [], dominated: [], infeasible: [] };
    let unplotted = 0;
    t.number.forEach((n, i) => {
      const missing = t.values.slice(0, k).some((col) => col[i] === null || col[i] === undefined);
      if (missing) { unplotted += 1; return; }
      (!t.feasible[i] ? groups.infeasible : t.on_front[i] ? groups.front : groups.dominated).push(i);
    });
    if (k === 2) groups.front.sort((a, b) => t.values[0][a] - t.values[0][b]);
    const axis = (j, idx) => (k === 1 && j === 0) ? idx.map((i) => t.number[i]) : idx.map((i) => t.values[k === 1 ? 0 : j][i]);
    const labels = k === 1 ? ["trial", names[0]] : names.slice(0, k);
    const trace = (label, idx, marker, extra) => {
      const tr = Object.assign({ type: k === 3 ? "scatter3d" : "scatter", mode: "markers", name: label,
        x: axis(0, idx), y: axis(1, idx), customdata: idx.map((i) => [t.number[i], t.reason[i] || ""]),
        marker, hovertemplate: "trial %{customdata[0]}<br>" + labels[0] + " %{x}<br>" + labels[1] +
          " %{y}" + (k === 3 ? "<br>" + labels[2] + " %{z}" : "") + "<br>%{customdata[1]}<extra></extra>" }, extra || {});
      if (k === 3) tr.z = idx.map((i) => t.values[2][i]);
      return tr;
    };
    const traces = [
      trace(k === 1 ? "feasible" : "Pareto front", k === 1 ? groups.front.concat(groups.dominated) : groups.front,
        { color: "#dc2626", size: k === 3 ? 4 : 8 }, k === 2 ? { mode: "lines+markers", line: { shape: "hv", color: "#dc2626" } } : {}),
    ];
    if (k > 1) traces.push(trace("dominated", groups.dominated, { color: COLORS.RUNNING, size: k === 3 ? 3 : 6, opacity: 0.6 }));
    traces.push(trace("infeasible", groups.infeasible, { color: "#6b7280", symbol: "x", size: k === 3 ? 3 : 7 }));
    frontTitle.textContent = k === 1 ? "Feasibility" : (k === 3 ? "Pareto front (3-D)" : "Pareto front");
    const layout = k === 3
      ? { scene: { xaxis: { title: { text: labels[0] } }, yaxis: { title: { text: labels[1] } }, zaxis: { title: { text: labels[2] } } } }
      : { xaxis: { title: { text: labels[0] } }, yaxis: { title: { text: labels[1] } } };
    plot(frontEl, traces, layout);
    frontEl.dataset.front = String(groups.front.length);
    frontEl.dataset.infeasible = String(t.feasible.filter((f) => !f).length);
    document.getElementById("front-note").textContent =
      (k === 1 ? "" : `${groups.front.length} trials on the front, ${groups.dominated.length} dominated; `) +
      `${t.feasible.filter((f) => !f).length} infeasible` +
      ((cfg.constraints || []).length ? ` (constraints: ${d.constraints.join(", ")})` : "") +
      (unplotted ? `; ${unplotted} without every metric not drawn` : "") +
      (names.length > 3 ? `; the first three of ${names.length} metrics drawn` : "") + ".";
  }

  async function refreshIntermediate(gate) {
    const q = state.metric ? "?metric=" + enc(state.metric) : "";
    const d = await api(`/studies/${enc(name)}/intermediate${q}`);
    await gate;
    await nextPaint();
    if (metricSel.options.length !== d.metrics.length) {
      metricSel.replaceChildren(...d.metrics.map((m) => h("option", { value: m, selected: m === d.metric }, m)));
    }
    const traces = d.trials.map((t) => ({
      type: "scatter", mode: "lines", name: `#${t.number}`, x: t.step, y: t.value,
      line: { width: 1.5, dash: t.state === "STOPPED" ? "dot" : "solid", color: COLORS[t.state] || "#6b7280" },
      hovertemplate: `trial ${t.number} (${t.state.toLowerCase()})<br>step %{x}<br>%{y}<extra></extra>` }));
    const ends = d.trials.filter((t) => t.state === "STOPPED" && t.step.length);
    traces.push({ type: "scatter", mode: "markers", name: "stopped early",
      x: ends.map((t) => t.step[t.step.length - 1]), y: ends.map((t) => t.value[t.value.length - 1]),
      text: ends.map((t) => `trial ${t.number} stopped early`),
      marker: { symbol: "x", size: 10, color: COLORS.STOPPED }, hovertemplate: "%{text}<br>%{y}<extra></extra>" });
    document.getElementById("intermediate-note").textContent = d.trials.length
      ? `${d.trials.length} most recent trials with measurements; dotted lines ending in × were stopped early.`
      : "No intermediate measurements reported yet.";
    plot(interEl, traces, { showlegend: false, xaxis: { title: { text: "step" } },
                            yaxis: { title: { text: d.metric } } });
  }

  function paramAxis(spec, column) {
    // Numbers stay numbers (log10 for log-scaled ones); categories become their index.
    if (spec.numeric) {
      const log = spec.scale === "log" && column.every((v) => v === null || v > 0);
      return { values: column.map((v) => (v === null ? NaN : log ? Math.log10(v) : v)),
               label: log ? `log10(${spec.name})` : spec.name, log };
    }
    const cats = spec.values ? spec.values.map(String) : [...new Set(column.filter((v) => v !== null).map(String))].sort();
    return { values: column.map((v) => (v === null ? NaN : cats.indexOf(String(v)))), label: spec.name,
             tickvals: cats.map((_, i) => i), ticktext: cats };
  }

  async function refreshParameters(force, gate) {
    const now = Date.now();
    const big = state.detail && state.detail.total_trials > 2000;
    if (!force && big && now - state.heavyAt < HEAVY_REFRESH_MS) {
      // Too soon for a big study: redraw once the interval is up, even if nothing else
      // changes by then.
      if (!state.heavyTimer) {
        state.heavyTimer = setTimeout(() => {
          state.heavyTimer = null;
          if (!state.stopped) refreshParameters(true).catch(() => undefined);
        }, HEAVY_REFRESH_MS - (now - state.heavyAt));
      }
      return;
    }
    state.heavyAt = now;
    const d = await api(`/studies/${enc(name)}/parameters`);
    await gate;
    state.paramData = d;
    if (!state.params) {
      state.params = d.parameters;
      const options = d.parameters.map((s) => h("option", { value: s.name }, s.name));
      filterParam.replaceChildren(...d.parameters.map((s) => h("option", { value: s.name }, s.name)));
      sliceSel.replaceChildren(...options.map((o) => o.cloneNode(true)));
      cxSel.replaceChildren(...options.map((o) => o.cloneNode(true)));
      cySel.replaceChildren(...options.map((o) => o.cloneNode(true)));
      const ranked = [...d.parameters].sort((a, b) => (b.importance || 0) - (a.importance || 0));
      if (ranked[0]) { sliceSel.value = ranked[0].name; cxSel.value = ranked[0].name; }
      if (ranked[1]) cySel.value = ranked[1].name;
      syncFilterInputs();
    }
    // Below the fold: each plot is drawn once it scrolls into view (or now if visible).
    whenVisible(importanceEl, drawImportance);
    whenVisible(parcoordsEl, drawParcoords);
    whenVisible(sliceEl, drawSlice);
    whenVisible(contourEl, drawContour);
  }

  function drawImportance() {
    const d = state.paramData;
    const ranked = d.parameters.filter((s) => s.importance !== null)
      .sort((a, b) => a.importance - b.importance);
    if (!ranked.length) {
      importanceEl.replaceChildren(h("p", { className: "muted" }, "Not enough completed trials yet (importances need at least 10)."));
      return;
    }
    if (!importanceEl.classList.contains("js-plotly-plot")) importanceEl.replaceChildren();
    plot(importanceEl, [{ type: "bar", orientation: "h", x: ranked.map((s) => s.importance),
      y: ranked.map((s) => s.name), marker: { color: "#2563eb" },
      hovertemplate: "%{y}: %{x:.3f}<extra></extra>" }],
    { showlegend: false, margin: { l: 120, r: 15, t: 10, b: 40 }, xaxis: { range: [0, 1] } });
  }

  function drawParcoords() {
    const d = state.paramData;
    const note = document.getElementById("parcoords-note");
    if (!d.trials.number.length) { note.textContent = "No completed trials yet."; return; }
    if (!hasWebGL()) { note.textContent = "Parallel coordinates need WebGL, which this browser does not offer."; return; }
    const n = d.trials.number.length;
    if (webglSoftware && !state.parcoordsForced && n > PARCOORDS_SOFTWARE_LIMIT) {
      note.replaceChildren("This browser draws WebGL without a GPU, which takes seconds for " +
        `${n} trials. `, h("button", { id: "parcoords-draw", onclick: () => {
          state.parcoordsForced = true; drawParcoords(); } }, "Draw anyway"));
      parcoordsEl.style.display = "none";
      return;
    }
    parcoordsEl.style.display = "";
    // Software-rendered WebGL slows down past a few thousand lines: draw the best
    // PARCOORDS_BEST trials and an even sample of the rest, PARCOORDS_LIMIT in all.
    let rows = [...Array(n).keys()];
    if (n > PARCOORDS_LIMIT) {
      const sign = d.goal === "minimize" ? 1 : -1;
      const ranked = rows.slice().sort((a, b) => sign * (d.trials.value[a] - d.trials.value[b]));
      const best = new Set(ranked.slice(0, PARCOORDS_BEST));
      const rest = rows.filter((i) => !best.has(i));
      const step = rest.length / (PARCOORDS_LIMIT - PARCOORDS_BEST);
      const sample = Array.from({ length: PARCOORDS_LIMIT - PARCOORDS_BEST }, (_, k) => rest[Math.floor(k * step)]);
      rows = [...best, ...sample].sort((a, b) => a - b);
    }
    const pick = (column) => rows.map((i) => column[i]);
    const dims = d.parameters.map((spec) => {
      const a = paramAxis(spec, pick(d.trials.params[spec.name]));
      const dim = { label: a.label, values: a.values };
      if (a.tickvals) { dim.tickvals = a.tickvals; dim.ticktext = a.ticktext; }
      return dim;
    });
    const values = pick(d.trials.value);
    dims.push({ label: d.metric, values });
    note.textContent = (rows.length < n
      ? `${rows.length} of ${n} completed trials (the best ${PARCOORDS_BEST} and an even sample of the rest)`
      : `${n} completed trials`) + "; drag along an axis to select a range.";
    plot(parcoordsEl, [{ type: "parcoords", dimensions: dims,
      line: { color: values, colorscale: "Viridis", reversescale: d.goal === "minimize",
              showscale: true } }], { margin: { l: 70, r: 70, t: 40, b: 20 } });
  }

  function drawSlice() {
    const d = state.paramData;
    if (!d) return;
    const spec = d.parameters.find((s) => s.name === sliceSel.value);
    if (!spec) return;
    const column = d.trials.params[spec.name];
    const xs = spec.numeric ? column : column.map((v) => (v === null ? null : String(v)));
    plot(sliceEl, [{ type: scatterType(xs.length), mode: "markers", x: xs, y: d.trials.value,
      text: d.trials.number.map((n) => "trial " + n), name: spec.name,
      marker: { color: d.trials.number, colorscale: "Blues", reversescale: true, showscale: true, size: 6,
                colorbar: { title: { text: "trial" } } },
      hovertemplate: "%{text}<br>" + spec.name + " %{x}<br>%{y}<extra></extra>" }],
    { showlegend: false, xaxis: { title: { text: spec.name }, type: spec.numeric && spec.scale === "log" ? "log" : undefined },
      yaxis: { title: { text: d.metric } } });
  }

  function drawContour() {
    const d = state.paramData;
    if (!d) return;
    const sx = d.parameters.find((s) => s.name === cxSel.value);
    const sy = d.parameters.find((s) => s.name === cySel.value);
    if (!sx || !sy || sx === sy) {
      contourEl.replaceChildren(h("p", { className: "muted" }, "Pick two different parameters."));
      return;
    }
    const ax = paramAxis(sx, d.trials.params[sx.name]);
    const ay = paramAxis(sy, d.trials.params[sy.name]);
    const n = 20, pts = [];
    for (let i = 0; i < d.trials.value.length; i++) {
      if (!Number.isNaN(ax.values[i]) && !Number.isNaN(ay.values[i])) pts.push([ax.values[i], ay.values[i], d.trials.value[i]]);
    }
    if (pts.length < 2) {
      contourEl.replaceChildren(h("p", { className: "muted" }, "Not enough completed trials with both parameters."));
      return;
    }
    if (!contourEl.classList.contains("js-plotly-plot")) contourEl.replaceChildren();
    const range = (k) => { let lo = Infinity, hi = -Infinity; for (const p of pts) { lo = Math.min(lo, p[k]); hi = Math.max(hi, p[k]); } return hi > lo ? [lo, hi] : [lo - 0.5, hi + 0.5]; };
    const [x0, x1] = range(0), [y0, y1] = range(1);
    const sum = Array.from({ length: n }, () => new Array(n).fill(0));
    const cnt = Array.from({ length: n }, () => new Array(n).fill(0));
    for (const [x, y, v] of pts) {
      const i = Math.min(n - 1, Math.floor(((y - y0) / (y1 - y0)) * n));
      const j = Math.min(n - 1, Math.floor(((x - x0) / (x1 - x0)) * n));
      sum[i][j] += v; cnt[i][j] += 1;
    }
    const z = sum.map((row, i) => row.map((s, j) => (cnt[i][j] ? s / cnt[i][j] : null)));
    const cx = Array.from({ length: n }, (_, j) => x0 + ((j + 0.5) * (x1 - x0)) / n);
    const cy = Array.from({ length: n }, (_, i) => y0 + ((i + 0.5) * (y1 - y0)) / n);
    const sample = pts.length > 2000 ? pts.filter((_, k) => k % Math.ceil(pts.length / 2000) === 0) : pts;
    const axis = (a) => ({ title: { text: a.label }, tickvals: a.tickvals, ticktext: a.ticktext });
    plot(contourEl, [
      { type: "contour", x: cx, y: cy, z, connectgaps: true, colorscale: "Viridis",
        reversescale: d.goal === "minimize", colorbar: { title: { text: d.metric } },
        hovertemplate: "%{z}<extra></extra>" },
      { type: "scatter", mode: "markers", x: sample.map((p) => p[0]), y: sample.map((p) => p[1]),
        marker: { color: "#fff", size: 4, line: { color: "#111", width: 1 } }, hoverinfo: "skip" },
    ], { showlegend: false, xaxis: axis(ax), yaxis: axis(ay) });
  }

  // -- the trial table --------------------------------------------------------------------------
  function columns() {
    const metric = state.detail ? state.detail.metric : "value";
    const cols = [{ key: "number", label: "#", sort: "number" },
                  { key: "state", label: "State", sort: "state" },
                  { key: "value", label: metric, sort: "value" }];
    for (const p of state.tableParams) cols.push({ key: "param:" + p, label: p, sort: "param:" + p });
    if (state.multiFidelity) cols.push({ key: "fidelity", label: "Budget (epochs)" });
    cols.push({ key: "duration", label: "Duration", sort: "duration" },
              { key: "attempt", label: "Attempt", sort: "attempt" },
              { key: "worker_id", label: "Worker" },
              { key: "started_at", label: "Started", sort: "started_at" },
              { key: "failure_message", label: "Failure" });
    return cols;
  }

  function renderTableHead() {
    const head = h("thead", {}, h("tr", {}, columns().map((c) => h("th", {
      className: (c.sort ? "sortable " : "") + (c.sort === state.sort ? "sorted-" + state.order : ""),
      "data-sort": c.sort || null,
      onclick: c.sort ? () => {
        if (state.sort === c.sort) state.order = state.order === "desc" ? "asc" : "desc";
        else { state.sort = c.sort; state.order = c.sort === "number" ? "desc" : "asc"; }
        state.offset = 0; renderTableHead(); refreshTable();
      } : null }, c.label))));
    const old = table.querySelector("thead");
    if (old) old.replaceWith(head); else table.prepend(head);
  }

  function tableQuery() {
    const q = new URLSearchParams({ offset: state.offset, limit: state.limit, sort: state.sort, order: state.order });
    if (state.states.size) q.set("state", [...state.states].join(","));
    for (const f of state.filters) {
      if (f.eq !== undefined) q.set("eq." + f.param, f.eq);
      if (f.min !== undefined && f.min !== null) q.set("min." + f.param, f.min);
      if (f.max !== undefined && f.max !== null) q.set("max." + f.param, f.max);
    }
    return q.toString();
  }

  async function refreshTable() {
    const d = await api(`/studies/${enc(name)}/trials?` + tableQuery());
    // The table's parameter columns come with its rows, so they always line up.
    const multiFidelity = d.trials.some((t) => t.fidelity);
    if (!table.querySelector("thead") || d.parameters.join("\n") !== state.tableParams.join("\n")
        || multiFidelity !== !!state.multiFidelity) {
      state.tableParams = d.parameters;
      state.multiFidelity = multiFidelity;
      renderTableHead();
    }
    const cols = columns();
    const rows = d.trials.map((t) => h("tr", { className: "clickable", "data-number": t.number,
      onclick: () => { location.hash = `#/study/${enc(name)}/trial/${t.number}`; } },
      cols.map((c) => {
        if (c.key === "state") return h("td", {}, badge(t.state));
        if (c.key === "number") return h("td", { className: "num" }, h("a", { href: `#/study/${enc(name)}/trial/${t.number}` }, t.number));
        if (c.key.startsWith("param:")) return h("td", { className: "num" }, fmt(t.params[c.key.slice(6)]));
        if (c.key === "duration") return h("td", { className: "num" }, fmtDuration(t.duration));
        if (c.key === "started_at") return h("td", {}, fmtTime(t.started_at));
        if (c.key === "failure_message") return h("td", { className: "wrap" }, t.failure_message ||
          (t.infeasible_reason ? "infeasible: " + t.infeasible_reason : ""));
        if (c.key === "fidelity") return h("td", { className: "fidelity" }, fmtFidelity(t.fidelity));
        return h("td", { className: typeof t[c.key] === "number" ? "num" : "" }, fmt(t[c.key]));
      })));
    let body = table.querySelector("tbody");
    if (!body) { body = h("tbody", { id: "trials-body" }); table.append(body); }
    body.replaceChildren(...(rows.length ? rows : [h("tr", {}, h("td", { colspan: cols.length, className: "muted" }, "No trials match."))]));
    const last = Math.min(d.total, d.offset + d.trials.length);
    pagerText.textContent = d.total ? `${d.offset + 1}–${last} of ${d.total}` : "0 of 0";
    table.dataset.total = String(d.total);
    if (!("trials-table@" in window.hpsearchTimings)) {
      window.hpsearchTimings["trials-table@"] = Math.round(performance.now() - routedAt);
    }
    prev.disabled = d.offset === 0;
    next.disabled = last >= d.total;
    chips.replaceChildren(...state.filters.map((f, i) => h("span", { className: "chip" },
      f.eq !== undefined ? `${f.param} = ${f.eq}` : `${fmt(f.min)} ≤ ${f.param} ≤ ${fmt(f.max)}`,
      h("button", { title: "remove", onclick: () => { state.filters.splice(i, 1); state.offset = 0; refreshTable(); } }, "×"))));
  }

  return {
    async poll() {
      const first = state.revision === null;
      if (!first) { // the first time, the study's own answer carries the revision
        const r = await api(`/studies/${enc(name)}/revision`);
        if (r.revision === state.revision) return;
      }
      await refreshSummary();
      state.revision = state.detail.revision;
      const table = refreshTable();
      const gate = table.catch(() => undefined);
      await Promise.all([table, refreshHistory(gate), refreshFront(gate), refreshIntermediate(gate),
                         refreshParameters(first, gate)]);
    },
    fail(e) { if (state.revision === null) main.replaceChildren(h("p", { className: "error" }, e.message)); },
    stop() { state.stopped = true; clearTimeout(state.heavyTimer); },
  };
}

// -- one trial ------------------------------------------------------------------------------
// The note and tags users wrote on a study or trial (hpsearch study note/tag, Annotate).
function annotations(note, tags, prefix) {
  const keys = Object.keys(tags || {}).sort();
  if (!note && !keys.length) return h("span", {});
  return h("div", { className: "panel", id: prefix + "-annotations" },
    h("h2", {}, "Note and tags"),
    note ? h("p", { className: "wrap", id: prefix + "-note", style: "white-space:pre-wrap" }, note)
      : null,
    keys.length ? h("div", { id: prefix + "-user-tags" }, keys.map((k) =>
      h("span", { className: "badge tag" }, `${k}=${tags[k]}`))) : null);
}

function trialView(main, name, number) {
  let revision = null;
  const box = h("div", {});
  main.append(h("div", { className: "crumbs" }, h("a", { href: "#/" }, "Studies"), " / ",
    h("a", { href: "#/study/" + enc(name) }, name), " / trial " + number), box);

  function kvTable(obj, id) {
    const keys = Object.keys(obj || {});
    if (!keys.length) return h("p", { className: "muted" }, "none");
    return h("table", { className: "kv", id }, h("tbody", {}, keys.map((k) =>
      h("tr", {}, h("td", {}, k), h("td", { className: "num" }, fmt(obj[k]))))));
  }

  function render(t) {
    const plotEl = h("div", { className: "plot", id: "trial-measurements-plot" });
    const lease = t.lease ? `${t.lease.worker_id} · attempt ${t.lease.attempt} · ` +
      (t.lease.seconds_left >= 0 ? `expires in ${t.lease.seconds_left.toFixed(0)} s` : `expired ${(-t.lease.seconds_left).toFixed(0)} s ago`) : "–";
    box.replaceChildren(
      h("h1", { id: "trial-title" }, `Trial #${t.number} `, badge(t.state)),
      h("div", { className: "cards" },
        card(t.metric, fmt(t.value), "trial-value"),
        card("Duration", fmtDuration(t.duration)),
        card("Attempt", String(t.attempt)),
        card("Worker", t.worker_id || "–"),
        card("Lease", lease, "trial-lease"),
        card("Started", fmtTime(t.started_at)),
        card("Finished", fmtTime(t.completed_at))),
      t.failure_message ? h("p", { className: "error", id: "trial-failure" }, t.failure_message) : null,
      t.infeasible_reason ? h("p", { className: "error", id: "trial-infeasible" }, "Infeasible: " + t.infeasible_reason) : null,
      annotations(t.note, t.user_tags, "trial"),
      h("div", { className: "grid2" },
        h("div", { className: "panel" }, h("h2", {}, "Parameters"), kvTable(t.params, "trial-params")),
        h("div", { className: "panel" }, h("h2", {}, "Metrics"), kvTable(t.metrics, "trial-metrics"))),
      h("div", { className: "panel" }, h("h2", {}, "Attempts"),
        h("table", { id: "trial-attempts" },
          h("thead", {}, h("tr", {}, ["Attempt", "Worker", "State", "Started", "Ended", "Duration", "Failure"].map((c) => h("th", {}, c)))),
          h("tbody", {}, t.attempts.map((a) => h("tr", {},
            h("td", { className: "num" }, a.attempt), h("td", {}, a.worker_id || "–"), h("td", {}, badge(a.state)),
            h("td", {}, fmtTime(a.started_at)), h("td", {}, fmtTime(a.ended_at)),
            h("td", { className: "num" }, fmtDuration(a.duration)),
            h("td", { className: "wrap" }, a.failure_message || "")))))),
      h("div", { className: "panel" }, h("h2", {}, "Artifacts"),
        t.artifacts.length ? h("table", { id: "trial-artifacts", className: "kv" }, h("tbody", {}, t.artifacts.map((a) =>
          h("tr", {}, h("td", {}, a.kind), h("td", {}, h("span", { className: "path" }, a.path),
            /^(https?:|file:)/.test(a.path) ? [" ", h("a", { href: a.path, target: "_blank", rel: "noopener" }, "open")] : null)))))
          : h("p", { className: "muted" }, "No model, checkpoint or log directory recorded in this trial's tags.")),
      h("div", { className: "panel" }, h("h2", {}, "Intermediate measurements"), plotEl,
        h("div", { className: "note" }, `${t.measurements.length} measurements`)),
      h("div", { className: "panel" }, h("h2", {}, "Tags"), h("pre", { id: "trial-tags" }, JSON.stringify(t.tags, null, 2))));
    if (t.measurements.length) {
      const byAttempt = new Map();
      for (const m of t.measurements) {
        if (!byAttempt.has(m.attempt)) byAttempt.set(m.attempt, []);
        byAttempt.get(m.attempt).push(m);
      }
      const metricNames = [...new Set(t.measurements.flatMap((m) => Object.keys(m.metrics)))];
      const traces = [];
      for (const [attempt, ms] of byAttempt) {
        for (const metric of metricNames) {
          traces.push({ type: "scatter", mode: "lines+markers", name: `${metric} (attempt ${attempt})`,
            x: ms.map((m) => m.step), y: ms.map((m) => (metric in m.metrics ? m.metrics[metric] : null)),
            visible: metric === t.metric || metricNames.length <= 3 ? true : "legendonly" });
        }
      }
      plot(plotEl, traces, { xaxis: { title: { text: "step" } } });
    } else {
      plotEl.replaceChildren(h("p", { className: "muted" }, "No intermediate measurements."));
      plotEl.style.height = "auto";
    }
  }

  return {
    async poll() {
      const r = await api(`/studies/${enc(name)}/revision`);
      if (r.revision === revision) return;
      revision = r.revision;
      render(await api(`/studies/${enc(name)}/trials/${number}`));
    },
    fail(e) { if (revision === null || !box.children.length) box.replaceChildren(h("p", { className: "error" }, e.message)); },
  };
}

// -- workers --------------------------------------------------------------------------------
function workersView(main) {
  const body = h("tbody", { id: "workers-body" });
  const note = h("p", { className: "note" });
  main.append(h("h1", {}, "Workers"), h("div", { className: "panel" },
    h("table", { id: "workers-table" }, h("thead", {}, h("tr", {},
      ["Worker", "Host", "Status", "Current trial", "Lease expires", "Last heartbeat"].map((c) => h("th", {}, c)))), body)), note);
  return {
    async poll() {
      const d = await api("/workers");
      note.textContent = `Alive: heard from within ${d.alive_seconds} s, or holding a live lease.`;
      if (!d.workers.length) {
        body.replaceChildren(h("tr", {}, h("td", { colspan: 6, className: "muted" }, "No worker has talked to the chief yet.")));
        return;
      }
      body.replaceChildren(...d.workers.map((w) => {
        const c = w.current_trial;
        return h("tr", { "data-worker": w.id },
          h("td", {}, w.id), h("td", {}, w.host || "–"),
          h("td", {}, h("span", { className: "badge " + (w.alive ? "alive" : "dead") }, w.alive ? "alive" : "gone")),
          h("td", {}, c ? h("a", { href: `#/study/${enc(c.study)}/trial/${c.number}` }, `${c.study} #${c.number} (attempt ${c.attempt})`) : "idle"),
          h("td", {}, !c || c.lease_expires_at === null ? "–"
            : c.lease_expires_at >= d.now ? `in ${Math.round(c.lease_expires_at - d.now)} s`
            : `expired ${ago(c.lease_expires_at, d.now)}`),
          h("td", { title: fmtTime(w.last_seen) }, ago(w.last_seen, d.now)));
      }));
    },
  };
}
