-- What one session cannot show about the routing lock (0011): a new
-- conversation that arrives while a resolve is freeing a place must wait for
-- that resolve, then take the place; routed without waiting, it would see
-- everyone full, join the queue, and wait while the place stands empty (a
-- lost wake-up). The other session is a dblink connection, so the rows here
-- are committed; this file removes them at the end.
select plan(6);

create function pg_temp.connect(p_name text) returns text language sql
as $$ select dblink_connect(p_name, format('host=%s port=%s dbname=%s user=%s',
	split_part(current_setting('unix_socket_directories'), ',', 1), current_setting('port'),
	current_database(), current_user)) $$;
select pg_temp.connect('i') as _ \gset
-- Fail instead of hanging if something waits for good.
set lock_timeout = '10s';

-- Whether backend p_pid waits for an advisory lock, polling for up to p_tenths/10 s.
create function pg_temp.waits_for_lock(p_pid integer, p_tenths integer) returns boolean
language plpgsql as $$
begin
	for i in 1 .. p_tenths loop
		perform pg_stat_clear_snapshot();
		if exists (select 1 from pg_stat_activity a where a.pid = p_pid and a.wait_event_type = 'Lock'
				and a.wait_event = 'advisory') then
			return true;
		end if;
		perform pg_sleep(0.1);
	end loop;
	return false;
end
$$;

select linbat.channel_register('wa-rl', 'whatsapp') as _ \gset
insert into linbat.operator (name, email, presence, capacity) values ('Rina', 'rina@example.com', 'online', 1);
create temp table rina as select id from linbat.operator where email = 'rina@example.com';
create temp table first as
select * from linbat.ingest_inbound('wa-rl', 'whatsapp', '+6281299400001', 'wamid.rl1', 'Halo', 'text',
	'{}', now(), null);
select is((select assigned_operator from linbat.conversation where id = (select conversation_id from first)),
	(select id from rina), 'Rina has the one conversation she has room for');
create temp table ipid as select pid from dblink('i', 'select pg_backend_pid()') as t (pid integer);

-- This session resolves Rina's conversation and has not committed yet; the
-- other one stores a new investor's first message meanwhile.
begin;
select linbat.resolve_conversation((select conversation_id from first), null) as _ \gset
select dblink_send_query('i', $$select conversation_id from linbat.ingest_inbound('wa-rl', 'whatsapp',
	'+6281299400002', 'wamid.rl2', 'Halo', 'text', '{}', now(), null)$$) as _ \gset
select ok(pg_temp.waits_for_lock((select pid from ipid), 50),
	'routing the new conversation waits for the resolve (the routing lock)');
commit;
create temp table second as select * from dblink_get_result('i') as t (conversation_id bigint);
select is((select count(*) from dblink_get_result('i') as t (conversation_id bigint)), 0::bigint,
	'the ingest ends once the resolve commits');
select is((select assigned_operator from linbat.conversation where id = (select conversation_id from second)),
	(select id from rina), 'and takes the place the resolve freed');
select is((select count(*) from linbat.message where conversation_id = (select conversation_id from second)
		and meta ? 'ack'), 0::bigint, 'the investor is not told that everyone is busy');
select is((select open_count from linbat.operator where email = 'rina@example.com'), 1,
	'Rina has one open conversation again');

-- Remove what this file committed.
create temp table gone as select c.id, c.investor_id from linbat.conversation c
join linbat.identity i on i.investor_id = c.investor_id where i.address like '+62812994000%';
delete from linbat.satisfaction where conversation_id in (select id from gone);
delete from linbat.message where conversation_id in (select id from gone);
delete from linbat.conversation where id in (select id from gone);
delete from linbat.identity where address like '+62812994000%';
delete from linbat.investor where id in (select investor_id from gone);
delete from linbat.audit_log where object_type = 'conversation' and object_id in (select id::text from gone);
delete from linbat.channel_instance where name = 'wa-rl';
delete from linbat.operator where email = 'rina@example.com';
select dblink_disconnect('i') as _ \gset

select * from finish();
