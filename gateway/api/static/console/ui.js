// Small DOM and formatting helpers. Text always goes in as text nodes (never innerHTML), so whatever a
// store or a merchant typed cannot become markup.

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace an element's children (only for parts the user does not interact with). */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export function setText(el, text) {
  const value = text === null || text === undefined ? "" : String(text);
  if (el.textContent !== value) el.textContent = value;
}

let counter = 0;
export function uid(prefix) {
  counter += 1;
  return `${prefix}-${counter}`;
}

// ---- numbers and times ----------------------------------------------------------------------------
const numbers = new Intl.NumberFormat("en");
export const fmt = (n) => (n === null || n === undefined ? "–" : numbers.format(n));
export function plural(n, one, many) {
  return `${fmt(n)} ${n === 1 ? one : many || `${one}s`}`;
}

const relative = new Intl.RelativeTimeFormat("en", { numeric: "auto" });
const exact = new Intl.DateTimeFormat("en", { dateStyle: "full", timeStyle: "long" });
const short = new Intl.DateTimeFormat("en", { dateStyle: "medium", timeStyle: "short" });

/** "3 minutes ago", "in 45 minutes", "just now"; a date for anything over a week away. */
export function humanTime(iso, now = Date.now()) {
  const at = new Date(iso).getTime();
  if (Number.isNaN(at)) return "";
  const seconds = Math.round((at - now) / 1000);
  const abs = Math.abs(seconds);
  if (abs < 45) return seconds <= 0 ? "just now" : "in a few seconds";
  if (abs < 45 * 60) return relative.format(Math.round(seconds / 60), "minute");
  if (abs < 22 * 3600) return relative.format(Math.round(seconds / 3600), "hour");
  if (abs < 7 * 86400) return relative.format(Math.round(seconds / 86400), "day");
  return short.format(new Date(at));
}

export function exactTime(iso) {
  const at = new Date(iso);
  return Number.isNaN(at.getTime()) ? "" : exact.format(at);
}

/** A <time> that reads "3 minutes ago" and shows the exact time on hover; kept fresh by tickTimes(). */
export function timeEl(iso, fallback) {
  if (!iso) return h("span", { class: "muted", text: fallback || "never" });
  return h("time", { datetime: iso, title: exactTime(iso), dataset: { relative: "" }, text: humanTime(iso) });
}

export function setTime(container, iso, fallback) {
  const current = container.firstElementChild;
  if (iso && current && current.tagName === "TIME" && current.getAttribute("datetime") === iso) return;
  fill(container, timeEl(iso, fallback));
}

export function tickTimes(root = document) {
  const now = Date.now();
  for (const el of root.querySelectorAll("time[data-relative]")) {
    setText(el, humanTime(el.getAttribute("datetime"), now));
  }
}

export function duration(startIso, endIso) {
  if (!startIso || !endIso) return "";
  const seconds = Math.max(0, Math.round((new Date(endIso) - new Date(startIso)) / 1000));
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${seconds % 60} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

// ---- the help page's words -------------------------------------------------------------------------
export const MODES = {
  AUTOMATIC: {
    label: "Automatic",
    hint: "Alana watches your store and updates products in real time. Best for most businesses.",
  },
  MANUAL: {
    label: "Manual",
    hint: "Products sync only when you click Sync Now. Best if you make bulk changes and want to sync them all at once.",
  },
};

export const FREQUENCIES = {
  EVERY_15_MINUTES: { label: "Every 15 minutes", hint: "Real-time updates (best for high-traffic stores)" },
  EVERY_HOUR: { label: "Every hour", hint: "Frequent updates, balanced resource use (recommended)" },
  EVERY_4_HOURS: { label: "Every 4 hours", hint: "Less frequent, ideal for stable catalogs" },
  DAILY: { label: "Daily", hint: "Once per day, best for low-change products" },
};

export const STATUS_WORDS = { GREEN: "Healthy", YELLOW: "Pending", RED: "Error" };

export const RUN_WORDS = {
  QUEUED: "Queued",
  RUNNING: "Running",
  SUCCEEDED: "Succeeded",
  FAILED: "Failed",
  CANCELLED: "Cancelled",
};

export const TRIGGER_WORDS = {
  MANUAL: "Sync Now",
  SCHEDULED: "Scheduled",
  WEBHOOK: "Store change",
  INITIAL: "First sync",
};

export const KIND_WORDS = { FULL: "full catalog", INCREMENTAL: "changes only", PRODUCTS: "chosen products", DIGEST: "this hour's notifications" };

export const FINISHED = new Set(["SUCCEEDED", "FAILED", "CANCELLED"]);

/** A JSON value from the API (a conflict's store or Alana value) as text a merchant can read. */
export function showValue(value) {
  if (value === null || value === undefined) return "(empty)";
  if (typeof value === "string") return value === "" ? "(empty)" : value;
  if (Array.isArray(value) && value.every((v) => typeof v === "string")) return value.join(", ") || "(none)";
  return JSON.stringify(value, null, 2);
}
