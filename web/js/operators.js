// operators.js: the managers' view of the team: presence, capacity and
// current load of each operator (with the queue), capacity changed in place,
// and a form to add an operator. Live presence and assignment events
// refresh it.

import { h, fill, fmtTime, toast } from './dom.js';
import { t, getLang } from './i18n.js';
import { get, post, patch } from './api.js';

export function renderOperators(main, ctx) {
  const lang = getLang();
  const body = h('tbody', {});
  const queue = h('p', { class: 'queue', id: 'queue' });

  async function load() {
    let ops, q = null;
    try {
      const r = await get('/operators/load');
      ops = r.operators;
      q = r.queue;
    } catch {
      try {
        ops = (await get('/operators')).operators;
      } catch (e) {
        return toast(t('error', { msg: e.message }), true);
      }
    }
    queue.textContent = q ? t('queue', { n: q.waiting }) + (q.oldest_waiting_since ? ' · ' + fmtTime(q.oldest_waiting_since, lang) : '') : '';
    fill(body, ops.map((o) => {
      const cap = h('input', { type: 'number', min: 0, max: 1000, value: o.capacity, class: 'narrow',
        id: 'cap-' + o.id, 'aria-label': t('capacity') + ' ' + o.name });
      const pct = o.capacity ? Math.min(100, Math.round(100 * o.open / o.capacity)) : 0;
      return h('tr', { dataset: { id: o.id } },
        h('th', { scope: 'row' }, o.name, h('div', { class: 'hint' }, o.email || '')),
        h('td', {}, t('role_' + o.role)),
        h('td', {}, h('span', { class: 'dot ' + o.presence }), ' ', t('presence_' + o.presence), o.disabled ? ' · ' + t('disabled') : ''),
        h('td', {}, h('form', { class: 'inline', onsubmit: async (e) => {
          e.preventDefault();
          try {
            await patch('/operators/' + o.id, { capacity: Number(cap.value) });
            toast(t('saved'));
            load();
          } catch (ex) {
            toast(t('error', { msg: ex.message }), true);
          }
        } }, cap, h('button', { type: 'submit', class: 'small' }, t('save')))),
        h('td', {}, h('span', { class: 'loadbar', role: 'img', 'aria-label': `${o.open}/${o.capacity}` },
          h('span', { class: 'fill' + (pct >= 100 ? ' full' : ''), dataset: { pct } })), ` ${o.open}/${o.capacity}`));
    }));
    // widths through the CSSOM: the CSP forbids style attributes, not this
    for (const f of body.querySelectorAll('.loadbar .fill')) f.style.width = f.dataset.pct + '%';
  }

  const email = h('input', { id: 'op-email', type: 'email', required: true });
  const name = h('input', { id: 'op-name', required: true });
  const password = h('input', { id: 'op-password', type: 'password', minlength: 8, required: true, autocomplete: 'new-password' });
  const role = h('select', { id: 'op-role' }, ['operator', 'manager'].map((r) => h('option', { value: r }, t('role_' + r))));
  const capacity = h('input', { id: 'op-capacity', type: 'number', min: 0, value: 5 });
  const add = h('form', { class: 'editor compact', onsubmit: async (e) => {
    e.preventDefault();
    try {
      await post('/operators', { email: email.value, name: name.value, password: password.value, role: role.value,
        capacity: Number(capacity.value) });
      toast(t('saved'));
      add.reset();
      load();
    } catch (ex) {
      toast(t('error', { msg: ex.message }), true);
    }
  } }, h('h2', {}, t('new_operator')),
  ...[['op-name', 'name', name], ['op-email', 'email', email], ['op-password', 'password', password],
    ['op-role', 'role', role], ['op-capacity', 'capacity', capacity]]
    .map(([id, k, el]) => h('div', { class: 'field' }, h('label', { for: id }, t(k)), el)),
  h('button', { type: 'submit', class: 'primary' }, t('add')));

  fill(main, h('div', { class: 'page' },
    h('header', { class: 'page-head' }, h('h1', {}, t('operators')), h('span', { class: 'spacer' }), queue),
    h('table', { class: 'grid', id: 'operators' },
      h('thead', {}, h('tr', {}, ['name', 'role', 'presence', 'capacity', 'load'].map((k) => h('th', { scope: 'col' }, t(k))))),
      body),
    add));
  load();
  let timer = null;
  return {
    onEvent(type) {
      if (['presence', 'assignment', 'conversation'].includes(type)) {
        clearTimeout(timer);
        timer = setTimeout(load, 300);
      }
    },
    destroy() { clearTimeout(timer); },
  };
}
