// app.js — the entry point of weft's web UI: routes the URL to a page
// (/ and /search → search, /trace/<id> → trace), keeps the URL and the page
// in step (history.pushState and popstate), handles in-app links, the
// header's trace-ID box and the global "/" shortcut.

import { h, replace, stateBlock } from './dom.js';
import { SearchPage } from './search.js';
import { TracePage } from './trace.js';

const root = document.getElementById('app');
const navSearch = document.querySelector('[data-testid="nav-search"]');
let page = null;
let kind = null;

function routeOf(url) {
  const p = url.pathname;
  if (p === '/' || p === '/search' || p === '/search/') return 'search';
  if (p.startsWith('/trace/') && p.length > '/trace/'.length) return 'trace';
  return 'missing';
}

const ctx = {
  /** Goes to `path`; `replace` edits the current history entry; `silent` only updates the URL. */
  navigate(path, { replace: rep = false, silent = false } = {}) {
    if (rep) history.replaceState(null, '', path);
    else history.pushState(null, '', path);
    rememberSearch();
    if (!silent) render();
  },
  setTitle(text) {
    document.title = text ? `${text} · weft` : 'weft';
  },
};

/** The header's "Search" link goes back to the last search run. */
function rememberSearch() {
  if (routeOf(new URL(location.href)) === 'search' && location.search) {
    try { sessionStorage.setItem('weft.lastSearch', location.pathname + location.search); } catch { /* private mode */ }
  }
  let last = null;
  try { last = sessionStorage.getItem('weft.lastSearch'); } catch { /* ignore */ }
  if (navSearch) navSearch.setAttribute('href', last || '/search');
}

function render() {
  const url = new URL(location.href);
  const next = routeOf(url);
  if (navSearch) navSearch.classList.toggle('active', next === 'search');
  if (page && kind === next && page.update && page.update(url)) return;
  if (page) page.destroy();
  page = null;
  kind = next;
  if (next === 'search') page = new SearchPage(root, ctx, url);
  else if (next === 'trace') page = new TracePage(root, ctx, url);
  else {
    ctx.setTitle('Not found');
    replace(root, h('div', { class: 'page-state' }, stateBlock('error', 'Page not found',
      `Nothing lives at ${url.pathname}.`, h('div', { class: 'state-actions' }, h('a', { href: '/search', class: 'button' }, 'Go to search')))));
  }
  rememberSearch();
}

// In-app links: plain left clicks on same-origin /search and /trace/ links change the page without a reload.
document.addEventListener('click', (e) => {
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const a = e.target.closest && e.target.closest('a[href]');
  if (!a || a.hasAttribute('download') || (a.target && a.target !== '_self')) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || routeOf(url) === 'missing') return;
  e.preventDefault();
  if (url.pathname + url.search !== location.pathname + location.search) ctx.navigate(url.pathname + url.search);
});

window.addEventListener('popstate', render);

// The header's trace-ID box.
const jump = document.querySelector('[data-testid="trace-jump"]');
if (jump) {
  const input = jump.querySelector('input');
  jump.addEventListener('submit', (e) => {
    e.preventDefault();
    const id = input.value.trim().toLowerCase().replace(/^0x/, '');
    if (!/^[0-9a-f]{16}$|^[0-9a-f]{32}$/.test(id)) {
      input.setCustomValidity('A trace ID is 32 hexadecimal digits (or 16).');
      input.reportValidity();
      return;
    }
    input.setCustomValidity('');
    input.value = '';
    input.blur();
    ctx.navigate(`/trace/${id}`);
  });
  input.addEventListener('input', () => input.setCustomValidity(''));
}

// "/" focuses the page's filter box (search) or find box (trace).
document.addEventListener('keydown', (e) => {
  if (e.key !== '/' || e.ctrlKey || e.metaKey || e.altKey) return;
  const t = e.target;
  if (t && (t.tagName === 'INPUT' || t.tagName === 'TEXTAREA' || t.tagName === 'SELECT' || t.isContentEditable)) return;
  if (page && page.focusFilter && page.focusFilter()) e.preventDefault();
});

render();
