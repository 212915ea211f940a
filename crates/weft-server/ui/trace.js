// trace.js — the trace page (/trace/<id>?span=<spanId>): loads the trace as
// OTLP JSON, shows its header (root, start, duration, spans, services,
// errors, copy ID, export), the waterfall with the critical path, a find box
// that highlights matching spans, and the side panel of the selected span.
// Owns the page's keyboard: j/k or arrows move, Enter/Space open or
// collapse, Escape closes the panel.

import { h, clear, replace, icon, stateBlock } from './dom.js';
import { getTrace, traceExportUrl, ApiError } from './api.js';
import { buildTrace, searchText } from './tracemodel.js';
import { criticalPath } from './critical_path.js';
import { Waterfall } from './waterfall.js';
import { spanPanel } from './panel.js';
import { Minimap } from './minimap.js';
import { serviceColor } from './colors.js';
import { formatDuration, formatTime, formatRelative, plural, formatCount } from './format.js';

const TRACE_ID_RE = /^[0-9a-f]{16}$|^[0-9a-f]{32}$/;

/** The trace ID of a /trace/<id> path, lower-cased ('' if it cannot be decoded). */
function traceIdOf(url) {
  try {
    return decodeURIComponent(url.pathname.slice('/trace/'.length)).replace(/\/$/, '').trim().toLowerCase();
  } catch {
    return '';
  }
}

/** Copies text to the clipboard: the async Clipboard API, or a hidden textarea and execCommand. */
export async function copyText(text) {
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch { /* fall back below */ }
  const ta = h('textarea', { class: 'offscreen', readonly: true, 'aria-hidden': 'true' });
  ta.value = text;
  document.body.appendChild(ta);
  ta.select();
  let ok = false;
  try { ok = document.execCommand('copy'); } catch { ok = false; }
  ta.remove();
  return ok;
}

function stat(label, value, testid) {
  return h('div', { class: 'stat' }, h('dt', null, label), h('dd', { 'data-testid': testid }, value));
}

export class TracePage {
  constructor(root, ctx, url) {
    this.root = root;
    this.ctx = ctx;
    this.traceId = traceIdOf(url);
    this.model = null;
    this.waterfall = null;
    this.panelOpen = false;
    this.abort = new AbortController();
    this.onKey = (e) => this.keydown(e);
    document.addEventListener('keydown', this.onKey);
    this.load(url);
  }

  destroy() {
    this.abort.abort();
    document.removeEventListener('keydown', this.onKey);
    if (this.waterfall) this.waterfall.destroy();
    if (this.minimap) this.minimap.destroy();
  }

  /** Handles a URL change within the same trace (another ?span=); false if it needs a new page. */
  update(url) {
    if (traceIdOf(url) !== this.traceId) return false;
    if (this.model) this.applySpanParam(url, false);
    return true;
  }

  async load(url) {
    replace(this.root, stateBlock('loading', 'Loading trace…', this.traceId));
    this.ctx.setTitle(`Trace ${this.traceId.slice(0, 8)}`);
    if (!TRACE_ID_RE.test(this.traceId)) {
      this.fail('Not a trace ID', `"${this.traceId}" is not a trace ID: a trace ID is 32 hexadecimal digits (or 16 for a 64-bit ID).`);
      return;
    }
    let data;
    try {
      data = await getTrace(this.traceId, this.abort.signal);
    } catch (e) {
      if (e.name === 'AbortError' || this.abort.signal.aborted) return;
      if (e instanceof ApiError && e.status === 404) {
        this.fail('Trace not found', `No span of trace ${this.traceId} is stored. It may be older than the retention period, or the ID may be mistyped.`);
      } else {
        this.fail('Could not load the trace', e.message);
      }
      return;
    }
    if (this.abort.signal.aborted) return; // left the page meanwhile
    performance.mark('weft:trace-fetched');
    const model = buildTrace(data);
    performance.mark('weft:trace-built');
    if (!model) {
      this.fail('Trace not found', `The server answered for trace ${this.traceId} but without any span.`);
      return;
    }
    this.model = model;
    this.critical = criticalPath(model);
    performance.mark('weft:critical-path');
    this.render();
    this.applySpanParam(url, true);
    performance.mark('weft:trace-rendered');
    // After the next paint: the moment the rows became visible.
    requestAnimationFrame(() => setTimeout(() => performance.mark('weft:trace-painted'), 0));
  }

  fail(title, detail) {
    replace(this.root, h('div', { class: 'page-state' },
      stateBlock('error', title, detail,
        h('div', { class: 'state-actions' }, h('a', { href: '/search', class: 'button' }, 'Back to search')))));
    this.ctx.setTitle(title);
  }

  render() {
    const m = this.model;
    const root = m.root;
    this.ctx.setTitle(`${root.service}: ${root.name}`);

    const copyBtn = h('button', { type: 'button', class: 'button button-small', 'data-testid': 'copy-trace-id', title: 'Copy the trace ID' },
      icon('copy'), h('span', null, 'Copy ID'));
    copyBtn.addEventListener('click', async () => {
      const ok = await copyText(m.traceId);
      copyBtn.lastChild.textContent = ok ? 'Copied' : 'Copy failed';
      copyBtn.classList.toggle('done', ok);
      setTimeout(() => { copyBtn.lastChild.textContent = 'Copy ID'; copyBtn.classList.remove('done'); }, 1600);
    });
    const exportLink = h('a', {
      class: 'button button-small', href: traceExportUrl(m.traceId), download: `trace-${m.traceId}.json`,
      'data-testid': 'export-json', title: 'Download this trace as OTLP JSON',
    }, icon('download'), h('span', null, 'OTLP JSON'));

    const services = h('div', { class: 'service-chips', 'data-testid': 'trace-services' },
      m.services.map(([name, count]) => h('span', { class: 'chip', title: `${plural(count, 'span')} of ${name}` },
        h('span', { class: 'swatch', style: { background: serviceColor(name) } }), name, h('span', { class: 'chip-count' }, formatCount(count)))));

    const header = h('section', { class: 'trace-header', 'data-testid': 'trace-header' },
      h('div', { class: 'trace-title-row' },
        h('h1', { class: 'trace-title', 'data-testid': 'trace-title' },
          h('span', { class: 'swatch swatch-lg', style: { background: serviceColor(root.service) } }),
          h('span', { class: 'trace-root-service' }, root.service),
          h('span', { class: 'trace-root-sep' }, ': '),
          h('span', { class: 'trace-root-name' }, root.name)),
        h('div', { class: 'trace-actions' },
          h('code', { class: 'trace-id', 'data-testid': 'trace-id', title: 'Trace ID' }, m.traceId),
          copyBtn, exportLink)),
      h('dl', { class: 'trace-stats' },
        stat('Start', h('span', { title: formatRelative(m.startMs) }, formatTime(m.startMs)), 'trace-start'),
        stat('Duration', formatDuration(m.duration), 'trace-duration'),
        stat('Spans', formatCount(m.spans.length), 'trace-span-count'),
        stat('Depth', String(m.maxDepth + 1), 'trace-depth'),
        stat('Errors', h('span', { class: m.errorCount ? 'text-error' : '' }, formatCount(m.errorCount)), 'trace-error-count'),
        m.orphanCount ? stat('Orphans', h('span', { class: 'text-warn' }, formatCount(m.orphanCount)), 'trace-orphan-count') : null,
        stat('Services', String(m.services.length), 'trace-service-count')),
      services);

    // Find in trace.
    this.findInput = h('input', {
      type: 'search', class: 'input find-input', placeholder: 'Find in trace: name, service, attribute…',
      'aria-label': 'Find spans in this trace', 'data-testid': 'trace-find', autocomplete: 'off', spellcheck: 'false',
    });
    this.findCount = h('span', { class: 'find-count muted', 'data-testid': 'trace-find-count', 'aria-live': 'polite' });
    let timer = 0;
    this.findInput.addEventListener('input', () => {
      findBox.classList.toggle('has-query', this.findInput.value.trim() !== '');
      clearTimeout(timer);
      timer = setTimeout(() => this.find(this.findInput.value), 90);
    });
    this.findInput.addEventListener('keydown', (e) => {
      if (e.key === 'Enter') {
        e.preventDefault();
        clearTimeout(timer);
        if (this.query !== this.findInput.value.trim().toLowerCase()) this.find(this.findInput.value);
        this.nextMatch(e.shiftKey ? -1 : 1);
      } else if (e.key === 'Escape') {
        e.preventDefault();
        e.stopPropagation();
        this.findInput.value = '';
        this.find('');
        this.waterfall.scroller.focus();
      }
    });
    const prev = h('button', { type: 'button', class: 'icon-button', 'aria-label': 'Previous match (Shift+Enter)', title: 'Previous match', onClick: () => this.nextMatch(-1) }, icon('up'));
    const next = h('button', { type: 'button', class: 'icon-button', 'aria-label': 'Next match (Enter)', title: 'Next match', onClick: () => this.nextMatch(1) }, icon('down'));

    const findBox = h('div', { class: 'find' }, h('span', { class: 'find-icon' }, icon('search')), this.findInput, this.findCount, prev, next);
    const critToggle = h('input', { type: 'checkbox', checked: true, 'data-testid': 'critical-toggle' });
    critToggle.addEventListener('change', () => this.waterfall.setShowCritical(critToggle.checked));

    const toolbar = h('div', { class: 'trace-toolbar' },
      findBox,
      h('label', { class: 'legend-toggle', title: 'The chain of spans that determined when the trace ended' },
        critToggle, h('span', { class: 'legend-crit' }), 'Critical path'),
      h('span', { class: 'legend-error' }, h('span', { class: 'wf-error-mark' }, '!'), 'Error'),
      h('span', { class: 'keys-hint muted small' }, 'j/k move · Enter details · Space collapse · / find'));

    this.waterfall = new Waterfall(m, this.critical, {
      onSelect: (sp) => this.selectSpan(sp, { open: this.panelOpen, push: false, scroll: true }),
      onOpen: (sp) => this.selectSpan(sp, { open: true, push: true, scroll: false }),
    });
    this.minimap = new Minimap(m, { onRange: (lo, hi) => this.waterfall.setView(lo, hi) });
    toolbar.insertBefore(this.minimap.reset, toolbar.querySelector('.keys-hint'));
    this.panelHost = h('div', { class: 'panel-host' });
    this.main = h('div', { class: 'trace-main' }, this.waterfall.el, this.panelHost);
    replace(this.root, h('div', { class: 'trace-page', 'data-testid': 'trace-page' }, header, toolbar, this.minimap.el, this.main));
    this.waterfall.layout();
    this.minimap.start();
  }

  /** Selects the span named by ?span= (opening the panel), or clears the selection. */
  applySpanParam(url, initial) {
    const id = (url.searchParams.get('span') || '').toLowerCase();
    const sp = id ? this.model.byId.get(id) : null;
    if (sp) this.selectSpan(sp, { open: true, push: false, scroll: true, updateUrl: false });
    else if (!initial || id) this.closePanel(false);
  }

  /** Selects `sp`; with open the panel shows it; the URL follows (?span=) while the panel is open. */
  selectSpan(sp, { open, push, scroll = true, updateUrl = true }) {
    this.waterfall.select(sp, { scroll });
    if (open) this.openPanel(sp);
    else if (this.panelOpen) this.closePanel(false);
    if (updateUrl) {
      const url = new URL(location.href);
      if (open) url.searchParams.set('span', sp.spanId);
      else url.searchParams.delete('span');
      if (url.href !== location.href) this.ctx.navigate(url.pathname + url.search, { replace: !push, silent: true });
    }
  }

  openPanel(sp) {
    this.panelOpen = true;
    replace(this.panelHost, spanPanel(sp, this.model, {
      onClose: () => this.closePanel(true),
      onSpanLink: (other) => this.selectSpan(other, { open: true, push: true }),
    }));
    this.main.classList.add('with-panel');
  }

  closePanel(updateUrl = true) {
    if (!this.panelOpen && !this.panelHost.firstChild) return;
    this.panelOpen = false;
    clear(this.panelHost);
    this.main.classList.remove('with-panel');
    if (updateUrl) {
      const url = new URL(location.href);
      url.searchParams.delete('span');
      this.ctx.navigate(url.pathname + url.search, { replace: false, silent: true });
      this.waterfall.scroller.focus({ preventScroll: true });
    }
  }

  find(text) {
    const q = text.trim().toLowerCase();
    this.query = q;
    this.matchList = [];
    this.matchPos = -1;
    if (!q) {
      this.waterfall.setMatches(null);
      this.findCount.textContent = '';
      return;
    }
    const set = new Set();
    for (const sp of this.model.order) {
      if (searchText(sp).includes(q)) {
        set.add(sp);
        this.matchList.push(sp);
      }
    }
    this.waterfall.setMatches(set);
    this.findCount.textContent = set.size ? plural(set.size, 'match', 'matches') : 'no match';
  }

  nextMatch(dir) {
    if (!this.matchList || !this.matchList.length) return;
    this.matchPos = (this.matchPos + dir + this.matchList.length) % this.matchList.length;
    const sp = this.matchList[this.matchPos];
    this.findCount.textContent = `${this.matchPos + 1} of ${plural(this.matchList.length, 'match', 'matches')}`;
    this.selectSpan(sp, { open: this.panelOpen, push: false, scroll: true });
  }

  keydown(e) {
    if (!this.waterfall || e.defaultPrevented || e.altKey || e.ctrlKey || e.metaKey) return;
    const t = e.target;
    const typing = t && (t.tagName === 'INPUT' || t.tagName === 'TEXTAREA' || t.tagName === 'SELECT' || t.isContentEditable);
    if (typing) return;
    const onControl = t && (t.tagName === 'BUTTON' || t.tagName === 'A' || t.tagName === 'SUMMARY');
    const wf = this.waterfall;
    const sel = wf.selected;
    const move = (sp) => {
      if (sp) this.selectSpan(sp, { open: this.panelOpen, push: false, scroll: true });
    };
    switch (e.key) {
      case 'ArrowDown': case 'j': move(wf.neighbour(1)); break;
      case 'ArrowUp': case 'k': move(wf.neighbour(-1)); break;
      case 'PageDown': move(wf.neighbour(wf.pageRows())); break;
      case 'PageUp': move(wf.neighbour(-wf.pageRows())); break;
      case 'Home': move(wf.visible[0]); break;
      case 'End': move(wf.visible[wf.visible.length - 1]); break;
      case 'ArrowLeft': case 'h':
        if (!sel) return;
        if (sel.children.length && !wf.collapsed.has(sel)) wf.toggle(sel);
        else if (sel.parent) move(sel.parent);
        break;
      case 'ArrowRight': case 'l':
        if (!sel) return;
        if (wf.collapsed.has(sel)) wf.toggle(sel);
        else if (sel.children.length) move(sel.children[0]);
        break;
      case 'Enter':
        if (onControl || !sel) return;
        if (this.panelOpen && sel.children.length) wf.toggle(sel);
        else this.selectSpan(sel, { open: true, push: true, scroll: true });
        break;
      case ' ':
        if (onControl || !sel) return;
        if (sel.children.length) wf.toggle(sel);
        else this.selectSpan(sel, { open: !this.panelOpen, push: true, scroll: true });
        break;
      case 'Escape':
        if (!this.panelOpen) return;
        this.closePanel(true);
        break;
      default:
        return;
    }
    e.preventDefault();
  }

  /** "/" focuses the find box. */
  focusFilter() {
    if (this.findInput) {
      this.findInput.focus();
      this.findInput.select();
      return true;
    }
    return false;
  }
}
