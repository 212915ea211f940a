// critical_path.js — the critical path of a trace: the chain of work that
// determined when the trace ended.
//
// The rule (the one Jaeger UI uses), walking back in time from the end:
//   1. Start at the root with a cursor at the root's end.
//   2. Among the current span's children (each clipped to its parent's
//      [start, end]; children that lie wholly outside it or last 0 ns are
//      ignored), take the one that finished last at or before the cursor
//      (ties: the later start, then the lower span ID).
//   3. The gap between that child's end and the cursor is the parent's own
//      critical time; then descend into the child, with its end as cursor.
//   4. When the child's path is done, move the parent's cursor to the child's
//      start and repeat step 2 with the children that finished by then.
//   5. With no such child left, [span start, cursor] is critical; go back up.
// Several top-level spans (orphans) are treated as children of one virtual
// root spanning the whole trace, so the path follows whichever ended last.
// Iterative (explicit stack) and O(n log n): each span's children are sorted
// once by end and scanned once, since the cursor only moves back.

/**
 * model: the output of buildTrace. Returns {segments: Map(span → [[start,
 * end], …] in ns relative to the trace start), spans: Set(span)}.
 */
export function criticalPath(model) {
  const segments = new Map();
  const add = (span, a, b) => {
    if (!span || b <= a) return;
    let list = segments.get(span);
    if (!list) segments.set(span, (list = []));
    list.push([a, b]);
  };
  const clippedKids = (children, lo, hi) => {
    const out = [];
    for (const c of children) {
      const cs = Math.max(c.start, lo);
      const ce = Math.min(c.end, hi);
      if (ce > cs) out.push({ span: c, cs, ce });
    }
    out.sort((a, b) => b.ce - a.ce || b.cs - a.cs || (a.span.spanId < b.span.spanId ? -1 : 1));
    return out;
  };
  const virtual = { span: null, cs: 0, ce: model.duration };
  const frame = (node) => ({
    node,
    cursor: node.ce,
    kids: clippedKids(node.span ? node.span.children : model.top, node.cs, node.ce),
    i: 0,
  });
  const stack = [frame(virtual)];
  while (stack.length) {
    const f = stack[stack.length - 1];
    while (f.i < f.kids.length && f.kids[f.i].ce > f.cursor) f.i++;
    if (f.i < f.kids.length) {
      const k = f.kids[f.i++];
      add(f.node.span, k.ce, f.cursor);
      f.cursor = k.cs;
      stack.push(frame(k));
    } else {
      add(f.node.span, f.node.cs, f.cursor);
      stack.pop();
    }
  }
  for (const list of segments.values()) list.reverse();
  return { segments, spans: new Set(segments.keys()) };
}
