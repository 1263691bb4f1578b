// campaigns.js: the managers' reminder campaigns: the list with status
// actions, the editor (a new campaign is saved as a draft), the preview of
// who would get what and when, and the dashboard (funnel per channel and
// the timeline of sends, drawn as SVG, with the numbers in tables).

import { h, fill, fmtTime, toast } from './dom.js';
import { t, getLang } from './i18n.js';
import { get, post, qs } from './api.js';
import { funnelChart, timelineChart } from './charts.js';
import { badge } from './inbox.js';

const ACTIONS = { draft: ['activate', 'archive'], active: ['pause', 'archive'], paused: ['resume', 'archive'], archived: [] };
const STAGES = ['planned', 'sent', 'delivered', 'read', 'failed', 'replied', 'filed_after'];

async function setStatus(id, action, then) {
  try {
    await post(`/campaigns/${id}/${action}`);
    toast(t('saved'));
    then();
  } catch (e) {
    toast(t('error', { msg: e.message }), true);
  }
}

function actionButtons(c, then) {
  return (ACTIONS[c.status] || []).map((a) => h('button', { type: 'button', class: a === 'activate' ? 'primary small' : 'small',
    dataset: { action: a }, onclick: () => setStatus(c.id, a, then) }, t(a)));
}

export function renderCampaigns(main, ctx) {
  const body = h('tbody', {});
  const load = async () => {
    try {
      const r = await get('/campaigns');
      fill(body, r.campaigns.length ? r.campaigns.map((c) => h('tr', { dataset: { id: c.id } },
        h('td', {}, h('a', { href: '#/campaigns/' + c.id }, c.name)),
        h('td', {}, h('span', { class: 'status st-' + c.status }, t('st_' + c.status))),
        h('td', {}, (c.offsets || []).join(', ')),
        h('td', { class: 'actions' }, actionButtons(c, load),
          h('a', { href: `#/campaigns/${c.id}/dashboard`, class: 'button small' }, t('dashboard')))))
        : h('tr', {}, h('td', { colspan: 4, class: 'empty' }, t('no_sends'))));
    } catch (e) {
      toast(t('error', { msg: e.message }), true);
    }
  };
  fill(main, h('div', { class: 'page' },
    h('header', { class: 'page-head' }, h('h1', {}, t('campaigns')),
      h('a', { href: '#/campaigns/new', class: 'button primary', id: 'new-campaign' }, t('new_campaign'))),
    h('table', { class: 'grid', id: 'campaigns' },
      h('thead', {}, h('tr', {}, ['name', 'status', 'offsets', 'actions'].map((k) =>
        h('th', { scope: 'col' }, k === 'offsets' ? t('offset') : t(k))))),
      body)));
  load();
  return {};
}

const list = (v) => v.split(',').map((x) => x.trim()).filter(Boolean);

function field(id, label, input, hint) {
  input.id = id;
  return h('div', { class: 'field' }, h('label', { for: id }, label), input,
    hint ? h('small', { class: 'hint' }, hint) : null);
}

// A new campaign: the form; an existing one: its settings, status actions and preview.
export function renderCampaignEditor(main, ctx, [idParam]) {
  if (idParam === 'new') return renderNew(main, ctx);
  const id = Number(idParam);
  const lang = getLang();
  const info = h('div', { class: 'campaign-info' });
  const previewBody = h('div', { id: 'preview' });
  const days = h('input', { type: 'number', min: 1, max: 400, value: 30, id: 'preview-days' });

  async function load() {
    try {
      const c = await get('/campaigns/' + id);
      const texts = c.texts || {};
      fill(info,
        h('header', { class: 'page-head' }, h('h1', {}, c.name),
          h('span', { class: 'status st-' + c.status, id: 'campaign-status' }, t('st_' + c.status)),
          h('span', { class: 'spacer' }), actionButtons(c, load),
          h('a', { href: `#/campaigns/${id}/dashboard`, class: 'button small' }, t('dashboard'))),
        h('dl', { class: 'profile' },
          h('dt', {}, t('audience')), h('dd', {}, [
            ...(c.audience.scales.length ? c.audience.scales : [t('all')]),
            ...c.audience.kbli_prefixes.map((k) => 'KBLI ' + k), ...c.audience.districts].join(', ')),
          h('dt', {}, t('offset')), h('dd', {}, (c.offsets || []).join(', ')),
          h('dt', {}, t('window')), h('dd', {}, `${c.window.start}–${c.window.end} WITA`),
          Object.entries(texts).flatMap(([ch, byLang]) => Object.entries(byLang || {}).map(([l, text]) =>
            [h('dt', {}, `${ch} (${l})`), h('dd', { class: 'pre' }, text)]))));
    } catch (e) {
      fill(info, h('p', { class: 'error', role: 'alert' }, t('error', { msg: e.message })));
    }
  }

  async function preview() {
    try {
      const r = await get(`/campaigns/${id}/preview` + qs({ days: days.value }));
      const rows = r.reminders || [];
      fill(previewBody, rows.length ? h('table', { class: 'grid', id: 'preview-table' },
        h('thead', {}, h('tr', {}, ['day', 'company', 'period', 'offset', 'channel', 'address', 'send_at', 'body']
          .map((k) => h('th', { scope: 'col' }, t(k))))),
        h('tbody', {}, rows.slice(0, 500).map((p) => h('tr', {},
          h('td', {}, p.day), h('td', {}, p.company_name || p.nib || ''), h('td', {}, p.period),
          h('td', {}, String(p.offset_days)), h('td', {}, badge(p.channel)), h('td', {}, p.address),
          h('td', {}, fmtTime(p.send_at, lang)),
          h('td', { class: 'pre' }, p.body || (p.template ? JSON.stringify(p.template) : '')))))
      ) : h('p', { class: 'empty' }, t('preview_none')));
    } catch (e) {
      fill(previewBody, h('p', { class: 'error', role: 'alert' }, t('error', { msg: e.message })));
    }
  }

  fill(main, h('div', { class: 'page' }, info,
    h('section', { 'aria-labelledby': 'preview-h' },
      h('h2', { id: 'preview-h' }, t('preview')),
      h('form', { class: 'inline', onsubmit: (e) => { e.preventDefault(); preview(); } },
        h('label', { for: 'preview-days' }, t('preview_days')), days,
        h('button', { type: 'submit', id: 'preview-btn' }, t('preview'))),
      previewBody)));
  load();
  preview();
  return {};
}

function renderNew(main, ctx) {
  const name = h('input', { required: true, maxlength: 200 });
  const scales = ['kecil', 'menengah', 'besar'].map((sc) => h('label', { class: 'check' },
    h('input', { type: 'checkbox', name: 'scale', value: sc }), ' ', sc));
  const kbli = h('input', { placeholder: '47, 1071' });
  const districts = h('input', { placeholder: 'Kota Makassar' });
  const offsets = h('input', { required: true, value: '-14,-7,-3,-1,0,3', pattern: '\\s*-?\\d{1,3}(\\s*,\\s*-?\\d{1,3})*\\s*' });
  const start = h('input', { type: 'time', value: '09:00', required: true });
  const end = h('input', { type: 'time', value: '16:00', required: true });
  const textId = h('textarea', { rows: 4, required: true });
  const textEn = h('textarea', { rows: 4 });
  const tpl = h('input', { pattern: '[a-z0-9_]{1,255}', placeholder: 'lkpm_reminder' });
  const err = h('p', { class: 'error', role: 'alert' });
  const sample = h('div', { class: 'sample', 'aria-live': 'polite' });

  // The editor's own preview: the text as an investor would read it, with sample values.
  const sampleValues = { company_name: 'PT Contoh Makmur', nib: '1234567890123', period: '2026-Q3', deadline: '15 Oktober 2026' };
  const drawSample = () => fill(sample, h('h3', {}, t('preview')),
    [['id', textId], ['en', textEn]].filter(([, el]) => el.value).map(([l, el]) => h('p', { class: 'bubble', lang: l },
      el.value.replace(/\{\{?\s*(\w+)\s*\}?\}/g, (m, k) => sampleValues[k] ?? m))));
  textId.addEventListener('input', drawSample);
  textEn.addEventListener('input', drawSample);

  const form = h('form', { class: 'editor', id: 'campaign-form', onsubmit: async (e) => {
    e.preventDefault();
    err.textContent = '';
    const texts = { default: { id: textId.value } };
    if (textEn.value) texts.default.en = textEn.value;
    const body = {
      name: name.value.trim(),
      audience: { scales: scales.map((l) => l.querySelector('input')).filter((i) => i.checked).map((i) => i.value),
        kbli_prefixes: list(kbli.value), districts: list(districts.value) },
      offsets: list(offsets.value).map(Number), window: { start: start.value, end: end.value }, texts,
    };
    if (tpl.value) body.whatsapp_template = { name: tpl.value };
    try {
      const c = await post('/campaigns', body);
      toast(t('campaign_created'));
      ctx.navigate('#/campaigns/' + c.id);
    } catch (ex) {
      err.textContent = t('error', { msg: ex.message });
    }
  } },
  h('h1', {}, t('new_campaign')),
  field('c-name', t('name'), name),
  h('fieldset', {}, h('legend', {}, t('audience')),
    h('div', { class: 'field' }, h('span', { class: 'label' }, t('scales')), scales),
    field('c-kbli', t('kbli_prefixes'), kbli), field('c-districts', t('districts'), districts)),
  field('c-offsets', t('offsets'), offsets),
  h('fieldset', { class: 'row' }, h('legend', {}, t('window')),
    field('c-start', t('window_start'), start), field('c-end', t('window_end'), end)),
  field('c-text-id', t('text_id'), textId, t('placeholders')),
  field('c-text-en', t('text_en'), textEn),
  field('c-template', t('wa_template'), tpl),
  sample, err,
  h('div', { class: 'buttons' }, h('button', { type: 'submit', class: 'primary', id: 'save-campaign' }, t('save')),
    h('a', { href: '#/campaigns', class: 'button' }, t('cancel'))));
  fill(main, h('div', { class: 'page' }, form));
  name.focus();
  return {};
}

// The funnel per channel: the API's own, or summed from its per-period stats.
function funnelRows(r) {
  if (Array.isArray(r.funnel)) return r.funnel;
  const by = new Map();
  for (const st of r.stats || []) {
    const row = by.get(st.channel) || { channel: st.channel };
    for (const k of STAGES) {
      const src = k === 'filed_after' ? 'filed_after_reminder' : k;
      row[k] = (row[k] || 0) + (Number(st[src]) || 0);
    }
    by.set(st.channel, row);
  }
  return [...by.values()];
}

export function renderDashboard(main, ctx, [idParam]) {
  const id = Number(idParam);
  const lang = getLang();
  const body = h('div', { id: 'dashboard' });
  const labels = Object.fromEntries(STAGES.map((k) => [k, t(k)]));

  async function load() {
    try {
      const [c, r] = await Promise.all([get('/campaigns/' + id), get(`/campaigns/${id}/stats`)]);
      const rows = funnelRows(r);
      const points = ((r.timeline && r.timeline.points) || []).map((p) => ({ at: p.at, key: p.channel, value: Number(p.sent) || 0 }));
      fill(body,
        h('header', { class: 'page-head' }, h('h1', {}, t('dashboard'), ': ', c.name),
          h('span', { class: 'status st-' + c.status }, t('st_' + c.status)), h('span', { class: 'spacer' }),
          h('button', { type: 'button', onclick: load }, t('refresh'))),
        h('section', { 'aria-labelledby': 'funnel-h' }, h('h2', { id: 'funnel-h' }, t('funnel')),
          rows.length ? [funnelChart(rows, STAGES, labels, t('funnel')),
            h('table', { class: 'grid', id: 'funnel-table' },
              h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, t('channel')), STAGES.map((k) => h('th', { scope: 'col' }, labels[k])))),
              h('tbody', {}, rows.map((row) => h('tr', { dataset: { channel: row.channel } }, h('th', { scope: 'row' }, row.channel),
                STAGES.map((k) => h('td', { dataset: { stage: k } }, String(row[k] ?? 0)))))))]
            : h('p', { class: 'empty' }, t('no_sends'))),
        h('section', { 'aria-labelledby': 'timeline-h' }, h('h2', { id: 'timeline-h' }, t('timeline')),
          points.length ? timelineChart(points, t('timeline'), (at) => fmtTime(at, lang)) : h('p', { class: 'empty' }, t('no_sends'))));
    } catch (e) {
      fill(body, h('p', { class: 'error', role: 'alert' }, t('error', { msg: e.message })));
    }
  }
  fill(main, h('div', { class: 'page' }, body));
  load();
  let timer = null;
  return {
    onEvent(type) {
      if (type === 'status' || type === 'message') {
        clearTimeout(timer);
        timer = setTimeout(load, 1000);
      }
    },
    destroy() { clearTimeout(timer); },
  };
}
