// dom.js: build the page from elements, never from HTML strings. h() sets
// text with text nodes and attributes with setAttribute, so text from the
// database (message bodies, names, subjects) can never become markup.
// Also the time and duration formats: every time is shown in WITA.

const SVG_NS = 'http://www.w3.org/2000/svg';

// Append children (strings become text nodes; null and false are skipped).
function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// Set attributes: on* functions become listeners, booleans toggle, the rest are text.
function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'value' && 'value' in el) el.value = v;
    else if (k === 'checked' || k === 'selected') el[k] = !!v;
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  return el;
}

// An HTML element: h('button', {class: 'x', onclick: f}, 'text', child).
export function h(tag, attrs, ...children) {
  return append(setAttrs(document.createElement(tag), attrs), children);
}

// An SVG element (charts).
export function s(tag, attrs, ...children) {
  return append(setAttrs(document.createElementNS(SVG_NS, tag), attrs), children);
}

// Replace every child of el.
export function fill(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

const WITA = 'Asia/Makassar';
const fmtCache = new Map();

function fmt(lang, opts) {
  const key = lang + JSON.stringify(opts);
  if (!fmtCache.has(key)) {
    fmtCache.set(key, new Intl.DateTimeFormat(lang === 'en' ? 'en-GB' : 'id-ID', { timeZone: WITA, ...opts }));
  }
  return fmtCache.get(key);
}

// "28/11/2026 10.05 WITA": a timestamp in WITA.
export function fmtTime(iso, lang) {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return fmt(lang, { dateStyle: 'short', timeStyle: 'short' }).format(d) + ' WITA';
}

// "10.05": the time of day in WITA, for messages of today.
export function fmtClock(iso, lang) {
  if (!iso) return '';
  return fmt(lang, { hour: '2-digit', minute: '2-digit' }).format(new Date(iso));
}

// "3 j 5 mnt" / "3 h 5 min": a duration in seconds, short.
export function fmtDuration(sec, lang) {
  if (sec === null || sec === undefined || Number.isNaN(Number(sec))) return '–';
  sec = Math.max(0, Math.round(Number(sec)));
  const d = Math.floor(sec / 86400), hr = Math.floor((sec % 86400) / 3600);
  const m = Math.floor((sec % 3600) / 60);
  const u = lang === 'en' ? ['d', 'h', 'min', 's'] : ['hr', 'j', 'mnt', 'dtk'];
  if (d) return `${d} ${u[0]} ${hr} ${u[1]}`;
  if (hr) return `${hr} ${u[1]} ${m} ${u[2]}`;
  if (m) return `${m} ${u[2]}`;
  return `${sec} ${u[3]}`;
}

// Seconds since an ISO time (null if none).
export function secondsSince(iso) {
  if (!iso) return null;
  return (Date.now() - new Date(iso).getTime()) / 1000;
}

// Show a short message in the live region (errors and confirmations).
export function toast(text, bad = false) {
  const el = document.getElementById('toast');
  el.textContent = text;
  el.classList.toggle('bad', bad);
  el.classList.add('show');
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => el.classList.remove('show'), 5000);
}
