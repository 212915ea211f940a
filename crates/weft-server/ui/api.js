// api.js — the client of weft's native query API (docs/api.md): services,
// operations, the streamed NDJSON trace search and a trace by ID. Errors come
// back as ApiError with the HTTP status and the server's own message.

export class ApiError extends Error {
  constructor(status, message, retryAfter) {
    super(message);
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

async function failure(res) {
  let message = `${res.status} ${res.statusText}`.trim();
  try {
    const text = await res.text();
    try {
      const body = JSON.parse(text);
      if (body && typeof body.error === 'string') message = body.error;
    } catch {
      if (text) message = text.slice(0, 500);
    }
  } catch { /* keep the status line */ }
  return new ApiError(res.status, message, res.headers.get('Retry-After'));
}

async function request(url, init = {}) {
  let res;
  try {
    res = await fetch(url, init);
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, `cannot reach the weft server (${e.message})`);
  }
  if (!res.ok) throw await failure(res);
  return res;
}

async function getJSON(url, signal) {
  const res = await request(url, { signal, headers: { Accept: 'application/json' } });
  return res.json();
}

/** Every service name in the store, sorted. */
export async function services(signal) {
  const body = await getJSON('/weft/v1/services', signal);
  return body.services || [];
}

/** Operation (span) names, of one service or of all. */
export async function operations(service, signal) {
  const q = service ? `?service=${encodeURIComponent(service)}` : '';
  const body = await getJSON(`/weft/v1/operations${q}`, signal);
  return body.operations || [];
}

/**
 * POST /weft/v1/traces:query. Streams the NDJSON answer; calls onTrace(line)
 * for each trace line as it arrives. Resolves to {traces, last} where last is
 * the closing {nextCursor, completeUntil, stats} line.
 */
export async function queryTraces(body, { signal, onTrace } = {}) {
  const res = await request('/weft/v1/traces:query', {
    method: 'POST',
    signal,
    headers: { 'Content-Type': 'application/json', Accept: 'application/x-ndjson' },
    body: JSON.stringify(body),
  });
  const traces = [];
  let last = null;
  const take = (line) => {
    if (!line.trim()) return;
    const obj = JSON.parse(line);
    if (obj.traceId) {
      traces.push(obj);
      if (onTrace) onTrace(obj);
    } else {
      last = obj;
      if (obj.error) throw new ApiError(500, obj.error);
    }
  };
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += decoder.decode(value, { stream: true });
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      take(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
    }
  }
  buf += decoder.decode();
  take(buf);
  if (!last) throw new ApiError(0, 'the search answer ended before its last line; try again');
  return { traces, last };
}

/** The request boot.js started for this trace, if any (taken once). */
function takePrefetch(id) {
  const pre = window.weftPrefetch;
  if (!pre || pre.id !== id) return null;
  window.weftPrefetch = null;
  return pre.response;
}

/** The whole trace as OTLP JSON ({resourceSpans}); ApiError 404 when unknown. */
export async function getTrace(id, signal) {
  const pre = takePrefetch(id);
  if (pre) {
    let res;
    try {
      res = await pre;
    } catch (e) {
      throw new ApiError(0, `cannot reach the weft server (${e.message})`);
    }
    if (signal && signal.aborted) throw new DOMException('aborted', 'AbortError');
    if (!res.ok) throw await failure(res);
    return res.json();
  }
  return getJSON(`/weft/v1/traces/${encodeURIComponent(id)}`, signal);
}

/** The URL of a trace's OTLP JSON export. */
export function traceExportUrl(id) {
  return `/weft/v1/traces/${encodeURIComponent(id)}`;
}
