-- What one session cannot show: two dispatchers claiming at once (SKIP
-- LOCKED), and the notifications other linbatd processes receive. The other
-- sessions are dblink connections, so the rows here are committed; this file
-- removes them at the end.
select plan(7);

create function pg_temp.connect(p_name text) returns text language sql
as $$ select dblink_connect(p_name, format('host=%s port=%s dbname=%s user=%s',
	split_part(current_setting('unix_socket_directories'), ',', 1), current_setting('port'),
	current_database(), current_user)) $$;
select pg_temp.connect('a') as _ \gset
select pg_temp.connect('l') as _ \gset
-- Fail instead of hanging if a claim ever waits for another claimer's lock.
set lock_timeout = '5s';

select linbat.channel_register('wa-lock', 'whatsapp') as _ \gset
-- someone on duty, so no acknowledgement joins the outbox
insert into linbat.operator (name, email, presence) values ('Jaga', 'jaga@example.com', 'online');
create temp table peer as
select * from linbat.ingest_inbound('wa-lock', 'whatsapp', '+6281299300001', 'wamid.l0', 'Halo', 'text',
	'{}', now(), null);
create temp table ra as select linbat.enqueue_reply((select conversation_id from peer), 'satu', null) as id;
create temp table rb as select linbat.enqueue_reply((select conversation_id from peer), 'dua', null) as id;

-- Dispatcher a claims one message and has not committed yet.
select dblink_exec('a', 'begin') as _ \gset
select results_eq($$select id from dblink('a', 'select id from linbat.claim_outbound(''a'', 1, 30)') as t (id bigint)$$,
	'select id from ra', 'dispatcher a claims the oldest message, and holds it');
select results_eq($$select id from linbat.claim_outbound('b', 10, 30)$$, 'select id from rb',
	'dispatcher b skips the row a is claiming instead of waiting, and takes the next');
select dblink_exec('a', 'commit') as _ \gset
select results_eq($$select id, locked_by, attempts from linbat.message where id in ((select id from ra),
	(select id from rb)) order by id$$,
	$$values ((select id from ra), 'a'::text, 1), ((select id from rb), 'b'::text, 1)$$,
	'each message has exactly one claimer');
select is((select count(*) from linbat.claim_outbound('c', 10, 30)), 0::bigint, 'and a third finds nothing');

-- Another process listens; every business function tells it what changed.
select dblink_exec('l', 'listen linbat_event') as _ \gset
select dblink_exec('l', 'listen linbat_outbox') as _ \gset
create temp table n_in as
select * from linbat.ingest_inbound('wa-lock', 'whatsapp', '+6281299300001', 'wamid.l1', 'Sudah', 'text',
	'{}', now(), null);
create temp table n_out as select linbat.enqueue_reply((select conversation_id from n_in), 'Terima kasih', null) as id;
select linbat.outbound_failed((select id from rb), 'temporary', '503', 'busy', null, 5, 1000) as _ \gset
select linbat.status_update_by_id((select id from ra), 'delivered', now(), null, null) as _ \gset

-- The notifications the listener got, waiting up to p_tenths/10 s for p_want of them.
create temp table got (channel text, payload text);
create function pg_temp.notes(p_want integer, p_tenths integer)
returns table (channel text, payload jsonb) language plpgsql
as $$
begin
	for i in 1 .. p_tenths loop
		insert into got select n.notify_name, n.extra from dblink_get_notify('l') n;
		exit when (select count(*) from got) >= p_want;
		perform pg_sleep(0.1);
	end loop;
	return query select g.channel, case g.channel when 'linbat_event' then g.payload::jsonb
		else to_jsonb(g.payload) end from got g;
end
$$;
select bag_eq('select * from pg_temp.notes(5, 50)',
	$$values ('linbat_event', jsonb_build_object('type', 'message', 'conversation',
			(select conversation_id from n_in), 'message', (select message_id from n_in), 'direction', 'in')),
		('linbat_outbox', '"wa-lock"'),
		('linbat_event', jsonb_build_object('type', 'message', 'conversation',
			(select conversation_id from n_in), 'message', (select id from n_out), 'direction', 'out')),
		('linbat_outbox', '"wa-lock"'),
		('linbat_event', jsonb_build_object('type', 'status', 'conversation',
			(select conversation_id from n_in), 'message', (select id from ra), 'status', 'delivered'))$$,
	'inbound, queued, re-queued and status changes are announced, with ids');
select is((select count(*) from pg_temp.notes(6, 3)), 5::bigint, 'and nothing else');
select is((select count(*) from linbat.message m where m.channel_instance = 'wa-lock'), 5::bigint,
	'the rows this file made');

-- Remove what this file committed.
delete from linbat.message where channel_instance = 'wa-lock';
delete from linbat.conversation where investor_id = (select investor_id from peer);
delete from linbat.identity where investor_id = (select investor_id from peer);
delete from linbat.investor where id = (select investor_id from peer);
delete from linbat.channel_instance where name = 'wa-lock';
delete from linbat.operator where email = 'jaga@example.com';
select dblink_disconnect('a') as _ \gset
select dblink_disconnect('l') as _ \gset

select * from finish();
