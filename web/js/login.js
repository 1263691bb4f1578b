// login.js: the login form. A failed login says so without saying which of
// the two fields was wrong.

import { h, fill } from './dom.js';
import { t, getLang, setLang } from './i18n.js';
import { api } from './api.js';

export function renderLogin(main, { onLogin }) {
  const err = h('p', { class: 'error', role: 'alert', id: 'login-error' });
  const email = h('input', { id: 'email', name: 'email', type: 'email', autocomplete: 'username', required: true });
  const password = h('input', { id: 'password', name: 'password', type: 'password',
    autocomplete: 'current-password', required: true });
  const submit = h('button', { type: 'submit' }, t('login'));
  const form = h('form', { class: 'login', 'aria-labelledby': 'login-title', onsubmit: async (e) => {
    e.preventDefault();
    err.textContent = '';
    submit.disabled = true;
    try {
      const answer = await api('POST', '/login', { email: email.value, password: password.value });
      await onLogin(answer);
    } catch (ex) {
      err.textContent = ex.status === 429 ? t('login_throttled') : ex.status === 401 ? t('login_failed')
        : t('error', { msg: ex.message });
      submit.disabled = false;
      password.focus();
    }
  } },
  h('h1', { id: 'login-title' }, t('login_title')),
  h('label', { for: 'email' }, t('email')), email,
  h('label', { for: 'password' }, t('password')), password,
  err, submit,
  h('button', { type: 'button', class: 'link', id: 'lang', onclick: () => {
    setLang(getLang() === 'id' ? 'en' : 'id');
    renderLogin(main, { onLogin });
  } }, t('lang_switch')));
  fill(main, form);
  email.focus();
  return {};
}
