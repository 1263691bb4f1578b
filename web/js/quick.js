// quick.js: the managers' quick replies ("balasan cepat"): the list, a form
// to add one, and delete. Operators insert them from the reply box.

import { h, fill, toast } from './dom.js';
import { t } from './i18n.js';
import { get, post, del } from './api.js';

export function renderQuickReplies(main) {
  const body = h('tbody', {});
  async function load() {
    try {
      const r = await get('/quick-replies');
      fill(body, r.quick_replies.length ? r.quick_replies.map((q) => h('tr', { dataset: { id: q.id } },
        h('td', {}, '/' + q.shortcut), h('td', {}, q.title), h('td', { class: 'pre' }, q.body), h('td', {}, q.language || ''),
        h('td', {}, h('button', { type: 'button', class: 'small', onclick: async () => {
          try {
            await del('/quick-replies/' + q.id);
            load();
          } catch (e) {
            toast(t('error', { msg: e.message }), true);
          }
        } }, t('delete')))))
        : h('tr', {}, h('td', { colspan: 5, class: 'empty' }, t('quick_none'))));
    } catch (e) {
      fill(body, h('tr', {}, h('td', { colspan: 5, class: 'empty' }, t('rep_unavailable', { reason: e.message }))));
    }
  }
  const shortcut = h('input', { id: 'q-shortcut', required: true, pattern: '[a-z0-9_\\-]{1,32}', placeholder: 'salam' });
  const title = h('input', { id: 'q-title', required: true, maxlength: 100 });
  const text = h('textarea', { id: 'q-body', required: true, rows: 3, maxlength: 4096 });
  const language = h('select', { id: 'q-language' }, h('option', { value: 'id' }, 'Indonesia'), h('option', { value: 'en' }, 'English'));
  const form = h('form', { class: 'editor compact', onsubmit: async (e) => {
    e.preventDefault();
    try {
      await post('/quick-replies', { shortcut: shortcut.value, title: title.value, body: text.value, language: language.value });
      form.reset();
      toast(t('saved'));
      load();
    } catch (ex) {
      toast(t('error', { msg: ex.message }), true);
    }
  } }, h('h2', {}, t('new_quick')),
  [['q-shortcut', 'shortcut', shortcut], ['q-title', 'title', title], ['q-body', 'body', text], ['q-language', 'language', language]]
    .map(([id, k, el]) => h('div', { class: 'field' }, h('label', { for: id }, t(k)), el)),
  h('button', { type: 'submit', class: 'primary' }, t('add')));
  fill(main, h('div', { class: 'page' }, h('h1', {}, t('quick_replies')),
    h('table', { class: 'grid', id: 'quick-replies' },
      h('thead', {}, h('tr', {}, ['shortcut', 'title', 'body', 'language', 'actions'].map((k) => h('th', { scope: 'col' }, t(k))))),
      body),
    form));
  load();
  return {};
}
