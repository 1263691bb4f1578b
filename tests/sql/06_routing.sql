-- Routing: route_conversation (sticky, fewest open, longest since last),
-- the FIFO queue and its one acknowledgement, assign_waiting after resolve,
-- presence and capacity changes, take/transfer/release, and the SLA sweep.
-- Each scenario starts from no operators and no conversations (pg_temp.reset).
begin;
select plan(87);

select linbat.channel_register('wa-rt', 'whatsapp') as _ \gset
create temp sequence pid;

-- Remove every conversation, investor and operator this transaction sees.
create function pg_temp.reset() returns void language sql as $$
	delete from linbat.audit_log;
	delete from linbat.satisfaction;
	delete from linbat.message;
	delete from linbat.conversation;
	delete from linbat.identity;
	delete from linbat.investor;
	delete from linbat.operator;
$$;
-- Make an operator; its id.
create function pg_temp.op(p_name text, p_presence text, p_capacity integer) returns bigint
language sql as $$
	insert into linbat.operator (name, email, presence, capacity)
	values (p_name, lower(p_name) || '@example.com', p_presence, p_capacity) returning id
$$;
-- The id of operator p_name.
create function pg_temp.o(p_name text) returns bigint language sql
as $$ select id from linbat.operator where name = p_name $$;
-- The phone of investor number p_n.
create function pg_temp.phone(p_n integer) returns text language sql
as $$ select '+628129906' || lpad(p_n::text, 4, '0') $$;
-- Investor number p_n writes; the conversation the message joined.
create function pg_temp.write(p_n integer) returns bigint language sql as $$
	select conversation_id from linbat.ingest_inbound('wa-rt', 'whatsapp', pg_temp.phone(p_n),
		'wamid.rt' || nextval('pid'), 'Halo', 'text', '{}', now(), null)
$$;
-- The latest conversation of investor number p_n.
create function pg_temp.c(p_n integer) returns bigint language sql as $$
	select c.id from linbat.conversation c join linbat.identity i on i.investor_id = c.investor_id
	where i.address = pg_temp.phone(p_n) order by c.id desc limit 1
$$;
-- The operator of the latest conversation of investor number p_n, by name.
create function pg_temp.owner(p_n integer) returns text language sql as $$
	select o.name from linbat.conversation c left join linbat.operator o on o.id = c.assigned_operator
	where c.id = pg_temp.c(p_n)
$$;
-- The acknowledgements queued on the latest conversation of investor number p_n.
create function pg_temp.acks(p_n integer) returns bigint language sql as $$
	select count(*) from linbat.message m
	where m.conversation_id = pg_temp.c(p_n) and m.direction = 'out' and m.meta ? 'ack'
$$;
-- Operators with more open conversations than their capacity.
create function pg_temp.over() returns bigint language sql as $$
	select count(*) from linbat.operator o where linbat.operator_open(o.id) > o.capacity
$$;

select has_column('linbat', 'conversation', 'sla_breached', 'a conversation says if its SLA ran out');
select has_column('linbat', 'conversation', 'acked_at', 'and when the investor was acknowledged');
select has_function('linbat', 'route_conversation', array['bigint'], 'route_conversation exists');
select has_function('linbat', 'sweep_sla', array['timestamp with time zone'], 'sweep_sla exists');

-- Nobody free: the queue and its acknowledgement ----------------------------------
select pg_temp.reset();
select pg_temp.op('Ani', 'offline', 5) as _ \gset
select pg_temp.op('Bayu', 'away', 5) as _ \gset
select pg_temp.write(1) as _ \gset
select pg_temp.write(2) as _ \gset
select pg_temp.write(3) as _ \gset
select is((select count(*) from linbat.conversation where assigned_operator is not null), 0::bigint,
	'offline and away operators get nothing');
select is((select count(*) from linbat.conversation where queued_since = now() and assigned_operator is null),
	3::bigint, 'the conversations wait in the queue');
select results_eq($$select m.direction, m.status, m.channel_instance, m.identity_id, m.author_operator,
		m.body, m.next_attempt_at from linbat.message m where m.conversation_id = pg_temp.c(1) and m.direction = 'out'$$,
	$$select 'out'::text, 'queued'::text, 'wa-rt'::text, i.id, null::bigint,
		'Terima kasih, pesan Anda sudah kami terima. Saat ini semua petugas kami sedang melayani '
		'investor lain; petugas berikutnya yang tersedia akan segera membalas Anda di sini. '
		'Layanan kami buka 24 jam sehari, 7 hari seminggu.'::text, now()
		from linbat.identity i where i.address = pg_temp.phone(1)$$,
	'the investor gets one acknowledgement, in Indonesian, queued on the way they wrote');
select is((select acked_at from linbat.conversation where id = pg_temp.c(1)), now(),
	'the conversation remembers it was acknowledged');
select is(pg_temp.write(1), pg_temp.c(1), 'a second message joins the waiting conversation');
select is(pg_temp.acks(1), 1::bigint, 'and gets no second acknowledgement');
select is(linbat.route_conversation(pg_temp.c(2)), null, 'routing again while nobody is free: still nobody');
select is(pg_temp.acks(2), 1::bigint, 'and still one acknowledgement');
select is((select count(*) from linbat.message where direction = 'out'), 3::bigint,
	'one acknowledgement per conversation in all');

-- an English-speaking investor, and a text the office configured
insert into linbat.investor (language) values ('en');
insert into linbat.identity (investor_id, kind, address)
select max(id), 'whatsapp', pg_temp.phone(4) from linbat.investor;
select pg_temp.write(4) as _ \gset
select is((select body from linbat.message where conversation_id = pg_temp.c(4) and direction = 'out'),
	'Thank you, we have received your message. All our officers are helping other investors right '
	'now; the next free officer will reply to you here as soon as possible. Our service is open '
	'24 hours a day, 7 days a week.', 'an investor who reads English gets the English text');
select set_config('linbat.ack_text_id', 'Pesan Anda kami terima.', true) as _ \gset
select pg_temp.write(5) as _ \gset
select is((select body from linbat.message where conversation_id = pg_temp.c(5) and direction = 'out'),
	'Pesan Anda kami terima.', 'the text comes from linbat.ack_text_id when set');
select set_config('linbat.ack_text_id', '', true) as _ \gset

-- Presence and capacity serve the queue, oldest first ----------------------------
update linbat.conversation set queued_since = now() - interval '1 hour' where id = pg_temp.c(3);
select is(linbat.set_capacity(pg_temp.o('Ani'), 1), 0, 'capacity of someone offline assigns nothing');
select is(linbat.set_presence(pg_temp.o('Ani'), 'online'), 1, 'coming online takes one conversation');
select is(pg_temp.owner(3), 'Ani', 'the one waiting longest');
select results_eq($$select queued_since, queued_first_at, sla_due_at from linbat.conversation
		where id = pg_temp.c(3)$$,
	$$values (null::timestamptz, now() - interval '1 hour', now() + interval '15 minutes')$$,
	'it leaves the queue and its SLA clock starts (15 minutes by default)');
select is((select last_assigned_at from linbat.operator where name = 'Ani'), now(),
	'the operator remembers the assignment');
select is(linbat.set_capacity(pg_temp.o('Ani'), 2), 1, 'raising the capacity takes one more');
select is(pg_temp.owner(1), 'Ani', 'the next in line (same queued_since: lower id first)');
select is(pg_temp.owner(2), null, 'the rest wait');
select is(linbat.set_presence(pg_temp.o('Ani'), 'away'), 0, 'going away assigns nothing');
select is(linbat.set_capacity(pg_temp.o('Ani'), 9), 0, 'and nor does more capacity while away');
select is(linbat.set_presence(pg_temp.o('Bayu'), 'online'), 3, 'Bayu comes online and takes the rest');
select is(pg_temp.over(), 0::bigint, 'nobody is over capacity');
select throws_ok($$select linbat.set_presence(pg_temp.o('Ani'), 'busy')$$, '22023', null,
	'an unknown presence is refused');
select throws_ok('select linbat.set_capacity(-5, 1)', 'P0002', 'operator -5 does not exist',
	'so is an unknown operator');
select throws_ok($$select linbat.set_capacity(pg_temp.o('Ani'), -1)$$, '22023', null,
	'and a negative capacity');
select throws_like($$update linbat.conversation set queued_since = now() where id = pg_temp.c(1)$$,
	'%"conversation_assigned_not_queued"', 'an assigned conversation is not in the queue');

-- Capacity is never exceeded -------------------------------------------------------
select pg_temp.reset();
select pg_temp.op('Ani', 'online', 2) as _ \gset
select pg_temp.op('Bayu', 'online', 1) as _ \gset
select pg_temp.op('Citra', 'online', 0) as _ \gset
select count(pg_temp.write(n)) as _ from generate_series(1, 5) n \gset
select results_eq($$select o.name, linbat.operator_open(o.id) from linbat.operator o order by o.id$$,
	$$values ('Ani'::text, 2), ('Bayu', 1), ('Citra', 0)$$,
	'five investors, room for three: each operator up to capacity, none with capacity 0');
select is((select count(*) from linbat.conversation where assigned_operator is null), 2::bigint,
	'two wait');
select is((select sum(pg_temp.acks(n)) from generate_series(1, 5) n), 2::numeric,
	'only the waiting ones are acknowledged');

-- Resolve frees a place: the oldest waiting conversation takes it -------------------
select pg_temp.reset();
select pg_temp.op('Ani', 'online', 1) as _ \gset
select count(pg_temp.write(n)) as _ from generate_series(1, 3) n \gset
update linbat.conversation set queued_since = now() - interval '5 minutes' where id = pg_temp.c(3);
select is(linbat.resolve_conversation(pg_temp.c(1), pg_temp.o('Ani')), 1,
	'resolving assigns one waiting conversation');
select results_eq($$select status, resolved_at from linbat.conversation where id = pg_temp.c(1)$$,
	$$values ('resolved'::text, now())$$, 'the conversation is resolved');
select is(pg_temp.owner(3), 'Ani', 'the oldest waiting one (queued_since first, not id)');
select is(pg_temp.owner(2), null, 'the younger one still waits');
select is((select count(*) from linbat.audit_log where action = 'conversation.resolve'
		and object_id = pg_temp.c(1)::text and operator_id = pg_temp.o('Ani')), 1::bigint,
	'the audit log says who resolved it');
select is(linbat.resolve_conversation(pg_temp.c(1), null), 0,
	'resolving it again (a double submit) changes nothing');
select is((select count(*) from linbat.audit_log where action = 'conversation.resolve'), 1::bigint,
	'and is not audited twice');
select throws_ok('select linbat.resolve_conversation(-1, null)', 'P0002', null,
	'nor an unknown one');

-- Sticky, then fewest open, then longest since the last assignment ------------------
select pg_temp.reset();
select pg_temp.op('Ani', 'online', 5) as _ \gset
select pg_temp.op('Bayu', 'online', 5) as _ \gset
select pg_temp.write(1) as _ \gset
select is(pg_temp.owner(1), 'Ani', 'all equal: the lowest id');
select pg_temp.write(2) as _ \gset
select is(pg_temp.owner(2), 'Bayu', 'fewest open conversations first');
update linbat.operator set last_assigned_at = now() - interval '1 hour' where name = 'Bayu';
select pg_temp.write(3) as _ \gset
select is(pg_temp.owner(3), 'Bayu', 'equal open: the one whose last assignment is longest ago');
select linbat.resolve_conversation(pg_temp.c(3), pg_temp.o('Bayu')) as _ \gset
select linbat.resolve_conversation(pg_temp.c(2), pg_temp.o('Bayu')) as _ \gset
select linbat.resolve_conversation(pg_temp.c(1), pg_temp.o('Ani')) as _ \gset
update linbat.operator set last_assigned_at = null where name = 'Ani';
select pg_temp.write(4) as _ \gset
select is(pg_temp.owner(4), 'Ani', 'equal open: one never assigned before comes first');
select pg_temp.write(1) as _ \gset
select isnt(pg_temp.c(1), (select min(c.id) from linbat.conversation c join linbat.identity i
	on i.investor_id = c.investor_id where i.address = pg_temp.phone(1)),
	'writing after a resolve opens a new conversation');
select is(pg_temp.owner(1), 'Ani',
	'which goes to the previous operator (sticky), though another has fewer open');
select linbat.set_presence(pg_temp.o('Bayu'), 'away') as _ \gset
select pg_temp.write(2) as _ \gset
select is(pg_temp.owner(2), 'Ani', 'the previous operator away: the usual choice');
select linbat.set_presence(pg_temp.o('Bayu'), 'online') as _ \gset
select linbat.set_capacity(pg_temp.o('Bayu'), 0) as _ \gset
select linbat.set_capacity(pg_temp.o('Ani'), 9) as _ \gset
select pg_temp.write(3) as _ \gset
select is(pg_temp.owner(3), 'Ani', 'the previous operator full: the usual choice');

-- Take, transfer, release -----------------------------------------------------------
select pg_temp.reset();
select pg_temp.op('Ani', 'online', 1) as _ \gset
select pg_temp.op('Bayu', 'online', 1) as _ \gset
select pg_temp.op('Citra', 'offline', 5) as _ \gset
select pg_temp.op('Dewi', 'away', 2) as _ \gset
select count(pg_temp.write(n)) as _ from generate_series(1, 3) n \gset
select throws_ok($$select linbat.take_conversation(pg_temp.c(3), pg_temp.o('Ani'))$$, 'P0001',
	format('operator %s is at capacity: 1 of 1 open conversations', pg_temp.o('Ani')),
	'a full operator cannot take a waiting conversation');
select is(linbat.take_conversation(pg_temp.c(3), pg_temp.o('Dewi')), pg_temp.o('Dewi'),
	'an operator with room takes it, away or not');
select results_eq($$select assigned_operator, queued_since from linbat.conversation where id = pg_temp.c(3)$$,
	$$values (pg_temp.o('Dewi'), null::timestamptz)$$, 'it is hers and out of the queue');
select is(linbat.take_conversation(pg_temp.c(3), pg_temp.o('Dewi')), pg_temp.o('Dewi'),
	'taking it again changes nothing');
select throws_ok($$select linbat.take_conversation(pg_temp.c(1), pg_temp.o('Dewi'))$$, 'P0001', null,
	'nobody takes a conversation that is someone else''s');
select throws_ok($$select linbat.take_conversation(-1, pg_temp.o('Dewi'))$$, 'P0002', null,
	'or an unknown conversation');
select throws_ok($$select linbat.take_conversation(pg_temp.c(3), -1)$$, 'P0002', null,
	'an unknown operator takes nothing');
select pg_temp.write(4) as _ \gset
select throws_ok($$select linbat.transfer_conversation(pg_temp.c(1), pg_temp.o('Citra'), pg_temp.o('Ani'))$$,
	'P0001', format('operator %s is offline', pg_temp.o('Citra')), 'no transfer to an offline operator');
select throws_ok($$select linbat.transfer_conversation(pg_temp.c(1), -9, pg_temp.o('Ani'))$$,
	'P0002', 'operator -9 does not exist', 'nor to an unknown one');
select throws_ok($$select linbat.transfer_conversation(pg_temp.c(1), pg_temp.o('Bayu'), pg_temp.o('Ani'))$$,
	'P0001', null, 'nor to a full one');
select is(linbat.transfer_conversation(pg_temp.c(1), pg_temp.o('Dewi'), pg_temp.o('Ani')), pg_temp.o('Dewi'),
	'a transfer to an away operator with room');
select is(pg_temp.owner(1), 'Dewi', 'moves the conversation');
select is(pg_temp.owner(4), 'Ani', 'and the place it frees goes to the waiting conversation');
select is((select detail from linbat.audit_log where action = 'conversation.transfer'),
	jsonb_build_object('from', pg_temp.o('Ani'), 'to', pg_temp.o('Dewi')), 'the audit log has the transfer');
select throws_ok($$select linbat.release_conversation(pg_temp.c(2), pg_temp.o('Ani'))$$, 'P0001', null,
	'an operator cannot release someone else''s conversation');
select linbat.set_presence(pg_temp.o('Bayu'), 'away') as _ \gset
select is(linbat.release_conversation(pg_temp.c(2), pg_temp.o('Bayu')), 0, 'release, nobody free');
select results_eq($$select assigned_operator, sla_due_at, queued_since from linbat.conversation where id = pg_temp.c(2)$$,
	$$select null::bigint, null::timestamptz, created_at from linbat.conversation where id = pg_temp.c(2)$$,
	'the released conversation waits again from when it first waited');
select is(pg_temp.acks(2), 0::bigint, 'the investor is not told anything');
select is(linbat.set_presence(pg_temp.o('Bayu'), 'online'), 1, 'the next free operator');
select is(pg_temp.owner(2), 'Bayu', 'takes it');
select is(linbat.release_conversation(pg_temp.c(2), pg_temp.o('Bayu')), 1,
	'released while its operator is the only free one');
select is(pg_temp.owner(2), 'Bayu', 'it comes back to them: release excludes nobody');
select is(pg_temp.over(), 0::bigint, 'nobody is over capacity');

-- The SLA sweep -----------------------------------------------------------------------
select pg_temp.reset();
select pg_temp.op('Ani', 'online', 5) as _ \gset
select pg_temp.op('Bayu', 'online', 5) as _ \gset
select pg_temp.write(1) as _ \gset
select is(linbat.sweep_sla(now() + interval '10 minutes'), 0, 'before the SLA runs out: nothing');
select is(linbat.sweep_sla(now() + interval '20 minutes'), 1, 'after it, an unanswered investor');
select results_eq($$select o.name, c.sla_breached, c.sla_due_at from linbat.conversation c
		join linbat.operator o on o.id = c.assigned_operator where c.id = pg_temp.c(1)$$,
	$$values ('Bayu'::text, true, now() + interval '35 minutes')$$,
	'goes to the next free operator, flagged, with a new SLA');
select pg_temp.write(2) as _ \gset
select is(pg_temp.owner(2), 'Ani', 'another investor writes');
select linbat.enqueue_reply(pg_temp.c(2), 'Baik, kami cek.', pg_temp.o('Ani')) as _ \gset
select is(linbat.sweep_sla(now() + interval '20 minutes'), 0, 'an answered investor is not swept');
select is(pg_temp.owner(2), 'Ani', 'and keeps the operator');
update linbat.conversation set sla_due_at = now() - interval '1 hour' where id = pg_temp.c(2);
select pg_temp.write(2) as _ \gset
select is((select sla_due_at from linbat.conversation where id = pg_temp.c(2)), now() + interval '15 minutes',
	'a new message after an answer restarts the SLA clock');
select linbat.set_presence(pg_temp.o('Ani'), 'offline') as _ \gset
select pg_temp.write(3) as _ \gset
select linbat.set_capacity(pg_temp.o('Bayu'), 2) as _ \gset
select is(linbat.sweep_sla(now() + interval '1 hour'), 2,
	'nobody else free: the two overdue ones not yet flagged are counted');
select results_eq($$select n, pg_temp.owner(n), (select sla_breached from linbat.conversation where id = pg_temp.c(n))
		from generate_series(1, 3) n$$,
	$$values (1, 'Bayu'::text, true), (2, 'Ani', true), (3, 'Bayu', true)$$,
	'overdue conversations stay where they are, flagged');
select is(linbat.sweep_sla(now() + interval '1 hour'), 0, 'a second sweep counts nothing new');
select linbat.set_presence(pg_temp.o('Ani'), 'online') as _ \gset
select is(linbat.sweep_sla(now() + interval '1 hour'), 2, 'someone free again: the sweep moves them');
select results_eq($$select n, pg_temp.owner(n) from generate_series(1, 3) n$$,
	$$values (1, 'Ani'::text), (2, 'Ani'), (3, 'Ani')$$,
	'Bayu''s overdue ones to Ani; hers stays, as Bayu is full');

-- Settings -------------------------------------------------------------------------------
select set_config('linbat.sla', '5 minutes', true) as _ \gset
select pg_temp.write(9) as _ \gset
select is((select sla_due_at from linbat.conversation where id = pg_temp.c(9)), now() + interval '5 minutes',
	'the SLA comes from linbat.sla');
select set_config('linbat.sla', 'soon', true) as _ \gset
select throws_ok('select linbat.routing_sla()', '22023', null, 'a bad linbat.sla is an error, not a guess');
select set_config('linbat.sla', '', true) as _ \gset

select * from finish();
rollback;
