// reports.js: the managers' reports, each a table of the API's rows with a
// CSV link of the same rows: first-response and resolution times (median
// and p90), satisfaction as the office's IKM, and the investors who have not
// filed LKPM per period. A report the server does not offer yet says so.

import { h, fill, fmtDuration } from './dom.js';
import { t, getLang } from './i18n.js';
import { get, qs } from './api.js';

const WITA_DAY = new Intl.DateTimeFormat('en-CA', { timeZone: 'Asia/Makassar' });

function day(offsetDays) {
  return WITA_DAY.format(new Date(Date.now() + offsetDays * 86400000));
}

// One report: title, path, its parameter inputs, and how to show a cell.
function reportSection(key, title, path, inputs, cell) {
  const out = h('div', { class: 'report-body', id: 'report-' + key });
  const csv = h('a', { class: 'button small', download: key + '.csv', id: 'csv-' + key }, t('csv'));
  const params = () => Object.fromEntries(inputs.map(([name, el]) => [name, el.value]));
  async function load() {
    csv.href = '/api/v1' + path + '.csv' + qs(params());
    try {
      const r = await get(path + qs(params()));
      const cols = r.columns || (r.rows && r.rows[0] ? Object.keys(r.rows[0]) : []);
      fill(out, (r.rows || []).length === 0 ? h('p', { class: 'empty' }, t('no_sends')) : h('table', { class: 'grid' },
        h('thead', {}, h('tr', {}, cols.map((c) => h('th', { scope: 'col' }, t(c) === c ? c.replace(/_/g, ' ') : t(c))))),
        h('tbody', {}, r.rows.map((row) => h('tr', {}, cols.map((c) => h('td', {}, cell(c, row[c]))))))),
      r.summary ? h('ul', { class: 'summary' }, r.summary.map((s) =>
        h('li', {}, `${s.period}: ${t('obliged')} ${s.obliged}, ${t('filed')} ${s.filed}, ${t('not_filed')} ${s.unfiled}`))) : null);
    } catch (e) {
      fill(out, h('p', { class: 'empty' }, t('rep_unavailable', { reason: e.message })));
    }
  }
  const form = h('form', { class: 'inline', onsubmit: (e) => { e.preventDefault(); load(); } },
    inputs.map(([name, el]) => { el.id = key + '-' + name; return [h('label', { for: el.id }, t(name)), el]; }),
    h('button', { type: 'submit' }, t('show')), csv);
  load();
  return h('section', { class: 'report', 'aria-labelledby': key + '-h' }, h('h2', { id: key + '-h' }, title), form, out);
}

export function renderReports(main) {
  const lang = getLang();
  const range = () => [['from', h('input', { type: 'date', value: day(-30) })], ['to', h('input', { type: 'date', value: day(0) })]];
  const plain = (c, v) => (v === null || v === undefined ? '–' : String(v));
  const durations = (c, v) => (/_s$/.test(c) ? fmtDuration(v, lang) : plain(c, v));
  fill(main, h('div', { class: 'page' }, h('h1', {}, t('reports')),
    reportSection('response', t('rep_response'), '/reports/response-times', range(), durations),
    reportSection('satisfaction', t('rep_satisfaction'), '/reports/satisfaction', range(), plain),
    reportSection('unfiled', t('rep_unfiled'), '/reports/unfiled',
      [['period', h('input', { pattern: '[0-9]{4}-(Q[1-4]|S[12])', placeholder: '2026-Q3', size: 8 })]], plain)));
  return {};
}
