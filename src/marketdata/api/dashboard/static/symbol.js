// The symbol page: candlesticks with volume over a chosen range and adjustment, flagged bars
// marked and explained, missing sessions shaded, splits and dividends marked, and download
// links for exactly what is shown. plotly.js (window.Plotly) is loaded before this module.

import {
  ApiError,
  api,
  download,
  el,
  fetchHealth,
  hasApiKey,
  nextPage,
  problemText,
  setApiKey,
  showBanners,
} from "./common.js";
import * as fmt from "./format.js";

const symbol = document.body.dataset.symbol;
const chart = document.getElementById("chart");
const rules = JSON.parse(document.getElementById("rule-catalogue").textContent);
const PRESETS = ["1M", "6M", "1Y", "5Y", "all"];
const ADJUSTMENTS = ["splits", "all", "none"];
const COLORS = {
  up: "#1a7f37",
  down: "#cf222e",
  hard: "#b42318",
  soft: "#9a4b00",
  info: "#0a3069",
  split: "#6f42c1",
  dividend: "#0a6f74",
  gap: "rgba(87, 96, 106, 0.22)",
};
const SEVERITY_ORDER = { hard: 0, soft: 1, info: 2 };
const PRICE_TITLES = {
  none: "Price (raw)",
  splits: "Price (split-adjusted)",
  all: "Price (split- and dividend-adjusted)",
};

const params = new URLSearchParams(window.location.search);
const state = {
  first: null,
  last: null,
  preset: PRESETS.includes(params.get("range")) ? params.get("range") : "1Y",
  start: params.get("start"),
  end: params.get("end"),
  adjusted: ADJUSTMENTS.includes(params.get("adjusted")) ? params.get("adjusted") : "splits",
  bars: [],
  loading: 0,
};
if (state.start || state.end) state.preset = null;

// -- reading the API -----------------------------------------------------------------------

/** Every bar of the range, following ``next_cursor`` past the API's page size. */
async function fetchBars(start, end, adjusted) {
  const path = `/api/v1/historical/${encodeURIComponent(symbol)}?${new URLSearchParams({ start, end, adjusted })}`;
  const bars = [];
  let next = path;
  for (let page = 0; next && page < 1000; page += 1) {
    const body = await api(next);
    bars.push(...body.bars);
    next = nextPage(body, path);
  }
  return bars;
}

function rangeOf() {
  if (state.preset) {
    const start = state.preset === "all" ? state.first : fmt.rangeStart(state.preset, state.last);
    return { start: start < state.first ? state.first : start, end: state.last };
  }
  return { start: state.start || state.first, end: state.end || state.last };
}

// -- drawing -------------------------------------------------------------------------------

function shiftDay(iso, hours) {
  const when = new Date(Date.parse(`${iso}T00:00:00Z`) + hours * 3600 * 1000);
  return when.toISOString().slice(0, 16).replace("T", " ");
}

function flaggedDays(log) {
  const days = new Map();
  for (const entry of log) {
    if (!days.has(entry.date)) days.set(entry.date, []);
    days.get(entry.date).push(entry);
  }
  for (const entries of days.values()) {
    entries.sort((a, b) => SEVERITY_ORDER[a.severity] - SEVERITY_ORDER[b.severity]);
  }
  return days;
}

function reasonText(entry) {
  const meaning = rules[entry.rule]?.description ?? "";
  const measured =
    entry.value === null || entry.value === undefined
      ? ""
      : ` (measured ${Number(entry.value.toPrecision(6))}${
          entry.threshold === null || entry.threshold === undefined
            ? ""
            : `, limit ${Number(entry.threshold.toPrecision(6))}`
        })`;
  return `${entry.rule} [${entry.severity}]: ${meaning}${measured}`;
}

function traces(bars, days, actions) {
  const x = bars.map((b) => b.date);
  const byDate = new Map(bars.map((b) => [b.date, b]));
  const data = [
    {
      type: "candlestick",
      name: "Price",
      x,
      open: bars.map((b) => b.open),
      high: bars.map((b) => b.high),
      low: bars.map((b) => b.low),
      close: bars.map((b) => b.close),
      increasing: { line: { color: COLORS.up } },
      decreasing: { line: { color: COLORS.down } },
      yaxis: "y",
    },
    {
      type: "bar",
      name: "Volume",
      x,
      y: bars.map((b) => b.volume),
      marker: { color: bars.map((b) => (b.close >= b.open ? "rgba(26,127,55,0.45)" : "rgba(207,34,46,0.45)")) },
      yaxis: "y2",
      hovertemplate: "%{x}<br>%{y:,.0f} shares<extra>Volume</extra>",
    },
  ];
  for (const severity of ["hard", "soft", "info"]) {
    const dates = [...days.keys()].filter((d) => byDate.has(d) && days.get(d)[0].severity === severity);
    if (!dates.length) continue;
    data.push({
      type: "scatter",
      mode: "markers",
      name: `${severity} flag`,
      x: dates,
      y: dates.map((d) => byDate.get(d).high * 1.012),
      text: dates.map((d) => days.get(d).map((e) => `${e.rule} (${e.severity})`).join("<br>")),
      hovertemplate: "%{x}<br>%{text}<extra></extra>",
      marker: { symbol: "triangle-down", size: 12, color: COLORS[severity], line: { width: 1, color: "#fff" } },
      yaxis: "y",
    });
  }
  const lowest = bars.length ? Math.min(...bars.map((b) => b.low)) : 0;
  const actionTrace = (name, items, color, markerSymbol) => ({
    type: "scatter",
    mode: "markers",
    name,
    x: items.map((i) => i.date),
    y: items.map((i) => (byDate.get(i.date)?.low ?? lowest) * 0.975),
    text: items.map((i) => i.text),
    hovertemplate: "%{x}<br>%{text}<extra></extra>",
    marker: { symbol: markerSymbol, size: 11, color, line: { width: 1, color: "#fff" } },
    yaxis: "y",
  });
  const splits = actions.splits.map((s) => ({
    date: s.execution_date,
    text: `Split ${fmt.splitRatio(s.split_from, s.split_to)}`,
  }));
  const dividends = actions.dividends.map((d) => ({
    date: d.ex_dividend_date,
    text: `Dividend ${d.cash_amount} (${d.dividend_type})`,
  }));
  if (splits.length) data.push(actionTrace("split", splits, COLORS.split, "diamond"));
  if (dividends.length) data.push(actionTrace("dividend", dividends, COLORS.dividend, "circle"));
  return data;
}

function layout(gaps, actions) {
  const shapes = gaps.map((g) => ({
    type: "rect",
    xref: "x",
    yref: "paper",
    x0: shiftDay(g.start, -12),
    x1: shiftDay(g.end, 12),
    y0: 0,
    y1: 1,
    fillcolor: COLORS.gap,
    line: { width: 0 },
    layer: "below",
  }));
  for (const s of actions.splits) {
    shapes.push({
      type: "line",
      xref: "x",
      yref: "paper",
      x0: s.execution_date,
      x1: s.execution_date,
      y0: 0.3,
      y1: 1,
      line: { color: COLORS.split, width: 1, dash: "dot" },
    });
  }
  return {
    margin: { l: 60, r: 12, t: 12, b: 36 },
    showlegend: false,
    dragmode: "zoom",
    hovermode: "closest",
    font: { family: "system-ui, sans-serif", size: 12, color: "#1f2328" },
    paper_bgcolor: "#ffffff",
    plot_bgcolor: "#ffffff",
    xaxis: {
      type: "date",
      anchor: "y2",
      rangeslider: { visible: false },
      rangebreaks: [{ bounds: ["sat", "mon"] }],
      gridcolor: "#eaeef2",
    },
    yaxis: { domain: [0.3, 1], title: { text: PRICE_TITLES[state.adjusted] }, gridcolor: "#eaeef2" },
    yaxis2: { domain: [0, 0.22], title: { text: "Volume" }, rangemode: "tozero", gridcolor: "#eaeef2" },
    shapes,
  };
}

function zoomTo(date) {
  const at = state.bars.findIndex((b) => b.date >= date);
  if (at < 0) return;
  const around = state.bars.slice(Math.max(0, at - 15), at + 16);
  const low = Math.min(...around.map((b) => b.low));
  const high = Math.max(...around.map((b) => b.high));
  const pad = (high - low) * 0.08 || high * 0.01;
  globalThis.Plotly.relayout(chart, {
    "xaxis.range": [shiftDay(around[0].date, -24), shiftDay(around[around.length - 1].date, 24)],
    "yaxis.range": [low - pad, high + pad * 2],
  });
  chart.focus();
}

function renderSide(days, gaps, actions) {
  const flags = document.getElementById("flags");
  const dates = [...days.keys()].sort().reverse();
  flags.replaceChildren(
    ...(dates.length
      ? dates.map((date) =>
          el(
            "li",
            { "data-date": date },
            el(
              "button",
              { type: "button", class: "link", "aria-label": `Show ${date} on the chart`, onclick: () => zoomTo(date) },
              date,
            ),
            " ",
            days.get(date).map((entry) =>
              el(
                "span",
                { class: "reason", "data-rule": entry.rule },
                el("span", { class: `badge ${entry.severity === "hard" ? "bad" : entry.severity === "soft" ? "warn" : "info"}` }, entry.severity),
                ` ${reasonText(entry)}`,
              ),
            ),
          ),
        )
      : [el("li", { class: "muted" }, "No flagged bars in this range.")]),
  );
  document.getElementById("gaps").replaceChildren(
    ...(gaps.length
      ? gaps.map((g) =>
          el(
            "li",
            { "data-start": g.start },
            g.start === g.end ? g.start : `${g.start} – ${g.end}`,
            ` (${g.sessions} session${g.sessions === 1 ? "" : "s"})`,
          ),
        )
      : [el("li", { class: "muted" }, "None in this range.")]),
  );
  const items = [
    ...actions.splits.map((s) => ({ date: s.execution_date, text: `split ${fmt.splitRatio(s.split_from, s.split_to)}` })),
    ...actions.dividends.map((d) => ({ date: d.ex_dividend_date, text: `dividend ${d.cash_amount} (${d.dividend_type})` })),
  ].sort((a, b) => (a.date < b.date ? 1 : -1));
  document.getElementById("actions").replaceChildren(
    ...(items.length
      ? items.map((i) => el("li", {}, `${i.date} ${i.text}`))
      : [el("li", { class: "muted" }, "None in this range.")]),
  );
}

function renderControls(range) {
  for (const button of document.querySelectorAll("[data-range]")) {
    button.setAttribute("aria-pressed", String(button.dataset.range === state.preset));
  }
  const start = document.getElementById("start");
  const end = document.getElementById("end");
  start.value = range.start;
  end.value = range.end;
  for (const input of [start, end]) {
    input.min = state.first;
    input.max = state.last;
  }
  document.getElementById("adjusted").value = state.adjusted;
  const query = new URLSearchParams({ start: range.start, end: range.end, adjusted: state.adjusted });
  const base = `/api/v1/historical/${encodeURIComponent(symbol)}`;
  document.getElementById("download-csv").href = `${base}?${query}&format=csv`;
  document.getElementById("download-parquet").href = `${base}?${query}&format=parquet`;
  const page = new URLSearchParams(
    state.preset ? { range: state.preset, adjusted: state.adjusted } : { ...range, adjusted: state.adjusted },
  );
  window.history.replaceState(null, "", `?${page}`);
}

async function load(ticket) {
  const range = rangeOf();
  renderControls(range);
  chart.dataset.state = "loading";
  chart.setAttribute("aria-busy", "true");
  const [bars, quality, actions] = await Promise.all([
    fetchBars(range.start, range.end, state.adjusted),
    api(`/api/v1/quality/${encodeURIComponent(symbol)}?${new URLSearchParams(range)}`),
    api(`/api/v1/actions/${encodeURIComponent(symbol)}?${new URLSearchParams(range)}`),
  ]);
  if (ticket !== state.loading) return; // a newer choice was made meanwhile
  state.bars = bars;
  const days = flaggedDays(quality.log);
  await globalThis.Plotly.react(chart, traces(bars, days, actions), layout(quality.gaps, actions), {
    responsive: true,
    displaylogo: false,
    modeBarButtonsToRemove: ["select2d", "lasso2d"],
  });
  renderSide(days, quality.gaps, actions);
  const last = bars[bars.length - 1];
  Object.assign(chart.dataset, {
    bars: String(bars.length),
    adjusted: state.adjusted,
    lastDate: last ? last.date : "",
    lastClose: last ? String(last.close) : "",
    flags: String(days.size),
    gaps: String(quality.gaps.length),
    splits: String(actions.splits.length),
    dividends: String(actions.dividends.length),
  });
  document.getElementById("summary").textContent = last
    ? `${fmt.count(bars.length)} bars, ${range.start} to ${range.end}. Last close ${fmt.price(last.close)} on ${last.date} (adjusted: ${state.adjusted}). ${days.size} flagged, ${quality.gaps.length} gap${quality.gaps.length === 1 ? "" : "s"}.`
    : `No bars between ${range.start} and ${range.end}.`;
  chart.removeAttribute("aria-busy");
  chart.dataset.state = "ready";
}

async function reload() {
  const ticket = (state.loading += 1);
  try {
    await load(ticket);
  } catch (error) {
    if (ticket !== state.loading) return; // a newer choice is loading
    chart.dataset.state = "error";
    chart.removeAttribute("aria-busy");
    document.getElementById("summary").textContent =
      error instanceof ApiError && error.status === 404 ? `No bars stored for ${symbol}.` : problemText(error);
  }
}

async function init() {
  try {
    const coverage = await api(`/api/v1/coverage?symbols=${encodeURIComponent(symbol)}`);
    const found = coverage.symbols[0];
    state.first = found.first_date;
    state.last = found.last_date;
  } catch (error) {
    chart.dataset.state = "error";
    if (error instanceof ApiError && error.status === 401) document.getElementById("key-form").hidden = false;
    document.getElementById("summary").textContent =
      error instanceof ApiError && error.status === 404
        ? `No bars stored for ${symbol}. Add it from the overview’s Admin section.`
        : problemText(error);
    return;
  }
  await reload();
}

function setUp() {
  chart.tabIndex = -1;
  fetchHealth()
    .then((health) =>
      showBanners(
        health.data_mode === "simulated"
          ? [{ id: "simulated", tone: "warn", text: health.notice || "SIMULATED DATA" }]
          : [],
      ),
    )
    .catch(() => null);
  for (const button of document.querySelectorAll("[data-range]")) {
    button.addEventListener("click", () => {
      state.preset = button.dataset.range;
      reload();
    });
  }
  document.getElementById("controls").addEventListener("submit", (event) => {
    event.preventDefault();
    const start = document.getElementById("start").value;
    const end = document.getElementById("end").value;
    if (start && end && start > end) {
      document.getElementById("summary").textContent = "The start date is after the end date.";
      return;
    }
    state.preset = null;
    state.start = start;
    state.end = end;
    reload();
  });
  document.getElementById("adjusted").addEventListener("change", (event) => {
    state.adjusted = event.target.value;
    reload();
  });
  // CSV always goes through download() (a long range arrives whole, page by page); Parquet
  // only when a key must travel with the request (a plain link cannot carry the header).
  for (const [id, extension] of [
    ["download-csv", "csv"],
    ["download-parquet", "parquet"],
  ]) {
    document.getElementById(id).addEventListener("click", (event) => {
      if (extension === "parquet" && !hasApiKey()) return;
      event.preventDefault();
      const range = rangeOf();
      const name = `${symbol}-${range.start}-${range.end}-${state.adjusted}.${extension}`;
      download(event.currentTarget.getAttribute("href"), name).catch((error) => {
        document.getElementById("summary").textContent = `Download failed: ${problemText(error)}`;
      });
    });
  }
  const keyForm = document.getElementById("key-form");
  keyForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const input = document.getElementById("api-key");
    setApiKey(input.value.trim());
    input.value = ""; // kept in common.js's memory only
    keyForm.hidden = true;
    init();
  });
}

setUp();
init();
