-- Planning as of 0012: texts rendered once per group, then per investor;
-- values are put in as they are (a company named like a placeholder stays
-- so, quotes survive in the WhatsApp template's JSON); the email trigger
-- still dresses email reminders, and only them.
begin;
select plan(10);

select linbat.channel_register('wa1', 'whatsapp'), linbat.channel_register('sms1', 'sms'),
	linbat.channel_register('mail1', 'email') \gset
insert into linbat.investor (nib, company_name, scale, preferred_channel, language) values
	('9100000000001', 'PT "Kutip" {{nib}} \ {{period}} Tbk', 'besar', 'whatsapp', 'id'),
	('9100000000002', 'CV Surat', 'besar', 'email', 'en'),
	('9100000000003', null, 'besar', 'sms', 'id');
insert into linbat.identity (investor_id, kind, address)
select i.id, v.kind, v.address from (values
	('9100000000001', 'whatsapp', '+6281200000001'), ('9100000000001', 'sms', '+6281200000001'),
	('9100000000002', 'email', 'surat@example.co.id'), ('9100000000002', 'sms', '+6281200000002'),
	('9100000000003', 'sms', '+6281200000003')) v (nib, kind, address)
join linbat.investor i on i.nib = v.nib;
select linbat.campaign_set_status((linbat.campaign_create('{"name": "Render", "offsets": [-14],
	"window": {"start": "00:00", "end": "24:00"},
	"texts": {"default": {"id": "Yth. {{company_name}} ({{nib}}): {{period}}, {{deadline}}, {{days_left}} hari {{x}}",
		"en": "Dear {{company_name}} ({{nib}}): {{period}}, {{deadline}}, {{days_left}} days"}},
	"whatsapp_template": {"name": "lkpm_pengingat", "params": ["{{company_name}}", "{{nib}} {{deadline}}"]}}',
	null) ->> 'id')::bigint, 'activate', null) \gset

select is(linbat.plan_reminders('2026-04-01 10:00+08'), 3, 'three investors planned');
select is(linbat.reminder_send_due('2026-04-01 10:00+08'), 3, 'and due: their messages are made');
select is((select m.template from linbat.message m join linbat.reminder r on r.message_id = m.id
	join linbat.investor i on i.id = r.investor_id where i.nib = '9100000000001'),
	jsonb_build_object('name', 'lkpm_pengingat', 'language', 'id', 'params',
		jsonb_build_array('PT "Kutip" {{nib}} \ {{period}} Tbk', '9100000000001 15 April 2026')),
	'template parameters: quotes and backslashes survive, a placeholder in a value is not filled');
select is((select m.body from linbat.message m join linbat.reminder r on r.message_id = m.id
	join linbat.investor i on i.id = r.investor_id where i.nib = '9100000000001'),
	'Yth. PT "Kutip" {{nib}} \ {{period}} Tbk (9100000000001): 2026-Q1, 15 April 2026, 14 hari {{x}}',
	'the text too, and an unknown placeholder stays');
select is((select m.body from linbat.message m join linbat.reminder r on r.message_id = m.id
	join linbat.investor i on i.id = r.investor_id where i.nib = '9100000000002'),
	'Dear CV Surat (9100000000002): 2026-Q1, 15 April 2026, 14 days', 'English');
select is((select m.body from linbat.message m join linbat.reminder r on r.message_id = m.id
	join linbat.investor i on i.id = r.investor_id where i.nib = '9100000000003'),
	'Yth.  (9100000000003): 2026-Q1, 15 April 2026, 14 hari {{x}}', 'no company name: empty');
select ok((select m.meta ? 'email_token' and m.meta ->> 'channel' = 'email' from linbat.message m
	join linbat.reminder r on r.message_id = m.id join linbat.investor i on i.id = r.investor_id
	where i.nib = '9100000000002'), 'an email reminder gets its thread token');
select ok((select not m.meta ? 'email_token' and m.meta ->> 'channel' = 'whatsapp' from linbat.message m
	join linbat.reminder r on r.message_id = m.id join linbat.investor i on i.id = r.investor_id
	where i.nib = '9100000000001'), 'a WhatsApp reminder does not');
select is(linbat.text_array_ok(array['01111', '01111'], '^[0-9]{5}$') or linbat.text_array_ok(array['0111'], '^[0-9]{5}$')
	or linbat.text_array_ok(array[null], '.*') or not linbat.text_array_ok(null, 'x')
	or not linbat.text_array_ok('{}', 'x') or not linbat.text_array_ok(array['a', 'b'], '^[a-z]$'), false,
	'text_array_ok: duplicates, mismatches and nulls refused; null, empty and good arrays pass');

-- A campaign with texts for SMS only: who would hear on WhatsApp or email hears by SMS, who has no
-- SMS nothing (before: a WhatsApp reminder with no text, which failed the plan)
select linbat.campaign_set_status((:'campaign_set_status'::jsonb ->> 'id')::bigint, 'archive', null) is not null as _ \gset
select linbat.campaign_set_status((linbat.campaign_create('{"name": "SMS saja", "offsets": [-14],
	"window": {"start": "00:00", "end": "24:00"}, "texts": {"sms": {"id": "Yth. {{company_name}}"}}}',
	null) ->> 'id')::bigint, 'activate', null) ->> 'id' as sms_only \gset
select linbat.plan_reminders('2026-04-01 10:00+08') as _ \gset
select is((select string_agg(i.nib || ' ' || r.channel, ', ' order by i.nib) from linbat.reminder r
	join linbat.investor i on i.id = r.investor_id where r.campaign_id = :sms_only),
	'9100000000001 sms, 9100000000002 sms, 9100000000003 sms',
	'a kind the campaign has no text for is not chosen: the next in the fallback order is');

select * from finish();
rollback;
