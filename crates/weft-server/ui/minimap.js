// minimap.js — the overview above the waterfall: every span of the trace
// drawn on a canvas (time across, tree order down, service colours), with a
// time axis. Dragging across it zooms the waterfall to that time range;
// the parts outside the range are shaded. Drawn after the first paint so it
// never delays opening a big trace.

import { h, clear } from './dom.js';
import { serviceColor } from './colors.js';
import { formatDuration, niceTicks } from './format.js';

const HEIGHT = 56;

export class Minimap {
  /** model: buildTrace output; onRange(lo, hi) is called with ns offsets (null, null to reset). */
  constructor(model, { onRange }) {
    this.model = model;
    this.onRange = onRange;
    this.range = [0, model.duration];
    this.canvas = h('canvas', { class: 'mm-canvas', height: String(HEIGHT), 'aria-hidden': 'true' });
    this.axis = h('div', { class: 'mm-axis', 'aria-hidden': 'true' });
    this.shadeL = h('div', { class: 'mm-shade' });
    this.shadeR = h('div', { class: 'mm-shade' });
    this.brush = h('div', { class: 'mm-brush', hidden: true });
    this.area = h('div', { class: 'mm-area', title: 'Drag across to zoom into a time range' },
      this.canvas, this.shadeL, this.shadeR, this.brush);
    // The owner places this button (in the toolbar); it shows while zoomed.
    this.reset = h('button', { type: 'button', class: 'button button-small', hidden: true, 'data-testid': 'zoom-reset' }, 'Reset zoom');
    this.reset.addEventListener('click', () => this.setRange(0, model.duration, true));
    this.el = h('div', { class: 'mm', 'data-testid': 'minimap' }, this.axis, this.area);
    this.initDrag();
    this.width = 0;
    this.ro = new ResizeObserver(() => {
      const w = this.area.clientWidth;
      if (w && w !== this.width) {
        this.width = w;
        this.draw();
      }
    });
  }

  /** Starts drawing (when the element is in the page; deferred past the first paint). */
  start() {
    const go = () => this.ro.observe(this.area);
    if (window.requestIdleCallback) requestIdleCallback(go, { timeout: 300 });
    else setTimeout(go, 50);
  }

  destroy() {
    this.ro.disconnect();
  }

  draw() {
    const m = this.model;
    const w = this.width;
    const dpr = window.devicePixelRatio || 1;
    this.canvas.width = Math.round(w * dpr);
    this.canvas.height = Math.round(HEIGHT * dpr);
    this.canvas.style.width = `${w}px`;
    this.canvas.style.height = `${HEIGHT}px`;
    const g = this.canvas.getContext('2d');
    g.scale(dpr, dpr);
    const total = m.duration || 1;
    const n = m.order.length;
    // Rows at most 6 px high, so a small trace does not look like a bar chart.
    const stepY = Math.min(6, HEIGHT / Math.max(n, 1));
    const rowH = Math.max(stepY - (stepY > 3 ? 1 : 0), 1);
    // In tree order, so later rows draw over earlier ones as in the waterfall.
    let current = '';
    for (let i = 0; i < n; i++) {
      const sp = m.order[i];
      const c = serviceColor(sp.service);
      if (c !== current) {
        g.fillStyle = c;
        current = c;
      }
      g.fillRect((sp.start / total) * w, i * stepY, Math.max(1, (sp.duration / total) * w), rowH);
    }
    clear(this.axis);
    for (const t of niceTicks(total, Math.max(2, Math.floor(w / 120)))) {
      const pct = (t / total) * 100;
      this.axis.appendChild(h('span', { class: `tick${pct > 92 ? ' end' : pct < 1 ? ' start' : ''}`, style: { left: `${pct}%` } }, t === 0 ? '0' : formatDuration(t)));
    }
    this.paintRange();
  }

  paintRange() {
    const total = this.model.duration || 1;
    const [lo, hi] = this.range;
    this.shadeL.style.left = '0';
    this.shadeL.style.width = `${(lo / total) * 100}%`;
    this.shadeR.style.left = `${(hi / total) * 100}%`;
    this.shadeR.style.right = '0';
    this.reset.hidden = lo <= 0 && hi >= total;
  }

  setRange(lo, hi, notify) {
    this.range = [lo, hi];
    this.paintRange();
    if (notify) this.onRange(lo, hi);
  }

  initDrag() {
    this.area.addEventListener('pointerdown', (e) => {
      if (e.button !== 0) return;
      e.preventDefault();
      const rect = this.area.getBoundingClientRect();
      const x0 = Math.min(Math.max(e.clientX - rect.left, 0), rect.width);
      this.area.setPointerCapture(e.pointerId);
      this.brush.hidden = false;
      const show = (x1) => {
        this.brush.style.left = `${Math.min(x0, x1)}px`;
        this.brush.style.width = `${Math.abs(x1 - x0)}px`;
      };
      show(x0);
      const move = (ev) => show(Math.min(Math.max(ev.clientX - rect.left, 0), rect.width));
      const up = (ev) => {
        this.area.removeEventListener('pointermove', move);
        this.area.removeEventListener('pointerup', up);
        this.brush.hidden = true;
        const x1 = Math.min(Math.max(ev.clientX - rect.left, 0), rect.width);
        if (Math.abs(x1 - x0) < 4) return;
        const total = this.model.duration;
        const lo = (Math.min(x0, x1) / rect.width) * total;
        const hi = (Math.max(x0, x1) / rect.width) * total;
        this.setRange(lo, hi, true);
      };
      this.area.addEventListener('pointermove', move);
      this.area.addEventListener('pointerup', up);
    });
  }
}
