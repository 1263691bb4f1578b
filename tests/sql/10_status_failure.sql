-- A failed delivery report leads where a failed send leads: 131047 sends the
-- template, anything else goes to the investor's next channel; a failure
-- report after delivery changes nothing.
begin;
select plan(10);

select linbat.channel_register('wa-sf', 'whatsapp') as _ \gset
select linbat.channel_register('sms-sf', 'sms') as _ \gset
insert into linbat.operator (name, email, presence) values ('Sari', 'sari@example.com', 'online');
create temp table peer as
select * from linbat.ingest_inbound('wa-sf', 'whatsapp', '+6281299300001', 'wamid.sf-in', 'Halo', 'text',
	'{}', now(), 'Ani');
insert into linbat.identity (investor_id, kind, address)
select investor_id, 'sms', '+6281299300001' from peer;
-- Queue a reply, claim it and have the provider accept it; its id.
create function pg_temp.sent_reply(p_body text) returns bigint language plpgsql as $$
declare
	v_id bigint := linbat.enqueue_reply((select conversation_id from peer), p_body, null);
begin
	perform linbat.claim_outbound('t', 100, 30);
	perform linbat.outbound_sent(v_id, 'wamid.out-' || v_id);
	return v_id;
end
$$;

create temp table a as select pg_temp.sent_reply('Satu') as id;
select linbat.status_update('wa-sf', 'wamid.out-' || (select id from a), 'failed', now(), '131026',
	'Message undeliverable') as _ \gset
select is((select status from linbat.message where id = (select id from a)), 'failed',
	'a failed report fails the message');
select is((select channel_instance from linbat.message where fallback_of = (select id from a)), 'sms-sf',
	'131026 by webhook goes to the investor''s next channel');
select is((select status from linbat.message where fallback_of = (select id from a)), 'queued',
	'the fallback is queued');
select is((select error_kind from linbat.message where id = (select id from a)), 'permanent',
	'the failure is recorded as permanent');

create temp table b as select pg_temp.sent_reply('Dua') as id;
select linbat.status_update('wa-sf', 'wamid.out-' || (select id from b), 'failed', now(), '131047',
	'Re-engagement message') as _ \gset
select results_eq($$select status, use_template from linbat.message where id = (select id from b)$$,
	$$values ('queued'::text, true)$$, '131047 by webhook queues the same message as the template');
select is((select count(*)::int from linbat.message where fallback_of = (select id from b)), 0,
	'131047 does not fall back');
select is((select meta->>'window_closed_provider_id' from linbat.message where id = (select id from b)),
	'wamid.out-' || (select id from b), 'the first provider id is kept in meta for the record');
select linbat.claim_outbound('t', 100, 30) as _ \gset
select linbat.outbound_sent((select id from b), 'wamid.tpl') as _ \gset
select linbat.status_update('wa-sf', 'wamid.tpl', 'failed', now(), '131047', 'again') as _ \gset
select is((select channel_instance from linbat.message where fallback_of = (select id from b)), 'sms-sf',
	'a template that fails too goes to the next channel');

create temp table c as select pg_temp.sent_reply('Tiga') as id;
select linbat.status_update('wa-sf', 'wamid.out-' || (select id from c), 'delivered', now(), null, null)
	as _ \gset
select linbat.status_update('wa-sf', 'wamid.out-' || (select id from c), 'failed', now(), '131026', 'late')
	as _ \gset
select is((select status from linbat.message where id = (select id from c)), 'delivered',
	'a failure report after delivery is ignored');
select is((select count(*)::int from linbat.message where fallback_of = (select id from c)), 0,
	'and starts no fallback');

select * from finish();
rollback;
