// colors.js — a stable colour per service name: a hash of the name picks one
// of a fixed palette of 20 colours chosen to read well on light and dark backgrounds.

const PALETTE = [
  '#7950f2', '#12b886', '#82c91e', '#228be6', '#40c057', '#4c6ef5', '#c2255c', '#0b7285', '#e8590c', '#fd7e14',
  '#5f3dc4', '#2f9e44', '#1864ab', '#15aabf', '#b197fc', '#66a80f', '#099268', '#e64980', '#f59f00', '#be4bdb',
];

const cache = new Map();

/** FNV-1a over the UTF-16 code units of the name. */
function hash(text) {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** The colour of a service (same name, same colour, on every page and every run). */
export function serviceColor(name) {
  const key = String(name ?? '');
  let c = cache.get(key);
  if (!c) {
    c = PALETTE[hash(key) % PALETTE.length];
    cache.set(key, c);
  }
  return c;
}
