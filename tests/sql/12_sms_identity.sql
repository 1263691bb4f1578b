-- 0006_sms: one investor per phone number across WhatsApp and SMS, whichever
-- kind writes first; other numbers and e-mail stay apart.
begin;
select plan(9);

select linbat.channel_register('wa-p', 'whatsapp') as _ \gset
select linbat.channel_register('sms-p', 'sms') as _ \gset
select linbat.channel_register('mail-p', 'email') as _ \gset

create temp table wa1 as
select * from linbat.ingest_inbound('wa-p', 'whatsapp', '+6281299700001', 'wamid.P1', 'Halo dari WA',
	'text', '{}', null, 'Sari');
create temp table sms1 as
select * from linbat.ingest_inbound('sms-p', 'sms', '+6281299700001', 'k-P1', 'Halo dari SMS',
	'text', '{}', null, null);
select is((select investor_id from sms1), (select investor_id from wa1),
	'an SMS from a WhatsApp number joins that investor');
select is((select conversation_id from sms1), (select conversation_id from wa1),
	'and lands in the same open conversation');
select is((select count(*) from linbat.identity where address = '+6281299700001'), 2::bigint,
	'the investor now has a whatsapp and an sms identity');
select is((select count(*) from linbat.investor), 1::bigint, 'no second investor was made');

create temp table sms2 as
select * from linbat.ingest_inbound('sms-p', 'sms', '+6281299700002', 'k-P2', 'SMS dulu',
	'text', '{}', null, null);
create temp table wa2 as
select * from linbat.ingest_inbound('wa-p', 'whatsapp', '+6281299700002', 'wamid.P2', 'lalu WA',
	'text', '{}', null, 'Joko');
select is((select investor_id from wa2), (select investor_id from sms2),
	'a WhatsApp message from an SMS number joins that investor too');

create temp table other as
select * from linbat.ingest_inbound('sms-p', 'sms', '+6281299700003', 'k-P3', 'nomor lain',
	'text', '{}', null, null);
select isnt((select investor_id from other), (select investor_id from wa1),
	'another number is another investor');
create temp table mail as
select * from linbat.ingest_inbound('mail-p', 'email', 'sari@example.co.id', '<m1@example.co.id>', 'surel',
	'text', '{}', null, null);
select isnt((select investor_id from mail), (select investor_id from wa1),
	'e-mail addresses are never matched to phone numbers');
select is(linbat.identity_lock_key('sms', '+6281299700001'), linbat.identity_lock_key('whatsapp', '+6281299700001'),
	'both phone kinds of a number take one lock');
select isnt(linbat.identity_lock_key('email', 'a@b.id'), linbat.identity_lock_key('sms', 'a@b.id'),
	'e-mail keeps its own lock key');

select * from finish();
rollback;
