-- Delivery statuses: linbat.status_update (by provider id) and
-- linbat.status_update_by_id (by our id) move a status forward only.
begin;
select plan(31);

select linbat.channel_register('wa-st', 'whatsapp') as _ \gset
create temp table peer as
select * from linbat.ingest_inbound('wa-st', 'whatsapp', '+6281299100001', 'wamid.in1', 'Halo', 'text',
	'{}', now(), null);

-- Six outbound messages the provider has accepted: wamid.s1 .. wamid.s6.
insert into linbat.message (conversation_id, direction, identity_id, channel_instance, provider_id,
	body, status, sent_at)
select p.conversation_id, 'out', m.identity_id, 'wa-st', 'wamid.s' || n, 'reply ' || n, 'sent', now()
from peer p join linbat.message m on m.id = p.message_id, generate_series(1, 6) as n;
create function pg_temp.st(p text) returns text language sql
as $$ select status from linbat.message where channel_instance = 'wa-st' and provider_id = p $$;
\set t1 '''2025-03-01 10:00+08'''
\set t2 '''2025-03-01 10:01+08'''

-- delivered, then read
select is(linbat.status_update('wa-st', 'wamid.s1', 'delivered', :t1, null, null),
	(select id from linbat.message where provider_id = 'wamid.s1'), 'status_update returns the message id');
select is(pg_temp.st('wamid.s1'), 'delivered', 'sent then delivered is delivered');
select linbat.status_update('wa-st', 'wamid.s1', 'read', :t2, null, null) as _ \gset
select is(pg_temp.st('wamid.s1'), 'read', 'delivered then read is read');
select results_eq($$select delivered_at, read_at from linbat.message where provider_id = 'wamid.s1'$$,
	$$values ('2025-03-01 10:00+08'::timestamptz, '2025-03-01 10:01+08'::timestamptz)$$, 'each status keeps its time');

-- read, then delivered: read wins, and the delivery time is still recorded
select linbat.status_update('wa-st', 'wamid.s2', 'read', :t2, null, null) as _ \gset
select linbat.status_update('wa-st', 'wamid.s2', 'delivered', :t1, null, null) as _ \gset
select is(pg_temp.st('wamid.s2'), 'read', 'read then delivered stays read');
select results_eq($$select delivered_at, read_at from linbat.message where provider_id = 'wamid.s2'$$,
	$$values ('2025-03-01 10:00+08'::timestamptz, '2025-03-01 10:01+08'::timestamptz)$$, 'the late delivery report still records its time');
select linbat.status_update('wa-st', 'wamid.s2', 'sent', :t1, null, null) as _ \gset
select is(pg_temp.st('wamid.s2'), 'read', 'a late sent report does not move read back');

-- a repeated report keeps the first time
select linbat.status_update('wa-st', 'wamid.s2', 'read', '2025-03-02 10:00+08', null, null) as _ \gset
select is((select read_at from linbat.message where provider_id = 'wamid.s2'), '2025-03-01 10:01+08'::timestamptz,
	'a repeated report keeps the first time');

-- failure after delivery is ignored
select linbat.status_update('wa-st', 'wamid.s3', 'delivered', :t1, null, null) as _ \gset
select is(linbat.status_update('wa-st', 'wamid.s3', 'failed', :t2, '131026', 'Message undeliverable'),
	(select id from linbat.message where provider_id = 'wamid.s3'), 'a stale failure still names its message');
select results_eq($$select status, failed_at, error_code from linbat.message where provider_id = 'wamid.s3'$$,
	$$values ('delivered'::text, null::timestamptz, null::text)$$, 'failed after delivered is ignored');

-- failure before delivery applies; a later delivery report beats it
select linbat.status_update('wa-st', 'wamid.s4', 'failed', :t1, '131049', 'not delivered to maintain ecosystem') as _ \gset
select results_eq($$select status, failed_at, error_code, error_text from linbat.message
	where provider_id = 'wamid.s4'$$,
	$$values ('failed'::text, '2025-03-01 10:00+08'::timestamptz, '131049'::text, 'not delivered to maintain ecosystem'::text)$$,
	'failed after sent is failed, with its code and text');
select linbat.status_update('wa-st', 'wamid.s4', 'sent', :t2, null, null) as _ \gset
select is(pg_temp.st('wamid.s4'), 'failed', 'a sent report does not undo a failure');
select linbat.status_update('wa-st', 'wamid.s4', 'read', :t2, null, null) as _ \gset
select is(pg_temp.st('wamid.s4'), 'read', 'a read report is stronger evidence than a failure');

-- by our own id
select is(linbat.status_update_by_id((select id from linbat.message where provider_id = 'wamid.s5'),
	'delivered', :t1, null, null), (select id from linbat.message where provider_id = 'wamid.s5'),
	'status_update_by_id returns the message id');
select is(pg_temp.st('wamid.s5'), 'delivered', 'and moves the status');
select linbat.status_update_by_id((select id from linbat.message where provider_id = 'wamid.s5'),
	'failed', :t2, '1', 'x') as _ \gset
select is(pg_temp.st('wamid.s5'), 'delivered', 'with the same forward-only rule');
select is(linbat.status_update_by_id(-1, 'read', now(), null, null), null, 'an unknown id gives null');
select is(linbat.status_update_by_id((select message_id from peer), 'read', now(), null, null), null,
	'an inbound message has no delivery status');
select is((select status from linbat.message where id = (select message_id from peer)), 'received',
	'and keeps its own');
select is((select read_at from linbat.message where id = (select message_id from peer)), null,
	'untouched');

-- a status for a provider id we do not know yet is kept for outbound_sent
select is(linbat.status_update('wa-st', 'wamid.later', 'delivered', :t1, null, null), null,
	'an unknown provider id gives null');
select is((select count(*) from linbat.status_early where provider_id = 'wamid.later'), 1::bigint,
	'and the status is kept until the provider id is known');
select is(linbat.status_early_sweep(interval '1 hour'), 0, 'a fresh early status survives the sweep');
update linbat.status_early set created_at = now() - interval '2 days' where provider_id = 'wamid.later';
select is(linbat.status_early_sweep(interval '1 day'), 1, 'an early status that never found its message is swept');

-- the lease of a message being sent ends when a status settles it
update linbat.message set status = 'sending', locked_until = now() + interval '1 minute', locked_by = 'd1'
where provider_id = 'wamid.s6';
select linbat.status_update('wa-st', 'wamid.s6', 'delivered', :t1, null, null) as _ \gset
select results_eq($$select status, locked_until, locked_by from linbat.message where provider_id = 'wamid.s6'$$,
	$$values ('delivered'::text, null::timestamptz, null::text)$$, 'a settled message is no longer leased');

-- bad input
select throws_ok($$select linbat.status_update('wa-st', 'wamid.s6', 'seen', now(), null, null)$$,
	'22023', 'unknown delivery status ''seen''', 'an unknown status is refused');
select throws_ok($$select linbat.status_update_by_id(1, 'queued', now(), null, null)$$,
	'22023', 'unknown delivery status ''queued''', 'a provider cannot queue a message');
select throws_ok($$select linbat.status_update('nope', 'wamid.s6', 'read', now(), null, null)$$,
	'22023', 'unknown channel instance ''nope''', 'an unknown instance is refused');
select throws_ok($$select linbat.status_update('wa-st', null, 'read', now(), null, null)$$,
	'22023', 'status ''read'' on ''wa-st'' has no provider id', 'a status without a provider id is refused');

-- the rank order itself
select results_eq($$select s from unnest(array['read', 'queued', 'delivered', 'failed', 'sending', 'sent']) s
	order by linbat.message_status_rank(s)$$,
	$$values ('queued'), ('sending'), ('sent'), ('failed'), ('delivered'), ('read')$$,
	'queued < sending < sent < failed < delivered < read');
select is(linbat.message_status_rank('received'), null, 'received has no rank: inbound only');

select * from finish();
rollback;
