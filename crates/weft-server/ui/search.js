// search.js — the search page (/search?…): the form (time range, service,
// operation, TraceQL filter, min/max duration, limit), the scatter plot and
// the result list. The URL holds the form; a URL with parameters runs its
// search on load, so a search can be bookmarked, shared and reloaded.

import { h, clear, replace, icon, stateBlock } from './dom.js';
import * as api from './api.js';
import { buildFilter, errorColumn, shiftColumn } from './filter.js';
import { drawScatter } from './scatter.js';
import { SORTS, sortTraces, resultRow } from './results.js';
import { LOOKBACKS, normalizeDuration, parseTime, toLocalInput, plural } from './format.js';

const PARAMS = ['service', 'operation', 'filter', 'start', 'end', 'lookback', 'minDuration', 'maxDuration', 'limit', 'sort'];
const DEFAULT_LIMIT = 20;
const MAX_LIMIT = 1000;
function label(text, control, extra) {
  return h('label', { class: 'field' }, h('span', { class: 'field-label' }, text), control, extra || null);
}

export class SearchPage {
  constructor(root, ctx, url) {
    this.root = root;
    this.ctx = ctx;
    this.abort = null;
    this.traces = [];
    this.last = null;
    this.build();
    this.loadServices();
    this.update(url);
  }

  destroy() {
    if (this.abort) this.abort.abort();
    window.removeEventListener('resize', this.onResize);
  }

  build() {
    const f = {};
    f.service = h('select', { class: 'input', name: 'service', 'data-testid': 'service-select' }, h('option', { value: '' }, 'All services'));
    f.operation = h('select', { class: 'input', name: 'operation', 'data-testid': 'operation-select' }, h('option', { value: '' }, 'All operations'));
    f.filter = h('input', {
      id: 'filter-box', class: 'input mono', name: 'filter', type: 'text', 'data-testid': 'filter-input', autocomplete: 'off', spellcheck: 'false',
      placeholder: '{ span.http.status_code >= 500 }', 'aria-describedby': 'filter-help filter-error',
    });
    f.filterError = h('div', { class: 'field-error', id: 'filter-error', 'data-testid': 'filter-error', role: 'alert', hidden: true });
    f.lookback = h('select', { class: 'input', name: 'lookback', 'data-testid': 'lookback-select' },
      LOOKBACKS.map(([v, text]) => h('option', { value: v }, text)),
      h('option', { value: 'custom' }, 'Custom range…'));
    f.start = h('input', { class: 'input', type: 'datetime-local', step: '1', name: 'start', 'data-testid': 'start-input' });
    f.end = h('input', { class: 'input', type: 'datetime-local', step: '1', name: 'end', 'data-testid': 'end-input' });
    f.minDuration = h('input', { class: 'input', name: 'minDuration', placeholder: 'e.g. 10ms', 'data-testid': 'min-duration', autocomplete: 'off' });
    f.maxDuration = h('input', { class: 'input', name: 'maxDuration', placeholder: 'e.g. 1.5s', 'data-testid': 'max-duration', autocomplete: 'off' });
    f.durationError = h('div', { class: 'field-error', 'data-testid': 'duration-error', role: 'alert', hidden: true });
    f.rangeError = h('div', { class: 'field-error', 'data-testid': 'range-error', role: 'alert', hidden: true });
    f.limit = h('input', { class: 'input', type: 'number', min: '1', max: String(MAX_LIMIT), name: 'limit', value: String(DEFAULT_LIMIT), 'data-testid': 'limit-input' });
    f.submit = h('button', { type: 'submit', class: 'button button-primary button-block', 'data-testid': 'search-button' }, icon('search'), 'Find traces');
    this.f = f;

    this.customRange = h('div', { class: 'custom-range', hidden: true },
      label('Start', f.start), label('End', f.end));
    f.lookback.addEventListener('change', () => {
      const custom = f.lookback.value === 'custom';
      this.customRange.hidden = !custom;
      if (custom && !f.start.value) {
        const now = Date.now();
        f.start.value = toLocalInput(now - 3600e3);
        f.end.value = toLocalInput(now);
      }
    });
    f.service.addEventListener('change', () => this.loadOperations(f.service.value, f.operation.value));

    this.form = h('form', { class: 'search-form', 'data-testid': 'search-form', novalidate: true, 'aria-label': 'Search traces' },
      h('h2', { class: 'form-title' }, 'Search'),
      label('Service', f.service),
      label('Operation', f.operation),
      h('div', { class: 'field' },
        h('label', { class: 'field-label', for: 'filter-box' }, 'Filter ', h('span', { class: 'muted small' }, '(TraceQL)')),
        f.filter,
        f.filterError,
        h('div', { class: 'field-help muted small', id: 'filter-help' },
          h('div', null, 'e.g. ', h('code', null, '{ status = error }')),
          h('div', null, h('code', null, '{ span.http.method = "GET" && duration > 100ms }')),
          h('div', null, h('kbd', null, '/'), ' focuses this box, ', h('kbd', null, 'Enter'), ' searches'))),
      label('Time range', f.lookback),
      this.customRange,
      f.rangeError,
      h('div', { class: 'field-row' }, label('Min duration', f.minDuration), label('Max duration', f.maxDuration)),
      f.durationError,
      label('Limit results', f.limit),
      f.submit);
    this.form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.submit();
    });

    this.sortSelect = h('select', { class: 'input input-small', 'aria-label': 'Sort results', 'data-testid': 'sort-select' },
      SORTS.map(([v, text]) => h('option', { value: v }, text)));
    this.sortSelect.addEventListener('change', () => {
      const url = new URL(location.href);
      if (this.sortSelect.value === 'recent') url.searchParams.delete('sort');
      else url.searchParams.set('sort', this.sortSelect.value);
      this.ctx.navigate(url.pathname + url.search, { replace: true, silent: true });
      this.renderResults();
    });
    this.scatterHost = h('div', { class: 'scatter', 'data-testid': 'scatter-host' });
    this.resultsHead = h('div', { class: 'results-head' });
    this.resultsBody = h('div', { class: 'results-body', 'data-testid': 'results', 'aria-live': 'polite' });
    this.results = h('section', { class: 'results-pane', 'aria-label': 'Results' },
      h('div', { class: 'card scatter-card' }, this.scatterHost),
      this.resultsHead,
      this.resultsBody);
    replace(this.root, h('div', { class: 'search-page', 'data-testid': 'search-page' },
      h('aside', { class: 'card search-side' }, this.form),
      this.results));
    this.onResize = () => {
      clearTimeout(this.resizeTimer);
      this.resizeTimer = setTimeout(() => this.drawPlot(), 120);
    };
    window.addEventListener('resize', this.onResize);
    this.showIntro();
  }

  showIntro() {
    clear(this.scatterHost);
    this.scatterHost.parentNode.hidden = true;
    clear(this.resultsHead);
    replace(this.resultsBody, stateBlock('empty', 'Find traces',
      'Pick a service, an operation or a TraceQL filter, then press Find traces (or Enter).'));
  }

  async loadServices() {
    try {
      const list = await api.services();
      const f = this.f;
      const want = this.pendingService ?? f.service.value;
      clear(f.service).append(h('option', { value: '' }, 'All services'),
        ...list.map((name) => h('option', { value: name }, name)));
      if (want && !list.includes(want)) f.service.append(h('option', { value: want }, want));
      f.service.value = want || '';
      this.servicesLoaded = true;
    } catch (e) {
      this.f.service.title = `Services could not be loaded: ${e.message}`;
    }
  }

  async loadOperations(service, want, keepMissing = false) {
    const f = this.f;
    const token = (this.opToken = (this.opToken || 0) + 1);
    f.operation.disabled = true;
    let names = [];
    try {
      const ops = await api.operations(service);
      names = [...new Set(ops.map((o) => o.name))].sort();
    } catch { /* keep the empty list: "All operations" still works */ }
    if (token !== this.opToken) return;
    clear(f.operation).append(h('option', { value: '' }, 'All operations'),
      ...names.map((n) => h('option', { value: n }, n)));
    if (want && keepMissing && !names.includes(want)) f.operation.append(h('option', { value: want }, want));
    f.operation.value = want && (keepMissing || names.includes(want)) ? want : '';
    f.operation.disabled = false;
  }

  /** Reads the URL into the form; runs the search if the URL has parameters. */
  update(url) {
    const p = url.searchParams;
    const f = this.f;
    const service = p.get('service') || '';
    this.pendingService = service;
    if (service && ![...f.service.options].some((o) => o.value === service)) f.service.append(h('option', { value: service }, service));
    f.service.value = service;
    this.loadOperations(service, p.get('operation') || '', true);
    f.filter.value = p.get('filter') || '';
    f.minDuration.value = p.get('minDuration') || '';
    f.maxDuration.value = p.get('maxDuration') || '';
    f.limit.value = p.get('limit') || String(DEFAULT_LIMIT);
    const sort = p.get('sort') || 'recent';
    this.sortSelect.value = SORTS.some(([v]) => v === sort) ? sort : 'recent';
    const start = parseTime(p.get('start'));
    const end = parseTime(p.get('end'));
    if (p.has('start') || p.has('end')) {
      f.lookback.value = 'custom';
      f.start.value = Number.isFinite(start) ? toLocalInput(start) : '';
      f.end.value = Number.isFinite(end) ? toLocalInput(end) : '';
    } else {
      const lb = p.get('lookback') || '1h';
      f.lookback.value = LOOKBACKS.some(([v]) => v === lb) ? lb : '1h';
    }
    this.customRange.hidden = f.lookback.value !== 'custom';
    this.ctx.setTitle('Search');
    this.setFilterError(null);
    if (PARAMS.some((k) => p.has(k))) this.run(url);
    else this.showIntro();
    return true;
  }

  /** The form as URL parameters (only what differs from the defaults). */
  formParams() {
    const f = this.f;
    const p = new URLSearchParams();
    if (f.service.value) p.set('service', f.service.value);
    if (f.operation.value) p.set('operation', f.operation.value);
    if (f.filter.value.trim()) p.set('filter', f.filter.value.trim());
    if (f.lookback.value === 'custom') {
      const s = Date.parse(f.start.value);
      const e = Date.parse(f.end.value);
      if (Number.isFinite(s)) p.set('start', new Date(s).toISOString());
      if (Number.isFinite(e)) p.set('end', new Date(e).toISOString());
    } else {
      p.set('lookback', f.lookback.value);
    }
    if (f.minDuration.value.trim()) p.set('minDuration', f.minDuration.value.trim());
    if (f.maxDuration.value.trim()) p.set('maxDuration', f.maxDuration.value.trim());
    if (f.limit.value && Number(f.limit.value) !== DEFAULT_LIMIT) p.set('limit', String(f.limit.value));
    if (this.sortSelect.value !== 'recent') p.set('sort', this.sortSelect.value);
    return p;
  }

  submit() {
    const target = `/search?${this.formParams()}`;
    const here = location.pathname + location.search;
    this.ctx.navigate(target, { replace: target === here, silent: true });
    this.run(new URL(target, location.origin));
  }

  setFilterError(message, filterText) {
    const el = this.f.filterError;
    if (!message) {
      el.hidden = true;
      clear(el);
      this.f.filter.removeAttribute('aria-invalid');
      return;
    }
    const col = errorColumn(message);
    const children = [h('div', { class: 'field-error-text' }, icon('alert'), h('span', null, message))];
    if (col && filterText) {
      const chars = Array.from(filterText);
      const from = Math.max(0, col - 40);
      children.push(h('pre', { class: 'caret-line', 'aria-hidden': 'true' },
        chars.slice(from, col + 40).join(''), '\n', `${' '.repeat(col - 1 - from)}^`));
    }
    replace(el, ...children);
    el.hidden = false;
    this.f.filter.setAttribute('aria-invalid', 'true');
  }

  setFieldError(el, message) {
    el.hidden = !message;
    replace(el, message ? [icon('alert'), h('span', null, message)] : []);
  }

  /** Runs the search described by `url`'s parameters. */
  async run(url) {
    const p = url.searchParams;
    const service = p.get('service') || '';
    const operation = p.get('operation') || '';
    const filter = p.get('filter') || '';
    const minRaw = p.get('minDuration') || '';
    const maxRaw = p.get('maxDuration') || '';
    const minDuration = minRaw ? normalizeDuration(minRaw) : '';
    const maxDuration = maxRaw ? normalizeDuration(maxRaw) : '';
    this.setFilterError(null);
    this.setFieldError(this.f.durationError, null);
    this.setFieldError(this.f.rangeError, null);
    if (minDuration === null || maxDuration === null) {
      this.setFieldError(this.f.durationError, `"${minDuration === null ? minRaw : maxRaw}" is not a duration: write a number and a unit (ns, us, ms, s, m, h), e.g. 150ms or 1.5s.`);
      this.showError('Fix the form', 'A duration is not valid.');
      return;
    }
    let start;
    let end;
    if (p.has('start') || p.has('end')) {
      end = p.has('end') ? parseTime(p.get('end')) : Date.now();
      start = p.has('start') ? parseTime(p.get('start')) : end - 3600e3;
      if (!Number.isFinite(start) || !Number.isFinite(end) || start >= end) {
        this.setFieldError(this.f.rangeError, 'The start must be a valid time before the end.');
        this.showError('Fix the form', 'The time range is not valid.');
        return;
      }
    } else {
      const lb = LOOKBACKS.find(([v]) => v === (p.get('lookback') || '1h')) || LOOKBACKS[1];
      end = Date.now();
      start = end - lb[2];
    }
    const limit = Math.min(MAX_LIMIT, Math.max(1, Math.floor(Number(p.get('limit')) || DEFAULT_LIMIT)));
    const built = buildFilter({ service, operation, minDuration, maxDuration, filter });
    const body = {
      start: new Date(start).toISOString(),
      end: new Date(end).toISOString(),
      filter: built.text,
      limit,
      order: 'newest',
    };
    this.window = [start, end];

    if (this.abort) this.abort.abort();
    const abort = (this.abort = new AbortController());
    this.setBusy(true);
    const t0 = performance.now();
    try {
      const { traces, last } = await api.queryTraces(body, { signal: abort.signal });
      if (abort.signal.aborted) return;
      this.traces = traces;
      this.last = last;
      this.body = body;
      this.elapsed = performance.now() - t0;
      this.renderResults();
    } catch (e) {
      if (e.name === 'AbortError' || abort.signal.aborted) return;
      if (e instanceof api.ApiError && e.status === 400 && /^filter/.test(e.message)) {
        await this.explainFilterError(e.message, built, filter, start);
      } else if (e instanceof api.ApiError && e.status === 429) {
        this.showError('The server is busy', `Too many searches are running; try again${e.retryAfter ? ` in ${e.retryAfter} s` : ' in a moment'}.`);
      } else {
        this.showError('The search failed', e.message);
      }
    } finally {
      if (this.abort === abort) this.setBusy(false);
    }
  }

  /**
   * Shows a filter parse error under the filter box with the column in the
   * user's own text: if the user's filter alone fails the same way (asked
   * over a 1-ms window so nothing is searched), its message is used;
   * otherwise the column of the combined filter is shifted back.
   */
  async explainFilterError(message, built, filter, start) {
    let shown = message;
    if (built.generated && filter.trim()) {
      try {
        await api.queryTraces({ filter, start: new Date(start).toISOString(), end: new Date(start + 1).toISOString(), limit: 1 });
        const col = errorColumn(message);
        if (col && col > built.userOffset) shown = shiftColumn(message, built.userOffset);
      } catch (e2) {
        if (e2 instanceof api.ApiError && e2.status === 400) shown = e2.message;
      }
    }
    this.setFilterError(shown, filter);
    this.showError('The filter is not valid', 'See the message under the filter box.');
  }

  setBusy(busy) {
    this.f.submit.disabled = busy;
    this.f.submit.classList.toggle('busy', busy);
    if (busy) {
      clear(this.resultsHead);
      replace(this.resultsBody, stateBlock('loading', 'Searching…'));
    }
  }

  showError(title, detail) {
    clear(this.scatterHost);
    this.scatterHost.parentNode.hidden = true;
    clear(this.resultsHead);
    replace(this.resultsBody, stateBlock('error', title, detail));
  }

  openTrace(id) {
    this.ctx.navigate(`/trace/${id}`);
  }

  drawPlot() {
    if (!this.traces.length) return;
    drawScatter(this.scatterHost, this.traces, (id) => this.openTrace(id));
  }

  async loadMore(button) {
    if (!this.last || !this.last.nextCursor) return;
    button.disabled = true;
    button.textContent = 'Loading…';
    try {
      const { traces, last } = await api.queryTraces({ cursor: this.last.nextCursor, filter: this.body.filter, limit: this.body.limit });
      this.traces = this.traces.concat(traces);
      this.last = last;
      this.renderResults();
    } catch (e) {
      button.disabled = false;
      button.textContent = `Load more (failed: ${e.message})`;
    }
  }

  renderResults() {
    const traces = this.traces;
    const last = this.last || {};
    if (!traces.length) {
      this.scatterHost.parentNode.hidden = true;
      clear(this.scatterHost);
      clear(this.resultsHead);
      replace(this.resultsBody, stateBlock('empty', 'No trace found',
        'No trace in this time range matches. Widen the time range, or loosen the filter.'));
      return;
    }
    this.scatterHost.parentNode.hidden = false;
    this.drawPlot();
    const stats = last.stats || {};
    replace(this.resultsHead,
      h('div', { class: 'results-count' },
        h('strong', { 'data-testid': 'result-count' }, plural(traces.length, 'trace')),
        h('span', { class: 'muted small' }, ` · ${Math.round(this.elapsed || stats.elapsedMs || 0)} ms`),
        last.nextCursor ? h('span', { class: 'muted small' }, ' · more available') : null,
        stats.stopped ? h('span', { class: 'text-warn small' }, ` · stopped early (${stats.stopped})`) : null),
      h('label', { class: 'sort' }, h('span', { class: 'muted small' }, 'Sort'), this.sortSelect));

    const maxDur = Math.max(...traces.map((t) => t.summary.duration || 0)) || 1;
    const now = Date.now();
    const list = h('ol', { class: 'results', 'data-testid': 'result-list' },
      sortTraces(traces, this.sortSelect.value).map((t) => resultRow(t, maxDur, now)));
    const more = last.nextCursor
      ? h('button', { type: 'button', class: 'button', 'data-testid': 'load-more' }, 'Load more')
      : null;
    if (more) more.addEventListener('click', () => this.loadMore(more));
    replace(this.resultsBody, list, more ? h('div', { class: 'load-more' }, more) : null);
  }

  focusFilter() {
    this.f.filter.focus();
    this.f.filter.select();
    return true;
  }
}
