-- The outbox: enqueue_reply, claim_outbound with its lease, outbound_sent,
-- outbound_failed with retry, template and channel fallback.
begin;
select plan(72);

select linbat.channel_register('wa-ob', 'whatsapp') as _ \gset
select linbat.channel_register('sms-ob', 'sms') as _ \gset
-- Rina is on duty, so the investor gets her and no acknowledgement joins the outbox.
insert into linbat.operator (name, email, presence) values ('Rina', 'rina@example.com', 'online');
create temp table peer as
select * from linbat.ingest_inbound('wa-ob', 'whatsapp', '+6281299200001', 'wamid.ob-in', 'Halo', 'text',
	'{}', now(), 'Budi');
create function pg_temp.conv() returns bigint language sql as 'select conversation_id from peer';
create function pg_temp.rina() returns bigint language sql
as $$ select id from linbat.operator where email = 'rina@example.com' $$;
-- Claim whatever is due, then report a failure of message p_id; the outcome.
create function pg_temp.fail(p_id bigint, p_kind text, p_retry_after integer, p_max integer)
returns text language plpgsql as $$
begin
	update linbat.message set next_attempt_at = now() where id = p_id and status = 'queued';
	perform linbat.claim_outbound('t', 100, 30);
	return linbat.outbound_failed(p_id, p_kind, 'E' || p_kind, 'it went wrong', p_retry_after, p_max, 1000);
end
$$;
-- Seconds until message p_id is tried again.
create function pg_temp.delay(p_id bigint) returns numeric language sql
as $$ select extract(epoch from next_attempt_at - now()) from linbat.message where id = p_id $$;
-- Queue a reply on the conversation; its id.
create function pg_temp.reply(p_body text) returns bigint language sql
as $$ select linbat.enqueue_reply(pg_temp.conv(), p_body, pg_temp.rina()) $$;

-- enqueue_reply ---------------------------------------------------------------
-- the investor wrote a minute ago
update linbat.conversation set last_message_at = now() - interval '1 minute' where id = pg_temp.conv();
create temp table r1 as select pg_temp.reply('Selamat siang, Pak Budi') as id;
select results_eq($$select direction, status, channel_instance, identity_id, author_operator, body,
		next_attempt_at, attempts, use_template, content_type
	from linbat.message where id = (select id from r1)$$,
	$$select 'out'::text, 'queued'::text, 'wa-ob'::text, m.identity_id, pg_temp.rina(),
		'Selamat siang, Pak Budi'::text, now(), 0, false, 'text'::text
	from linbat.message m where m.id = (select message_id from peer)$$,
	'a reply is queued, due now, to the identity and instance the investor last used');
select is((select first_response_at from linbat.conversation where id = pg_temp.conv()), now(),
	'the first reply sets the first response time');
update linbat.conversation set first_response_at = now() - interval '1 hour' where id = pg_temp.conv();
create temp table r2 as select linbat.enqueue_reply(pg_temp.conv(), 'Mohon kirim NIB', null) as id;
select is((select first_response_at from linbat.conversation where id = pg_temp.conv()),
	now() - interval '1 hour', 'a later reply keeps the first response time');
select linbat.channel_register('wa-ob2', 'whatsapp') as _ \gset
select linbat.ingest_inbound('wa-ob2', 'whatsapp', '+6281299200001', 'wamid.ob-in2', 'Halo lagi', 'text',
	'{}', now() - interval '1 second', null) as _ \gset
select is((select last_instance from linbat.conversation where id = pg_temp.conv()), 'wa-ob2',
	'a reply is not the investor''s last message: a message sent just before it still sets the way back');
update linbat.conversation set last_instance = 'wa-ob' where id = pg_temp.conv();
select throws_ok($$select linbat.enqueue_reply(-1, 'x', null)$$, 'P0002', 'conversation -1 does not exist',
	'a reply to a missing conversation is refused');
select throws_ok($$select linbat.enqueue_reply(pg_temp.conv(), '  ', null)$$, '22023', null,
	'an empty reply is refused');
select throws_ok($$select linbat.enqueue_reply(pg_temp.conv(), 'x', -7)$$, 'P0002', 'operator -7 does not exist',
	'a reply by an unknown operator is refused');
insert into linbat.investor (display_name) values ('Tanpa kanal');
insert into linbat.conversation (investor_id) select id from linbat.investor where display_name = 'Tanpa kanal';
select throws_ok($$select linbat.enqueue_reply((select c.id from linbat.conversation c join linbat.investor i
	on i.id = c.investor_id where i.display_name = 'Tanpa kanal'), 'x', null)$$, '22023', null,
	'a conversation nobody wrote in has no channel to reply on');
select has_trigger('linbat', 'message', 'message_outbox_insert', 'queued rows wake the dispatchers');
select has_trigger('linbat', 'message', 'message_outbox_requeue', 'and so do re-queued rows');

-- claim_outbound -----------------------------------------------------------------
create temp table c1 as select * from linbat.claim_outbound('d1', 1, 30);
select results_eq('select * from c1',
	$$select (select id from r1), 'wa-ob'::text, 'whatsapp'::text, '+6281299200001'::text,
		'Selamat siang, Pak Budi'::text, false, null::jsonb, 1, true, '{}'::jsonb, 'id'::text$$,
	'claim returns the oldest due message with all the adapter needs');
select results_eq($$select status, locked_by, locked_until from linbat.message where id = (select id from r1)$$,
	$$values ('sending'::text, 'd1'::text, now() + interval '30 seconds')$$,
	'and leases it to the claimer');
select results_eq($$select id from linbat.claim_outbound('d2', 10, 30)$$, 'select id from r2',
	'a leased message is not claimed again; the next one is');
select is((select count(*) from linbat.claim_outbound('d3', 10, 30)), 0::bigint, 'then nothing is due');
update linbat.message set locked_until = now() - interval '1 second' where id = (select id from r1);
select results_eq($$select id, attempts from linbat.claim_outbound('d3', 10, 60)$$,
	'select id, 2 from r1', 'a message whose lease ran out is claimed again: attempt 2');
select is((select locked_by from linbat.message where id = (select id from r1)), 'd3',
	'by its new owner');
create temp table later as select pg_temp.reply('nanti') as id;
update linbat.message set next_attempt_at = now() + interval '1 minute' where id = (select id from later);
select is((select count(*) from linbat.claim_outbound('d3', 10, 60)), 0::bigint,
	'a message due later is not claimed');
update linbat.identity set last_inbound_at = now() - interval '25 hours' where address = '+6281299200001';
update linbat.investor set language = 'en' where id = (select investor_id from peer);
create temp table r4 as select pg_temp.reply('Your LKPM is due') as id;
select results_eq($$select id, window_open, language from linbat.claim_outbound('d4', 10, 30)$$,
	$$select id, false, 'en'::text from r4$$,
	'claim says when the 24 h window is closed, and the investor''s language');
update linbat.identity set last_inbound_at = now() where address = '+6281299200001';
update linbat.investor set language = 'id' where id = (select investor_id from peer);
select throws_ok($$select linbat.claim_outbound('', 10, 30)$$, '22023', null, 'a claim needs an owner');
select throws_ok($$select linbat.claim_outbound('d', 0, 30)$$, '22023', null, 'and a limit');
select throws_ok($$select linbat.claim_outbound('d', 1, 0)$$, '22023', null, 'and a lease');

-- outbound_sent -------------------------------------------------------------------
select is(linbat.outbound_sent((select id from r1), 'wamid.o1'), true, 'outbound_sent moves sending to sent');
select results_eq($$select status, provider_id, sent_at, locked_until, locked_by from linbat.message
	where id = (select id from r1)$$, $$values ('sent'::text, 'wamid.o1'::text, now(), null::timestamptz, null::text)$$,
	'with the provider id and time, and ends the lease');
select is(linbat.outbound_sent((select id from r1), 'wamid.o1'), false, 'a second call changes nothing');
select results_eq($$select status, provider_id, sent_at, locked_until, locked_by from linbat.message
	where id = (select id from r1)$$, $$values ('sent'::text, 'wamid.o1'::text, now(), null::timestamptz, null::text)$$,
	'outbound_sent is idempotent');
select is(linbat.status_update('wa-ob', 'wamid.o1', 'delivered', now(), null, null), (select id from r1),
	'status webhooks now find the message by its provider id');
select is(linbat.outbound_sent((select id from r1), 'wamid.o1'), false, 'a late outbound_sent');
select is((select status || ' ' || provider_id from linbat.message where id = (select id from r1)),
	'delivered wamid.o1', 'does not move delivered back to sent');
select is(linbat.status_update('wa-ob', 'wamid.o2', 'read', now(), null, null), null,
	'a status that overtakes outbound_sent is not lost');
select is(linbat.outbound_sent((select id from r2), 'wamid.o2'), true, 'outbound_sent of that message');
select is((select status from linbat.message where id = (select id from r2)), 'read', 'applies it');
select is((select count(*) from linbat.status_early where provider_id = 'wamid.o2'), 0::bigint,
	'and forgets it');
select throws_ok($$select linbat.outbound_sent(-1, 'x')$$, 'P0002', 'outbound message -1 does not exist',
	'outbound_sent of a missing message is refused');

-- window closed: the template instead -----------------------------------------------
select is(linbat.outbound_failed((select id from r4), 'window_closed', '131047', 'Re-engagement message',
	null, 5, 1000), 'template', 'a closed window makes a template retry');
select results_eq($$select status, use_template, next_attempt_at, locked_by, error_kind, error_code
	from linbat.message where id = (select id from r4)$$,
	$$values ('queued'::text, true, now(), null::text, 'window_closed'::text, '131047'::text)$$,
	'queued now, as a template');
select results_eq($$select id, use_template, attempts from linbat.claim_outbound('d5', 10, 30)$$,
	'select id, true, 2 from r4', 'the dispatcher is told to send the template');
select is(linbat.outbound_failed((select id from r4), 'window_closed', '131047', 'again', null, 5, 1000),
	'failed', 'a template that meets a closed window too fails, with no other channel left');
select results_eq($$select status, failed_at, error_kind, error_text from linbat.message
	where id = (select id from r4)$$, $$values ('failed'::text, now(), 'window_closed'::text, 'again'::text)$$,
	'and says why');

-- retry with backoff ---------------------------------------------------------------
create temp table r5 as select pg_temp.reply('coba lagi') as id;
create temp table delays (n integer, outcome text, d numeric);
insert into delays select 1, pg_temp.fail((select id from r5), 'temporary', null, 10), pg_temp.delay((select id from r5));
insert into delays select 2, pg_temp.fail((select id from r5), 'temporary', null, 10), pg_temp.delay((select id from r5));
insert into delays select 3, pg_temp.fail((select id from r5), 'temporary', null, 10), pg_temp.delay((select id from r5));
insert into delays select 4, pg_temp.fail((select id from r5), 'temporary', null, 10), pg_temp.delay((select id from r5));
select results_eq('select n, outcome from delays order by n',
	$$values (1, 'retry'), (2, 'retry'), (3, 'retry'), (4, 'retry')$$, 'a temporary failure is retried');
select results_eq('select n, d >= 0.5 * 2 ^ (n - 1) and d < 1.5 * 2 ^ (n - 1) from delays order by n',
	$$values (1, true), (2, true), (3, true), (4, true)$$,
	'after base * 2^(attempt-1) seconds, times a jitter in [0.5, 1.5)');
select ok((select d from delays where n = 4) > (select d from delays where n = 1), 'the backoff grows');
select ok((select count(distinct d / 2 ^ (n - 1)) from delays) > 1,
	'the jitter differs from one retry to the next');
select results_eq($$select status, locked_until, error_kind, error_code from linbat.message
	where id = (select id from r5)$$, $$values ('queued'::text, null::timestamptz, 'temporary'::text, 'Etemporary'::text)$$,
	'a retry is queued, unleased, and keeps the last error');
select is(pg_temp.fail((select id from r5), 'rate_limited', 120, 10), 'retry', 'rate limited is retried');
select is(pg_temp.delay((select id from r5)), 120::numeric, 'no sooner than Retry-After');
select is(pg_temp.fail((select id from r5), 'rate_limited', 7200, 10), 'retry', 'a long Retry-After');
select is(pg_temp.delay((select id from r5)), 3600::numeric, 'is capped at one hour');
select is(pg_temp.fail((select id from r5), 'temporary', null, 7), 'failed',
	'out of attempts a temporary failure is final (no other channel)');
select is((select status || ' ' || attempts from linbat.message where id = (select id from r5)), 'failed 7',
	'after the last attempt');

-- fallback to the next channel ------------------------------------------------------
insert into linbat.identity (investor_id, kind, address)
select investor_id, k, a from peer, (values ('sms', '+6281299200001'), ('email', 'budi@contoh.co.id')) as v (k, a);
create temp table r6 as select pg_temp.reply('Batas LKPM 15 April') as id;
select is(pg_temp.fail((select id from r6), 'permanent', null, 5), 'fallback',
	'a permanent failure falls back to the next channel');
select results_eq($$select status, failed_at, error_kind, error_code from linbat.message
	where id = (select id from r6)$$, $$values ('failed'::text, now(), 'permanent'::text, 'Epermanent'::text)$$,
	'the failed message says why');
create temp table fb1 as select id from linbat.message where fallback_of = (select id from r6);
select results_eq($$select m.conversation_id, m.direction, m.status, m.channel_instance, i.kind, i.address,
		m.body, m.attempts, m.author_operator, m.next_attempt_at
	from linbat.message m join linbat.identity i on i.id = m.identity_id where m.id = (select id from fb1)$$,
	$$select pg_temp.conv(), 'out'::text, 'queued'::text, 'sms-ob'::text, 'sms'::text, '+6281299200001'::text,
		'Batas LKPM 15 April'::text, 0, pg_temp.rina(), now()$$,
	'the fallback is a new queued message, linked, on SMS, same text and author');
select is(linbat.outbound_fallback((select id from r6)), (select id from fb1),
	'asking for the fallback again gives the same message');
select is((select count(*) from linbat.message where fallback_of = (select id from r6)), 1::bigint,
	'a message has one fallback');
select is(linbat.outbound_fallback((select id from r1)), null, 'a message that did not fail has none');
select is(pg_temp.fail((select id from fb1), 'permanent', null, 5), 'failed',
	'email is skipped while no email instance is registered');

select linbat.channel_register('mail-ob', 'email') as _ \gset
create temp table r7 as select pg_temp.reply('Pengingat LKPM') as id;
select is(pg_temp.fail((select id from r7), 'permanent', null, 5), 'fallback', 'WhatsApp fails: SMS');
create temp table fb2 as select id from linbat.message where fallback_of = (select id from r7);
select is(pg_temp.fail((select id from fb2), 'permanent', null, 5), 'fallback', 'SMS fails: email');
create temp table fb3 as select id from linbat.message where fallback_of = (select id from fb2);
select results_eq($$select m.channel_instance, i.address from linbat.message m
	join linbat.identity i on i.id = m.identity_id where m.id = (select id from fb3)$$,
	$$values ('mail-ob'::text, 'budi@contoh.co.id'::text)$$, 'on the email instance, to the email address');
select is(pg_temp.fail((select id from fb3), 'permanent', null, 5), 'failed',
	'email fails: every channel was tried, no loop back to WhatsApp');

update linbat.investor set preferred_channel = 'email' where id = (select investor_id from peer);
create temp table r8 as select pg_temp.reply('kanal pilihan') as id;
select is(pg_temp.fail((select id from r8), 'permanent', null, 5), 'fallback', 'with a preferred channel');
select is((select channel_instance from linbat.message where fallback_of = (select id from r8)), 'mail-ob',
	'the fallback goes there first');
update linbat.investor set preferred_channel = null where id = (select investor_id from peer);

update linbat.identity set opted_out_at = now() where kind = 'sms' and address = '+6281299200001';
create temp table r9 as select pg_temp.reply('berhenti SMS') as id;
select is(pg_temp.fail((select id from r9), 'permanent', null, 5), 'fallback', 'with SMS opted out');
select is((select channel_instance from linbat.message where fallback_of = (select id from r9)), 'mail-ob',
	'the fallback skips SMS');
update linbat.identity set opted_out_at = null where kind = 'sms' and address = '+6281299200001';

create temp table r10 as select pg_temp.reply('sekali saja') as id;
select is(pg_temp.fail((select id from r10), 'temporary', null, 1), 'fallback',
	'out of attempts, a temporary failure falls back too');

create temp table r11 as select pg_temp.reply('template dulu') as id;
select is(pg_temp.fail((select id from r11), 'window_closed', null, 5), 'template', 'closed window: template');
select is(pg_temp.fail((select id from r11), 'window_closed', null, 5), 'fallback',
	'closed window for the template too: the next channel');

-- stale and bad reports ----------------------------------------------------------------
select is(linbat.outbound_failed((select id from r1), 'permanent', '1', 'late', null, 5, 1000), 'ignored',
	'a failure report for a message no longer being sent is ignored');
select results_eq($$select status, error_code from linbat.message where id = (select id from r1)$$,
	$$values ('delivered'::text, null::text)$$, 'and changes nothing');
select throws_ok($$select linbat.outbound_failed((select id from r1), 'boom', null, null, null, 5, 1000)$$,
	'22023', 'unknown failure kind ''boom''', 'an unknown failure kind is refused');
select throws_ok($$select linbat.outbound_failed(-1, 'permanent', null, null, null, 5, 1000)$$,
	'P0002', 'outbound message -1 does not exist', 'a failure of a missing message is refused');
select throws_ok($$select linbat.outbound_failed((select id from r1), 'permanent', null, null, null, 0, 1000)$$,
	'22023', null, 'max attempts is at least 1');

select * from finish();
rollback;
