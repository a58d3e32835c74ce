// The live page: polls /api/queries every second and redraws the query
// table and each query's charts (uPlot). Each chart's element carries its
// point count and last value (data-points, data-last, data-last-batch) so a
// test can read what is drawn.
"use strict";

// [field of points, title, drawn only when some value is non-zero]
const METRICS = [
  ["input_rate", "input rows/s", false],
  ["processed_rate", "processed rows/s", false],
  ["duration_ms", "batch duration (ms)", false],
  ["delay_ms", "scheduling delay (ms)", false],
  ["watermark_delay_s", "watermark delay (s)", false],
  ["late_rows", "late rows per batch", false],
  ["state_rows", "state rows", false],
  ["state_bytes", "state bytes", false],
  ["output_rows", "output rows per batch", false],
  ["lag", "Kafka lag per partition (records)", true],
  ["checkpoint_ms", "checkpoint duration (ms)", true],
];

const charts = new Map(); // "query/metric" -> uPlot

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const c of children) e.append(c);
  return e;
}

function cell(text, cls) {
  return el("td", cls ? { class: cls } : {}, String(text));
}

function renderTable(queries) {
  const body = document.querySelector("#queries tbody");
  body.replaceChildren(...queries.map((q) => {
    const last = q.points.duration_ms.length
      ? q.points.duration_ms[q.points.duration_ms.length - 1].toFixed(1) : "";
    return el("tr", { "data-query": q.name },
      cell(q.name), cell(q.kind), cell(q.state, "state-" + q.state),
      cell(q.batches, "num"), cell(q.input_rows, "num"), cell(q.output_rows, "num"),
      cell(q.late_rows, "num"), cell(last, "num"), cell(q.sink || "stdout"));
  }));
}

function section(q) {
  const id = "query-" + q.name;
  let s = document.getElementById(id);
  if (s) return s;
  s = el("section", { id },
    el("h2", {}, q.name),
    el("div", { class: "error" }),
    el("div", { class: "lag" }),
    el("div", { class: "charts" }),
    el("details", {}, el("summary", {}, "SQL"), el("pre", { class: "sql" }, q.sql)),
    el("details", {}, el("summary", {}, "plan (EXPLAIN)"),
      el("pre", { class: "plan" }, q.plan || "(no plan)")));
  document.getElementById("details").append(s);
  return s;
}

const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4b5563"];

// A metric is one series (an array, one value per batch) or one series per
// name (an object: the lag of each partition), drawn as one line each.
function drawChart(s, q, metric, label, optional) {
  const points = q.points[metric];
  const named = Array.isArray(points) ? { [label]: points } : points;
  const names = Object.keys(named);
  const any = (ys) => ys.some((v) => v !== null && (!optional || v !== 0));
  // Nothing to draw: no watermark yet, a source without lag, no checkpoint.
  if (!names.some((n) => any(named[n]))) return;
  const key = q.name + "/" + metric;
  const data = [q.points.time, ...names.map((n) => named[n])];
  let chart = charts.get(key);
  // A new partition: the chart is drawn again with one more line.
  if (chart && chart.root.parentElement.dataset.series !== names.join("\n")) {
    chart.root.parentElement.remove();
    chart.destroy();
    charts.delete(key);
    chart = undefined;
  }
  if (!chart) {
    const box = el("div", { class: "chart", "data-metric": metric, "data-query": q.name },
      el("h3", {}, label));
    box.dataset.series = names.join("\n");
    s.querySelector(".charts").append(box);
    chart = new uPlot({
      width: 420, height: 170,
      series: [{}, ...names.map((n, i) => ({
        label: n, stroke: COLORS[i % COLORS.length], width: 1.5, spanGaps: false,
      }))],
      axes: [{}, { size: 60 }],
      legend: { show: names.length > 1 },
    }, data, box);
    charts.set(key, chart);
  } else {
    chart.setData(data);
  }
  const box = chart.root.parentElement;
  const ys = named[names[0]];
  const n = ys.length;
  box.dataset.points = String(n);
  box.dataset.last = n ? String(ys[n - 1]) : "";
  box.dataset.lastBatch = n ? String(q.points.batch[n - 1]) : "";
}

function render(state) {
  renderTable(state.queries);
  for (const q of state.queries) {
    const s = section(q);
    s.querySelector(".error").textContent = q.error ? "error: " + q.error : "";
    s.querySelector(".lag").textContent = q.lag.length
      ? "lag: " + q.lag.map((l) => `${l.stream} ${l.partition}: ${l.lag}`).join(", ") : "";
    for (const [metric, label, optional] of METRICS) drawChart(s, q, metric, label, optional);
  }
}

async function tick() {
  const status = document.getElementById("status");
  try {
    const response = await fetch("/api/queries", { cache: "no-store" });
    const state = await response.json();
    render(state);
    status.textContent = `${state.queries.length} queries · batch interval ${state.interval_ms} ms · updated ${new Date().toLocaleTimeString()}`;
  } catch (e) {
    status.textContent = "quiver is not answering (stopped?): " + e;
  }
}

tick();
setInterval(tick, 1000);
