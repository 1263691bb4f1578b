-- 0015: the dispatcher records sends set-based (linbat.outbound_sent_batch,
-- one statement for a batch of provider answers), and a message's sent_at is
-- never later than a delivery or read time already known for it.
begin;
select plan(29);

select linbat.channel_register('wa-15', 'whatsapp') as _ \gset
select linbat.channel_register('sms-15', 'sms') as _ \gset
create temp table peer as
select * from linbat.ingest_inbound('wa-15', 'whatsapp', '+6281299150001', 'wamid.15-in', 'Halo', 'text',
	'{}', now(), null);
-- n outbound messages on instance p_instance in status 'sending', as a claim leaves them; their ids.
create function pg_temp.sending(p_instance text, n integer) returns setof bigint language sql as $$
	insert into linbat.message (conversation_id, direction, identity_id, channel_instance, body, status,
		attempts, locked_until, locked_by, next_attempt_at)
	select p.conversation_id, 'out', m.identity_id, p_instance, 'reply ' || g, 'sending', 1,
		now() + interval '30 seconds', 'd1', now()
	from peer p join linbat.message m on m.id = p.message_id, generate_series(1, n) g
	returning id
$$;
create temp table b as select row_number() over (order by id) as n, id from pg_temp.sending('wa-15', 4) as id;
create function pg_temp.b(k integer) returns bigint language sql as 'select id from b where n = k';

-- sent_at is never after a known delivery or read --------------------------------------
-- Kannel's DLR (by our id) may be recorded before smsbox's answer is.
create temp table s as select row_number() over (order by id) as n, id from pg_temp.sending('sms-15', 3) as id;
create function pg_temp.s(k integer) returns bigint language sql as 'select id from s where n = k';
select linbat.status_update_by_id(pg_temp.s(1), 'delivered', now() - interval '2 seconds', null, null) as _ \gset
select is(linbat.outbound_sent(pg_temp.s(1), 'k1'), false, 'a send recorded after its delivery report does not move it back');
select results_eq($$select status, sent_at, delivered_at from linbat.message where id = pg_temp.s(1)$$,
	$$values ('delivered'::text, now() - interval '2 seconds', now() - interval '2 seconds')$$,
	'and its sent_at is the delivery time, not later');
select linbat.status_update_by_id(pg_temp.s(2), 'read', now() - interval '3 seconds', null, null) as _ \gset
select linbat.status_update_by_id(pg_temp.s(2), 'delivered', now() - interval '5 seconds', null, null) as _ \gset
select linbat.outbound_sent(pg_temp.s(2), 'k2') as _ \gset
select is((select sent_at from linbat.message where id = pg_temp.s(2)), now() - interval '5 seconds',
	'the earliest of the delivery and read times');
-- A send recorded first, then a DLR whose time (whole seconds) is earlier.
select linbat.outbound_sent(pg_temp.s(3), 'k3') as _ \gset
select linbat.status_update_by_id(pg_temp.s(3), 'delivered', now() - interval '1 second', null, null) as _ \gset
select results_eq($$select sent_at, delivered_at from linbat.message where id = pg_temp.s(3)$$,
	$$values (now() - interval '1 second', now() - interval '1 second')$$,
	'a delivery time earlier than sent_at moves sent_at back to it');
select linbat.status_update_by_id(pg_temp.s(3), 'read', now() - interval '4 seconds', null, null) as _ \gset
select is((select sent_at from linbat.message where id = pg_temp.s(3)), now() - interval '4 seconds',
	'and so does a read time');
select linbat.status_update_by_id(pg_temp.s(3), 'delivered', now() + interval '1 hour', null, null) as _ \gset
select is((select sent_at from linbat.message where id = pg_temp.s(3)), now() - interval '4 seconds',
	'a later time never moves sent_at forward');
select linbat.status_update_by_id(pg_temp.b(4), 'delivered', now() - interval '1 second', null, null) as _ \gset
select is((select sent_at from linbat.message where id = pg_temp.b(4)), null,
	'a delivery report does not invent a sent_at');

-- outbound_sent_batch ------------------------------------------------------------------
select is(linbat.status_update('wa-15', 'wamid.b2', 'read', now() - interval '1 second', null, null), null,
	'a status that overtakes the batch waits in status_early');
select results_eq($$select id, moved from linbat.outbound_sent_batch(
		array[pg_temp.b(1), pg_temp.b(2), pg_temp.b(3), -1], array['wamid.b1', 'wamid.b2', '', 'wamid.x'])
		order by id$$,
	$$values (pg_temp.b(1), true), (pg_temp.b(2), true), (pg_temp.b(3), true)$$,
	'one call records a batch; a missing message is left out, not an error');
select results_eq($$select status, provider_id, sent_at, locked_until, locked_by from linbat.message
	where id in (pg_temp.b(1), pg_temp.b(3)) order by id$$,
	$$values ('sent'::text, 'wamid.b1'::text, now(), null::timestamptz, null::text),
		('sent', null, now(), null, null)$$,
	'each with its provider id (an empty one is none) and the time, and the lease ends');
select results_eq($$select status, sent_at, read_at from linbat.message where id = pg_temp.b(2)$$,
	$$values ('read'::text, now() - interval '1 second', now() - interval '1 second')$$,
	'the early status is applied, and sent_at is not after it');
select is((select count(*) from linbat.status_early where provider_id = 'wamid.b2'), 0::bigint,
	'and forgotten');
select results_eq($$select id, moved from linbat.outbound_sent_batch(array[pg_temp.b(1), pg_temp.b(2)],
		array['wamid.other', 'wamid.b2'])$$,
	$$values (pg_temp.b(1), false), (pg_temp.b(2), false)$$, 'a second call moves nothing');
select results_eq($$select status, provider_id, sent_at from linbat.message where id in (pg_temp.b(1), pg_temp.b(2))
	order by id$$,
	$$values ('sent'::text, 'wamid.b1'::text, now()), ('read', 'wamid.b2', now() - interval '1 second')$$,
	'and changes nothing: the first provider id and times stay');
select results_eq($$select id, moved from linbat.outbound_sent_batch(array[pg_temp.b(4), pg_temp.b(4)],
		array['wamid.b4', 'wamid.b4'])$$,
	$$values (pg_temp.b(4), false)$$, 'an id twice in one batch is recorded once (it was delivered already)');
select results_eq($$select status, sent_at from linbat.message where id = pg_temp.b(4)$$,
	$$values ('delivered'::text, now() - interval '1 second')$$,
	'a batch also keeps sent_at no later than a delivery report by our id');
select is_empty($$select * from linbat.outbound_sent_batch('{}', '{}')$$, 'an empty batch is fine');
select throws_ok($$select * from linbat.outbound_sent_batch(array[1, 2], array['x'])$$, '22023', null,
	'arrays of different lengths are refused');
select throws_ok($$select * from linbat.outbound_sent_batch(array[null::bigint], array['x'])$$, '22023', null,
	'and so is a null id');
select throws_ok($$select * from linbat.outbound_sent_batch(null, null)$$, '22023', null,
	'and null arrays');

-- the single-message function is the batch of one
create temp table c as select id from pg_temp.sending('wa-15', 1) as id;
select is(linbat.outbound_sent((select id from c), 'wamid.c1'), true, 'outbound_sent still moves one message');
select is(linbat.outbound_sent((select id from c), 'wamid.c1'), false, 'once');
select throws_ok($$select linbat.outbound_sent(-1, 'x')$$, 'P0002', 'outbound message -1 does not exist',
	'and refuses a missing one');

-- every message that moved is reported as moved
create temp table e as select id from pg_temp.sending('wa-15', 2) as id;
select is((select count(*) from linbat.outbound_sent_batch(array(select id from e order by id),
	array['wamid.e1', 'wamid.e2']) where moved), 2::bigint, 'two messages move');

-- a message that is not outbound is not touched
select is_empty($$select * from linbat.outbound_sent_batch(array[(select message_id from peer)], array['x'])$$,
	'an inbound message is no send');
select is((select status from linbat.message where id = (select message_id from peer)), 'received',
	'and keeps its status');

-- media lists (Twilio MMS) ---------------------------------------------------------------
select linbat.channel_register('tw-15', 'sms') as _ \gset
create temp table mms as
select * from linbat.ingest_inbound('tw-15', 'sms', '+6281299150002', 'MM15a', 'Foto lokasi', 'image',
	'{"media": [{"url": "https://api.twilio.com/m/ME1", "mime_type": "image/jpeg"},
		{"url": "https://api.twilio.com/m/ME2", "mime_type": "application/pdf; x=1"},
		{"url": "https://api.twilio.com/m/ME1", "mime_type": "image/jpeg"}, {"url": ""}, "x"]}', now(), null);
select results_eq($$select provider_media_id, mime_type, status from linbat.attachment
	where message_id = (select message_id from mms) order by id$$,
	$$values ('https://api.twilio.com/m/ME1'::text, 'image/jpeg'::text, 'pending'::text),
		('https://api.twilio.com/m/ME2', 'application/pdf', 'pending')$$,
	'each media of a list is a pending attachment, once, with its type; empty and odd elements are skipped');
select results_eq($$select media_id from linbat.attachment_claim('tw-15', 10, 60) order by id$$,
	$$values ('https://api.twilio.com/m/ME1'::text), ('https://api.twilio.com/m/ME2')$$,
	'and the instance claims them for fetching');
select linbat.ingest_inbound('tw-15', 'sms', '+6281299150002', 'MM15a', 'Foto lokasi', 'image',
	'{"media": [{"url": "https://api.twilio.com/m/ME9", "mime_type": "image/png"}]}', now(), null) as _ \gset
select is((select count(*) from linbat.attachment where message_id = (select message_id from mms)), 2::bigint,
	'the same webhook again adds nothing');

select * from finish();
rollback;
