// inbox.js: the operator's inbox. Three panes: the conversation list (with
// filters, search, channel badges, waiting time and unread count), the open
// conversation (messages with delivery marks, attachments, the reply box
// with quick replies and internal notes, take/transfer/resolve), and the
// investor beside it (profile, identities with opt-out state, LKPM filings
// per period with "mark filed"). Live events refresh what they touch; no
// reload is ever needed. At phone width one pane shows at a time.

import { h, fill, fmtTime, fmtDuration, secondsSince, toast } from './dom.js';
import { t, getLang } from './i18n.js';
import { get, post, qs } from './api.js';

const BADGE = { whatsapp: 'WA', sms: 'SMS', email: 'Email', test: 'Test' };
const MARK = { queued: '🕓', sending: '🕓', sent: '✓', delivered: '✓✓', read: '✓✓', failed: '✕' };

// Remembered across visits to the inbox in this tab.
const filters = { assigned: 'any', status: 'open', q: '' };

export function badge(kind, instance) {
  const k = kind || 'unknown';
  return h('span', { class: 'badge ch-' + k, title: instance || k }, BADGE[k] || k);
}

export function renderInbox(main, ctx, [idParam]) {
  const lang = getLang();
  const state = {
    id: idParam ? Number(idParam) : null, items: [], next: null, operators: new Map(), quick: null,
    conv: null, messages: [], destroyed: false, timers: {}, firstPaint: true,
  };

  const listEl = h('ul', { class: 'conv-list', id: 'conv-list', 'aria-label': t('conversations') });
  const moreBtn = h('button', { type: 'button', class: 'more', hidden: true, onclick: () => loadList(true) }, t('load_more'));
  const convPane = h('section', { class: 'pane conv', id: 'conversation', 'aria-label': t('messages') });
  const invPane = h('aside', { class: 'pane investor', id: 'investor', 'aria-label': t('investor') });

  const seg = (name, key, options) => h('fieldset', { class: 'seg' },
    h('legend', {}, t(name)),
    options.map(([value, label]) => h('label', {},
      h('input', { type: 'radio', name: key, value, checked: filters[key] === value,
        onchange: () => { filters[key] = value; loadList(false); } }),
      h('span', {}, t(label)))));
  const search = h('input', { type: 'search', id: 'search', placeholder: t('search_placeholder'), value: filters.q });
  const filterForm = h('form', { class: 'filters', role: 'search', onsubmit: (e) => {
    e.preventDefault();
    filters.q = search.value.trim();
    loadList(false);
  } },
  seg('filter_assigned', 'assigned', [['me', 'mine'], ['none', 'unassigned'], ['any', 'all']]),
  seg('filter_status', 'status', [['open', 'status_open'], ['pending', 'status_pending'], ['resolved', 'status_resolved']]),
  h('div', { class: 'searchrow' },
    h('label', { for: 'search', class: 'sr' }, t('search')), search,
    h('button', { type: 'submit' }, t('search'))));

  const listPane = h('section', { class: 'pane list', 'aria-label': t('conversations') },
    filterForm, listEl, moreBtn);
  const layout = h('div', { class: 'inbox' + (state.id ? ' has-conv' : '') }, listPane, convPane, invPane);
  fill(main, layout);

  // Names of operators, for assignee labels and the transfer list.
  get('/operators').then((r) => {
    for (const o of r.operators || []) state.operators.set(o.id, o);
    drawList();
    if (state.conv) drawConversation();
  }).catch(() => {});

  function assigneeName(id) {
    if (!id) return null;
    const o = state.operators.get(id);
    return o ? o.name : '#' + id;
  }

  function assigneeLabel(id) {
    return h('span', { class: 'assignee' + (id ? '' : ' queued') }, id ? t('assigned_to', { name: assigneeName(id) }) : t('in_queue'));
  }

  async function loadList(more) {
    const params = { assigned: filters.assigned, status: filters.status, q: filters.q,
      limit: more ? 50 : Math.min(Math.max(50, state.items.length), 200) };
    if (more) params.cursor = state.next;
    try {
      const r = await get('/conversations' + qs(params));
      if (state.destroyed) return;
      state.items = more ? state.items.concat(r.conversations) : r.conversations;
      state.next = r.next;
      drawList();
    } catch (e) {
      toast(t('error', { msg: e.message }), true);
    }
  }

  function waitingSeconds(c) {
    if (c.waiting_seconds !== undefined && c.waiting_seconds !== null) return c.waiting_seconds;
    return secondsSince(c.unanswered_since || c.waiting_since);
  }

  function drawItem(c) {
    const wait = c.status !== 'resolved' ? waitingSeconds(c) : null;
    const inv = c.investor || {};
    const last = c.last_message;
    return h('li', { class: 'conv-item' + (c.id === state.id ? ' current' : ''), dataset: { id: c.id } },
      h('a', { href: '#/inbox/' + c.id, 'aria-current': c.id === state.id ? 'true' : null },
        h('span', { class: 'row1' },
          badge(c.channel_kind, c.channel),
          h('span', { class: 'name' }, inv.name || inv.nib || '#' + c.id),
          c.unread ? h('span', { class: 'unread', 'aria-label': t('unread', { n: c.unread }) }, String(c.unread)) : null),
        last ? h('span', { class: 'preview' }, last.direction === 'note' || last.content_type === 'note'
          ? '📝 ' + (last.preview || '') : (last.preview || '')) : null,
        h('span', { class: 'row3' },
          assigneeLabel(c.assignee),
          wait !== null ? h('span', { class: 'wait' + (wait > 900 ? ' late' : '') }, t('waiting', { t: fmtDuration(wait, lang) })) : null,
          c.sla_breached ? h('span', { class: 'sla' }, t('sla_breached')) : null)));
  }

  function drawList() {
    if (state.items.length === 0) fill(listEl, h('li', { class: 'empty' }, t('no_conversations')));
    else fill(listEl, state.items.map(drawItem));
    moreBtn.hidden = !state.next;
    if (state.firstPaint) {
      state.firstPaint = false;
      performance.mark('inbox-list-rendered');
    }
  }

  async function loadConversation() {
    if (!state.id) {
      fill(convPane, h('p', { class: 'empty' }, t('pick_conversation')));
      fill(invPane);
      return;
    }
    try {
      const [conv, msgs] = await Promise.all([
        get('/conversations/' + state.id),
        get('/conversations/' + state.id + '/messages' + qs({ limit: 500 })),
      ]);
      if (state.destroyed) return;
      state.conv = conv;
      state.messages = msgs.messages;
      drawConversation();
      drawInvestor();
      markRead();
    } catch (e) {
      fill(convPane, h('p', { class: 'error', role: 'alert' }, t('error', { msg: e.message })));
    }
  }

  // Fetch messages after the last one shown, and the conversation's state.
  async function refreshConversation() {
    if (!state.conv) return loadConversation();
    try {
      const [conv, msgs] = await Promise.all([
        get('/conversations/' + state.id),
        get('/conversations/' + state.id + '/messages' + qs({ limit: 500 })),
      ]);
      if (state.destroyed) return;
      state.conv = conv;
      state.messages = msgs.messages;
      drawConversation(true);
      drawInvestor();
      markRead();
    } catch (e) {
      toast(t('error', { msg: e.message }), true);
    }
  }

  function markRead() {
    post('/conversations/' + state.id + '/read').then((r) => {
      const item = state.items.find((c) => c.id === state.id);
      if (item && item.unread) {
        item.unread = r && r.unread !== undefined ? r.unread : 0;
        drawList();
      }
    }).catch(() => {});
  }

  function statusMark(m) {
    if (m.direction !== 'out' || m.content_type === 'note') return null;
    const failure = m.failure || (m.status === 'failed' ? { code: m.error_code, text: m.error_text } : null);
    const reason = failure ? [failure.code, failure.text].filter(Boolean).join(' ') : '';
    const label = m.status === 'failed' ? t('failed_reason', { reason: reason || '?' }) : t('st_' + m.status);
    return h('span', { class: 'mark ' + m.status, title: label },
      h('span', { 'aria-hidden': 'true' }, MARK[m.status] || ''), ' ', h('span', { class: 'mark-text' }, label));
  }

  function attachmentEl(a) {
    const name = a.filename || t('attachment') + ' ' + a.id;
    if (a.status && a.status !== 'stored') {
      return h('div', { class: 'att pending' }, a.status === 'failed' ? t('attachment_failed') : t('attachment_pending'));
    }
    const mime = a.mime_type || '';
    const url = a.url || '/api/v1/media/' + a.id;
    let preview = null;
    if (/^image\/(png|jpeg|gif|webp)$/.test(mime)) preview = h('img', { src: url, alt: name, loading: 'lazy' });
    else if (mime.startsWith('audio/')) preview = h('audio', { src: url, controls: true });
    else if (mime.startsWith('video/')) preview = h('video', { src: url, controls: true });
    return h('div', { class: 'att' }, preview,
      h('a', { href: url, download: a.filename || '' }, '⬇ ', t('download'), ' ', name,
        a.size ? ` (${Math.ceil(a.size / 1024)} KB)` : ''));
  }

  function messageEl(m) {
    const note = m.content_type === 'note' || m.direction === 'note';
    const cls = note ? 'note' : m.direction === 'in' ? 'in' : 'out';
    const who = note ? t('note_badge') : m.direction === 'in' ? t('from_investor')
      : (m.author ? assigneeName(m.author) : t('from_operator'));
    const subject = m.subject || (m.meta && m.meta.subject);
    return h('li', { class: 'msg ' + cls, dataset: { id: m.id, status: m.status || '' } },
      h('div', { class: 'meta' }, h('span', { class: 'who' }, who), ' · ',
        h('time', { datetime: m.created_at }, fmtTime(m.created_at, lang))),
      subject ? h('div', { class: 'subject' }, h('span', { class: 'sr' }, t('subject') + ': '), subject) : null,
      m.body ? h('div', { class: 'body' }, m.body) : null,
      (m.attachments || []).map(attachmentEl),
      statusMark(m));
  }

  const replyState = { mode: 'reply' };

  function replyBox() {
    const text = h('textarea', { id: 'reply-text', rows: 3, 'aria-label': t(replyState.mode === 'note' ? 'note' : 'reply'),
      placeholder: t(replyState.mode === 'note' ? 'note_placeholder' : 'reply_placeholder') });
    const sendBtn = h('button', { type: 'submit', id: 'send' }, t(replyState.mode === 'note' ? 'add_note' : 'send'));
    const modes = h('div', { class: 'modes', role: 'radiogroup', 'aria-label': t('reply') },
      ['reply', 'note'].map((mode) => h('label', {},
        h('input', { type: 'radio', name: 'mode', value: mode, checked: replyState.mode === mode,
          onchange: () => {
            replyState.mode = mode;
            form.classList.toggle('is-note', mode === 'note');
            text.placeholder = t(mode === 'note' ? 'note_placeholder' : 'reply_placeholder');
            text.setAttribute('aria-label', t(mode === 'note' ? 'note' : 'reply'));
            sendBtn.textContent = t(mode === 'note' ? 'add_note' : 'send');
          } }),
        h('span', {}, t(mode === 'note' ? 'note' : 'reply')))));
    const quickSel = h('select', { id: 'quick', 'aria-label': t('quick_replies'), hidden: true,
      onchange: () => {
        const q = (state.quick || []).find((x) => String(x.id) === quickSel.value);
        if (q) {
          text.value = text.value ? text.value + '\n' + q.body : q.body;
          text.focus();
        }
        quickSel.value = '';
      } });
    loadQuick(quickSel);
    const form = h('form', { class: 'reply' + (replyState.mode === 'note' ? ' is-note' : ''), onsubmit: async (e) => {
      e.preventDefault();
      const body = text.value.trim();
      if (!body) return;
      sendBtn.disabled = true;
      try {
        const path = '/conversations/' + state.id + (replyState.mode === 'note' ? '/notes' : '/messages');
        await post(path, { body });
        text.value = '';
        toast(t(replyState.mode === 'note' ? 'note_ok' : 'sent_ok'));
        await refreshConversation();
      } catch (ex) {
        toast(t('error', { msg: ex.message }), true);
      } finally {
        sendBtn.disabled = false;
      }
    } }, modes, text, h('div', { class: 'reply-actions' }, quickSel, sendBtn));
    text.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) form.requestSubmit();
    });
    return form;
  }

  async function loadQuick(sel) {
    if (state.quick === null) {
      try {
        const r = await get('/quick-replies' + qs({ language: (state.conv && state.conv.investor && state.conv.investor.language) || '' }));
        state.quick = r.quick_replies || [];
      } catch {
        state.quick = [];
      }
    }
    if (state.quick.length === 0) return;
    fill(sel, h('option', { value: '' }, t('quick_replies') + '…'),
      state.quick.map((q) => h('option', { value: q.id }, `/${q.shortcut} – ${q.title}`)));
    sel.hidden = false;
  }

  async function act(path, body, okKey) {
    try {
      await post('/conversations/' + state.id + path, body);
      toast(t(okKey));
      await Promise.all([refreshConversation(), loadList(false)]);
    } catch (e) {
      toast(t('error', { msg: e.message }), true);
    }
  }

  function actions() {
    const c = state.conv;
    const mine = c.assignee === ctx.me.id;
    const out = [];
    if (c.status !== 'resolved' && !mine) {
      out.push(h('button', { type: 'button', id: 'take', onclick: () => act('/take', undefined, 'taken_ok') }, t('take')));
    }
    if (c.status !== 'resolved' && (mine || ctx.isManager())) {
      const sel = h('select', { id: 'transfer-to', 'aria-label': t('transfer_to') },
        [...state.operators.values()].filter((o) => o.id !== c.assignee && !o.disabled)
          .map((o) => h('option', { value: o.id }, `${o.name} (${t('presence_' + o.presence)})`)));
      out.push(h('span', { class: 'transfer' }, sel, h('button', { type: 'button', id: 'transfer',
        onclick: () => sel.value && act('/transfer', { operator: Number(sel.value) }, 'transferred_ok') }, t('transfer'))));
      out.push(h('button', { type: 'button', id: 'resolve', class: 'primary',
        onclick: () => act('/resolve', undefined, 'resolved_ok') }, t('resolve')));
    }
    return out;
  }

  function drawConversation(keepDraft) {
    const c = state.conv;
    if (!c) return;
    const old = convPane.querySelector('#reply-text');
    const draft = keepDraft && old ? old.value : '';
    const inv = c.investor || {};
    const list = h('ol', { class: 'messages', id: 'messages', 'aria-live': 'polite' }, state.messages.map(messageEl));
    fill(convPane,
      h('header', { class: 'conv-head' },
        h('a', { href: '#/inbox', class: 'back' }, '← ', t('back')),
        badge(c.channel_kind, c.channel),
        h('h2', { id: 'conv-title' }, inv.company_name || inv.display_name || inv.name || inv.nib || '#' + c.id),
        h('span', { class: 'status st-' + c.status, id: 'conv-status' }, t('status_' + c.status)),
        assigneeLabel(c.assignee),
        h('span', { class: 'spacer' }),
        actions()),
      list,
      replyBox());
    if (draft) convPane.querySelector('#reply-text').value = draft;
    list.scrollTop = list.scrollHeight;
  }

  function row(label, value) {
    return [h('dt', {}, t(label)), h('dd', {}, value === null || value === undefined || value === '' ? t('unknown') : value)];
  }

  function drawInvestor() {
    const inv = (state.conv && state.conv.investor) || null;
    if (!inv) return fill(invPane);
    const ids = h('ul', { class: 'identities' }, (inv.identities || []).map((d) => h('li', {},
      badge(d.kind), ' ', h('span', { class: 'addr' }, d.address), ' ',
      h('span', { class: d.opted_out_at ? 'optout' : 'optin' },
        d.opted_out_at ? t('opted_out', { t: fmtTime(d.opted_out_at, lang) }) : t('opted_in')))));
    const filings = inv.filings;
    const filingTable = filings && filings.length ? h('table', { class: 'filings' },
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, t('period')), h('th', { scope: 'col' }, t('deadline')),
        h('th', { scope: 'col' }, t('status')), h('th', { scope: 'col' }, h('span', { class: 'sr' }, t('actions'))))),
      h('tbody', {}, filings.map((f) => h('tr', { dataset: { period: f.period } },
        h('td', {}, f.period), h('td', {}, f.deadline || t('unknown')),
        h('td', { class: f.filed ? 'filed' : 'unfiled' }, f.filed ? t('filed') + (f.status ? ` (${f.status})` : '') : t('not_filed') + (f.status ? ` (${f.status})` : '')),
        h('td', {}, f.filed ? null : h('button', { type: 'button', class: 'small',
          onclick: () => markFiled(inv.id, f.period) }, t('mark_filed')))))))
      : h('p', { class: 'empty' }, t('no_filings'));
    const periodInput = h('input', { id: 'filing-period', pattern: '[0-9]{4}-(Q[1-4]|S[12])', placeholder: '2026-Q3', size: 8 });
    fill(invPane,
      h('h2', {}, t('investor')),
      h('dl', { class: 'profile' },
        row('company', inv.company_name || inv.display_name), row('nib', inv.nib), row('scale', inv.scale),
        row('kbli', (inv.kbli || []).join(', ')), row('district', inv.district)),
      h('h3', {}, t('identities')), ids,
      h('h3', {}, t('filings')), filingTable,
      h('form', { class: 'markfiled', onsubmit: (e) => {
        e.preventDefault();
        if (periodInput.value) markFiled(inv.id, periodInput.value.trim());
      } }, h('label', { for: 'filing-period' }, t('period_input')), periodInput,
      h('button', { type: 'submit' }, t('mark_filed'))));
  }

  async function markFiled(investorId, period) {
    try {
      await post('/investors/' + investorId + '/filings', { period, status: 'terkirim' });
      toast(t('marked_filed', { p: period }));
      await refreshConversation();
    } catch (e) {
      toast(t('error', { msg: e.message }), true);
    }
  }

  // Coalesce bursts of events into one refresh of each part.
  function later(key, fn) {
    clearTimeout(state.timers[key]);
    state.timers[key] = setTimeout(fn, 150);
  }

  // Waiting times move on their own.
  const tick = setInterval(() => { if (state.items.length) drawList(); }, 30000);

  loadList(false);
  loadConversation();

  return {
    onEvent(type, data) {
      if (type === 'presence') {
        const o = state.operators.get(data.operator);
        if (o) o.presence = data.presence;
        return;
      }
      later('list', () => loadList(false));
      if (state.id && data.conversation === state.id) later('conv', refreshConversation);
    },
    destroy() {
      state.destroyed = true;
      clearInterval(tick);
      for (const k of Object.keys(state.timers)) clearTimeout(state.timers[k]);
    },
  };
}
