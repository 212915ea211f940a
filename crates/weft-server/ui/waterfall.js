// waterfall.js — the span tree of a trace as a virtualised waterfall: one row
// per visible span (indented by depth, collapsible), bars placed by start and
// duration on a shared time axis, service colours, error and orphan marks,
// and the critical path drawn as dark segments over the bars. Only the rows
// in view (plus a margin) are in the DOM: a spacer of full height scrolls and
// an absolutely positioned block holds the rendered rows, so a trace of
// 10,000 spans opens and scrolls as fast as one of ten.

import { h, clear, icon } from './dom.js';
import { serviceColor } from './colors.js';
import { formatDuration, rangeTicks } from './format.js';

export const ROW_H = 28;
const INDENT = 16;
const MARGIN = 16; // rows rendered above and below the viewport

export class Waterfall {
  /**
   * model: buildTrace output; critical: criticalPath output;
   * handlers: {onSelect(span, how), onOpen(span)}.
   */
  constructor(model, critical, handlers) {
    this.model = model;
    this.critical = critical;
    this.handlers = handlers;
    this.collapsed = new Set();
    this.selected = null;
    this.matches = null;
    this.showCritical = true;
    this.view = [0, model.duration]; // the time range shown (zoom), ns from the trace start
    this.visible = [];
    this.range = [-1, -1];
    this.frame = 0;

    this.axis = h('div', { class: 'wf-axis', 'aria-hidden': 'true' });
    this.grid = h('div', { class: 'wf-grid', 'aria-hidden': 'true' });
    this.rows = h('div', { class: 'wf-rows', role: 'presentation' });
    this.spacer = h('div', { class: 'wf-spacer' }, this.rows);
    this.scroller = h('div', {
      class: 'wf-scroll', tabindex: '0', role: 'tree', 'aria-label': 'Spans of the trace',
      'data-testid': 'waterfall-scroll',
    }, this.spacer);
    this.resizer = h('div', { class: 'wf-resizer', title: 'Drag to resize the name column', 'aria-hidden': 'true' });
    this.header = h('div', { class: 'wf-header' },
      h('div', { class: 'wf-header-name' },
        h('span', { class: 'wf-header-title' }, 'Service & operation'),
        h('span', { class: 'wf-header-tools' },
          h('button', { type: 'button', class: 'link-button', 'data-testid': 'expand-all', title: 'Expand all', onClick: () => this.expandAll() }, 'Expand'),
          h('button', { type: 'button', class: 'link-button', 'data-testid': 'collapse-all', title: 'Collapse all below the top level', onClick: () => this.collapseAll() }, 'Collapse'))),
      h('div', { class: 'wf-header-time' }, this.axis),
      this.resizer);
    this.el = h('div', { class: 'wf', 'data-testid': 'waterfall' },
      this.header,
      h('div', { class: 'wf-body' }, this.grid, this.scroller));

    this.scroller.addEventListener('scroll', () => this.schedule(), { passive: true });
    this.rows.addEventListener('click', (e) => this.onClick(e));
    this.rows.addEventListener('dblclick', (e) => {
      const sp = this.spanAt(e.target);
      if (sp && sp.children.length) this.toggle(sp);
    });
    this.size = '';
    this.resizeObserver = new ResizeObserver(() => {
      // Runs after layout: reading sizes here forces nothing.
      const sc = this.scroller;
      const measured = {
        axis: this.axis.clientWidth, height: sc.clientHeight, top: sc.scrollTop, scrollbar: sc.offsetWidth - sc.clientWidth,
      };
      const size = `${sc.clientWidth}x${measured.height}x${measured.axis}`;
      if (size === this.size) return;
      this.size = size;
      this.layout(measured);
    });
    this.resizeObserver.observe(this.scroller);
    this.resizeObserver.observe(this.axis);
    this.initResizer();
    this.computeVisible();
  }

  destroy() {
    this.resizeObserver.disconnect();
    cancelAnimationFrame(this.frame);
  }

  initResizer() {
    this.resizer.addEventListener('pointerdown', (e) => {
      e.preventDefault();
      const rect = this.el.getBoundingClientRect();
      const move = (ev) => {
        const w = Math.min(Math.max(ev.clientX - rect.left, 160), rect.width - 200);
        this.el.style.setProperty('--name-w', `${w}px`);
      };
      const up = () => {
        window.removeEventListener('pointermove', move);
        window.removeEventListener('pointerup', up);
        this.range = [-1, -1];
        this.render();
      };
      window.addEventListener('pointermove', move);
      window.addEventListener('pointerup', up);
    });
  }

  /** Visible spans: pre-order, skipping the subtrees of collapsed spans. O(n). */
  computeVisible() {
    const order = this.model.order;
    const out = [];
    for (let i = 0; i < order.length;) {
      const sp = order[i];
      out.push(sp);
      i += this.collapsed.has(sp) ? sp.subtree : 1;
    }
    this.visible = out;
    for (let i = 0; i < out.length; i++) out[i].row = i;
    this.spacer.style.height = `${out.length * ROW_H}px`;
    this.range = [-1, -1];
  }

  /**
   * Axis ticks, grid lines and the rows in view. Called once the element is
   * in the page, without measuring (a forced layout costs tens of ms on a
   * busy machine): the window's size stands in until the ResizeObserver
   * reports the real one, right after the first layout.
   */
  layout(measured = null) {
    if (measured) this.measured = measured;
    const width = measured ? measured.axis : Math.max(300, window.innerWidth * 0.6);
    this.viewH = measured ? measured.height : window.innerHeight;
    const [lo, hi] = this.view;
    const total = hi - lo;
    const ticks = rangeTicks(lo, hi, Math.max(2, Math.min(10, Math.floor(width / 110))));
    const key = `${lo}:${hi}:${ticks.join(',')}`;
    if (key !== this.ticksKey) {
      this.ticksKey = key;
      clear(this.axis);
      clear(this.grid);
      for (const t of ticks) {
        const pct = total > 0 ? ((t - lo) / total) * 100 : 0;
        const cls = pct > 92 ? 'tick end' : pct < 1 ? 'tick start' : 'tick';
        this.axis.appendChild(h('span', { class: cls, style: { left: `${pct}%` } }, t === 0 ? '0' : formatDuration(t)));
        this.grid.appendChild(h('span', { class: 'gridline', style: { left: `${pct}%` } }));
      }
    }
    // Keep header and grid aligned with the rows when a scrollbar takes width.
    if (measured) this.el.style.setProperty('--scrollbar', `${measured.scrollbar}px`);
    this.render(false, measured ? measured.top : 0);
  }

  /** Zooms to [lo, hi] ns from the trace start. */
  setView(lo, hi) {
    this.view = [lo, hi];
    const m = this.measured;
    this.layout(m ? { ...m, top: this.scroller.scrollTop } : null);
    this.render(true);
  }

  schedule() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.render();
    });
  }

  /**
   * Renders the rows in view plus a margin. While the rows in view are still
   * inside the rendered block (with a few rows to spare), nothing is redone:
   * scrolling re-renders once every MARGIN rows or so, not on every row.
   */
  render(force = false, scrollTop = this.scroller.scrollTop) {
    const height = this.viewH || this.scroller.clientHeight || 600;
    const n = this.visible.length;
    const visFirst = Math.max(0, Math.floor(scrollTop / ROW_H));
    const visLast = Math.min(n, Math.ceil((scrollTop + height) / ROW_H));
    const [r0, r1] = this.range;
    if (!force && r0 >= 0
      && visFirst >= (r0 > 0 ? r0 + 2 : 0) && visLast <= (r1 < n ? r1 - 2 : n)
      && r1 - r0 <= visLast - visFirst + 3 * MARGIN) return;
    const first = Math.max(0, visFirst - MARGIN);
    const last = Math.min(n, visLast + MARGIN);
    this.range = [first, last];
    const frag = document.createDocumentFragment();
    for (let i = first; i < last; i++) frag.appendChild(this.renderRow(this.visible[i]));
    this.rows.style.transform = `translateY(${first * ROW_H}px)`;
    clear(this.rows);
    this.rows.appendChild(frag);
  }

  renderRow(sp) {
    const color = serviceColor(sp.service);
    const isCritical = this.critical.spans.has(sp);
    const collapsed = this.collapsed.has(sp);
    const hasKids = sp.children.length > 0;
    const matched = this.matches ? this.matches.has(sp) : false;
    const cls = ['wf-row'];
    if (sp === this.selected) cls.push('selected');
    if (sp.error) cls.push('error');
    if (this.matches) cls.push(matched ? 'match' : 'dim');
    if (isCritical && this.showCritical) cls.push('critical');

    // Indentation guides: one faint vertical line per ancestor level.
    const name = h('div', {
      class: 'wf-name', title: `${sp.service}: ${sp.name}`,
      style: { paddingLeft: `${8 + sp.depth * INDENT}px`, backgroundSize: `${sp.depth * INDENT + 1}px 100%` },
    },
      hasKids
        ? h('button', {
          type: 'button', class: `wf-toggle${collapsed ? ' collapsed' : ''}`, tabindex: '-1', 'data-testid': 'span-toggle',
          'aria-label': collapsed ? 'Expand' : 'Collapse',
        }, icon('chevron'))
        : h('span', { class: 'wf-toggle-space' }),
      sp.error ? h('span', { class: 'wf-error-mark', 'data-testid': 'error-mark', title: `error${sp.status.message ? `: ${sp.status.message}` : ''}` }, '!') : null,
      h('span', { class: 'wf-svc' }, sp.service),
      h('span', { class: 'wf-op' }, sp.name),
      collapsed ? h('span', { class: 'wf-count', title: `${sp.subtree - 1} spans hidden` }, String(sp.subtree - 1)) : null,
      sp.orphan ? h('span', { class: 'badge badge-warn', 'data-testid': 'orphan-mark', title: `parent span ${sp.parentId} is not in this trace` }, 'orphan') : null);

    // Bar geometry in % of the time range shown, clipped to it when zoomed.
    const [lo, hi] = this.view;
    const span = hi - lo || 1;
    const x0 = ((sp.start - lo) / span) * 100;
    const x1 = ((sp.end - lo) / span) * 100;
    const l = Math.max(0, x0);
    const r = Math.min(100, x1);
    const parts = [];
    if (r >= l) {
      const barCls = ['wf-bar'];
      if (x0 < 0) barCls.push('clip-l');
      if (x1 > 100) barCls.push('clip-r');
      const bar = h('div', {
        class: barCls.join(' '), title: `${formatDuration(sp.duration)}, from +${formatDuration(sp.start)}`,
        style: { left: `${l}%`, width: `max(2px, ${r - l}%)`, background: color },
      });
      if (isCritical && this.showCritical && sp.duration > 0) {
        const w = r - l;
        for (const [a, b] of this.critical.segments.get(sp)) {
          const sa = Math.max(l, ((a - lo) / span) * 100);
          const sb = Math.min(r, ((b - lo) / span) * 100);
          if (sb < sa || (sb === sa && w > 0)) continue;
          bar.appendChild(h('span', {
            class: 'wf-crit', 'data-testid': 'critical-mark',
            style: w > 0 ? { left: `${((sa - l) / w) * 100}%`, width: `max(1px, ${((sb - sa) / w) * 100}%)` } : { left: '0', width: '100%' },
          }));
        }
      }
      parts.push(bar);
      // The track keeps a right margin wide enough for the label after any bar.
      parts.push(h('span', { class: 'wf-dur', style: { left: `${r}%` } }, formatDuration(sp.duration)));
    } else {
      // Outside the zoomed range: say where.
      parts.push(h('span', { class: `wf-dur wf-out ${x1 < 0 ? 'left' : 'right'}` }, x1 < 0 ? `◂ ${formatDuration(sp.duration)}` : `${formatDuration(sp.duration)} ▸`));
    }
    const timeline = h('div', { class: 'wf-time' }, h('div', { class: 'wf-track' }, parts));

    const row = h('div', {
      class: cls.join(' '),
      role: 'treeitem',
      'aria-level': String(sp.depth + 1),
      'aria-selected': sp === this.selected ? 'true' : 'false',
      'aria-expanded': hasKids ? String(!collapsed) : undefined,
      'data-testid': 'span-row',
      'data-span-id': sp.spanId,
      'data-depth': String(sp.depth),
      'data-critical': isCritical ? 'true' : undefined,
      'data-match': matched ? 'true' : undefined,
      style: { '--svc': color },
    }, name, timeline);
    return row;
  }

  spanAt(target) {
    const row = target.closest && target.closest('.wf-row');
    return row ? this.model.byId.get(row.dataset.spanId) : null;
  }

  onClick(e) {
    const sp = this.spanAt(e.target);
    if (!sp) return;
    if (e.target.closest('.wf-toggle')) {
      this.toggle(sp);
      return;
    }
    this.handlers.onOpen(sp, 'click');
  }

  /** Marks `sp` as selected (null: none) and optionally scrolls it into view. */
  select(sp, { scroll = true } = {}) {
    this.selected = sp;
    if (sp && scroll) {
      this.expandTo(sp);
      this.scrollTo(sp);
    }
    this.render(true);
  }

  /** Scrolls the row of `sp` into view (centred if it was far away). */
  scrollTo(sp) {
    if (sp.row < 0 || this.visible[sp.row] !== sp) return;
    const y = sp.row * ROW_H;
    const top = this.scroller.scrollTop;
    const height = this.scroller.clientHeight;
    if (y < top) this.scroller.scrollTop = y - (top - y > height ? height / 2 : 0);
    else if (y + ROW_H > top + height) this.scroller.scrollTop = y + ROW_H - height + (y - top > 2 * height ? height / 2 : 0);
  }

  /** Uncollapses every ancestor of `sp`. */
  expandTo(sp) {
    let changed = false;
    for (let p = sp.parent; p; p = p.parent) {
      if (this.collapsed.delete(p)) changed = true;
    }
    if (changed) this.computeVisible();
  }

  toggle(sp) {
    if (!sp.children.length) return;
    if (!this.collapsed.delete(sp)) this.collapsed.add(sp);
    this.computeVisible();
    if (this.selected && this.visible[this.selected.row] !== this.selected) {
      // The selection went into a collapsed subtree: select the collapsed span.
      this.handlers.onSelect(sp, 'collapse');
    }
    this.render(true);
  }

  expandAll() {
    this.collapsed.clear();
    this.computeVisible();
    this.render(true);
  }

  /** Collapses every span with children below the top level. */
  collapseAll() {
    for (const sp of this.model.order) if (sp.parent && sp.children.length) this.collapsed.add(sp);
    this.computeVisible();
    if (this.selected && this.visible[this.selected.row] !== this.selected) {
      let p = this.selected;
      while (p.parent && this.visible[p.row] !== p) p = p.parent;
      this.handlers.onSelect(p, 'collapse');
    }
    this.scroller.scrollTop = 0;
    this.render(true);
  }

  /** The span `delta` rows from the selected one (or the first row). */
  neighbour(delta) {
    if (!this.visible.length) return null;
    const cur = this.selected && this.visible[this.selected.row] === this.selected ? this.selected.row : (delta > 0 ? -1 : this.visible.length);
    const next = Math.min(this.visible.length - 1, Math.max(0, cur + delta));
    return this.visible[next];
  }

  /** How many rows fit in the viewport (for Page Up/Down). */
  pageRows() {
    return Math.max(1, Math.floor(this.scroller.clientHeight / ROW_H) - 1);
  }

  setMatches(set) {
    this.matches = set;
    this.render(true);
  }

  setShowCritical(on) {
    this.showCritical = on;
    this.render(true);
  }
}
