// tracemodel.js — turns a trace's OTLP JSON (resourceSpans → scopeSpans →
// spans, hex IDs) into the model the trace page draws: spans with times in ns
// relative to the trace start, the span tree (children sorted by start), its
// pre-order, and the trace's totals. O(n log n): one map by span ID, one sort
// of each span's children.

import { splitNs, diffNs, partsToMs } from './format.js';

const KIND_NAMES = ['unspecified', 'internal', 'server', 'client', 'producer', 'consumer'];
const STATUS_NAMES = ['unset', 'ok', 'error'];

/** An AnyValue as display text. */
export function valueText(v) {
  if (v === null || v === undefined) return '';
  if ('stringValue' in v) return String(v.stringValue);
  if ('intValue' in v) return String(v.intValue);
  if ('doubleValue' in v) return String(v.doubleValue);
  if ('boolValue' in v) return v.boolValue ? 'true' : 'false';
  if ('bytesValue' in v) return String(v.bytesValue);
  if ('arrayValue' in v) return `[${(v.arrayValue.values || []).map(valueText).join(', ')}]`;
  if ('kvlistValue' in v) return `{${(v.kvlistValue.values || []).map((kv) => `${kv.key}: ${valueText(kv.value)}`).join(', ')}}`;
  return '';
}

/** The AnyValue's type: string, int, double, bool, bytes, array, kvlist or empty. */
export function valueType(v) {
  if (!v) return 'empty';
  for (const t of ['string', 'int', 'double', 'bool', 'bytes', 'array', 'kvlist']) if (`${t}Value` in v) return t;
  return 'empty';
}

export const kindName = (k) => KIND_NAMES[Number(k) || 0] || `kind ${k}`;
export const statusName = (c) => STATUS_NAMES[Number(c) || 0] || `code ${c}`;

function emptyId(id) {
  return !id || id === '0000000000000000' || /^0*$/.test(id);
}

function attrValue(attrs, key) {
  for (const kv of attrs || []) if (kv.key === key) return valueText(kv.value);
  return undefined;
}

/**
 * Builds the trace model. Returns null when there is no span.
 * span: {index, spanId, parentId, traceId, name, kind, status, start, end,
 * duration (ns, relative), startParts, attributes, events, links, resource,
 * scope, service, children, depth, parent, orphan, error, subtree (size incl.
 * itself)}.
 */
export function buildTrace(data) {
  const spans = [];
  const byId = new Map();
  let base = null;
  for (const rs of data.resourceSpans || []) {
    const resource = rs.resource || {};
    const service = attrValue(resource.attributes, 'service.name') || 'unknown service';
    for (const ss of rs.scopeSpans || rs.instrumentationLibrarySpans || []) {
      const scope = ss.scope || ss.instrumentationLibrary || {};
      for (const raw of ss.spans || []) {
        // The server writes IDs in lower-case hex; IDs from URLs are lower-cased before lookups.
        const spanId = raw.spanId || '';
        const startParts = splitNs(raw.startTimeUnixNano);
        const endParts = raw.endTimeUnixNano ? splitNs(raw.endTimeUnixNano) : startParts;
        if (!base) base = startParts;
        const st = raw.status;
        const code = st && st.code ? Number(st.code) : 0;
        const span = {
          index: spans.length,
          spanId,
          parentId: emptyId(raw.parentSpanId) ? '' : raw.parentSpanId,
          traceId: raw.traceId || '',
          name: raw.name ?? '',
          kind: raw.kind ? Number(raw.kind) : 0,
          status: { code, message: (st && st.message) || '' },
          // Placeholders that are not small integers, so these fields hold doubles from the first
          // span on (a field that starts as a small integer and later gets a double changes every
          // span object's hidden class: that once cost most of the build of a 10,000-span trace).
          start: 0.5,
          end: 0.5,
          duration: 0.5,
          startParts,
          attributes: raw.attributes || [],
          events: raw.events || [],
          links: raw.links || [],
          traceState: raw.traceState || '',
          resource,
          scope,
          service,
          children: [],
          parent: null,
          depth: 0,
          orphan: false,
          error: code === 2,
          subtree: 1,
          pos: -1,
          row: -1,
          visited: false,
          haystack: undefined,
        };
        span.start = diffNs(startParts, base);
        span.end = diffNs(endParts, base);
        if (span.end < span.start) span.end = span.start;
        if (byId.has(spanId)) continue; // duplicates: first one wins
        byId.set(spanId, span);
        spans.push(span);
      }
    }
  }
  if (!spans.length) return null;

  // Times relative to the earliest start.
  let min = Infinity;
  let max = -Infinity;
  for (const sp of spans) {
    if (sp.start < min) min = sp.start;
    if (sp.end > max) max = sp.end;
  }
  for (const sp of spans) {
    sp.start -= min;
    sp.end -= min;
    sp.duration = sp.end - sp.start;
  }
  const startMs = partsToMs(base) + min / 1e6;

  // Tree: parent links by map; spans whose parent is missing are orphans.
  const top = [];
  for (const sp of spans) {
    const parent = sp.parentId ? byId.get(sp.parentId) : null;
    if (parent && parent !== sp) {
      sp.parent = parent;
      parent.children.push(sp);
    } else {
      sp.orphan = Boolean(sp.parentId);
      top.push(sp);
    }
  }
  const byStart = (a, b) => a.start - b.start || a.end - b.end || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)
    || (a.spanId < b.spanId ? -1 : 1);

  // Pre-order by an explicit stack (no recursion: a 10,000-deep chain must not overflow).
  const order = [];
  const visit = (roots) => {
    roots.sort(byStart);
    const stack = [];
    for (let i = roots.length - 1; i >= 0; i--) stack.push(roots[i]);
    while (stack.length) {
      const sp = stack.pop();
      sp.visited = true;
      sp.pos = order.length;
      order.push(sp);
      sp.depth = sp.parent ? sp.parent.depth + 1 : 0;
      sp.children.sort(byStart);
      for (let i = sp.children.length - 1; i >= 0; i--) stack.push(sp.children[i]);
    }
  };
  visit(top);
  // A parent cycle is never reached from a top-level span: break it and show those spans as orphans.
  const unreached = spans.filter((sp) => !sp.visited);
  if (unreached.length) {
    for (const sp of unreached) {
      if (sp.parent && sp.parent.visited) continue;
      if (sp.parent) sp.parent.children = sp.parent.children.filter((c) => c !== sp);
      sp.parent = null;
      sp.orphan = true;
    }
    visit(unreached.filter((sp) => !sp.parent));
    top.push(...unreached.filter((sp) => !sp.parent));
    top.sort(byStart);
  }
  // Subtree sizes, children before parents (reverse pre-order).
  for (let i = order.length - 1; i >= 0; i--) {
    const sp = order[i];
    if (sp.parent) sp.parent.subtree += sp.subtree;
  }

  const services = new Map();
  let errors = 0;
  let maxDepth = 0;
  for (const sp of spans) {
    services.set(sp.service, (services.get(sp.service) || 0) + 1);
    if (sp.error) errors++;
    if (sp.depth > maxDepth) maxDepth = sp.depth;
  }
  const root = top.find((sp) => !sp.orphan) || top[0];
  return {
    traceId: root.traceId,
    spans,
    byId,
    top,
    order,
    root,
    startMs,
    duration: max - min,
    services: [...services].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)),
    errorCount: errors,
    orphanCount: top.filter((sp) => sp.orphan).length,
    maxDepth,
  };
}

/** Lower-case text of a span that the in-trace search looks in: name, service, attribute keys and values. */
export function searchText(span) {
  if (span.haystack === undefined) {
    const parts = [span.name, span.service, span.spanId];
    for (const kv of span.attributes) parts.push(kv.key, valueText(kv.value));
    for (const kv of span.resource.attributes || []) parts.push(kv.key, valueText(kv.value));
    span.haystack = parts.join('\u0000').toLowerCase();
  }
  return span.haystack;
}
