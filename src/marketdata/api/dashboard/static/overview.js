// The overview page: banners, per-symbol freshness and quality, backfill runs, backups and the
// coverage heat map, refreshed in place every N seconds; admin actions once a key is entered.

import {
  ApiError,
  api,
  el,
  fetchHealth,
  fetchStatus,
  problemText,
  setApiKey,
  showBanners,
} from "./common.js";
import * as fmt from "./format.js";

/** Most symbols drawn in the heat map, the first by name (the API answers at most 200). */
const HEATMAP_SYMBOLS = 100;
/** Milliseconds between two looks at a running backfill. */
const POLL_MS = 1000;

const state = { refreshing: false, again: null, resolveAgain: null, watching: null };

function refreshSeconds() {
  const asked = Number.parseInt(new URLSearchParams(window.location.search).get("refresh"), 10);
  if (Number.isFinite(asked) && asked >= 1) return asked;
  const configured = Number.parseInt(document.body.dataset.refresh, 10);
  return Number.isFinite(configured) && configured >= 1 ? configured : 300;
}

// -- banners -------------------------------------------------------------------------------

async function failedRunBanner(run) {
  let reason = "";
  try {
    const detail = await api(`/api/v1/backfill/${run.id}`);
    const failed = (detail.symbols ?? []).find((s) => s.error);
    reason = detail.message || (failed ? `${failed.symbol}: ${failed.error}` : "");
  } catch {
    // the banner still says the run failed
  }
  const when = fmt.timestamp(run.finished_at ?? run.started_at);
  return {
    id: "backfill-failed",
    tone: "bad",
    text: `The last backfill (run ${run.id}, ${when}) failed${reason ? `: ${reason}` : "."}`,
  };
}

async function banners(health, status) {
  const items = [];
  const mode = status?.data_mode ?? health?.data_mode;
  if (mode === "simulated") {
    items.push({
      id: "simulated",
      tone: "warn",
      text: health?.notice || "SIMULATED DATA: these bars are synthetic, not market data.",
    });
  }
  if (health?.database && health.database !== "ok") {
    items.push({
      id: "database",
      tone: "bad",
      text: `The database is ${health.database}: ${health.database_detail ?? ""}`,
    });
  }
  const last = status?.backfill?.last_run ?? health?.last_backfill;
  if (last && last.status === "failed") items.push(await failedRunBanner(last));
  return items;
}

// -- the symbols table ---------------------------------------------------------------------

function symbolRow(row) {
  const fresh = fmt.freshness(row);
  const invalid = fmt.invalidBars(row.bars, row.validation_rate);
  const link = el("a", { href: `/dashboard/${encodeURIComponent(row.symbol)}` }, row.symbol);
  return el(
    "tr",
    { "data-symbol": row.symbol, "data-fresh": String(row.fresh) },
    el("th", { scope: "row" }, link, row.watched ? null : el("span", { class: "muted" }, " (not watched)")),
    el("td", {}, row.last_date ?? "—"),
    el("td", {}, el("span", { class: `badge ${fresh.tone}`, "data-marker": "freshness" }, fresh.label)),
    el("td", { class: "num" }, fmt.count(row.bars)),
    el(
      "td",
      { class: "num" },
      fmt.percent(row.validation_rate),
      invalid
        ? el(
            "span",
            { class: "badge bad", "data-marker": "invalid" },
            ` ⚠ ${invalid} invalid bar${invalid === 1 ? "" : "s"}`,
          )
        : null,
    ),
    el(
      "td",
      { class: "num" },
      row.missing_sessions
        ? el("span", { class: "badge warn", "data-marker": "gaps" }, `${fmt.count(row.missing_sessions)} missing`)
        : "0",
    ),
    el("td", { class: row.last_error ? "error" : "muted" }, row.last_error ?? "—"),
  );
}

function renderSymbols(status) {
  const body = document.querySelector("#symbols tbody");
  const rows = status.per_symbol.map(symbolRow);
  body.replaceChildren(
    ...(rows.length ? rows : [el("tr", {}, el("td", { colspan: 7, class: "muted" }, "No symbols yet."))]),
  );
  const stale = status.stale_count ?? status.stale_symbols?.length ?? 0;
  document.getElementById("session-info").textContent =
    `Last completed session ${status.last_completed_session} · ${fmt.count(status.symbols)} symbols · ` +
    `${fmt.count(status.bars)} bars · validated ${fmt.percent(status.validation_rate)} · ` +
    `${stale ? `${stale} stale` : "all watched symbols fresh"}`;
}

// -- backfill and backups ------------------------------------------------------------------

function fact(term, ...value) {
  return [el("dt", {}, term), el("dd", {}, ...value)];
}

function outcome(status) {
  const tone = { succeeded: "ok", running: "info", partial: "warn", failed: "bad", interrupted: "warn" };
  return el("span", { class: `badge ${tone[status] ?? "info"}` }, status);
}

function renderBackfill(status, runs, now) {
  const backfill = status.backfill ?? {};
  const last = backfill.last_run;
  const items = [
    ...fact(
      "Last run",
      last
        ? [
            `#${last.id} `,
            outcome(last.status),
            ` ${last.trigger}, ${fmt.timestamp(last.started_at)} (${fmt.relative(last.started_at, now)}), `,
            `${fmt.count(last.calls)} upstream calls, ${fmt.count(last.inserted)} bars inserted`,
            last.errors ? `, ${fmt.count(last.errors)} errors` : "",
          ]
        : "none yet",
    ),
    ...fact(
      "Next run",
      backfill.next_run
        ? `${fmt.timestamp(backfill.next_run)} (${fmt.relative(backfill.next_run, now)})`
        : backfill.scheduler_running
          ? "not scheduled"
          : "not scheduled (no scheduler in this process)",
    ),
    ...fact("Upstream calls today", fmt.count(backfill.calls_today ?? 0)),
  ];
  document.getElementById("backfill").replaceChildren(...items);
  const body = document.querySelector("#runs tbody");
  body.replaceChildren(
    ...(runs.length
      ? runs.map((r) =>
          el(
            "tr",
            {},
            el("td", {}, `#${r.id}`),
            el("td", {}, outcome(r.status)),
            el("td", {}, r.trigger),
            el("td", {}, fmt.timestamp(r.started_at)),
            el("td", { class: "num" }, fmt.count(r.calls)),
            el("td", { class: "num" }, fmt.count(r.inserted)),
            el("td", { class: "num" }, fmt.count(r.errors)),
          ),
        )
      : [el("tr", {}, el("td", { colspan: 7, class: "muted" }, "No runs yet."))]),
  );
}

function renderBackup(health, now) {
  // /health's last_backup: the newest attempt ({at, ok, name, verified, size, error,
  // last_success}) and next_backup, the weekly job's next run.
  const backup = health?.last_backup ?? null;
  const target = document.getElementById("backup");
  const next = health?.next_backup
    ? ` Next backup ${fmt.relative(health.next_backup, now)} (${fmt.timestamp(health.next_backup)}).`
    : "";
  if (!backup) {
    target.replaceChildren(`No backups yet.${next}`);
    return;
  }
  const result = backup.ok ? (backup.verified ? "verified" : "written, not verified") : "failed";
  const success = !backup.ok && backup.last_success ? backup.last_success : null;
  target.replaceChildren(
    "Last backup ",
    `${fmt.relative(backup.at, now)} (${fmt.timestamp(backup.at)}) `,
    el("span", { class: `badge ${backup.ok ? "ok" : "bad"}`, "data-marker": "backup" }, result),
    backup.error ? ` ${backup.error}` : "",
    backup.name ? el("span", { class: "muted" }, ` ${backup.name}`) : null,
    success ? `. Last good backup ${fmt.relative(success, now)}.` : ".",
    next,
  );
}

// -- coverage heat map ---------------------------------------------------------------------

/** The visible line above the heat map saying it shows only some symbols (none: hidden). */
function heatmapNote(text) {
  let note = document.getElementById("heatmap-note");
  if (!note) {
    note = el("p", { id: "heatmap-note", class: "muted", "data-marker": "heatmap-note" });
    document.getElementById("heatmap").parentElement.before(note);
  }
  note.textContent = text;
  note.hidden = !text;
}

async function renderCoverage(status) {
  const table = document.getElementById("heatmap");
  if (!status.per_symbol.some((r) => r.bars > 0)) {
    heatmapNote("");
    table.replaceChildren(el("caption", { class: "muted" }, "No stored bars yet."));
    return;
  }
  // Every stored symbol by name, cut at HEATMAP_SYMBOLS: the answer says when it was cut.
  const coverage = await api(`/api/v1/coverage?limit=${HEATMAP_SYMBOLS}`);
  const head = el(
    "tr",
    {},
    el("td", {}),
    coverage.months.map((month) =>
      el(
        "th",
        { scope: "col" },
        el("span", { class: "visually-hidden" }, month),
        month.endsWith("-01") ? el("span", { class: "year", "aria-hidden": "true" }, month.slice(0, 4)) : null,
      ),
    ),
  );
  const rows = coverage.symbols.map((s) =>
    el(
      "tr",
      { "data-symbol": s.symbol },
      el("th", { scope: "row" }, el("a", { href: `/dashboard/${encodeURIComponent(s.symbol)}` }, s.symbol)),
      s.months.map((cell) => {
        const text = fmt.cellText(s.symbol, cell);
        const mark = cell.sessions > cell.present ? "✕" : cell.present > cell.valid ? "!" : "";
        return el("td", { class: fmt.shade(cell), title: text, "aria-label": text }, mark);
      }),
    ),
  );
  const note = coverage.truncated
    ? `Showing ${fmt.count(coverage.symbols.length)} of ${fmt.count(coverage.symbols_total)} symbols (the first by name). `
    : "";
  heatmapNote(note.trim());
  const first = !table.rows.length;
  table.replaceChildren(
    el("caption", { class: "visually-hidden" }, `${note}Coverage by month, ${coverage.start} to ${coverage.end}`),
    el("thead", {}, head),
    el("tbody", {}, rows),
  );
  if (first) table.parentElement.scrollLeft = table.parentElement.scrollWidth; // latest months
}

// -- refresh -------------------------------------------------------------------------------

/** Read everything again and redraw in place; a call during a refresh runs once it ends. */
async function refresh() {
  if (state.refreshing) {
    state.again ??= new Promise((resolve) => (state.resolveAgain = resolve));
    return state.again;
  }
  state.refreshing = true;
  const now = new Date();
  const updated = document.getElementById("updated");
  try {
    const [health, status, runs] = await Promise.all([
      fetchHealth().catch(() => null),
      fetchStatus(),
      api("/api/v1/backfill?limit=5"),
    ]);
    showBanners(await banners(health, status));
    renderSymbols(status);
    renderBackfill(status, runs, now);
    renderBackup(health, now);
    await renderCoverage(status);
    updated.textContent = `Updated ${fmt.timestamp(now.toISOString())} · refreshes every ${fmt.duration(refreshSeconds())}`;
    updated.dataset.updatedAt = now.toISOString();
  } catch (error) {
    updated.textContent = problemText(error);
  } finally {
    state.refreshing = false;
  }
  if (state.again) {
    const resolve = state.resolveAgain;
    state.again = null;
    await refresh();
    resolve();
  }
}

// -- admin ---------------------------------------------------------------------------------

function say(text, tone = "") {
  const message = document.getElementById("admin-message");
  message.className = tone;
  message.textContent = text;
}

function failure(error) {
  if (error instanceof ApiError && error.status === 401) return `Refused: ${error.message} (check the key).`;
  return `Failed: ${error.message}`;
}

async function submitting(form, action) {
  const buttons = form.querySelectorAll("button");
  buttons.forEach((b) => (b.disabled = true));
  try {
    await action();
  } catch (error) {
    say(failure(error), "error");
  } finally {
    buttons.forEach((b) => (b.disabled = false));
  }
}

async function watchRun(runId) {
  state.watching = runId;
  const box = document.getElementById("progress");
  const bar = document.getElementById("progress-bar");
  const text = document.getElementById("progress-text");
  box.hidden = false;
  box.dataset.runId = String(runId);
  for (;;) {
    if (state.watching !== runId) return; // a newer run is being watched
    let run;
    try {
      run = await api(`/api/v1/backfill/${runId}`);
    } catch (error) {
      text.textContent = `Run ${runId}: ${failure(error)}`;
      return;
    }
    const total = Math.max(run.symbols_total, 1);
    bar.max = total;
    bar.value = run.symbols_done;
    const counts = `${run.symbols_done} of ${run.symbols_total} symbols, ${fmt.count(run.calls)} upstream calls, ${fmt.count(run.inserted)} bars inserted`;
    box.dataset.status = run.status;
    if (run.status !== "running") {
      text.textContent = `Run ${runId} ${run.status}: ${counts}.${run.message ? ` ${run.message}` : ""}`;
      await refresh();
      return;
    }
    text.textContent = `Run ${runId} running: ${counts}…`;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

function setUpAdmin() {
  const keyInput = document.getElementById("api-key");
  const actions = document.getElementById("admin-actions");
  const forget = document.getElementById("forget-key");
  document.getElementById("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = keyInput.value.trim();
    if (!key) {
      say("Enter a key first.");
      keyInput.focus();
      return;
    }
    setApiKey(key);
    keyInput.value = ""; // the key is kept in memory by common.js, not in the page
    actions.hidden = false;
    forget.hidden = false;
    say("Key held in this page’s memory. Admin actions are enabled.");
    document.getElementById("add-symbol").focus();
    refresh(); // reads may need the key too
  });
  forget.addEventListener("click", () => {
    setApiKey(null);
    actions.hidden = true;
    forget.hidden = true;
    say("Key forgotten.");
    keyInput.focus();
  });

  const addForm = document.getElementById("add-form");
  addForm.addEventListener("submit", (event) => {
    event.preventDefault();
    submitting(addForm, async () => {
      const symbol = document.getElementById("add-symbol").value.trim();
      const years = Number.parseInt(document.getElementById("add-years").value, 10);
      const added = await api("/api/v1/symbols", {
        method: "POST",
        body: Number.isFinite(years) ? { symbol, years } : { symbol },
      });
      say(added.detail);
      addForm.reset();
      await refresh();
      if (added.run_id) watchRun(added.run_id);
    });
  });

  const removeForm = document.getElementById("remove-form");
  removeForm.addEventListener("submit", (event) => {
    event.preventDefault();
    submitting(removeForm, async () => {
      const symbol = document.getElementById("remove-symbol").value.trim();
      const purge = document.getElementById("remove-purge").checked;
      const removed = await api(
        `/api/v1/symbols/${encodeURIComponent(symbol)}${purge ? "?purge=true" : ""}`,
        { method: "DELETE" },
      );
      say(
        removed.removed
          ? `Stopped watching ${removed.symbol}${purge ? `; ${fmt.count(removed.purged_bars)} bars deleted` : ""}.`
          : `${removed.symbol} was not being watched.`,
      );
      removeForm.reset();
      await refresh();
    });
  });

  const backfillForm = document.getElementById("backfill-form");
  backfillForm.addEventListener("submit", (event) => {
    event.preventDefault();
    submitting(backfillForm, async () => {
      const text = document.getElementById("backfill-symbols").value;
      const symbols = text.split(/[\s,]+/).filter(Boolean);
      const started = await api("/api/v1/backfill", { method: "POST", body: { symbols } });
      say(`Backfill run ${started.run_id} started.`);
      watchRun(started.run_id);
    });
  });
}

function start() {
  setUpAdmin();
  refresh();
  const every = refreshSeconds() * 1000;
  window.setInterval(() => {
    if (document.visibilityState !== "hidden") refresh();
  }, every);
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") refresh();
  });
}

start();
