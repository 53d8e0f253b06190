// Pure formatting for the dashboard: values in, text out. No DOM, no clock (`now` is passed in),
// so tests/browser/test_dashboard_format.py checks each function from a table of cases.

const NUMBER = new Intl.NumberFormat("en-US");

/** A count with thousands separators; "—" when missing. */
export function count(value) {
  return value === null || value === undefined ? "—" : NUMBER.format(value);
}

/** A share in [0, 1] as a percentage with two decimals ("99.92 %"); "—" when missing. */
export function percent(rate) {
  if (rate === null || rate === undefined || Number.isNaN(rate)) return "—";
  const digits = rate > 0 && rate < 1 ? 2 : 0;
  const text = (rate * 100).toFixed(digits);
  // Never round a share below 1 up to "100 %": 0.99999 shows as 99.99 %.
  return `${rate < 1 && text === "100.00" ? "99.99" : text} %`;
}

/** Bars that failed validation, from a bar count and the validation rate. */
export function invalidBars(bars, rate) {
  if (!bars || rate === null || rate === undefined) return 0;
  return Math.round(bars * (1 - rate));
}

/** A duration in seconds as the largest sensible unit ("45 s", "12 min", "3 h", "2 d"). */
export function duration(seconds) {
  const s = Math.abs(seconds);
  if (s < 60) return `${Math.round(s)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86400) return `${Math.floor(s / 3600)} h`;
  return `${Math.floor(s / 86400)} d`;
}

/** When ``iso`` is relative to ``now`` (a Date): "3 h ago", "in 5 h" or "just now". */
export function relative(iso, now) {
  if (!iso) return "—";
  const seconds = (Date.parse(iso) - now.getTime()) / 1000;
  if (Math.abs(seconds) < 30) return "just now";
  return seconds < 0 ? `${duration(seconds)} ago` : `in ${duration(seconds)}`;
}

/** An ISO timestamp in UTC, to the minute ("2026-11-24 02:00 UTC"). */
export function timestamp(iso) {
  if (!iso) return "—";
  const when = new Date(iso);
  if (Number.isNaN(when.getTime())) return String(iso);
  return `${when.toISOString().slice(0, 16).replace("T", " ")} UTC`;
}

/** A price with 2 decimals, or 4 under 1 ("123.40", "0.1234"). */
export function price(value) {
  if (value === null || value === undefined) return "—";
  return value.toFixed(Math.abs(value) < 1 ? 4 : 2);
}

/** Freshness of a status row: a label that says it in words, and a tone for the badge. */
export function freshness(row) {
  if (row.sessions_behind === null || row.sessions_behind === undefined) {
    return { label: "no data", tone: "warn" };
  }
  if (row.fresh) return { label: "✓ fresh", tone: "ok" };
  const n = row.sessions_behind;
  return { label: `⚠ stale · ${n} session${n === 1 ? "" : "s"} behind`, tone: "bad" };
}

/** The heat-map class of a month: q4 all valid … q0 none, "none" when no session is expected. */
export function shade(cell) {
  if (!cell.sessions) return "none";
  const share = cell.valid / cell.sessions;
  if (share >= 1) return "q4";
  if (share >= 0.95) return "q3";
  if (share >= 0.5) return "q2";
  if (share > 0) return "q1";
  return "q0";
}

/** What a heat-map cell says in words (its tooltip and accessible name). */
export function cellText(symbol, cell) {
  if (!cell.sessions) return `${symbol} ${cell.month}: before the stored history`;
  const missing = cell.sessions - cell.present;
  const invalid = cell.present - cell.valid;
  const parts = [`${cell.present} of ${cell.sessions} sessions stored`];
  if (missing) parts.push(`${missing} missing`);
  if (invalid) parts.push(`${invalid} invalid`);
  return `${symbol} ${cell.month}: ${parts.join(", ")}`;
}

/** A split ratio as people say it ("4-for-1", "1-for-10"). */
export function splitRatio(splitFrom, splitTo) {
  const fmt = (v) => (Number.isInteger(v) ? String(v) : String(Number(v.toFixed(4))));
  return `${fmt(splitTo)}-for-${fmt(splitFrom)}`;
}

/** The start date of a preset range ending at ``last`` (ISO date); null for "all". */
export function rangeStart(preset, last) {
  const months = { "1M": 1, "6M": 6, "1Y": 12, "5Y": 60 }[preset];
  if (!months) return null;
  const [y, m, d] = last.split("-").map(Number);
  const day = new Date(Date.UTC(y, m - 1 - months, 1));
  const lastDay = new Date(Date.UTC(day.getUTCFullYear(), day.getUTCMonth() + 1, 0)).getUTCDate();
  day.setUTCDate(Math.min(d, lastDay) + 1);
  return day.toISOString().slice(0, 10);
}
