// results.js — the search page's result list: one card per trace (root
// service and name, duration with a bar relative to the longest, span and
// error counts, services, start time), each a link to its trace, and the
// sort orders offered above the list.

import { h } from './dom.js';
import { serviceColor } from './colors.js';
import { formatDuration, formatTime, formatRelative, plural, formatCount } from './format.js';

export const SORTS = [
  ['recent', 'Most recent'],
  ['oldest', 'Oldest first'],
  ['longest', 'Longest first'],
  ['shortest', 'Shortest first'],
  ['spans', 'Most spans'],
  ['errors', 'Most errors'],
];

/** The traces sorted by one of SORTS. */
export function sortTraces(list, how) {
  const by = {
    recent: (a, b) => b.summary.start - a.summary.start,
    oldest: (a, b) => a.summary.start - b.summary.start,
    longest: (a, b) => b.summary.duration - a.summary.duration,
    shortest: (a, b) => a.summary.duration - b.summary.duration,
    spans: (a, b) => b.summary.spanCount - a.summary.spanCount,
    errors: (a, b) => b.summary.errorCount - a.summary.errorCount || b.summary.start - a.summary.start,
  }[how] || ((a, b) => b.summary.start - a.summary.start);
  return [...list].sort(by);
}

/** One result: a link to the trace with its root, duration bar, counts, services and start. */
export function resultRow(t, maxDur, now) {
  const sum = t.summary || {};
  const startMs = Number(sum.start) / 1e6;
  const services = sum.services || [];
  const shown = services.slice(0, 8);
  const color = serviceColor(sum.rootService);
  return h('li', { class: 'result', 'data-testid': 'result-row', 'data-trace-id': t.traceId },
    h('a', { class: 'result-card', href: `/trace/${encodeURIComponent(t.traceId)}`, style: { '--svc': color } },
      h('div', { class: 'result-top' },
        h('span', { class: 'result-title' },
          h('span', { class: 'swatch', style: { background: color } }),
          h('span', { class: 'result-service', 'data-testid': 'result-root-service' }, sum.rootService || '(unknown service)'),
          h('span', { class: 'result-sep' }, ': '),
          h('span', { class: 'result-name', 'data-testid': 'result-root-name' }, sum.rootName || '(missing root span)'),
          h('span', { class: 'result-id mono muted' }, t.traceId.slice(0, 7))),
        h('span', { class: 'result-duration', 'data-testid': 'result-duration' }, formatDuration(sum.duration))),
      h('div', { class: 'result-bar' }, h('span', { style: { width: `${Math.max(0.5, (sum.duration / maxDur) * 100)}%`, background: color } })),
      h('div', { class: 'result-bottom' },
        h('span', { class: 'result-badges' },
          h('span', { class: 'badge', 'data-testid': 'result-span-count', 'data-count': String(sum.spanCount) }, plural(sum.spanCount, 'span')),
          sum.errorCount
            ? h('span', { class: 'badge badge-error', 'data-testid': 'result-error-count', 'data-count': String(sum.errorCount) }, plural(sum.errorCount, 'error'))
            : h('span', { class: 'hidden', 'data-testid': 'result-error-count', 'data-count': '0' }),
          sum.orphanCount ? h('span', { class: 'badge badge-warn' }, plural(sum.orphanCount, 'orphan')) : null,
          shown.map((sv) => h('span', { class: 'chip chip-small' }, h('span', { class: 'swatch', style: { background: serviceColor(sv) } }), sv)),
          services.length > shown.length ? h('span', { class: 'muted small' }, `+${formatCount(services.length - shown.length)}`) : null),
        h('span', { class: 'result-time', 'data-testid': 'result-start', title: formatTime(startMs) },
          h('span', null, formatTime(startMs)),
          h('span', { class: 'muted' }, ` · ${formatRelative(startMs, now)}`)))));
}
