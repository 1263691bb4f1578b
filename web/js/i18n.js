// i18n.js: every text of the pages, Indonesian first, English one click
// away. t('key', {name: 'x'}) fills {name}; a key missing in English falls
// back to Indonesian, and a key missing everywhere shows as itself.

const STRINGS = {
  id: {
    app: 'linbat', skip: 'Lewati ke isi', loading: 'Memuat...',
    lang_switch: 'English', lang_switch_label: 'Ganti bahasa ke English',
    nav: 'Navigasi utama', nav_inbox: 'Kotak masuk', nav_campaigns: 'Kampanye', nav_operators: 'Operator',
    nav_reports: 'Laporan', logout: 'Keluar',
    login_title: 'Masuk ke linbat', email: 'Email', password: 'Kata sandi', login: 'Masuk',
    login_failed: 'Email atau kata sandi salah.', login_throttled: 'Terlalu banyak percobaan; coba lagi nanti.',
    presence: 'Kehadiran', presence_online: 'Daring', presence_away: 'Sedang pergi', presence_offline: 'Luring',
    live_on: 'Langsung', live_off: 'Tersambung ulang...',
    filter_assigned: 'Penugasan', mine: 'Milik saya', unassigned: 'Belum ditugaskan', all: 'Semua',
    filter_status: 'Status', status_open: 'Terbuka', status_pending: 'Tertunda', status_resolved: 'Selesai',
    search: 'Cari', search_placeholder: 'Nama, NIB, nomor, isi pesan', conversations: 'Percakapan',
    no_conversations: 'Tidak ada percakapan.', load_more: 'Muat lebih banyak', waiting: 'Menunggu {t}',
    unread: '{n} belum dibaca', sla_breached: 'Melewati SLA', assigned_to: 'Ditangani {name}', in_queue: 'Dalam antrean',
    pick_conversation: 'Pilih percakapan di sebelah kiri.', back: 'Kembali',
    messages: 'Pesan', reply: 'Balas', note: 'Catatan internal', send: 'Kirim', add_note: 'Simpan catatan',
    reply_placeholder: 'Tulis balasan...', note_placeholder: 'Catatan hanya terlihat oleh operator...',
    quick_replies: 'Balasan cepat', quick_none: 'Belum ada balasan cepat.', insert: 'Sisipkan',
    resolve: 'Selesaikan', take: 'Ambil', transfer: 'Alihkan', transfer_to: 'Alihkan ke', release: 'Lepas',
    resolved_ok: 'Percakapan diselesaikan.', taken_ok: 'Percakapan diambil.', transferred_ok: 'Percakapan dialihkan.',
    sent_ok: 'Balasan diantrekan.', note_ok: 'Catatan disimpan.',
    st_received: 'Diterima', st_queued: 'Antre', st_sending: 'Mengirim', st_sent: 'Terkirim',
    st_delivered: 'Sampai', st_read: 'Dibaca', st_failed: 'Gagal', failed_reason: 'Gagal: {reason}',
    note_badge: 'Catatan', from_investor: 'Dari investor', from_operator: 'Dari operator',
    attachment: 'Lampiran', download: 'Unduh', attachment_pending: 'Lampiran sedang diambil',
    attachment_failed: 'Lampiran gagal diambil', subject: 'Subjek',
    investor: 'Investor', nib: 'NIB', company: 'Perusahaan', scale: 'Skala', kbli: 'KBLI', district: 'Kabupaten/Kota',
    identities: 'Identitas', opted_out: 'Berhenti berlangganan sejak {t}', opted_in: 'Menerima pengingat',
    filings: 'Status LKPM per periode', period: 'Periode', deadline: 'Tenggat', filed: 'Sudah lapor',
    not_filed: 'Belum lapor', mark_filed: 'Tandai sudah lapor', marked_filed: 'Periode {p} ditandai sudah lapor.',
    period_input: 'Periode (mis. 2026-Q3)', no_filings: 'Belum ada data LKPM.', unknown: '–',
    campaigns: 'Kampanye', new_campaign: 'Kampanye baru', name: 'Nama', status: 'Status', actions: 'Tindakan',
    st_draft: 'Draf', st_active: 'Aktif', st_paused: 'Dijeda', st_archived: 'Diarsipkan',
    activate: 'Aktifkan', pause: 'Jeda', resume: 'Lanjutkan', archive: 'Arsipkan', edit: 'Ubah',
    preview: 'Pratinjau', dashboard: 'Dasbor', save: 'Simpan', cancel: 'Batal',
    audience: 'Sasaran', scales: 'Skala (kosong = semua)', kbli_prefixes: 'Awalan KBLI (pisahkan dengan koma)',
    districts: 'Kabupaten/Kota (pisahkan dengan koma)', offsets: 'Hari relatif terhadap tenggat (mis. -14,-7,-1,0,3)',
    window: 'Jendela kirim (WITA)', window_start: 'Mulai', window_end: 'Selesai',
    text_id: 'Teks (Indonesia)', text_en: 'Teks (English)', wa_template: 'Nama template WhatsApp',
    placeholders: 'Penanda: {{company_name}}, {{nib}}, {{period}}, {{deadline}}',
    saved: 'Tersimpan.', campaign_created: 'Kampanye dibuat.', preview_days: 'Hari ke depan',
    preview_none: 'Tidak ada pengingat dalam rentang ini.', day: 'Tanggal', channel: 'Kanal', address: 'Alamat',
    send_at: 'Dikirim', body: 'Isi', offset: 'Selisih',
    funnel: 'Corong pengiriman per kanal', timeline: 'Linimasa pengiriman', planned: 'Direncanakan',
    sent: 'Terkirim', delivered: 'Sampai', read: 'Dibaca', failed: 'Gagal', replied: 'Membalas',
    filed_after: 'Lapor setelah pengingat', no_sends: 'Belum ada pengiriman.', refresh: 'Muat ulang',
    operators: 'Operator', role: 'Peran', capacity: 'Kapasitas', load: 'Beban', open_count: 'Terbuka',
    free: 'Sisa', queue: 'Antrean: {n} menunggu', set_capacity: 'Ubah kapasitas', new_operator: 'Operator baru',
    add: 'Tambah', disabled: 'Nonaktif', role_operator: 'Operator', role_manager: 'Manajer', role_admin: 'Admin',
    reports: 'Laporan', from: 'Dari', to: 'Sampai', show: 'Tampilkan', csv: 'Unduh CSV',
    rep_response: 'Waktu tanggap dan penyelesaian', rep_satisfaction: 'Kepuasan (IKM)',
    rep_unfiled: 'Investor yang belum lapor LKPM', rep_unavailable: 'Laporan ini belum tersedia: {reason}',
    median: 'median', p90: 'p90', first_response: 'Tanggapan pertama', resolution: 'Penyelesaian',
    ikm: 'IKM', mutu: 'Mutu', answers: 'Jawaban', mean_score: 'Rata-rata', obliged: 'Wajib lapor',
    not_found_page: 'Halaman tidak ditemukan.', error: 'Terjadi kesalahan: {msg}', forbidden: 'Tidak diizinkan.',
    csrf_lost: 'Sesi berakhir; silakan masuk lagi.', required: 'Wajib diisi',
    nav_quick: 'Balasan cepat', new_quick: 'Balasan cepat baru', shortcut: 'Pintasan', title: 'Judul',
    language: 'Bahasa', delete: 'Hapus',
  },
  en: {
    app: 'linbat', skip: 'Skip to content', loading: 'Loading...',
    lang_switch: 'Bahasa Indonesia', lang_switch_label: 'Switch language to Bahasa Indonesia',
    nav: 'Main navigation', nav_inbox: 'Inbox', nav_campaigns: 'Campaigns', nav_operators: 'Operators',
    nav_reports: 'Reports', logout: 'Log out',
    login_title: 'Log in to linbat', email: 'Email', password: 'Password', login: 'Log in',
    login_failed: 'The email or the password is wrong.', login_throttled: 'Too many attempts; try again later.',
    presence: 'Presence', presence_online: 'Online', presence_away: 'Away', presence_offline: 'Offline',
    live_on: 'Live', live_off: 'Reconnecting...',
    filter_assigned: 'Assignment', mine: 'Mine', unassigned: 'Unassigned', all: 'All',
    filter_status: 'Status', status_open: 'Open', status_pending: 'Pending', status_resolved: 'Resolved',
    search: 'Search', search_placeholder: 'Name, NIB, number, message text', conversations: 'Conversations',
    no_conversations: 'No conversations.', load_more: 'Load more', waiting: 'Waiting {t}',
    unread: '{n} unread', sla_breached: 'SLA breached', assigned_to: 'With {name}', in_queue: 'In the queue',
    pick_conversation: 'Pick a conversation on the left.', back: 'Back',
    messages: 'Messages', reply: 'Reply', note: 'Internal note', send: 'Send', add_note: 'Save note',
    reply_placeholder: 'Write a reply...', note_placeholder: 'Notes are only seen by operators...',
    quick_replies: 'Quick replies', quick_none: 'No quick replies yet.', insert: 'Insert',
    resolve: 'Resolve', take: 'Take', transfer: 'Transfer', transfer_to: 'Transfer to', release: 'Release',
    resolved_ok: 'Conversation resolved.', taken_ok: 'Conversation taken.', transferred_ok: 'Conversation transferred.',
    sent_ok: 'Reply queued.', note_ok: 'Note saved.',
    st_received: 'Received', st_queued: 'Queued', st_sending: 'Sending', st_sent: 'Sent',
    st_delivered: 'Delivered', st_read: 'Read', st_failed: 'Failed', failed_reason: 'Failed: {reason}',
    note_badge: 'Note', from_investor: 'From the investor', from_operator: 'From an operator',
    attachment: 'Attachment', download: 'Download', attachment_pending: 'Attachment being fetched',
    attachment_failed: 'Attachment could not be fetched', subject: 'Subject',
    investor: 'Investor', nib: 'NIB', company: 'Company', scale: 'Scale', kbli: 'KBLI', district: 'District',
    identities: 'Identities', opted_out: 'Opted out since {t}', opted_in: 'Receives reminders',
    filings: 'LKPM status per period', period: 'Period', deadline: 'Deadline', filed: 'Filed',
    not_filed: 'Not filed', mark_filed: 'Mark filed', marked_filed: 'Period {p} marked filed.',
    period_input: 'Period (e.g. 2026-Q3)', no_filings: 'No LKPM data yet.', unknown: '–',
    campaigns: 'Campaigns', new_campaign: 'New campaign', name: 'Name', status: 'Status', actions: 'Actions',
    st_draft: 'Draft', st_active: 'Active', st_paused: 'Paused', st_archived: 'Archived',
    activate: 'Activate', pause: 'Pause', resume: 'Resume', archive: 'Archive', edit: 'Edit',
    preview: 'Preview', dashboard: 'Dashboard', save: 'Save', cancel: 'Cancel',
    audience: 'Audience', scales: 'Scales (none = all)', kbli_prefixes: 'KBLI prefixes (comma separated)',
    districts: 'Districts (comma separated)', offsets: 'Days relative to the deadline (e.g. -14,-7,-1,0,3)',
    window: 'Send window (WITA)', window_start: 'Start', window_end: 'End',
    text_id: 'Text (Indonesian)', text_en: 'Text (English)', wa_template: 'WhatsApp template name',
    placeholders: 'Placeholders: {{company_name}}, {{nib}}, {{period}}, {{deadline}}',
    saved: 'Saved.', campaign_created: 'Campaign created.', preview_days: 'Days ahead',
    preview_none: 'No reminders in this range.', day: 'Date', channel: 'Channel', address: 'Address',
    send_at: 'Sent at', body: 'Text', offset: 'Offset',
    funnel: 'Delivery funnel per channel', timeline: 'Sends over time', planned: 'Planned',
    sent: 'Sent', delivered: 'Delivered', read: 'Read', failed: 'Failed', replied: 'Replied',
    filed_after: 'Filed after reminder', no_sends: 'Nothing sent yet.', refresh: 'Refresh',
    operators: 'Operators', role: 'Role', capacity: 'Capacity', load: 'Load', open_count: 'Open',
    free: 'Free', queue: 'Queue: {n} waiting', set_capacity: 'Set capacity', new_operator: 'New operator',
    add: 'Add', disabled: 'Disabled', role_operator: 'Operator', role_manager: 'Manager', role_admin: 'Admin',
    reports: 'Reports', from: 'From', to: 'To', show: 'Show', csv: 'Download CSV',
    rep_response: 'Response and resolution times', rep_satisfaction: 'Satisfaction (IKM)',
    rep_unfiled: 'Investors who have not filed LKPM', rep_unavailable: 'This report is not available yet: {reason}',
    median: 'median', p90: 'p90', first_response: 'First response', resolution: 'Resolution',
    ikm: 'IKM', mutu: 'Grade', answers: 'Answers', mean_score: 'Mean', obliged: 'Obliged',
    not_found_page: 'Page not found.', error: 'Something went wrong: {msg}', forbidden: 'Not allowed.',
    csrf_lost: 'The session ended; please log in again.', required: 'Required',
    nav_quick: 'Quick replies', new_quick: 'New quick reply', shortcut: 'Shortcut', title: 'Title',
    language: 'Language', delete: 'Delete',
  },
};

const LANG_KEY = 'linbat.lang';
let lang = localStorage.getItem(LANG_KEY) === 'en' ? 'en' : 'id';

export function getLang() {
  return lang;
}

export function setLang(l) {
  lang = l === 'en' ? 'en' : 'id';
  localStorage.setItem(LANG_KEY, lang);
  document.documentElement.lang = lang;
}

export function t(key, vars) {
  let s = STRINGS[lang][key] ?? STRINGS.id[key] ?? key;
  if (vars) s = s.replace(/\{(\w+)\}/g, (m, k) => (k in vars ? String(vars[k]) : m));
  return s;
}

document.documentElement.lang = lang;
