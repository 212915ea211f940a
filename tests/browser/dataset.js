// The known dataset the browser tests load into a fresh `weft serve` over
// OTLP/JSON: a handful of small traces with hand-written trees (an error span,
// a span with events and links, an attribute holding a <script> tag, a span
// name with <b>, an orphan) and one trace of exactly 10,000 spans. Every
// expectation the tests check is derived from the spans written here.

const MS = 1_000_000n;

/** Hex ID of `bytes` bytes from a number (zero-padded). */
export function hexId(n, bytes) {
  return n.toString(16).padStart(bytes * 2, '0');
}

/** Deterministic PRNG (mulberry32) so the big trace is the same on every run. */
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const RESOURCES = {
  frontend: { 'service.name': 'frontend', 'service.version': '2.4.1', 'host.name': 'web-7f9c', 'deployment.environment': 'test' },
  checkout: { 'service.name': 'checkout', 'service.version': '1.9.0', 'host.name': 'checkout-0', 'deployment.environment': 'test' },
  payments: { 'service.name': 'payments', 'service.version': '3.0.2', 'host.name': 'pay-1', 'deployment.environment': 'test' },
  inventory: { 'service.name': 'inventory', 'service.version': '0.7.3', 'host.name': 'inv-2', 'deployment.environment': 'test' },
  gateway: { 'service.name': 'gateway', 'service.version': '5.1.0', 'host.name': 'gw-0' },
  search: { 'service.name': 'search', 'service.version': '8.2.0', 'host.name': 'search-3' },
  ranking: { 'service.name': 'ranking', 'service.version': '1.0.0', 'host.name': 'rank-5' },
  index: { 'service.name': 'index', 'service.version': '2.2.2', 'host.name': 'idx-9' },
};

export const XSS_VALUE = '<script>window.__xss=1</script>';
export const BOLD_NAME = '<b>cache</b>.get';

export const IDS = {
  checkout: '7e57c0de00000000000000000000a001',
  products: ['7e57c0de00000000000000000000b001', '7e57c0de00000000000000000000b002', '7e57c0de00000000000000000000b003'],
  cart: '7e57c0de00000000000000000000c001',
  refund: '7e57c0de00000000000000000000d001',
  sync: '7e57c0de00000000000000000000e001',
  big: '7e57c0de0000000000000000000f1001',
};

/**
 * The small traces. A span: {id, parent, service, name, kind, start, end (ms
 * offsets from the trace's base), attrs, status, events, links}.
 */
function smallTraces() {
  const A = [
    { id: 'a1', parent: null, service: 'frontend', name: 'POST /checkout', kind: 2, start: 0, end: 400,
      attrs: { 'http.method': 'POST', 'http.route': '/checkout', 'http.status_code': 500, 'user.comment': XSS_VALUE } },
    { id: 'a2', parent: 'a1', service: 'frontend', name: 'auth.verify', kind: 1, start: 5, end: 25, attrs: { 'auth.method': 'jwt' } },
    { id: 'a3', parent: 'a1', service: 'frontend', name: 'session.touch', kind: 1, start: 20, end: 60, attrs: {} },
    { id: 'a4', parent: 'a1', service: 'checkout', name: 'CheckoutService/PlaceOrder', kind: 2, start: 30, end: 390,
      attrs: { 'rpc.system': 'grpc', 'order.items': 3 } },
    { id: 'a5', parent: 'a4', service: 'inventory', name: 'InventoryService/Reserve', kind: 2, start: 40, end: 120, attrs: { 'rpc.system': 'grpc' } },
    { id: 'a6', parent: 'a5', service: 'inventory', name: 'SELECT stock', kind: 3, start: 50, end: 100,
      attrs: { 'db.system': 'postgresql', 'db.statement': 'SELECT qty FROM stock WHERE sku = $1' } },
    { id: 'a7', parent: 'a4', service: 'checkout', name: BOLD_NAME, kind: 3, start: 100, end: 160, attrs: { 'cache.hit': false } },
    { id: 'a8', parent: 'a4', service: 'payments', name: 'PaymentService/Charge', kind: 2, start: 130, end: 370,
      attrs: { 'payment.amount': 42.5, 'payment.currency': 'EUR' },
      status: { code: 2, message: 'card declined' },
      events: [
        { name: 'retry', at: 150, attrs: { attempt: 2 } },
        { name: 'exception', at: 365, attrs: { 'exception.type': 'CardDeclined', 'exception.message': 'insufficient funds' } },
      ],
      links: [{ traceId: IDS.products[0], spanId: hexId(0xb1, 8), attrs: { 'link.reason': 'caused-by' } }] },
    { id: 'a9', parent: 'a8', service: 'payments', name: 'fraud.check', kind: 1, start: 140, end: 200, attrs: { 'fraud.score': 0.12 } },
    { id: 'a10', parent: 'a8', service: 'payments', name: 'POST /v1/charges', kind: 3, start: 210, end: 360,
      attrs: { 'http.method': 'POST', 'http.status_code': 402, 'server.address': 'bank.example' } },
    { id: 'a11', parent: 'a4', service: 'checkout', name: 'publish order.placed', kind: 4, start: 375, end: 385,
      attrs: { 'messaging.system': 'kafka' } },
  ];
  const products = (k, dur) => [
    { id: `b${k}1`, parent: null, service: 'frontend', name: 'GET /products', kind: 2, start: 0, end: dur, attrs: { 'http.method': 'GET' } },
    { id: `b${k}2`, parent: `b${k}1`, service: 'inventory', name: 'InventoryService/List', kind: 2, start: 2, end: dur - 2, attrs: {} },
    { id: `b${k}3`, parent: `b${k}2`, service: 'inventory', name: 'SELECT products', kind: 3, start: 4, end: dur - 5, attrs: { 'db.system': 'postgresql' } },
  ];
  const C = [
    { id: 'c1', parent: null, service: 'frontend', name: 'GET /cart', kind: 2, start: 0, end: 35, attrs: {} },
    { id: 'c2', parent: 'c1', service: 'checkout', name: 'CheckoutService/GetCart', kind: 2, start: 3, end: 30, attrs: {} },
  ];
  // An orphan: d3's parent d9 was never sent.
  const D = [
    { id: 'd1', parent: null, service: 'payments', name: 'refund', kind: 2, start: 0, end: 80, attrs: {} },
    { id: 'd2', parent: 'd1', service: 'payments', name: 'ledger.write', kind: 3, start: 10, end: 50, attrs: {} },
    { id: 'd3', parent: 'd9', service: 'payments', name: 'late.callback', kind: 1, start: 60, end: 70, attrs: {} },
  ];
  const E = [{ id: 'e1', parent: null, service: 'inventory', name: 'sync.stock', kind: 1, start: 0, end: 1200, attrs: {} }];
  return [
    { traceId: IDS.checkout, ago: 9 * 60_000, spans: A },
    { traceId: IDS.products[0], ago: 8 * 60_000, spans: products(1, 48) },
    { traceId: IDS.products[1], ago: 7 * 60_000, spans: products(2, 130) },
    { traceId: IDS.products[2], ago: 6 * 60_000, spans: products(3, 75) },
    { traceId: IDS.cart, ago: 5 * 60_000, spans: C },
    { traceId: IDS.refund, ago: 4 * 60_000, spans: D },
    { traceId: IDS.sync, ago: 3 * 60_000, spans: E },
  ];
}

/** Span IDs of the small traces: 'a8' → 16 hex digits, stable. */
export function spanHex(label) {
  let n = 0n;
  for (const ch of label) n = n * 37n + BigInt(ch.charCodeAt(0));
  return (n & 0xffffffffffffffffn).toString(16).padStart(16, '0');
}

/**
 * The 10,000-span trace: gateway → search → ranking/index, a realistic
 * fan-out of depth up to 7. The last root child, `final.flush`, starts after
 * every other root child and has no children, so it is the last row of the
 * waterfall in start order.
 */
function bigTrace() {
  const rand = rng(20261122);
  const N = 10_000;
  const spans = [];
  const services = ['gateway', 'search', 'ranking', 'index'];
  const ops = {
    gateway: ['route', 'auth', 'rate-limit', 'proxy'],
    search: ['Search/Query', 'parse', 'plan', 'merge', 'shard.fanout'],
    ranking: ['Rank/Score', 'features.load', 'model.eval', 'rerank'],
    index: ['Index/Lookup', 'segment.read', 'posting.decode', 'cache.get', 'SELECT docs'],
  };
  const root = { id: 'big-0', parent: null, service: 'gateway', name: 'GET /search', kind: 2, start: 0, end: 5000, depth: 0,
    attrs: { 'http.method': 'GET', 'http.route': '/search' } };
  spans.push(root);
  // Level-1 children first, then fill the tree by picking a parent at random
  // among spans of depth < 6 (favouring recent ones), nesting intervals.
  const open = [root];
  let seq = 1;
  while (spans.length < N - 1) {
    const parent = open.length > 1 && rand() < 0.85 ? open[open.length - 1 - Math.floor(rand() * Math.min(open.length, 40))] : root;
    const span = parent.end - parent.start;
    if (span < 0.02) continue;
    const s = parent.start + rand() * span * 0.7;
    let e = s + rand() * (parent.end - s);
    if (parent === root) e = Math.min(e, 4900);
    if (e - s < 0.005) continue;
    const depth = parent.depth + 1;
    const service = depth === 1 ? 'search' : services[Math.min(services.length - 1, 1 + Math.floor(rand() * 3))];
    const list = ops[service];
    const id = `big-${seq++}`;
    const child = { id, parent: parent.id, service, name: list[Math.floor(rand() * list.length)], kind: 1 + Math.floor(rand() * 3),
      start: s, end: e, depth, attrs: { 'seq': seq, 'shard': Math.floor(rand() * 16) } };
    if (rand() < 0.01) child.status = { code: 2, message: 'shard timeout' };
    spans.push(child);
    if (depth < 6) open.push(child);
  }
  spans.push({ id: 'big-last', parent: 'big-0', service: 'gateway', name: 'final.flush', kind: 1, start: 4950, end: 4990, depth: 1, attrs: { last: true } });
  return { traceId: IDS.big, ago: 2 * 60_000, spans };
}

/** Every trace of the dataset. */
export function dataset() {
  return [...smallTraces(), bigTrace()];
}

function anyValue(v) {
  if (typeof v === 'string') return { stringValue: v };
  if (typeof v === 'boolean') return { boolValue: v };
  if (Number.isInteger(v)) return { intValue: String(v) };
  return { doubleValue: v };
}
const kvs = (o) => Object.entries(o || {}).map(([key, value]) => ({ key, value: anyValue(value) }));

/** Nanoseconds as a decimal string: base (BigInt ns) + ms offset (float). */
function ns(base, ms) {
  return (base + BigInt(Math.round(ms * 1e6))).toString();
}

/** The span IDs used on the wire: small traces by label, big trace by index. */
export function wireSpanId(label) {
  if (label.startsWith('big-')) {
    if (label === 'big-last') return 'ffffffffffff0001';
    return hexId(0x100000 + Number(label.slice(4)), 8);
  }
  return spanHex(label);
}

/**
 * OTLP/JSON export requests for a trace, at most `batch` spans each, spans
 * grouped by service into resourceSpans.
 */
export function otlpRequests(trace, nowNs, batch = 2500) {
  const base = nowNs - BigInt(trace.ago) * MS;
  const out = [];
  for (let i = 0; i < trace.spans.length; i += batch) {
    const byService = new Map();
    for (const s of trace.spans.slice(i, i + batch)) {
      if (!byService.has(s.service)) byService.set(s.service, []);
      const o = {
        traceId: trace.traceId,
        spanId: wireSpanId(s.id),
        name: s.name,
        kind: s.kind,
        startTimeUnixNano: ns(base, s.start),
        endTimeUnixNano: ns(base, s.end),
        attributes: kvs(s.attrs),
      };
      if (s.parent) o.parentSpanId = wireSpanId(s.parent);
      if (s.status) o.status = s.status;
      if (s.events) o.events = s.events.map((e) => ({ name: e.name, timeUnixNano: ns(base, e.at), attributes: kvs(e.attrs) }));
      if (s.links) o.links = s.links.map((l) => ({ traceId: l.traceId, spanId: l.spanId, attributes: kvs(l.attrs) }));
      byService.get(s.service).push(o);
    }
    out.push({
      resourceSpans: [...byService].map(([service, spans]) => ({
        resource: { attributes: kvs(RESOURCES[service]) },
        scopeSpans: [{ scope: { name: 'weft-browser-test', version: '1.2.3' }, spans }],
      })),
    });
  }
  return out;
}

/** POSTs every trace of the dataset to an OTLP/HTTP endpoint ("127.0.0.1:P"). */
export async function loadDataset(otlpHttp, traces = dataset()) {
  const nowNs = BigInt(Date.now()) * MS;
  for (const t of traces) {
    for (const body of otlpRequests(t, nowNs)) {
      const res = await fetch(`http://${otlpHttp}/v1/traces`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
      });
      if (!res.ok) throw new Error(`OTLP export of ${t.traceId} answered ${res.status}: ${await res.text()}`);
    }
  }
  return traces;
}
