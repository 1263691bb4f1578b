// api.js: the JSON API under /api/v1. The session cookie goes by itself
// (HttpOnly, SameSite=Strict); every state-changing request also carries
// the session's CSRF token, which login returned and sessionStorage keeps
// for the tab. A 401 sends the page back to the login form.

const CSRF_KEY = 'linbat.csrf';
let onUnauthorized = () => {};

export class ApiError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(e.detail || e.message || `HTTP ${status}`);
    this.status = status;
    this.code = e.code || 'http_' + status;
    this.userMessage = e.message || '';
  }
}

export function setUnauthorizedHandler(fn) {
  onUnauthorized = fn;
}

export function csrfToken() {
  return sessionStorage.getItem(CSRF_KEY) || '';
}

export function setCsrfToken(t) {
  if (t) sessionStorage.setItem(CSRF_KEY, t);
  else sessionStorage.removeItem(CSRF_KEY);
}

// One request: method, path (under /api/v1), JSON body or undefined.
export async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (method !== 'GET' && method !== 'HEAD') headers['X-CSRF-Token'] = csrfToken();
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const r = await fetch('/api/v1' + path, {
    method, headers, credentials: 'same-origin', cache: 'no-store',
    body: body !== undefined ? JSON.stringify(body) : undefined,
  });
  let data = null;
  if (r.status !== 204) {
    const text = await r.text();
    try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  }
  if (!r.ok) {
    const err = new ApiError(r.status, data);
    if (r.status === 401 && path !== '/login') onUnauthorized();
    throw err;
  }
  return data;
}

export const get = (p) => api('GET', p);
export const post = (p, b) => api('POST', p, b === undefined ? {} : b);
export const put = (p, b) => api('PUT', p, b);
export const patch = (p, b) => api('PATCH', p, b);
export const del = (p) => api('DELETE', p);

// A query string from an object, leaving out empty values.
export function qs(params) {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') u.set(k, v);
  const s = u.toString();
  return s ? '?' + s : '';
}

// The live feed: calls fn(type, data) for each event; reconnects by itself.
export function events(fn, onState) {
  const es = new EventSource('/api/v1/events');
  const types = ['hello', 'message', 'status', 'attachment', 'assignment', 'conversation', 'presence',
    'sla_breach', 'reset'];
  for (const t of types) {
    es.addEventListener(t, (e) => {
      let data = {};
      try { data = JSON.parse(e.data); } catch { /* a comment or an empty frame */ }
      fn(t, data);
    });
  }
  es.onopen = () => onState && onState(true);
  es.onerror = () => onState && onState(false);
  return es;
}
