// boot.js — a classic script run first thing in <head>, before the app's
// modules have loaded: on a /trace/<id> URL it starts fetching the trace at
// once, so the download overlaps module loading (api.js's getTrace takes the
// request over). Not a module, so that nothing delays it.

const m = /^\/trace\/([0-9a-fA-F]{16}|[0-9a-fA-F]{32})\/?$/.exec(location.pathname);
if (m) {
  const id = m[1].toLowerCase();
  window.weftPrefetch = {
    id,
    // High priority: it goes ahead of the module requests competing for the 6 connections.
    response: fetch(`/weft/v1/traces/${id}`, { headers: { Accept: 'application/json' }, priority: 'high' }),
  };
  // A rejected fetch is handled by whoever takes it; do not report it twice.
  window.weftPrefetch.response.catch(() => {});
}
