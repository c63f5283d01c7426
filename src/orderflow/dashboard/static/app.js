// orderflow dashboard: follows runs over server-sent events and renders the views. No build step.
"use strict";

const KEEP = 500;
const S = {
  runs: new Map(),        // run_id -> state (mirrors dashboard/state.py RunView)
  follow: new Set(),      // followed run ids
  focus: null,            // the run the detail views show
  tab: "overview",
  session: { enabled: false, logged_in: false, csrf: null },
  latency: [],            // event ts -> DOM update, ms (the throughput benchmark reads it)
  events: 0,
  dirty: new Set(),
};
window.__of = S;

const $ = (sel) => document.querySelector(sel);
const fmt = (x, d = 2) => (x === null || x === undefined || Number.isNaN(x)) ? "-" : Number(x).toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d });
const pct = (x, d = 2) => (x === null || x === undefined) ? "-" : (100 * x).toFixed(d) + "%";
const time = (ns) => ns ? new Date(ns / 1e6).toISOString().slice(11, 23) : "-";
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
const cls = (x) => x > 0 ? "pos" : x < 0 ? "neg" : "";

function emptyRun(id) {
  return { run_id: id, overview: { run_id: id, status: "unknown" }, books: {}, trades: {}, decisions: [], orders: new Map(),
    fills: [], equity: [], risk: {}, feed: new Map(), resources: [], controls: [], model: { n: 0 }, positions: new Map(),
    latency: {} };
}

function run(id) {
  if (!S.runs.has(id)) S.runs.set(id, emptyRun(id));
  return S.runs.get(id);
}

function push(arr, x, keep = KEEP) { arr.push(x); if (arr.length > keep) arr.splice(0, arr.length - keep); }

function loadSnapshot(id, st) {
  const r = run(id);
  r.overview = st.overview;
  r.books = st.books;
  r.trades = st.trades;
  r.decisions = st.decisions;
  r.decisionSeq = (r.decisionSeq || 0) + st.decisions.length + KEEP;  // forces a full draw
  r.orders = new Map(st.orders.map((o) => [o.client_order_id, o]));
  r.fills = st.fills;
  r.equity = st.equity;
  r.risk = st.risk;
  r.feed = new Map(st.feed.map((f) => [f.symbol, f]));
  r.resources = st.resources;
  r.controls = st.controls;
  r.model = st.model;
  r.positions = new Map((st.overview.positions || []).map((p) => [p.symbol, p]));
  markAll();
}

function apply(r, e) {
  const o = r.overview;
  switch (e.kind) {
    case "heartbeat": o.state = e.state; o.heartbeat_ns = e.ts_ns; if (o.status !== "stopped") o.status = "running"; o.mode = o.mode || e.mode; o.symbols = (o.symbols && o.symbols.length) ? o.symbols : e.symbols; break;
    case "run_started": Object.assign(o, { mode: e.mode, venue: e.venue, symbols: e.symbols }); break;
    case "run_stopped": o.status = "stopped"; o.stop_reason = e.reason; break;
    case "book": r.books[e.symbol] = e; break;
    case "trades": (r.trades[e.symbol] = r.trades[e.symbol] || []); push(r.trades[e.symbol], e, 5000); break;
    case "decision": push(r.decisions, e); r.decisionSeq = (r.decisionSeq || 0) + 1; break;
    case "order": r.orders.set(e.client_order_id, e); if (r.orders.size > KEEP) r.orders.delete(r.orders.keys().next().value); break;
    case "fill": push(r.fills, e); break;
    case "position": r.positions.set(e.symbol, e); o.positions = [...r.positions.values()]; break;
    case "equity": push(r.equity, e, 5000); o.equity = e.equity; o.day_pnl = e.day_pnl; o.drawdown = e.drawdown; break;
    case "risk": r.risk = e; o.kill_switch = e.kill_switch; o.breaker = e.breaker;
      o.headroom = Math.min(...e.rules.filter((x) => x.limit > 0).map((x) => 1 - x.value / x.limit), 1); break;
    case "feed": r.feed.set(e.symbol, e); o.feed_lag_ms = Math.max(...[...r.feed.values()].map((f) => f.lag_ms)); break;
    case "latency": (r.latency[e.what] = r.latency[e.what] || []); push(r.latency[e.what], e.us, 1000); break;
    case "resources": push(r.resources, e, 2000); break;
    case "control": push(r.controls, e); break;
    case "outcome": r.outcomes = (r.outcomes || 0) + 1; break;
  }
}

const VIEWS_BY_KIND = { heartbeat: ["overview"], run_started: ["overview"], run_stopped: ["overview"], book: ["ladder"],
  trades: ["chart"], decision: ["decisions"], order: ["orders", "ladder"], fill: ["orders", "chart", "overview"],
  position: ["overview"], equity: ["equity", "overview"], risk: ["risk", "overview"], feed: ["feed", "overview"],
  latency: ["system"], resources: ["system"], control: ["overview"], outcome: ["model"], model: ["model"] };

function markAll() { for (const v of ["overview", "ladder", "chart", "decisions", "orders", "equity", "risk", "model", "feed", "system"]) S.dirty.add(v); schedule(); }

let pendingTs = [];
let scheduled = false;
function schedule() {
  if (scheduled) return;
  scheduled = true;
  requestAnimationFrame(render);
}

function render() {
  scheduled = false;
  const shown = new Set();
  if (S.dirty.has("overview")) { renderOverview(); shown.add("overview"); }
  if (S.dirty.has(S.tab)) { renderTab(S.tab); shown.add(S.tab); }
  S.dirty.clear();
  // delay from the engine's event time to the frame that drew it, for events of the views drawn
  const now = Date.now();
  for (const [ts, views] of pendingTs) if (views.some((v) => shown.has(v))) S.latency.push(now - ts / 1e6);
  if (S.latency.length > 20000) S.latency.splice(0, S.latency.length - 20000);
  pendingTs = [];
}

function renderTab(t) {
  ({ ladder: renderLadder, chart: renderChart, decisions: renderDecisions, orders: renderOrders, equity: renderEquity,
     risk: renderRisk, model: renderModel, feed: renderFeed, system: renderSystem, reports: loadReports })[t]?.();
}

// -- runs and the stream ------------------------------------------------------------------------
async function loadRuns() {
  const res = await fetch("/api/runs");
  const body = await res.json();
  for (const r of body.runs) {
    const st = run(r.run_id);
    Object.assign(st.overview, r);
  }
  if (S.follow.size === 0) {
    const live = body.runs.filter((r) => r.status === "running").map((r) => r.run_id);
    (live.length ? live : body.runs.slice(0, 1).map((r) => r.run_id)).forEach((id) => S.follow.add(id));
  }
  if (S.focus === null && S.follow.size) S.focus = [...S.follow][0];
  renderRunChips();
  markAll();
}

function renderRunChips() {
  const box = $("#runs");
  const ids = [...S.runs.keys()].sort((a, b) => b - a).slice(0, 12);
  box.innerHTML = ids.map((id) => {
    const o = S.runs.get(id).overview;
    return `<label class="run-chip ${id === S.focus ? "focus" : ""}" data-run="${id}"><input type="checkbox" ${S.follow.has(id) ? "checked" : ""} data-follow="${id}">run ${id} <span class="badge ${esc(o.status)}" id="chip-status-${id}">${esc(o.status)}</span></label>`;
  }).join("");
  box.querySelectorAll("[data-follow]").forEach((el) => el.addEventListener("change", (ev) => {
    const id = Number(ev.target.dataset.follow);
    ev.target.checked ? S.follow.add(id) : S.follow.delete(id);
    connect();
  }));
  box.querySelectorAll(".run-chip").forEach((el) => el.addEventListener("click", (ev) => {
    if (ev.target.tagName === "INPUT") return;
    S.focus = Number(el.dataset.run);
    renderRunChips(); fillSymbolSelects(); markAll();
  }));
}

let source = null;
function connect() {
  if (source) source.close();
  const ids = [...S.follow].join(",");
  source = new EventSource(`/api/stream?runs=${ids}`);
  source.onopen = () => { $("#conn").textContent = "live"; $("#conn").className = "conn ok"; };
  source.onerror = () => { $("#conn").textContent = "reconnecting"; $("#conn").className = "conn bad"; };
  source.onmessage = (m) => {
    const msg = JSON.parse(m.data);
    if (msg.type === "snapshot") { loadSnapshot(msg.run_id, msg.state); fillSymbolSelects(); renderRunChips(); }
    else if (msg.type === "status") {
      const r = run(msg.run_id);
      Object.assign(r.overview, msg.overview, { status: msg.status });
      renderRunChips(); S.dirty.add("overview"); schedule();
    } else if (msg.type === "events") {
      const r = run(msg.run_id);
      for (const e of msg.events) {
        apply(r, e);
        S.events++;
        const views = (VIEWS_BY_KIND[e.kind] || []).filter((v) => msg.run_id === S.focus || v === "overview");
        for (const v of views) S.dirty.add(v);
        if (e.kind !== "heartbeat" && views.length && pendingTs.length < 50000) pendingTs.push([e.ts_ns, views]);
      }
      if (!S.runs.get(msg.run_id).seenSymbols) fillSymbolSelects();
      schedule();
    }
  };
}

// -- overview -------------------------------------------------------------------------------------
function renderOverview() {
  const ids = [...S.follow].sort((a, b) => b - a);
  $("#no-runs").style.display = S.runs.size ? "none" : "block";
  $("#overview-cards").innerHTML = ids.map((id) => {
    const o = S.runs.get(id)?.overview || { status: "unknown" };
    const pos = (o.positions || []).map((p) => `${esc(p.symbol)} ${fmt(p.qty, 4)}`).join(", ") || "flat";
    const hr = o.headroom ?? null;
    const ctl = S.session.logged_in && o.status === "running"
      ? ["off", "reduce_only", "halt"].map((m) => `<button type="button" class="${m === "halt" ? "danger" : ""}" data-kill="${m}" data-run="${id}">${m}</button>`).join("")
      : `<span class="muted">${S.session.enabled ? "log in to control" : "controls need an operator password"}</span>`;
    return `<div class="card" id="card-${id}">
      <h4><span>run ${id} · ${esc(o.mode || "")} · ${esc((o.symbols || []).join(", "))}</span><span class="badge ${esc(o.status)}" id="status-${id}">${o.status === "down" ? "engine down" : esc(o.status)}</span></h4>
      <div class="kv">
        <div><span>equity</span><b id="equity-${id}">${fmt(o.equity)}</b></div>
        <div><span>today's PnL</span><b class="${cls(o.day_pnl)}">${fmt(o.day_pnl)}</b></div>
        <div><span>drawdown</span><b>${pct(o.drawdown)}</b></div>
        <div><span>positions</span><b>${pos}</b></div>
        <div><span>risk headroom</span><b>${hr === null ? "-" : pct(hr, 0)}</b><div class="headroom"><i style="width:${hr === null ? 0 : Math.max(0, hr) * 100}%"></i></div></div>
        <div><span>kill switch</span><b id="kill-${id}">${esc(o.kill_switch || "off")}</b></div>
        <div><span>feed lag</span><b>${o.feed_lag_ms === undefined || o.feed_lag_ms === null ? "-" : fmt(o.feed_lag_ms, 1) + " ms"}</b></div>
        <div><span>engine state</span><b>${esc(o.state || "-")}</b></div>
        <div><span>venue</span><b>${esc(o.venue || "-")}</b></div>
      </div>
      ${o.stop_reason ? `<p class="muted">stopped: ${esc(o.stop_reason)}</p>` : ""}
      <div class="controls"><span class="kill-state muted">kill switch</span>${ctl}</div>
    </div>`;
  }).join("");
  $("#all-controls").innerHTML = S.session.logged_in
    ? `<span class="muted">kill switch of every run</span>` + ["off", "reduce_only", "halt"].map((m) => `<button type="button" class="${m === "halt" ? "danger" : ""}" data-kill="${m}" data-run="all">${m}</button>`).join("")
    : "";
  document.querySelectorAll("[data-kill]").forEach((b) => b.addEventListener("click", () => openKill(b.dataset.run, b.dataset.kill)));
}

// -- ladder -------------------------------------------------------------------------------------
function symbols(r) { return Object.keys(r.books).concat(Object.keys(r.trades)).filter((v, i, a) => a.indexOf(v) === i).sort(); }
function fillSymbolSelects() {
  const r = S.runs.get(S.focus); if (!r) return;
  const syms = symbols(r);
  if (syms.length) r.seenSymbols = true;
  for (const sel of [$("#ladder-symbol"), $("#chart-symbol")]) {
    const cur = sel.value;
    sel.innerHTML = syms.map((s) => `<option>${esc(s)}</option>`).join("");
    if (syms.includes(cur)) sel.value = cur;
  }
}

function renderLadder() {
  const r = S.runs.get(S.focus); if (!r) return;
  const sym = $("#ladder-symbol").value || symbols(r)[0];
  const b = r.books[sym]; if (!b) return;
  const ours = [...r.orders.values()].filter((o) => o.symbol === sym && ["pending_new", "new", "partially_filled", "unknown"].includes(o.state) && o.price !== null);
  const at = (side, px) => ours.filter((o) => (side === "bid" ? o.side.toUpperCase() === "BUY" : o.side.toUpperCase() === "SELL") && Math.abs(o.price - px) < 1e-9)
    .reduce((a, o) => a + (o.qty - (o.filled_qty || 0)), 0);
  const n = Math.max(b.bids.length, b.asks.length);
  const maxq = Math.max(...b.bids.map((x) => x[1]), ...b.asks.map((x) => x[1]), 1e-12);
  let rows = "";
  for (let i = 0; i < n; i++) {
    const bid = b.bids[i], ask = b.asks[i];
    const ob = bid ? at("bid", bid[0]) : 0, oa = ask ? at("ask", ask[0]) : 0;
    rows += `<tr>
      <td class="ours">${ob ? fmt(ob, 4) : ""}</td>
      <td class="size bidsize">${bid ? `<i style="width:${100 * bid[1] / maxq}%"></i>${fmt(bid[1], 4)}` : ""}</td>
      <td class="bid ${i === 0 ? "best-bid" : ""}">${bid ? fmt(bid[0]) : ""}</td>
      <td class="ask ${i === 0 ? "best-ask" : ""}">${ask ? fmt(ask[0]) : ""}</td>
      <td class="size asksize">${ask ? `<i style="width:${100 * ask[1] / maxq}%"></i>${fmt(ask[1], 4)}` : ""}</td>
      <td class="ours">${oa ? fmt(oa, 4) : ""}</td></tr>`;
  }
  $("#ladder tbody").innerHTML = rows;
  $("#ladder").dataset.bestBid = b.bids[0] ? b.bids[0][0] : "";
  $("#ladder").dataset.bestAsk = b.asks[0] ? b.asks[0][0] : "";
  $("#ladder").dataset.updateId = b.update_id;
  $("#ladder-update-id").textContent = b.update_id;
  $("#ladder-spread").textContent = b.bids[0] && b.asks[0] ? fmt(b.asks[0][0] - b.bids[0][0]) : "-";
}

// -- price chart ----------------------------------------------------------------------------------
let priceChart = null, priceSeries = null, priceKey = "";
function renderChart() {
  const r = S.runs.get(S.focus); if (!r) return;
  const sym = $("#chart-symbol").value || symbols(r)[0]; if (!sym) return;
  const el = $("#price-chart");
  if (!priceChart) {
    priceChart = LightweightCharts.createChart(el, { layout: { background: { color: "#171d24" }, textColor: "#d7dde4" },
      grid: { vertLines: { color: "#222b35" }, horzLines: { color: "#222b35" } }, timeScale: { timeVisible: true, secondsVisible: true },
      autoSize: true });
    priceSeries = priceChart.addLineSeries({ color: "#4c9aff", lineWidth: 2 });
  }
  const seen = new Map();
  for (const t of r.trades[sym] || []) seen.set(Math.floor(t.ts_ns / 1e9), t.last);
  const data = [...seen.entries()].sort((a, b) => a[0] - b[0]).map(([time, value]) => ({ time, value }));
  const key = `${S.focus}:${sym}`;
  priceSeries.setData(data);
  if (key !== priceKey && data.length > 1) { priceKey = key; priceChart.timeScale().fitContent(); }
  const fills = r.fills.filter((f) => f.symbol === sym);
  const markers = fills.map((f) => ({ time: Math.floor(f.ts_ns / 1e9), position: f.side.toUpperCase() === "BUY" ? "belowBar" : "aboveBar",
    color: f.side.toUpperCase() === "BUY" ? "#26a269" : "#e5484d", shape: f.side.toUpperCase() === "BUY" ? "arrowUp" : "arrowDown",
    size: 1 })).sort((a, b) => a.time - b.time);
  // the last fill carries its label; the others are arrows (a label on each hides the price)
  if (markers.length) { const f = fills[fills.length - 1]; markers[markers.length - 1].text = `${f.side.toLowerCase()} ${fmt(f.qty, 4)} @ ${fmt(f.price)}`; }
  priceSeries.setMarkers(markers.slice(-300));
  el.dataset.fills = fills.length;
  el.dataset.points = data.length;
}

// -- decisions, orders, fills ------------------------------------------------------------------------
const tape = { key: "", seq: 0, gates: "" };
function decisionRow(d) {
  return `<tr class="${d.gate === "pass" ? "accepted" : "refused"}" data-gate="${esc(d.gate)}">
    <td>${time(d.ts_ns)}</td><td>${esc(d.symbol)}</td><td>${esc(d.gate)}</td><td>${esc(d.action)}</td><td>${fmt(d.ofi_score, 3)}</td>
    <td>${fmt(d.ai_score, 3)}</td><td>${fmt(d.fused, 3)}</td><td>${fmt(d.confidence, 3)}</td><td>${fmt(d.quality, 2)}</td>
    <td>${fmt(d.ev * 1e4, 2)} bp</td><td>${fmt(d.cost * 1e4, 2)} bp</td></tr>`;
}
function renderDecisions() {
  const r = S.runs.get(S.focus); if (!r) return;
  r.gates = r.gates || new Set();
  for (const d of r.decisions) r.gates.add(d.gate);
  const sel = $("#gate-filter");
  const gates = [...r.gates].sort(), gkey = gates.join(",");
  if (gkey !== tape.gates) {  // rebuild the filter only when a new gate appears
    const cur = sel.value;
    sel.innerHTML = `<option value="">all</option>` + gates.map((g) => `<option>${esc(g)}</option>`).join("");
    sel.value = gates.includes(cur) ? cur : "";
    tape.gates = gkey;
  }
  const onlyAcc = $("#only-accepted").checked;
  const keep = (d) => (!sel.value || d.gate === sel.value) && (!onlyAcc || d.gate === "pass");
  const body = $("#decisions-table tbody");
  const key = `${S.focus}|${sel.value}|${onlyAcc}`;
  const seq = r.decisionSeq || 0;
  if (key !== tape.key || seq - tape.seq > r.decisions.length) {  // a new filter or run: draw it all
    body.innerHTML = r.decisions.filter(keep).slice(-300).reverse().map(decisionRow).join("");
  } else if (seq > tape.seq) {  // only the new rows, on top; the oldest leave at the bottom
    const fresh = r.decisions.slice(r.decisions.length - (seq - tape.seq)).filter(keep);
    if (fresh.length) body.insertAdjacentHTML("afterbegin", fresh.reverse().map(decisionRow).join(""));
    while (body.rows.length > 300) body.deleteRow(-1);
  }
  tape.key = key; tape.seq = seq;
  $("#decision-count").textContent = `${body.rows.length} shown · ${seq} received`;
}

function renderOrders() {
  const r = S.runs.get(S.focus); if (!r) return;
  const orders = [...r.orders.values()].slice(-300).reverse();
  $("#orders-table tbody").innerHTML = orders.map((o) => `<tr><td>${time(o.ts_ns)}</td><td>${esc(o.client_order_id)}</td><td>${esc(o.symbol)}</td>
    <td class="${o.side.toUpperCase() === "BUY" ? "pos" : "neg"}">${esc(o.side)}</td><td>${esc(o.order_type)}</td><td>${fmt(o.price)}</td>
    <td>${fmt(o.qty, 4)}</td><td>${fmt(o.filled_qty, 4)}</td><td>${esc(o.state)}</td><td>${esc(o.reason)}</td></tr>`).join("");
  const fills = r.fills.slice(-300).reverse();
  $("#fills-table tbody").innerHTML = fills.map((f) => `<tr class="fill-row"><td>${time(f.ts_ns)}</td><td>${esc(f.client_order_id)}</td><td>${esc(f.symbol)}</td>
    <td class="${f.side.toUpperCase() === "BUY" ? "pos" : "neg"}">${esc(f.side)}</td><td>${fmt(f.price)}</td><td>${fmt(f.qty, 4)}</td>
    <td>${fmt(f.fee, 5)}</td><td>${esc(f.liquidity)}</td><td>${fmt(f.slippage * 1e4, 2)} bp</td></tr>`).join("");
}

// -- equity ---------------------------------------------------------------------------------------
let eqPlot = null, ddPlot = null;
function uplotOpts(el, series, h) {
  return { width: el.clientWidth || 900, height: h, series: [{}].concat(series), axes: [{ stroke: "#8593a3", grid: { stroke: "#222b35" } }, { stroke: "#8593a3", grid: { stroke: "#222b35" }, size: 80 }],
    scales: { x: { time: true } }, legend: { show: true } };
}
function renderEquity() {
  const r = S.runs.get(S.focus); if (!r) return;
  const xs = r.equity.map((e) => e.ts_ns / 1e9), eq = r.equity.map((e) => e.equity);
  let peak = -Infinity; const dd = eq.map((v) => { peak = Math.max(peak, v); return peak > 0 ? -(peak - v) / peak * 100 : 0; });
  $("#equity-points").textContent = r.equity.length;
  $("#equity-last").textContent = eq.length ? fmt(eq[eq.length - 1]) : "-";
  $("#equity-maxdd").textContent = dd.length ? fmt(-Math.min(...dd), 3) + "%" : "-";
  const el = $("#equity-chart"), el2 = $("#drawdown-chart");
  if (!eqPlot) { eqPlot = new uPlot(uplotOpts(el, [{ label: "equity", stroke: "#4c9aff", width: 2 }], 400), [xs, eq], el); }
  else eqPlot.setData([xs, eq]);
  if (!ddPlot) { ddPlot = new uPlot(uplotOpts(el2, [{ label: "drawdown %", stroke: "#e5484d", fill: "rgba(229,72,77,.15)" }], 220), [xs, dd], el2); }
  else ddPlot.setData([xs, dd]);
}

// -- risk -----------------------------------------------------------------------------------------
function renderRisk() {
  const r = S.runs.get(S.focus); if (!r) return;
  $("#risk-kill").textContent = r.risk.kill_switch || "-";
  $("#risk-breaker").textContent = r.risk.breaker || "-";
  $("#risk-bars").innerHTML = (r.risk.rules || []).map((x) => {
    const u = x.limit > 0 ? x.value / x.limit : 0;
    return `<div class="bar ${u >= 1 ? "over" : u >= 0.8 ? "hot" : ""}" data-rule="${esc(x.rule)}"><span>${esc(x.rule)}</span>
      <div class="track"><i style="width:${Math.min(100, 100 * u)}%"></i></div>
      <span class="muted">${pct(u, 0)} · ${fmt(x.value, 4)} / ${fmt(x.limit, 4)} · ${x.refusals} refused</span></div>`;
  }).join("") || `<p class="muted">no risk state yet</p>`;
}

// -- model ----------------------------------------------------------------------------------------
let relPlot = null, evPlot = null, modelFetched = 0;
async function renderModel() {
  if (Date.now() - modelFetched > 2000 && S.focus !== null) {
    modelFetched = Date.now();
    const res = await fetch(`/api/runs/${S.focus}`); const body = await res.json();
    if (body.live) run(S.focus).model = body.live.model;
  }
  const m = run(S.focus).model || { n: 0 };
  const card = (k, v, sub) => `<div class="card"><div class="kv"><div><span>${k}</span><b>${v}</b></div><div><span>${sub[0]}</span><b>${sub[1]}</b></div></div></div>`;
  $("#model-summary").innerHTML = m.n ? [
    card("realised predictions", m.n, ["majority class", m.majority_class]),
    card("Brier", fmt(m.brier, 4), ["majority baseline", fmt(m.brier_baseline, 4)]),
    card("log loss", fmt(m.logloss, 4), ["majority baseline", fmt(m.logloss_baseline, 4)]),
  ].join("") : `<p class="muted">no prediction has reached its horizon yet</p>`;
  if (!m.n) return;
  const rel = m.reliability, el = $("#reliability-chart");
  const relData = [rel.map((b) => b.confidence), rel.map((b) => b.accuracy), rel.map((b) => b.confidence)];
  const o = (el, s) => ({ width: el.clientWidth || 500, height: 230, series: [{}].concat(s), scales: { x: { time: false } },
    axes: [{ stroke: "#8593a3", grid: { stroke: "#222b35" } }, { stroke: "#8593a3", grid: { stroke: "#222b35" } }] });
  if (!relPlot) relPlot = new uPlot(o(el, [{ label: "accuracy", stroke: "#26a269", width: 2, points: { show: true } }, { label: "perfect", stroke: "#8593a3", dash: [4, 4] }]), relData, el);
  else relPlot.setData(relData);
  const evd = m.ev_by_decile, el2 = $("#ev-chart");
  const evData = [evd.map((b) => b.expected * 1e4), evd.map((b) => b.realised * 1e4), evd.map((b) => b.expected * 1e4)];
  if (!evPlot) evPlot = new uPlot(o(el2, [{ label: "realised bp", stroke: "#4c9aff", width: 2, points: { show: true } }, { label: "expected bp", stroke: "#8593a3", dash: [4, 4] }]), evData, el2);
  else evPlot.setData(evData);
  $("#deciles-table tbody").innerHTML = m.hit_rate_by_decile.map((d, i) => `<tr><td>${i + 1}</td><td>${fmt(d.confidence, 3)}</td><td>${pct(d.hit_rate, 1)}</td><td>${d.n}</td></tr>`).join("");
}

// -- feed, system, reports -------------------------------------------------------------------------
function renderFeed() {
  const r = S.runs.get(S.focus); if (!r) return;
  $("#feed-table tbody").innerHTML = [...r.feed.values()].map((f) => `<tr><td>${esc(f.symbol)}</td><td class="${f.synced ? "pos" : "neg"}">${f.synced ? "yes" : "no"}</td>
    <td>${fmt(f.lag_ms, 1)}</td><td>${f.book_updates}</td><td>${f.trades}</td><td>${f.gaps}</td><td>${f.resyncs}</td><td>${f.reconnects}</td><td>${f.watchdog_trips}</td></tr>`).join("");
}

let cpuPlot = null, memPlot = null;
function renderSystem() {
  const r = S.runs.get(S.focus); if (!r) return;
  const xs = r.resources.map((x) => x.ts_ns / 1e9);
  const cpu = [xs, r.resources.map((x) => x.cpu_pct)], mem = [xs, r.resources.map((x) => x.rss_bytes / 2 ** 20)];
  const a = $("#cpu-chart"), b = $("#mem-chart");
  if (!cpuPlot) cpuPlot = new uPlot(uplotOpts(a, [{ label: "cpu %", stroke: "#f5a524" }], 230), cpu, a); else cpuPlot.setData(cpu);
  if (!memPlot) memPlot = new uPlot(uplotOpts(b, [{ label: "rss MiB", stroke: "#4c9aff" }], 230), mem, b); else memPlot.setData(mem);
  const t = (r.latency.tick_to_order || []).slice().sort((x, y) => x - y);
  $("#sys-t2o").textContent = t.length ? fmt(t[Math.min(t.length - 1, Math.floor(0.99 * t.length))], 0) : "-";
  $("#sys-events").textContent = S.events;
}

async function loadReports() {
  const body = await (await fetch("/api/reports")).json();
  $("#reports-table tbody").innerHTML = body.reports.map((x) => `<tr><td><a href="${esc(x.url)}" target="_blank">${esc(x.name)}</a></td><td>${esc(x.dir)}</td>
    <td>${new Date(x.modified_ns / 1e6).toISOString().slice(0, 19).replace("T", " ")}</td><td>${fmt(x.bytes / 1024, 0)} KiB</td></tr>`).join("")
    || `<tr><td colspan="4" class="muted">no report in the --reports directories</td></tr>`;
}

// -- control --------------------------------------------------------------------------------------
async function loadSession() {
  S.session = await (await fetch("/api/session")).json();
  $("#who").textContent = S.session.logged_in ? S.session.who : "";
  $("#login-btn").textContent = S.session.logged_in ? "Log out" : "Operator login";
  $("#login-btn").style.display = S.session.enabled ? "" : "none";
  S.dirty.add("overview"); schedule();
}

$("#login-btn").addEventListener("click", async () => {
  if (S.session.logged_in) { await fetch("/api/logout", { method: "POST" }); await loadSession(); return; }
  $("#login-error").textContent = ""; $("#login-password").value = ""; $("#login-dialog").showModal();
});
$("#login-cancel").addEventListener("click", () => $("#login-dialog").close());
$("#login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const res = await fetch("/api/login", { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ password: $("#login-password").value, who: $("#login-who").value }) });
  if (!res.ok) { $("#login-error").textContent = (await res.json()).detail || res.statusText; return; }
  $("#login-dialog").close(); await loadSession();
});

let killTarget = null;
function openKill(runId, mode) {
  killTarget = { run_id: runId === "all" ? "all" : Number(runId), mode };
  $("#kill-run").textContent = runId; $("#kill-mode").textContent = mode;
  $("#kill-error").textContent = ""; $("#kill-password").value = ""; $("#kill-why").value = "";
  $("#kill-dialog").showModal();
}
$("#kill-cancel").addEventListener("click", () => $("#kill-dialog").close());
$("#kill-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const res = await fetch("/api/control/kill", { method: "POST", headers: { "Content-Type": "application/json", "X-CSRF-Token": S.session.csrf || "" },
    body: JSON.stringify({ ...killTarget, why: $("#kill-why").value, password: $("#kill-password").value }) });
  const body = await res.json();
  if (!res.ok) { $("#kill-error").textContent = body.detail || res.statusText; return; }
  $("#kill-dialog").close();
});

// -- tabs and start -------------------------------------------------------------------------------
document.querySelectorAll("#tabs button").forEach((b) => b.addEventListener("click", () => {
  document.querySelectorAll("#tabs button").forEach((x) => x.classList.toggle("active", x === b));
  document.querySelectorAll(".tab").forEach((x) => x.classList.toggle("active", x.id === "tab-" + b.dataset.tab));
  S.tab = b.dataset.tab; S.dirty.add(S.tab); schedule();
}));
for (const id of ["#ladder-symbol", "#chart-symbol", "#gate-filter", "#only-accepted"]) $(id).addEventListener("change", () => markAll());

// deep links (alert messages point at them): #view=<tab>&run=<id>
function applyHash() {
  const h = new URLSearchParams(location.hash.slice(1));
  const run = Number(h.get("run"));
  if (Number.isInteger(run) && run > 0) {
    S.follow.add(run); S.focus = run;
  }
  const tab = document.querySelector(`#tabs button[data-tab="${CSS.escape(h.get("view") || "")}"]`);
  if (tab) tab.click();
}
window.addEventListener("hashchange", () => { applyHash(); renderRunChips(); connect(); markAll(); });

(async function start() {
  await loadSession();
  applyHash();
  await loadRuns();
  connect();
  setInterval(loadRuns, 5000);
  setInterval(() => { S.dirty.add("overview"); schedule(); }, 1000);
})();
