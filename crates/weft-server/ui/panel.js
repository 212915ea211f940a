// panel.js — the side panel with everything about one span: name, IDs,
// service, kind, status, start and duration, attributes, events (with their
// time offset and attributes), links, resource attributes and scope. All of
// it is written as text nodes.

import { h, icon } from './dom.js';
import { serviceColor } from './colors.js';
import { formatDuration, formatTime, splitNs, diffNs } from './format.js';
import { valueText, valueType, kindName, statusName } from './tracemodel.js';

function kvTable(attrs, testid) {
  if (!attrs || !attrs.length) return h('p', { class: 'muted small', 'data-testid': testid ? `${testid}-empty` : undefined }, 'None');
  return h('table', { class: 'kv', 'data-testid': testid },
    h('tbody', null, attrs.map((kv) => h('tr', { 'data-key': kv.key },
      h('th', { scope: 'row', class: 'kv-key' }, kv.key),
      h('td', { class: `kv-value type-${valueType(kv.value)}` }, valueText(kv.value))))));
}

function section(title, count, body, testid, open = count === null || count > 0) {
  return h('details', { class: 'panel-section', open, 'data-testid': testid },
    h('summary', null, h('span', null, title), count !== null ? h('span', { class: 'count' }, String(count)) : null),
    body);
}

function field(label, value, extra) {
  return [h('dt', null, label), h('dd', null, value, extra || null)];
}

/**
 * Builds the panel for `span` of `model`. handlers: {onClose, onSpanLink(span)}.
 * Returns the panel element.
 */
export function spanPanel(span, model, handlers) {
  const color = serviceColor(span.service);
  const status = span.status.code
    ? h('span', { class: `status status-${statusName(span.status.code)}` }, `${span.status.code} · ${statusName(span.status.code)}`)
    : h('span', { class: 'status' }, '0 · unset');
  const parent = span.parentId ? model.byId.get(span.parentId) : null;

  const events = span.events.length
    ? h('ol', { class: 'events', 'data-testid': 'span-events' }, span.events.map((ev) => {
      const offset = diffNs(splitNs(ev.timeUnixNano), span.startParts);
      return h('li', { class: 'event', 'data-testid': 'span-event' },
        h('div', { class: 'event-head' },
          h('span', { class: 'event-time', title: formatTime(span.startParts[0] * 1e3 + span.startParts[1] / 1e6 + offset / 1e6) }, `+${formatDuration(offset)}`),
          h('span', { class: 'event-name' }, ev.name || '(unnamed event)')),
        ev.attributes && ev.attributes.length ? kvTable(ev.attributes) : null);
    }))
    : h('p', { class: 'muted small' }, 'None');

  const links = span.links.length
    ? h('ul', { class: 'links', 'data-testid': 'span-links' }, span.links.map((l) => {
      const tid = String(l.traceId || '').toLowerCase();
      const sid = String(l.spanId || '').toLowerCase();
      const local = tid === span.traceId ? model.byId.get(sid) : null;
      return h('li', { class: 'link', 'data-testid': 'span-link' },
        h('a', { href: `/trace/${encodeURIComponent(tid)}?span=${encodeURIComponent(sid)}`, class: 'mono' }, `${tid} / ${sid}`),
        local ? h('span', { class: 'muted small' }, ` (${local.name}, this trace)`) : null,
        l.attributes && l.attributes.length ? kvTable(l.attributes) : null);
    }))
    : h('p', { class: 'muted small' }, 'None');

  const scope = span.scope || {};
  const resAttrs = span.resource.attributes || [];

  return h('aside', { class: 'panel', 'data-testid': 'span-panel', 'data-span-id': span.spanId, 'aria-label': 'Span details', tabindex: '-1' },
    h('div', { class: 'panel-head', style: { borderTopColor: color } },
      h('div', { class: 'panel-title' },
        h('div', { class: 'panel-service' }, h('span', { class: 'swatch', style: { background: color } }), span.service),
        h('h2', { 'data-testid': 'span-panel-name' }, span.name || '(unnamed span)')),
      h('button', { type: 'button', class: 'icon-button', 'aria-label': 'Close span details (Escape)', title: 'Close (Esc)', 'data-testid': 'span-panel-close', onClick: handlers.onClose }, icon('close'))),
    h('div', { class: 'panel-body' },
      h('dl', { class: 'facts', 'data-testid': 'span-facts' },
        field('Duration', formatDuration(span.duration)),
        field('Start', `+${formatDuration(span.start)}`, h('span', { class: 'muted small' }, `  ${formatTime(model.startMs + span.start / 1e6)}`)),
        field('Kind', kindName(span.kind)),
        field('Status', status, span.status.message ? h('span', { class: 'status-message', 'data-testid': 'span-status-message' }, span.status.message) : null),
        field('Span ID', h('code', { 'data-testid': 'span-id' }, span.spanId)),
        field('Parent ID', span.parentId
          ? (parent
            ? h('a', { href: `?span=${span.parentId}`, class: 'mono', onClick: (e) => { e.preventDefault(); handlers.onSpanLink(parent); } }, span.parentId)
            : h('span', null, h('code', null, span.parentId), h('span', { class: 'badge badge-warn' }, 'missing')))
          : h('span', { class: 'muted' }, 'none (root)')),
        field('Trace ID', h('code', null, span.traceId)),
        span.traceState ? field('Trace state', h('code', null, span.traceState)) : null),
      section('Attributes', span.attributes.length, kvTable(span.attributes, 'span-attributes'), 'section-attributes'),
      section('Events', span.events.length, events, 'section-events'),
      section('Links', span.links.length, links, 'section-links'),
      section('Resource', resAttrs.length, kvTable(resAttrs, 'span-resource'), 'section-resource'),
      section('Scope', null, h('div', { 'data-testid': 'span-scope' },
        h('dl', { class: 'facts' },
          field('Name', scope.name || '—'),
          field('Version', scope.version || '—')),
        scope.attributes && scope.attributes.length ? kvTable(scope.attributes) : null), 'section-scope')));
}
