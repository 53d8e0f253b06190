// What both dashboard pages share: calls to the public REST API (with the admin key once one
// was entered), the paginated status read, and small DOM helpers.

// The API key lives only in this module's memory: never in localStorage, sessionStorage or a
// cookie, so reloading or closing the page forgets it.
let apiKey = null;

/** Use ``key`` for every following request (null or "" forgets it). */
export function setApiKey(key) {
  apiKey = key ? key : null;
}

/** Whether a key was entered. */
export function hasApiKey() {
  return apiKey !== null;
}

/**
 * Save the API answer at ``path`` as the file ``filename``, fetched with the key (when one
 * was entered). A CSV longer than one answer (``MARKETDATA_API_MAX_ROWS``) is fetched page by
 * page through ``X-Next-Cursor`` and saved whole, with one header line.
 */
export async function download(path, filename) {
  const headers = apiKey ? { "X-API-Key": apiKey } : {};
  const csv = /[?&]format=csv(&|$)/.test(path);
  const parts = [];
  let url = path;
  for (let page = 0; url; page += 1) {
    const response = await fetch(url, { headers, cache: "no-store" });
    if (!response.ok) {
      let detail = "";
      try {
        detail = (await response.json()).detail;
      } catch {
        // not problem+json: keep the status alone
      }
      throw new ApiError(response.status, detail);
    }
    if (!csv) {
      parts.push(await response.blob());
      break;
    }
    const text = await response.text();
    parts.push(page === 0 ? text : text.slice(text.indexOf("\n") + 1)); // one header line
    const cursor = response.headers.get("X-Next-Cursor");
    url = cursor ? `${path}&cursor=${encodeURIComponent(cursor)}` : null;
  }
  const blob = new Blob(parts, { type: csv ? "text/csv" : "application/vnd.apache.parquet" });
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = filename;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
}

/** An error answer of the API: its status and the problem+json ``detail``. */
export class ApiError extends Error {
  constructor(status, detail) {
    super(detail || `HTTP ${status}`);
    this.status = status;
  }
}

/** Call the API: JSON in and out; a non-2xx answer throws ApiError with the server's detail. */
export async function api(path, { method = "GET", body } = {}) {
  const headers = { Accept: "application/json" };
  if (apiKey) headers["X-API-Key"] = apiKey;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: "no-store",
  });
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = text;
    }
  }
  if (!response.ok) {
    const detail = data && typeof data === "object" ? data.detail : null;
    throw new ApiError(response.status, typeof detail === "string" ? detail : response.statusText);
  }
  return data;
}

/** Where the page after ``body`` is: its ``next`` (a URL, or a cursor for ``path``), or null. */
export function nextPage(body, path) {
  let next = body ? (body.next ?? body.next_cursor ?? null) : null;
  if (next && typeof next === "object") next = next.href ?? next.url ?? next.cursor ?? null;
  if (!next || typeof next !== "string") return null;
  if (next.startsWith("/") || /^https?:\/\//.test(next)) return next;
  const joiner = path.includes("?") ? "&" : "?";
  return `${path}${joiner}cursor=${encodeURIComponent(next)}`;
}

/** ``/api/v1/status`` with every per-symbol row, following ``next_cursor`` (or ``next``) while
 * the list is paged; ``limit`` sets the page size (default: the API's). */
export async function fetchStatus(limit) {
  const path = limit ? `/api/v1/status?limit=${limit}` : "/api/v1/status";
  const first = await api(path);
  const rows = [...(first.per_symbol ?? [])];
  let next = nextPage(first, path);
  for (let page = 0; next && page < 10000; page += 1) {
    const body = await api(next);
    rows.push(...(body.per_symbol ?? body.items ?? []));
    next = nextPage(body, path);
  }
  return { ...first, per_symbol: rows };
}

/** ``/health`` whether the database answers (200) or not (503): both carry the same shape. */
export async function fetchHealth() {
  const response = await fetch("/health", {
    headers: { Accept: "application/json", ...(apiKey ? { "X-API-Key": apiKey } : {}) },
    cache: "no-store",
  });
  return response.json();
}

/** An element with attributes and children (strings become text: nothing is parsed as HTML). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Replace the page's banners with ``items`` ({tone: "warn" | "bad", text, id}). */
export function showBanners(items) {
  const region = document.getElementById("banner");
  const wanted = items.map((b) => el("p", { class: `banner ${b.tone}`, "data-banner": b.id }, b.text));
  const same =
    region.children.length === wanted.length &&
    wanted.every((node, i) => region.children[i].isEqualNode(node));
  if (!same) region.replaceChildren(...wanted); // unchanged banners are not announced again
}

/** A status line for failures to read the API (the reason in words, not only a colour). */
export function problemText(error) {
  if (error instanceof ApiError && error.status === 401) {
    return "This server requires an API key for reads: enter it in the Admin section.";
  }
  return `Could not read the API: ${error.message}`;
}
