// filter.js — builds the TraceQL-subset filter of a search from the form:
// service, operation and min/max duration go into one spanset, combined with
// the user's own filter as `{ A && B } && (user filter)`, and maps the column
// of a parse error back to the user's text.

/** A TraceQL string literal: quotes, backslashes, newlines and tabs escaped. */
export function quote(text) {
  return `"${String(text).replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n').replace(/\t/g, '\\t')}"`;
}

/**
 * {service, operation, minDuration, maxDuration, filter} → {text, userOffset,
 * generated}: the filter text sent, the number of characters before the
 * user's filter inside it (-1 if absent) and whether anything was generated.
 * Durations must already be normalised (`150ms`).
 */
export function buildFilter({ service, operation, minDuration, maxDuration, filter }) {
  const conds = [];
  if (service) conds.push(`resource.service.name = ${quote(service)}`);
  if (operation) conds.push(`name = ${quote(operation)}`);
  if (minDuration) conds.push(`duration >= ${minDuration}`);
  if (maxDuration) conds.push(`duration <= ${maxDuration}`);
  const user = filter && filter.trim() ? filter : '';
  const prefix = conds.length ? `{ ${conds.join(' && ')} }` : '';
  if (!user) return { text: prefix, userOffset: -1, generated: conds.length > 0 };
  if (!prefix) return { text: user, userOffset: 0, generated: false };
  const head = `${prefix} && (`;
  return { text: `${head}${user})`, userOffset: Array.from(head).length, generated: true };
}

/** Finds "at column N" in a server message. */
export function errorColumn(message) {
  const m = /at column (\d+)/.exec(message || '');
  return m ? Number(m[1]) : null;
}

/** Rewrites "at column N" by subtracting `offset`. */
export function shiftColumn(message, offset) {
  return String(message).replace(/at column (\d+)/, (_, n) => `at column ${Math.max(1, Number(n) - offset)}`);
}
