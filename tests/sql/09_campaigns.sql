-- Reminder campaigns with an injected "now": rendering and Indonesian dates,
-- the send window, the change of rule on 2025-10-02, the year rollover,
-- who is skipped and on which channel the others hear, idempotence, a crash
-- halfway through planning, a filing between two offsets, the advisory lock,
-- stats, imports and the keywords.
begin;
select plan(82);

create function pg_temp.connect(p_name text) returns text language sql
as $$ select dblink_connect(p_name, format('host=%s port=%s dbname=%s user=%s',
	split_part(current_setting('unix_socket_directories'), ',', 1), current_setting('port'),
	current_database(), current_user)) $$;
-- The NIBs a plan at p_now planned, with period, offset and channel.
create function pg_temp.planned(p_now timestamptz) returns setof text language sql
as $$ select i.nib || ' ' || r.period || ' ' || r.offset_days || ' ' || r.channel
	from linbat.reminder r join linbat.investor i on i.id = r.investor_id
	where r.created_at = p_now order by 1 $$;

-- Rendering ------------------------------------------------------------------------
select is(linbat.date_text('2026-04-15', 'id'), '15 April 2026', 'dates come out in Indonesian');
select is(linbat.date_text('2026-08-17', 'id'), '17 Agustus 2026', 'Agustus, not August');
select is(linbat.date_text('2026-01-05', 'en'), '5 January 2026', 'English months for English texts');
select is(linbat.reminder_render('{{company_name}} {{nib}} {{period}} {{deadline}} {{days_left}} {{x}}',
	'PT A', '1234567890123', '2026-Q1', '2026-04-15', 3, 'id'),
	'PT A 1234567890123 2026-Q1 15 April 2026 3 {{x}}', 'every placeholder is filled, others stay');

-- The send window (WITA) --------------------------------------------------------------
select is(linbat.window_next('2026-04-14 07:00+08', '09:00', '16:00'), '2026-04-14 09:00+08'::timestamptz,
	'before the window: it opens the same day');
select is(linbat.window_next('2026-04-14 10:00+08', '09:00', '16:00'), '2026-04-14 10:00+08'::timestamptz,
	'inside the window: now');
select is(linbat.window_next('2026-04-14 22:00+08', '09:00', '16:00'), '2026-04-15 09:00+08'::timestamptz,
	'at 22:00 WITA: the next morning');
select is(linbat.window_next('2026-04-14 16:00+08', '09:00', '16:00'), '2026-04-15 09:00+08'::timestamptz,
	'the window''s end is not in it');

-- Fixture -------------------------------------------------------------------------------
select linbat.channel_register('wa1', 'whatsapp'), linbat.channel_register('sms1', 'sms'),
	linbat.channel_register('mail1', 'email') \gset
insert into linbat.investor (nib, company_name, scale, exempt, preferred_channel, language, district) values
	('9000000000001', 'PT Besar Satu', 'besar', false, 'whatsapp', 'id', 'Paringin'),
	('9000000000002', 'CV Kecil Dua', 'kecil', false, 'sms', 'en', 'Juai'),
	('9000000000003', 'UD Mikro Tiga', 'mikro', false, null, 'id', 'Paringin'),
	('9000000000004', 'PT Bebas Empat', 'besar', true, null, 'id', 'Paringin'),
	('9000000000005', 'PT Menengah Lima', 'menengah', false, 'whatsapp', 'id', 'Paringin'),
	('9000000000006', 'PT Diam Enam', 'besar', false, null, 'id', 'Paringin');
insert into linbat.investor (company_name, scale) values ('tanpa NIB', 'besar');
insert into linbat.identity (investor_id, kind, address, opted_out_at)
select i.id, v.kind, v.address, v.opted_out_at from (values
	('9000000000001', 'whatsapp', '+6281100000001', null::timestamptz),
	('9000000000002', 'whatsapp', '+6281100000002', null), ('9000000000002', 'sms', '+6281100000002', null),
	('9000000000003', 'whatsapp', '+6281100000003', null),
	('9000000000004', 'whatsapp', '+6281100000004', null),
	('9000000000005', 'whatsapp', '+6281100000005', now()), ('9000000000005', 'email', 'lima@example.co.id', null),
	('9000000000006', 'whatsapp', '+6281100000006', now())) v (nib, kind, address, opted_out_at)
join linbat.investor i on i.nib = v.nib;
insert into linbat.identity (investor_id, kind, address)
select id, 'whatsapp', '+6281100000007' from linbat.investor where nib is null;

select is(linbat.campaign_create('{"name": "Uji", "offsets": [-14, -7, -3, -1, 0, 3],
	"window": {"start": "09:00", "end": "16:00"},
	"texts": {"default": {"id": "Yth. {{company_name}}, LKPM {{period}} paling lambat {{deadline}}.",
		"en": "Dear {{company_name}}, LKPM {{period}} is due {{deadline}}."}},
	"whatsapp_template": {"name": "lkpm_pengingat", "params": ["{{company_name}}", "{{period}}", "{{deadline}}"]}}',
	null) ->> 'status', 'draft', 'a campaign starts as a draft');
select is(linbat.campaign_set_status(1, 'activate', null) ->> 'status', 'active', 'activate');
select throws_ok($$select linbat.campaign_set_status(1, 'resume', null)$$, '22023',
	'cannot resume campaign 1: it is active', 'an active campaign cannot be resumed');
select throws_like($$select linbat.campaign_create('{"name": "x", "offsets": [1, 1], "texts": {"sms": {}}}', null)$$,
	'%campaign_offsets_check%', 'an offset appears once');

-- Another process is planning (first: from here on this transaction holds the lock) -------------------------------------------------------------------
select pg_temp.connect('other') as _ \gset
select dblink_exec('other', 'begin');
select * from dblink('other', 'select pg_advisory_xact_lock(hashtextextended(''linbat.plan_reminders'', 0))::text')
	as t (x text) \gset
select is(linbat.plan_reminders('2025-07-09 10:00+08'), 0, 'a planner that finds the lock taken steps aside');
-- while a planner holds its lock, a delete of an investor with a NIB waits
-- for it; one without (ingest's race) does not
insert into linbat.investor (nib, company_name, scale) values ('9000000000097', 'PT Hapus', 'besar');
insert into linbat.investor (company_name, scale) values ('PT Tanpa NIB', 'besar');
set local lock_timeout = '300ms';
select throws_ok($$delete from linbat.investor where nib = '9000000000097'$$, '55P03', null,
	'deleting an investor with a NIB waits for the planner');
select lives_ok($$delete from linbat.investor where company_name = 'PT Tanpa NIB'$$,
	'deleting one without a NIB does not');
set local lock_timeout = 0;
select dblink_exec('other', 'rollback');
select dblink_disconnect('other');

select is(linbat.campaign_set_status(1, 'pause', null) ->> 'status', 'paused', 'pause');
select is(linbat.plan_reminders('2025-07-09 10:00+08'), 0, 'a paused campaign plans nothing');
select is(linbat.campaign_set_status(1, 'resume', null) ->> 'status', 'active', 'resume');

-- Regime change: the 10th before 2025-10-02, the 15th after -------------------------------
select is(linbat.plan_reminders('2025-07-09 10:00+08'), 3, 'old rule: the day before 10 July 2025');
select results_eq($$select * from pg_temp.planned('2025-07-09 10:00+08')$$,
	$$values ('9000000000001 2025-Q2 -1 whatsapp'), ('9000000000002 2025-S1 -1 sms'),
		('9000000000005 2025-Q2 -1 email')$$,
	'Q2 and S1 2025 are due on the 10th; mikro, exempt, opted-out and unidentified are skipped');
select is(linbat.plan_reminders('2026-04-09 10:00+08'), 0, 'new rule: 9 April 2026 is no reminder day');
select is(linbat.plan_reminders('2026-04-14 10:00+08'), 2, 'new rule: the day before 15 April 2026');
select results_eq($$select * from pg_temp.planned('2026-04-14 10:00+08')$$,
	$$values ('9000000000001 2026-Q1 -1 whatsapp'), ('9000000000005 2026-Q1 -1 email')$$,
	'Q1 2026 is due on the 15th; kecil has no deadline in April');

-- Year rollover: Q4 and S2 are due in January -----------------------------------------------
select is(linbat.plan_reminders('2026-01-01 10:00+08'), 3, 'two weeks before 15 January 2026');
select results_eq($$select * from pg_temp.planned('2026-01-01 10:00+08')$$,
	$$values ('9000000000001 2025-Q4 -14 whatsapp'), ('9000000000002 2025-S2 -14 sms'),
		('9000000000005 2025-Q4 -14 email')$$,
	'periods of 2025 due in 2026; preferred sms taken; an opted-out WhatsApp falls back to email');
select is((select r.deadline from linbat.reminder r where r.created_at = '2026-01-01 10:00+08' limit 1),
	'2026-01-15'::date, 'the deadline is in the next year');

-- Planning writes reminders; their messages are made when they are due -----------------------
select is((select count(*)::integer from linbat.reminder where message_id is not null), 0,
	'planning makes no message');
select is((select string_agg(r.channel || ' ' || r.instance || ' ' || r.send_at::text, ', ' order by r.channel)
	from linbat.reminder r where r.created_at = '2026-01-01 10:00+08'),
	'email mail1 2026-01-01 02:00:00+00, sms sms1 2026-01-01 02:00:00+00, whatsapp wa1 2026-01-01 02:00:00+00',
	'a reminder carries its channel instance and the time it may leave');
select is(linbat.reminder_send_due('2026-01-01 10:00+08'), 6,
	'then the due ones become messages: those of 9 July 2025 and of today, not those of April');
select is(linbat.reminder_send_due('2026-01-01 10:05+08'), 0, 'each once');

-- What the messages carry ---------------------------------------------------------------
select is((select m.template from linbat.reminder r join linbat.message m on m.id = r.message_id
	join linbat.investor i on i.id = r.investor_id
	where i.nib = '9000000000001' and r.created_at = '2026-01-01 10:00+08'),
	'{"name": "lkpm_pengingat", "language": "id", "params": ["PT Besar Satu", "2025-Q4", "15 Januari 2026"]}'::jsonb,
	'WhatsApp reminders are templates with rendered parameters');
select is((select m.body from linbat.reminder r join linbat.message m on m.id = r.message_id
	join linbat.investor i on i.id = r.investor_id
	where i.nib = '9000000000002' and r.created_at = '2026-01-01 10:00+08'),
	'Dear CV Kecil Dua, LKPM 2025-S2 is due 15 January 2026.', 'others get rendered text in their language');
select ok((select bool_and(m.status = 'queued' and m.direction = 'out' and m.use_template = (r.channel = 'whatsapp'))
	from linbat.reminder r join linbat.message m on m.id = r.message_id), 'every reminder is a queued outbound message');
select ok((select bool_and(c.status = 'resolved') from linbat.reminder r join linbat.message m on m.id = r.message_id
	join linbat.conversation c on c.id = m.conversation_id), 'a reminder opens no conversation for the operators');

-- 22:00 WITA: it waits for the window -------------------------------------------------------
select is(linbat.plan_reminders('2026-01-08 22:00+08'), 3, 'a reminder day seen at 22:00 still plans');
select is(linbat.reminder_send_due('2026-01-08 23:59+08'), 0, 'nothing of it leaves that night');
select is(linbat.reminder_send_due('2026-01-09 09:00+08'), 3, 'it leaves when the window opens');
select ok((select bool_and(m.next_attempt_at = '2026-01-09 09:00+08') from linbat.reminder r
	join linbat.message m on m.id = r.message_id where r.created_at = '2026-01-08 22:00+08'),
	'and its messages leave when the window opens the next morning');

-- Idempotence ------------------------------------------------------------------------------
select is(linbat.plan_reminders('2026-01-08 23:00+08'), 0, 'planning again the same day plans nothing');

-- A filing between two offsets ---------------------------------------------------------------
select is(linbat.filing_mark((select id from linbat.investor where nib = '9000000000002'), '2025-S2', 'terkirim',
	'2026-01-10 11:00+08', null) ->> 'status', 'terkirim', 'an operator marks 2025-S2 filed');
select is(linbat.plan_reminders('2026-01-12 10:00+08'), 2, 'three days before');
select results_eq($$select * from pg_temp.planned('2026-01-12 10:00+08')$$,
	$$values ('9000000000001 2025-Q4 -3 whatsapp'), ('9000000000005 2025-Q4 -3 email')$$,
	'who filed between -7 and -3 hears nothing more');

-- A crash halfway through planning --------------------------------------------------------------
create function pg_temp.crash() returns trigger language plpgsql
as $$ begin
	if new.channel_instance = 'mail1' then raise exception 'crash'; end if;
	return new;
end $$;
create function pg_temp.crash_reminder() returns trigger language plpgsql
as $$ begin
	if new.channel = 'email' then raise exception 'crash'; end if;
	return new;
end $$;
create trigger crash before insert on linbat.reminder for each row execute function pg_temp.crash_reminder();
select throws_ok($$select linbat.plan_reminders('2026-01-14 10:00+08')$$, 'P0001', 'crash',
	'planning dies after some rows are written');
select is((select count(*)::integer from linbat.reminder where offset_days = -1 and period = '2025-Q4'), 0,
	'and leaves nothing behind');
drop trigger crash on linbat.reminder;
select is(linbat.plan_reminders('2026-01-14 10:00+08'), 2, 'planning again plans them');
select is(linbat.plan_reminders('2026-01-14 11:00+08'), 0, 'once');
create trigger crash before insert on linbat.message for each row execute function pg_temp.crash();
select throws_ok($$select linbat.reminder_send_due('2026-01-14 11:00+08')$$, 'P0001', 'crash',
	'making the messages dies halfway');
select is((select count(*)::integer from linbat.reminder where message_id is null
	and send_at <= '2026-01-14 11:00+08'), 4,
	'and leaves the due reminders waiting');
drop trigger crash on linbat.message;
select is(linbat.reminder_send_due('2026-01-14 11:00+08'), 4, 'the next round sends those of 12 and 14 January');
select is(linbat.reminder_send_due('2026-01-14 11:00+08'), 0, 'once');
select is((select count(*)::integer from linbat.message m join linbat.reminder r on r.message_id = m.id), 13,
	'one message per reminder sent');
select is((select count(*)::integer from (select 1 from linbat.reminder
	group by campaign_id, investor_id, period, offset_days having count(*) > 1) d), 0, 'no reminder twice');

-- A reminder whose identity is gone, or who filed, is not sent -----------------------------------
insert into linbat.investor (nib, company_name, scale) values ('9000000000087', 'PT Pindah', 'besar'),
	('9000000000086', 'PT Lapor', 'besar'), ('9000000000085', 'PT Berhenti', 'besar');
insert into linbat.identity (investor_id, kind, address)
select id, 'sms', '+62811000000' || right(nib, 2) from linbat.investor where nib in ('9000000000087', '9000000000086', '9000000000085');
insert into linbat.reminder (campaign_id, investor_id, period, offset_days, deadline, channel, identity_id, instance, send_at)
select 1, i.id, '2026-Q1', -14, '2026-04-15', 'sms', d.id, 'sms1', '2026-04-01 09:00+08'
from linbat.investor i join linbat.identity d on d.investor_id = i.id where i.nib in ('9000000000087', '9000000000086', '9000000000085');
delete from linbat.identity where address = '+6281100000087';
update linbat.identity set opted_out_at = '2026-04-01 08:30+08' where address = '+6281100000085';
select is(linbat.filing_mark((select id from linbat.investor where nib = '9000000000086'), '2026-Q1', 'terkirim',
	'2026-04-01 08:00+08', null) ->> 'status', 'terkirim', 'one files before the reminder leaves');
select is(linbat.reminder_send_due('2026-04-01 10:00+08'), 0,
	'a reminder whose identity was merged away or has opted out, or whose investor has filed, makes no message');
select is((select string_agg(i.nib || ' ' || r.skipped, ', ' order by i.nib) from linbat.reminder r
	join linbat.investor i on i.id = r.investor_id where i.nib in ('9000000000087', '9000000000086', '9000000000085')),
	'9000000000085 identity, 9000000000086 filed, 9000000000087 identity', 'each is marked skipped, with why');
select is(linbat.reminder_send_due('2026-04-01 10:05+08'), 0, 'and stays so');

-- Paused, a campaign holds its due reminders; archived, they are skipped; a text is the day's ----------
select linbat.campaign_create('{"name": "Tahan", "offsets": [-7], "window": {"start": "09:00", "end": "16:00"},
	"texts": {"default": {"id": "{{company_name}}: {{days_left}} hari lagi",
		"en": "{{company_name}}: {{days_left}} days left"}}}', null) ->> 'id' as c2 \gset
select linbat.campaign_set_status(:c2, 'activate', null) ->> 'status' as _ \gset
-- planned at 22:00 on 8 April, seven days before the deadline, held for the window
insert into linbat.reminder (campaign_id, investor_id, period, offset_days, deadline, channel, identity_id, instance,
	send_at, created_at)
select :c2, i.id, '2026-Q1', v.off, '2026-04-15', 'sms', d.id, 'sms1', '2026-04-09 09:00+08', '2026-04-08 22:00+08'
from linbat.investor i join linbat.identity d on d.investor_id = i.id and d.kind = 'sms', (values (-7), (-8)) v (off)
where i.nib = '9000000000002';
select linbat.campaign_set_status(:c2, 'pause', null) ->> 'status' as _ \gset
select is(linbat.reminder_send_due('2026-04-09 10:00+08'), 0, 'a paused campaign''s reminders do not leave');
select is((select count(*)::integer from linbat.reminder where campaign_id = :c2 and skipped is null
	and message_id is null), 2, 'they wait, not skipped');
select linbat.campaign_set_status(:c2, 'resume', null) ->> 'status' as _ \gset
select is(linbat.reminder_send_due('2026-04-09 10:00+08', 1), 1, 'resumed, they leave (one per round here)');
select is(linbat.reminder_send_due('2026-04-09 10:00+08'), 1, 'and the next');
select is((select m.body from linbat.reminder r join linbat.message m on m.id = r.message_id
	where r.campaign_id = :c2 and r.offset_days = -7), 'CV Kecil Dua: 6 days left',
	'the text is rendered when it leaves: 6 days are left on 9 April, not the 7 of when it was planned');
insert into linbat.reminder (campaign_id, investor_id, period, offset_days, deadline, channel, identity_id, instance,
	send_at)
select :c2, i.id, '2026-Q1', -5, '2026-04-15', 'sms', d.id, 'sms1', '2026-04-10 09:00+08'
from linbat.investor i join linbat.identity d on d.investor_id = i.id and d.kind = 'sms' where i.nib = '9000000000002';
select linbat.campaign_set_status(:c2, 'archive', null) ->> 'status' as _ \gset
select is(linbat.reminder_send_due('2026-04-10 10:00+08'), 0, 'an archived campaign''s reminders do not leave');
select is((select skipped from linbat.reminder where campaign_id = :c2 and offset_days = -5), 'campaign',
	'they are skipped');

-- Preview and stats -----------------------------------------------------------------------------
select is((select string_agg(nib, ' ' order by nib) from linbat.campaign_preview(1, '2026-07-01', 18)
	where offset_days = -14), '9000000000001 9000000000002 9000000000005 9000000000086',
	'preview lists who would hear on 1 July 2026 (who filed 2026-Q1 has 2026-Q2 to file)');
update linbat.message m set status = 'delivered', delivered_at = now() from linbat.reminder r
where r.message_id = m.id and r.channel = 'email';
select is(linbat.campaign_stats(1) -> 'stats' -> 0 ->> 'channel', 'email', 'stats per period and channel');
select is((select (s ->> 'delivered')::integer from jsonb_array_elements(linbat.campaign_stats(1) -> 'stats') s
	where s ->> 'period' = '2025-Q4' and s ->> 'channel' = 'email'), 4, 'delivered counted (-14, -7, -3, -1)');
select is((select (s ->> 'filed_after_reminder')::integer from jsonb_array_elements(linbat.campaign_stats(1) -> 'stats') s
	where s ->> 'period' = '2025-S2' and s ->> 'channel' = 'sms'), 2, 'filed after the -14 and -7 reminders');

-- Keywords ------------------------------------------------------------------------------------------
create temp table kw as select * from linbat.ingest_inbound('wa1', 'whatsapp', '+6281100000001', 'wamid.k1',
	'  berhenti ', 'text', '{}', now(), null);
select ok((select bool_and(opted_out_at is not null) from linbat.identity i join linbat.investor v
	on v.id = i.investor_id where v.nib = '9000000000001'), 'BERHENTI (any case) opts the investor out');
select alike((select body from linbat.message where conversation_id = (select conversation_id from kw)
	and direction = 'out' and meta ->> 'keyword' = 'stop'), 'Baik, Anda tidak akan menerima%', 'and is answered');
select is((select status from linbat.conversation where id = (select conversation_id from kw)), 'resolved',
	'without bothering an operator');
select linbat.ingest_inbound('wa1', 'whatsapp', '+6281100000001', 'wamid.k2', 'START', 'text', '{}', now(), null) \gset
select ok((select bool_and(opted_out_at is null) from linbat.identity i join linbat.investor v
	on v.id = i.investor_id where v.nib = '9000000000001'), 'START opts back in');
select linbat.ingest_inbound('wa1', 'whatsapp', '+6281100000002', 'wamid.k3', 'Kanal Email', 'text', '{}', now(), null) \gset
select is((select preferred_channel from linbat.investor where nib = '9000000000002'), 'email', 'KANAL EMAIL');
select linbat.ingest_inbound('wa1', 'whatsapp', '+6281100000099', 'wamid.k4', 'NIB 9000000000005', 'text', '{}',
	now(), null) \gset
select is((select nib || ' ' || status from linbat.nib_claim), '9000000000005 pending',
	'NIB from an unknown sender waits for an operator');

create temp table kw2 as select * from linbat.ingest_inbound('wa1', 'whatsapp', '+6281100000001', 'wamid.k5',
	'Sudah', 'text', '{}', now(), null);
select is((select f.status || ' ' || f.source || ' ' || f.period from linbat.lkpm_filing f
	join linbat.investor i on i.id = f.investor_id where i.nib = '9000000000001' and f.source = 'keyword'),
	'claimed keyword ' || linbat.lkpm_current_period('besar', linbat.lkpm_period_start(
		linbat.lkpm_current_period('besar', (now() at time zone 'Asia/Makassar')::date)) - 1),
	'SUDAH claims the period that ended last');
select isnt((select status from linbat.conversation where id = (select conversation_id from kw2)), 'resolved',
	'and goes to an operator, who confirms it');
select linbat.ingest_inbound('wa1', 'whatsapp', '+6281100000098', 'wamid.k6', 'Sudah', 'text', '{}', now(), null) \gset
select is((select count(*)::integer from linbat.message m join linbat.identity i on i.id = m.identity_id
	where i.address = '+6281100000098' and m.meta ? 'keyword'), 0,
	'from a sender linbat cannot tie to a filer, Sudah is an ordinary message');

-- A reminder's campaign and investor exist, and stay (checked per statement) ---------------------
select throws_ok($$insert into linbat.reminder (campaign_id, investor_id, period, offset_days, deadline, channel,
		identity_id, instance, send_at)
	select 1, -1, '2026-Q1', 99, '2026-04-15', 'sms', 1, 'sms1', now()$$, '23503', null,
	'a reminder for no investor is refused');
select throws_ok($$insert into linbat.reminder (campaign_id, investor_id, period, offset_days, deadline, channel,
		identity_id, instance, send_at)
	select c, i.id, '2026-Q1', 99, '2026-04-15', 'sms', 1, 'sms1', now()
	from linbat.investor i, (values (1), (-1)) v (c) where i.nib = '9000000000001'$$, '23503', null,
	'a reminder for no campaign is refused, whatever else the statement writes');
select throws_ok($$update linbat.reminder set investor_id = -1 where investor_id = (select min(investor_id) from linbat.reminder)$$,
	'23503', null, 'nor can a reminder be moved to no investor');
insert into linbat.investor (nib, company_name, scale) values ('9000000000098', 'PT Diingatkan', 'besar');
insert into linbat.reminder (campaign_id, investor_id, period, offset_days, deadline, channel, identity_id, instance,
	send_at)
select 1, id, '2026-Q1', -14, '2026-04-15', 'sms', 1, 'sms1', now() from linbat.investor where nib = '9000000000098';
select throws_ok($$delete from linbat.investor where nib = '9000000000098'$$, '23503', null,
	'an investor with reminders cannot be deleted');
select throws_ok($$delete from linbat.campaign where id = 1$$, '23503', null,
	'nor a campaign with reminders');
insert into linbat.investor (nib, company_name, scale) values ('9000000000099', 'PT Baru', 'besar');
select lives_ok($$delete from linbat.investor where nib = '9000000000099'$$, 'an investor without reminders can be');

select * from finish();
rollback;
