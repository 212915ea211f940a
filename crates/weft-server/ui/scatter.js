// scatter.js — the search page's scatter plot (SVG): one point per trace,
// duration over start time, coloured by root service (errors in red, with a
// ring), sized by span count. Clicking a point (or Enter on a focused point)
// opens its trace.

import { s, h, clear } from './dom.js';
import { serviceColor } from './colors.js';
import { formatDuration, formatClock, formatTime, niceTicks, plural } from './format.js';

const HEIGHT = 180;
const PAD = { top: 14, right: 18, bottom: 26, left: 62 };

function timeTicks(lo, hi, width) {
  const span = hi - lo;
  const steps = [1e3, 2e3, 5e3, 10e3, 15e3, 30e3, 60e3, 120e3, 300e3, 600e3, 900e3, 1800e3, 3600e3, 7200e3, 10800e3, 21600e3, 43200e3, 86400e3];
  const want = Math.max(2, Math.floor(width / 110));
  const step = steps.find((st) => span / st <= want) || 86400e3;
  const out = [];
  const tz = new Date(lo).getTimezoneOffset() * 60e3;
  for (let t = Math.ceil((lo - tz) / step) * step + tz; t <= hi; t += step) out.push(t);
  return { ticks: out, seconds: step < 60e3 };
}

/**
 * Draws the plot of `traces` (summaries as returned by traces:query) into
 * `host`. onOpen(traceId) is called on click.
 */
export function drawScatter(host, traces, onOpen) {
  clear(host);
  const width = Math.max(320, host.clientWidth || 800);
  if (!traces.length) return;
  const pts = traces.map((t) => ({
    id: t.traceId,
    x: Number(t.summary.start) / 1e6,
    y: Number(t.summary.duration),
    sum: t.summary,
  }));
  let xlo = Math.min(...pts.map((p) => p.x));
  let xhi = Math.max(...pts.map((p) => p.x));
  if (xhi - xlo < 2000) {
    xlo -= 30e3;
    xhi += 30e3;
  } else {
    const pad = (xhi - xlo) * 0.04;
    xlo -= pad;
    xhi += pad;
  }
  const ymax = Math.max(...pts.map((p) => p.y)) * 1.08 || 1;
  // Round the top of the axis up to a whole tick, so the highest point sits under a labelled line.
  const probe = niceTicks(ymax, 4);
  const step = probe.length > 1 ? probe[1] - probe[0] : ymax;
  const yhi = Math.ceil(ymax / step) * step;
  const yTicks = niceTicks(yhi, Math.round(yhi / step));
  const iw = width - PAD.left - PAD.right;
  const ih = HEIGHT - PAD.top - PAD.bottom;
  const X = (x) => PAD.left + ((x - xlo) / (xhi - xlo)) * iw;
  const Y = (y) => PAD.top + ih - (y / yhi) * ih;
  const maxSpans = Math.max(...pts.map((p) => p.sum.spanCount || 1));
  const R = (n) => 3.5 + 5 * Math.sqrt((n || 1) / maxSpans);

  const svg = s('svg', {
    class: 'scatter-svg', width: String(width), height: String(HEIGHT), viewBox: `0 0 ${width} ${HEIGHT}`,
    role: 'img', 'aria-label': `Duration over start time of ${plural(pts.length, 'trace')}`, 'data-testid': 'scatter',
  });
  const axes = s('g', { class: 'axes' });
  for (const t of yTicks) {
    const y = Y(t);
    axes.appendChild(s('line', { class: 'grid', x1: PAD.left, x2: width - PAD.right, y1: y, y2: y }));
    axes.appendChild(s('text', { class: 'tick-label', x: PAD.left - 8, y: y + 4, 'text-anchor': 'end' }, t === 0 ? '0' : formatDuration(t)));
  }
  const { ticks, seconds } = timeTicks(xlo, xhi, iw);
  for (const t of ticks) {
    const x = X(t);
    axes.appendChild(s('line', { class: 'tick', x1: x, x2: x, y1: PAD.top + ih, y2: PAD.top + ih + 4 }));
    axes.appendChild(s('text', { class: 'tick-label', x, y: HEIGHT - 6, 'text-anchor': 'middle' }, formatClock(t, seconds)));
  }
  axes.appendChild(s('line', { class: 'axis', x1: PAD.left, x2: width - PAD.right, y1: PAD.top + ih, y2: PAD.top + ih }));
  svg.appendChild(axes);

  const g = s('g', { class: 'points' });
  // Big points first so small ones stay clickable on top.
  const sorted = [...pts].sort((a, b) => (b.sum.spanCount || 0) - (a.sum.spanCount || 0));
  for (const p of sorted) {
    const err = (p.sum.errorCount || 0) > 0;
    const c = s('circle', {
      class: `point${err ? ' point-error' : ''}`, cx: X(p.x).toFixed(1), cy: Y(p.y).toFixed(1), r: R(p.sum.spanCount).toFixed(1),
      fill: err ? 'var(--error)' : serviceColor(p.sum.rootService), tabindex: '0', role: 'link',
      'data-testid': 'scatter-point', 'data-trace-id': p.id,
      'aria-label': `${p.sum.rootService}: ${p.sum.rootName}, ${formatDuration(p.y)}`,
    }, s('title', null, `${p.sum.rootService}: ${p.sum.rootName}\n${formatDuration(p.y)} · ${plural(p.sum.spanCount, 'span')}${err ? ` · ${plural(p.sum.errorCount, 'error')}` : ''}\n${formatTime(p.x)}`));
    c.addEventListener('click', () => onOpen(p.id));
    c.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' || e.key === ' ') {
        e.preventDefault();
        onOpen(p.id);
      }
    });
    g.appendChild(c);
  }
  svg.appendChild(g);
  host.appendChild(svg);
  host.appendChild(h('div', { class: 'scatter-caption muted small' }, 'Duration over start time · click a point to open its trace'));
}
