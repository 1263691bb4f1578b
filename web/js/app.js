// app.js: the page's entry point. It finds who is logged in, draws the top
// bar (navigation, presence, language, logout), routes on location.hash to
// one view at a time, and feeds the live events (SSE) to the view shown.

import { h, fill, toast } from './dom.js';
import { t, getLang, setLang } from './i18n.js';
import { get, put, post, events, setCsrfToken, csrfToken, setUnauthorizedHandler } from './api.js';
import { renderLogin } from './login.js';
import { renderInbox } from './inbox.js';
import { renderCampaigns, renderCampaignEditor, renderDashboard } from './campaigns.js';
import { renderOperators } from './operators.js';
import { renderReports } from './reports.js';
import { renderQuickReplies } from './quick.js';

const ctx = { me: null, view: null, es: null, live: false };

const ROUTES = [
  [/^#\/inbox(?:\/(\d+))?$/, renderInbox, 'operator'],
  [/^#\/campaigns$/, renderCampaigns, 'manager'],
  [/^#\/campaigns\/(new|\d+)$/, renderCampaignEditor, 'manager'],
  [/^#\/campaigns\/(\d+)\/dashboard$/, renderDashboard, 'manager'],
  [/^#\/operators$/, renderOperators, 'manager'],
  [/^#\/reports$/, renderReports, 'manager'],
  [/^#\/quick-replies$/, renderQuickReplies, 'manager'],
];

const RANK = { operator: 1, manager: 2, admin: 3 };

export function isManager() {
  return ctx.me && RANK[ctx.me.role] >= RANK.manager;
}

export function navigate(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

// Who is logged in, or null (the cookie may still be valid after a reload,
// but without the CSRF token the tab cannot change anything: log in again).
async function whoAmI() {
  if (!csrfToken()) return null;
  try {
    return await get('/me');
  } catch {
    return null;
  }
}

function startEvents() {
  if (ctx.es) return;
  ctx.es = events((type, data) => {
    if (type === 'presence' && ctx.me && data.operator === ctx.me.id) {
      ctx.me.presence = data.presence;
      drawTop();
    }
    if (ctx.view && ctx.view.onEvent) ctx.view.onEvent(type, data);
  }, (up) => {
    ctx.live = up;
    const el = document.getElementById('live');
    if (el) {
      el.textContent = up ? t('live_on') : t('live_off');
      el.classList.toggle('off', !up);
    }
  });
}

function stopEvents() {
  if (ctx.es) ctx.es.close();
  ctx.es = null;
}

async function setPresence(p) {
  try {
    await put('/me/presence', { presence: p });
    ctx.me.presence = p;
  } catch (e) {
    toast(t('error', { msg: e.message }), true);
  }
  drawTop();
}

async function logout() {
  try { await post('/logout'); } catch { /* the session may already be gone */ }
  setCsrfToken(null);
  ctx.me = null;
  stopEvents();
  navigate('#/login');
}

function drawTop() {
  const top = document.getElementById('top');
  if (!ctx.me) {
    top.hidden = true;
    fill(top);
    return;
  }
  const here = location.hash.split('/')[1] || 'inbox';
  const link = (key, name) => h('a', { href: '#/' + key, 'aria-current': here === key ? 'page' : null }, t(name));
  const links = [link('inbox', 'nav_inbox')];
  if (isManager()) {
    links.push(link('campaigns', 'nav_campaigns'), link('operators', 'nav_operators'), link('reports', 'nav_reports'),
      link('quick-replies', 'nav_quick'));
  }
  const presence = h('select', { id: 'presence', 'aria-label': t('presence'),
    onchange: (e) => setPresence(e.target.value) },
  ['online', 'away', 'offline'].map((p) => h('option', { value: p, selected: ctx.me.presence === p }, t('presence_' + p))));
  top.hidden = false;
  fill(top,
    h('span', { class: 'brand' }, 'linbat'),
    h('nav', { 'aria-label': t('nav') }, links),
    h('span', { class: 'spacer' }),
    h('span', { id: 'live', class: 'live' + (ctx.live ? '' : ' off') }, ctx.live ? t('live_on') : t('live_off')),
    h('label', { class: 'presence', for: 'presence' }, h('span', { class: 'dot ' + ctx.me.presence }), h('span', { class: 'who' }, ctx.me.name)),
    presence,
    h('button', { type: 'button', id: 'lang', 'aria-label': t('lang_switch_label'),
      onclick: () => { setLang(getLang() === 'id' ? 'en' : 'id'); drawTop(); route(); } }, t('lang_switch')),
    h('button', { type: 'button', id: 'logout', onclick: logout }, t('logout')));
}

async function route() {
  const main = document.getElementById('main');
  if (ctx.view && ctx.view.destroy) ctx.view.destroy();
  ctx.view = null;
  const hash = location.hash || '#/inbox';
  if (!ctx.me || hash === '#/login') {
    if (ctx.me && hash === '#/login') return navigate('#/inbox');
    drawTop();
    ctx.view = renderLogin(main, { onLogin: loggedIn });
    return;
  }
  drawTop();
  for (const [re, fn, least] of ROUTES) {
    const m = hash.match(re);
    if (!m) continue;
    if (RANK[ctx.me.role] < RANK[least]) {
      fill(main, h('p', { class: 'empty' }, t('forbidden')));
      return;
    }
    ctx.view = fn(main, { me: ctx.me, navigate, isManager }, m.slice(1));
    return;
  }
  fill(main, h('p', { class: 'empty' }, t('not_found_page')));
}

async function loggedIn(answer) {
  setCsrfToken(answer.csrf_token);
  ctx.me = await get('/me');
  startEvents();
  navigate(location.hash && location.hash !== '#/login' ? location.hash : '#/inbox');
}

setUnauthorizedHandler(() => {
  if (!ctx.me) return;
  ctx.me = null;
  setCsrfToken(null);
  stopEvents();
  toast(t('csrf_lost'), true);
  navigate('#/login');
});

window.addEventListener('hashchange', route);
(async () => {
  ctx.me = await whoAmI();
  if (ctx.me) startEvents();
  await route();
})();
