// format.js — parsing and formatting of times and durations. OTLP times are
// Unix nanoseconds as decimal strings, beyond a JS number's exact range, so
// they are split into seconds and nanoseconds and used relative to a base.

/** Splits a Unix-ns decimal string into [seconds, nanoseconds] (both exact). */
export function splitNs(str) {
  const t = String(str ?? '0');
  if (t.length <= 9) return [0, Number(t) || 0];
  return [Number(t.slice(0, -9)), Number(t.slice(-9))];
}

/** Nanoseconds from `base` ([s, ns]) to `parts` ([s, ns]), exact below 104 days. */
export function diffNs(parts, base) {
  return (parts[0] - base[0]) * 1e9 + (parts[1] - base[1]);
}

/** Unix ms (float) from [s, ns]. */
export function partsToMs(parts) {
  return parts[0] * 1e3 + parts[1] / 1e6;
}

function trim(x, digits) {
  return Number(x.toFixed(digits)).toString();
}

/** A duration in ns as a short human string: 850ns, 12.5µs, 245ms, 1.23s, 2m 3s, 1h 4m. */
export function formatDuration(ns) {
  if (!Number.isFinite(ns)) return '–';
  const a = Math.abs(ns);
  const sign = ns < 0 ? '-' : '';
  if (a < 1e3) return `${sign}${trim(a, 0)}ns`;
  if (a < 1e6) return `${sign}${trim(a / 1e3, a < 1e4 ? 2 : 1)}µs`;
  if (a < 1e9) return `${sign}${trim(a / 1e6, a < 1e7 ? 2 : 1)}ms`;
  if (a < 60e9) return `${sign}${trim(a / 1e9, 2)}s`;
  if (a < 3600e9) {
    const m = Math.floor(a / 60e9);
    const sec = Math.round((a - m * 60e9) / 1e9);
    return `${sign}${m}m${sec ? ` ${sec}s` : ''}`;
  }
  const hr = Math.floor(a / 3600e9);
  const m = Math.round((a - hr * 3600e9) / 60e9);
  return `${sign}${hr}h${m ? ` ${m}m` : ''}`;
}

const pad = (n, w = 2) => String(n).padStart(w, '0');

/** Local date and time with milliseconds: 2026-11-29 23:04:10.342 */
export function formatTime(ms) {
  const d = new Date(ms);
  if (Number.isNaN(d.getTime())) return '–';
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

/** Local time of day: 23:04:10 */
export function formatClock(ms, withSeconds = true) {
  const d = new Date(ms);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}${withSeconds ? `:${pad(d.getSeconds())}` : ''}`;
}

/** "5 minutes ago", "in 2 hours". */
export function formatRelative(ms, now = Date.now()) {
  const diff = (now - ms) / 1000;
  const a = Math.abs(diff);
  const unit = a < 60 ? [Math.round(a), 'second'] : a < 3600 ? [Math.round(a / 60), 'minute']
    : a < 86400 ? [Math.round(a / 3600), 'hour'] : [Math.round(a / 86400), 'day'];
  if (a < 5) return 'just now';
  const text = `${unit[0]} ${unit[1]}${unit[0] === 1 ? '' : 's'}`;
  return diff >= 0 ? `${text} ago` : `in ${text}`;
}

/** Value for an <input type="datetime-local"> from Unix ms (local time). */
export function toLocalInput(ms) {
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** Unix ms from an RFC 3339 text, a datetime-local value, Unix ms or Unix ns digits; NaN if unreadable. */
export function parseTime(text) {
  const t = String(text ?? '').trim();
  if (!t) return NaN;
  if (/^\d+$/.test(t)) return t.length >= 16 ? Number(t.slice(0, -6)) : Number(t);
  return Date.parse(t);
}

const DURATION_RE = /^(\d+(?:\.\d+)?)\s*(ns|us|µs|ms|s|m|h)$/;
const UNIT_NS = { ns: 1, us: 1e3, 'µs': 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };

/** A filter duration ("150ms", "1.5s", "2m") → its canonical text for TraceQL, or null if invalid. */
export function normalizeDuration(text) {
  const m = DURATION_RE.exec(String(text ?? '').trim());
  if (!m) return null;
  return `${m[1]}${m[2] === 'µs' ? 'us' : m[2]}`;
}

/** A filter duration → nanoseconds (NaN if invalid). */
export function durationToNs(text) {
  const m = DURATION_RE.exec(String(text ?? '').trim());
  return m ? Number(m[1]) * UNIT_NS[m[2]] : NaN;
}

/** Lookback choices of the search form: value → [label, ms]. */
export const LOOKBACKS = [
  ['15m', 'Last 15 minutes', 15 * 60e3],
  ['1h', 'Last hour', 3600e3],
  ['6h', 'Last 6 hours', 6 * 3600e3],
  ['24h', 'Last 24 hours', 24 * 3600e3],
  ['2d', 'Last 2 days', 48 * 3600e3],
];

/** Number with thousands separators. */
export function formatCount(n) {
  // By hand: the first toLocaleString call loads locale data (tens of ms).
  const [int, frac] = String(Number(n || 0)).split('.');
  const grouped = int.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  return frac ? `${grouped}.${frac}` : grouped;
}

/** "1 span" / "3 spans". */
export function plural(n, word, many = `${word}s`) {
  return `${formatCount(n)} ${n === 1 ? word : many}`;
}

/** Ticks for a duration axis over [lo, hi] ns: round steps, aligned to multiples of the step. */
export function rangeTicks(lo, hi, count = 5) {
  const total = hi - lo;
  if (!(total > 0)) return [lo];
  const raw = total / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((st) => st >= raw) || 10 * mag;
  const out = [];
  for (let k = Math.ceil(lo / step - 1e-9); k * step <= hi * 1.0000001; k++) out.push(k * step);
  return out;
}

/** Ticks for a duration axis [0, total] ns: ~`count` round steps (1, 2, 5 × 10^k). */
export function niceTicks(total, count = 5) {
  if (!(total > 0)) return [0];
  const raw = total / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) || 10 * mag;
  const out = [];
  for (let t = 0; t <= total * 1.0000001; t += step) out.push(t);
  return out;
}
