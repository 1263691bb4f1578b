-- 0011_ingest_routing: make ingest cheap and let routing decisions run side
-- by side, without giving up what 0004 guarantees (no operator over
-- capacity, a FIFO queue, nobody waiting while someone is free, one
-- acknowledgement per conversation); and the satisfaction survey, whose
-- table 0019 makes (the functions here are plpgsql, which looks tables up
-- when it runs: the migrations are always applied together).
--
-- What cost: every ingest, a follow-up in an assigned conversation too,
-- held the one routing lock until it committed, so ingests ran one at a
-- time; and choosing an operator counted every operator's open
-- conversations, a scan that grew with the inbox.
--
-- Now:
-- * operator.open_count holds each operator's open conversations. A trigger
--   on conversation keeps it exact in the transaction that changes an
--   assignment or a status, whatever the path (routing, merge, a script);
--   it also records last_assigned_at, when a conversation becomes theirs.
-- * A follow-up in a conversation that has an operator, or that waits in
--   the queue, takes no routing lock: it changes nobody's load and nobody's
--   place in the queue. Its SLA restart reads the conversation's last two
--   messages instead of all of them.
-- * The routing lock has two modes. Routing a new conversation (assign it,
--   or queue and acknowledge it) takes it shared, so such decisions run side
--   by side; what frees a place or serves the queue (resolve, presence,
--   capacity, take, transfer, release, the SLA sweep, a merge) takes it
--   exclusive, as before. Two shared routers cannot take one free place
--   twice: an operator is claimed by locking their row and checking the
--   count again (operator_claim), skipping rows another router is claiming.
--   A router queues a conversation only when no operator has room even
--   counting places being claimed (it waits for those claims to end first),
--   and nothing frees a place while it holds the lock shared, so nobody
--   waits while someone is free; whoever frees a place later serves the
--   queue oldest first, under the exclusive lock.
-- * Lock order: 'identity' and 'investor' keys, then the routing lock, then
--   conversation and operator rows. An ingest takes the routing lock before
--   it writes the conversation's row, whenever it may route.

-- Per-operator load ----------------------------------------------------------

alter table linbat.operator
	-- open (not resolved) conversations assigned to this operator; kept by
	-- linbat.operator_open_count, read by the router
	add column open_count integer not null default 0 check (open_count >= 0);

-- Keep operator.open_count (and last_assigned_at) true when a conversation's
-- operator or status changes, or a conversation comes or goes.
create function linbat.operator_open_count()
returns trigger
language plpgsql
as $$
begin
	if tg_op in ('UPDATE', 'DELETE') then
		if old.assigned_operator is not null and old.status <> 'resolved' then
			update linbat.operator set open_count = open_count - 1 where id = old.assigned_operator;
		end if;
	end if;
	if tg_op in ('UPDATE', 'INSERT') then
		if new.assigned_operator is not null and new.status <> 'resolved' then
			update linbat.operator set open_count = open_count + 1, last_assigned_at = now()
			where id = new.assigned_operator;
		end if;
	end if;
	return null;
end
$$;

-- Emptying the table empties every operator.
create function linbat.operator_open_count_truncate()
returns trigger
language plpgsql
as $$
begin
	update linbat.operator set open_count = 0 where open_count <> 0;
	return null;
end
$$;

-- The triggers first: they lock the table against writes until the counts
-- below are in.
create trigger conversation_open_count_insert after insert on linbat.conversation
	for each row when (new.assigned_operator is not null and new.status <> 'resolved')
	execute function linbat.operator_open_count();
create trigger conversation_open_count_update after update of assigned_operator, status
	on linbat.conversation
	for each row when (old.assigned_operator is distinct from new.assigned_operator
		or (old.status = 'resolved') <> (new.status = 'resolved'))
	execute function linbat.operator_open_count();
create trigger conversation_open_count_delete after delete on linbat.conversation
	for each row when (old.assigned_operator is not null and old.status <> 'resolved')
	execute function linbat.operator_open_count();
create trigger conversation_open_count_truncate after truncate on linbat.conversation
	for each statement execute function linbat.operator_open_count_truncate();

update linbat.operator o set open_count = (select count(*) from linbat.conversation c
	where c.assigned_operator = o.id and c.status <> 'resolved');

-- How many open conversations an operator has.
create or replace function linbat.operator_open(p_operator bigint)
returns integer
language sql stable
as $$
	select o.open_count from linbat.operator o where o.id = p_operator
$$;

-- The free operator the router picks, other than p_exclude; null if none.
-- It locks nothing: for callers that hold the routing lock exclusive.
create or replace function linbat.operator_next_free(p_exclude bigint)
returns bigint
language plpgsql stable
as $$
begin
	return (select o.id from linbat.operator o
		where o.presence = 'online' and o.open_count < o.capacity and o.id is distinct from p_exclude
		order by o.open_count, o.last_assigned_at nulls first, o.id
		limit 1);
end
$$;

-- The routing lock ------------------------------------------------------------

-- Take the routing lock exclusive: for whatever frees a place or serves the queue.
create or replace function linbat.routing_lock()
returns void
language sql
as $$
	select linbat.xact_lock('routing', 'all')
$$;

-- Take the routing lock shared: for routing one new conversation, which
-- only ever takes a place or joins the queue.
create function linbat.routing_lock_shared()
returns void
language sql
as $$
	select pg_advisory_xact_lock_shared(hashtextextended('linbat.routing:all', 0))
$$;

-- Claim a free operator: lock their row and return them, p_previous if
-- free (sticky), else the one with the fewest open conversations, then the
-- longest since their last assignment, never p_exclude; null when nobody has
-- room. The caller holds the routing lock (either mode) and gives the
-- operator a conversation before it commits. Rows another router is
-- claiming are skipped; if only such rows have room, it waits for those
-- claims to end and looks again. Each look runs in a subtransaction that is
-- rolled back when it finds nothing, so a transaction never keeps the lock
-- of an operator it did not claim (two routers cannot wait for each other).
create function linbat.operator_claim(p_previous bigint, p_exclude bigint)
returns bigint
language plpgsql
as $$
declare
	v bigint;
begin
	for attempt in 1 .. 1000 loop
		if p_previous is not null and p_previous is distinct from p_exclude then
			begin
				select o.id into v from linbat.operator o
				where o.id = p_previous and o.presence = 'online' and o.open_count < o.capacity
				for update;
				if found then
					return v;
				end if;
				raise sqlstate 'LB001';
			exception when sqlstate 'LB001' then
				null;
			end;
		end if;
		begin
			select o.id into v from linbat.operator o
			where o.presence = 'online' and o.open_count < o.capacity and o.id is distinct from p_exclude
			order by o.open_count, o.last_assigned_at nulls first, o.id
			limit 1
			for update skip locked;
			if found then
				return v;
			end if;
			raise sqlstate 'LB001';
		exception when sqlstate 'LB001' then
			null;
		end;
		-- Nobody unclaimed has room. Room being claimed by others may be left over:
		-- wait for that claim to end, then look again.
		v := linbat.operator_next_free(p_exclude);
		if v is null then
			return null;
		end if;
		begin
			perform 1 from linbat.operator o where o.id = v for update;
			raise sqlstate 'LB001';
		exception when sqlstate 'LB001' then
			null;
		end;
	end loop;
	raise exception using errcode = '40001',
		message = 'could not claim an operator: their rows kept changing';
end
$$;

-- Claim the operator a conversation should go to now (sticky first); null
-- if none is free. See operator_claim.
create or replace function linbat.operator_for(p_conversation bigint)
returns bigint
language plpgsql
volatile
as $$
declare
	v_previous bigint;
begin
	select e.assigned_operator into v_previous
	from linbat.conversation c
	join linbat.conversation e on e.investor_id = c.investor_id and e.id < c.id
	where c.id = p_conversation
	order by e.id desc limit 1;
	return linbat.operator_claim(v_previous, null);
end
$$;

-- Give a conversation to an operator and start its SLA clock at p_now; the
-- caller holds the routing lock and has claimed or checked the operator.
-- The trigger on conversation counts it and records last_assigned_at.
create or replace function linbat.assign(p_conversation bigint, p_operator bigint, p_reason text,
	p_now timestamptz default now())
returns bigint
language plpgsql
as $$
declare
	v_previous bigint;
begin
	select c.assigned_operator into v_previous from linbat.conversation c
	where c.id = p_conversation for update;
	update linbat.conversation set assigned_operator = p_operator,
		sla_due_at = p_now + linbat.routing_sla(),
		queued_first_at = coalesce(queued_first_at, queued_since), queued_since = null
	where id = p_conversation;
	perform linbat.assignment_notify(p_conversation, p_operator, v_previous, p_reason);
	return p_operator;
end
$$;

-- Queue the one acknowledgement of a waiting conversation, on the way the
-- investor last wrote; nothing if already acknowledged, assigned meanwhile,
-- or no way back yet.
create or replace function linbat.acknowledge(p_conversation bigint)
returns bigint
language plpgsql
as $$
declare
	v_c linbat.conversation;
	v_id bigint;
begin
	select * into v_c from linbat.conversation c where c.id = p_conversation for update;
	if v_c.acked_at is not null or v_c.assigned_operator is not null or v_c.last_instance is null
			or v_c.last_identity_id is null then
		return null;
	end if;
	insert into linbat.message (conversation_id, direction, identity_id, channel_instance, body,
		meta, status, next_attempt_at)
	select v_c.id, 'out', v_c.last_identity_id, v_c.last_instance, linbat.ack_text(inv.language),
		'{"ack": true}'::jsonb, 'queued', now()
	from linbat.investor inv where inv.id = v_c.investor_id
	returning id into v_id;
	update linbat.conversation set acked_at = now() where id = p_conversation;
	perform pg_notify('linbat_event', json_build_object('type', 'message',
		'conversation', p_conversation, 'message', v_id, 'direction', 'out')::text);
	return v_id;
end
$$;

-- Restart the SLA clock of an assigned conversation from the investor's
-- oldest message that no operator has answered yet. Only the newest message
-- can start a new clock: when an older unanswered one exists, the clock
-- already runs from it (each inbound message restarts it, and an
-- assignment starts it after them), so two messages are read, not all.
create or replace function linbat.sla_restart(p_conversation bigint)
returns void
language plpgsql
as $$
declare
	v_newest_in boolean;
	v_newest_at timestamptz;
	v_older_in boolean;
begin
	select m.direction = 'in', m.created_at into v_newest_in, v_newest_at
	from linbat.message m
	where m.conversation_id = p_conversation and (m.direction = 'in'
		or (m.author_operator is not null and m.content_type <> 'note'))
	order by m.id desc limit 1;
	if not coalesce(v_newest_in, false) then
		return;
	end if;
	select m.direction = 'in' into v_older_in
	from linbat.message m
	where m.conversation_id = p_conversation and (m.direction = 'in'
		or (m.author_operator is not null and m.content_type <> 'note'))
	order by m.id desc offset 1 limit 1;
	if coalesce(v_older_in, false) then
		return;
	end if;
	update linbat.conversation c
	set sla_due_at = greatest(c.sla_due_at, v_newest_at + linbat.routing_sla())
	where c.id = p_conversation and c.assigned_operator is not null;
end
$$;

-- Route one conversation: an open unassigned one goes to the operator
-- operator_for claims, or waits (acknowledged once); an assigned one keeps
-- its operator and its SLA clock restarts if the investor had been
-- answered. Returns the operator, null if it waits or is resolved. Takes
-- the routing lock shared: it only takes a place or joins the queue.
create or replace function linbat.route_conversation(p_conversation bigint)
returns bigint
language plpgsql
as $$
declare
	v_c linbat.conversation;
	v_operator bigint;
begin
	perform linbat.routing_lock_shared();
	select * into v_c from linbat.conversation c where c.id = p_conversation for update;
	if not found then
		raise exception using errcode = 'P0002',
			message = format('conversation %s does not exist', p_conversation);
	end if;
	if v_c.status = 'resolved' then
		return null;
	end if;
	if v_c.assigned_operator is not null then
		perform linbat.sla_restart(p_conversation);
		return v_c.assigned_operator;
	end if;
	v_operator := linbat.operator_for(p_conversation);
	if v_operator is not null then
		return linbat.assign(p_conversation, v_operator, 'route');
	end if;
	update linbat.conversation set queued_since = coalesce(queued_since, now())
	where id = p_conversation;
	perform linbat.acknowledge(p_conversation);
	return null;
end
$$;

-- The satisfaction survey ------------------------------------------------------

-- The question, Indonesian first then English (STYLE.md).
create function linbat.satisfaction_text()
returns text
language sql immutable
as $$
	select 'Terima kasih. Seberapa puas Anda dengan layanan kami? Balas 1-5 (5 = sangat puas).'
		|| E'\n' || 'Thank you. How satisfied are you? Reply 1-5.'
$$;

-- Ask the investor of a conversation being resolved for a score: queue the
-- question on the way they last wrote and record that it was asked. Nothing
-- if the investor never wrote in it, has opted out, or was asked already.
-- Returns the question's message id, or null.
create function linbat.satisfaction_ask(p_conversation bigint)
returns bigint
language plpgsql
as $$
declare
	v_c linbat.conversation;
	v_id bigint;
begin
	select * into v_c from linbat.conversation c where c.id = p_conversation;
	if v_c.last_instance is null or v_c.last_identity_id is null
			or exists (select 1 from linbat.satisfaction s where s.conversation_id = p_conversation)
			or exists (select 1 from linbat.identity i where i.id = v_c.last_identity_id
				and i.opted_out_at is not null) then
		return null;
	end if;
	insert into linbat.message (conversation_id, direction, identity_id, channel_instance, body,
		meta, status, next_attempt_at)
	values (p_conversation, 'out', v_c.last_identity_id, v_c.last_instance,
		linbat.satisfaction_text(), '{"satisfaction": true}', 'queued', now())
	returning id into v_id;
	insert into linbat.satisfaction (conversation_id, investor_id)
	values (p_conversation, v_c.investor_id);
	perform pg_notify('linbat_event', json_build_object('type', 'message',
		'conversation', p_conversation, 'message', v_id, 'direction', 'out')::text);
	return v_id;
end
$$;

-- The resolved conversation of investor p_investor whose survey question a
-- message p_body answers: the body is one digit 1-5 (spaces around allowed),
-- and a question asked in the last 3 days is still unanswered. Null if none.
create function linbat.satisfaction_pending(p_investor bigint, p_body text)
returns bigint
language plpgsql stable
as $$
begin
	if p_body is null or p_body !~ '^\s*[1-5]\s*$' then
		return null;
	end if;
	return (select s.conversation_id
		from linbat.conversation c join linbat.satisfaction s on s.conversation_id = c.id
		where c.investor_id = p_investor and c.status = 'resolved'
			and s.score is null and s.asked_at > now() - interval '3 days'
		order by s.asked_at desc, s.conversation_id desc
		limit 1);
end
$$;

-- Ingest -----------------------------------------------------------------------

-- Store one inbound message: find or create its identity, investor and open
-- conversation, deduplicated on the provider's id, and route the conversation,
-- in one transaction. Replaces 0006's version: the routing lock only when the
-- conversation may need an operator (shared), the survey's answer recorded
-- in the resolved conversation it answers instead of opening a new one.
create or replace function linbat.ingest_inbound(p_instance text, p_kind text, p_address text,
	p_provider_id text, p_body text, p_content_type text, p_meta jsonb,
	p_received_at timestamptz, p_profile_name text)
returns table (message_id bigint, conversation_id bigint, investor_id bigint, duplicate boolean)
language plpgsql
as $$
#variable_conflict use_column
declare
	v_address text := linbat.address_normalise(p_kind, p_address);
	v_instance_kind text;
	v_at timestamptz := least(coalesce(p_received_at, now()), now());
	v_profile text := nullif(btrim(p_profile_name), '');
	v_identity bigint;
	v_investor bigint;
	v_new_investor boolean := false;
	v_conversation bigint;
	v_assigned bigint;
	v_queued timestamptz;
	v_acked timestamptz;
	v_route boolean := false;
	v_survey bigint;
	v_message bigint;
begin
	select ci.kind into v_instance_kind from linbat.channel_instance ci where ci.name = p_instance;
	if not found then
		raise exception using errcode = '22023',
			message = format('unknown channel instance %L', p_instance),
			hint = 'linbatd registers its instances with linbat.channel_register at startup.';
	end if;
	if v_instance_kind not in ('test', p_kind) then
		raise exception using errcode = '22023',
			message = format('channel instance %L is %s, not %s', p_instance, v_instance_kind, p_kind);
	end if;
	if p_provider_id is null or p_provider_id = '' then
		raise exception using errcode = '22023',
			message = format('inbound message on %L has no provider id', p_instance);
	end if;
	if coalesce(p_content_type, 'text') not in ('text', 'image', 'document', 'audio', 'voice',
			'video', 'sticker', 'location', 'contacts', 'reaction', 'button', 'interactive',
			'unsupported', 'template') then
		raise exception using errcode = '22023',
			message = format('unknown inbound content type %L', p_content_type);
	end if;

	-- A repeated webhook changes nothing: checked under the lock that orders
	-- every message of one sender.
	perform linbat.xact_lock('identity', linbat.identity_lock_key(p_kind, v_address));
	return query
		select m.id, m.conversation_id, c.investor_id, true
		from linbat.message m join linbat.conversation c on c.id = m.conversation_id
		where m.channel_instance = p_instance and m.provider_id = p_provider_id;
	if found then
		return;
	end if;

	-- The identity, and a new investor if the address is new. ON CONFLICT
	-- covers writers that do not take the lock (imports).
	select i.id, i.investor_id into v_identity, v_investor
	from linbat.identity i where i.kind = p_kind and i.address = v_address;
	if not found then
		-- The same number on WhatsApp and SMS is the same person: their
		-- messages share the investor and so the open conversation.
		v_investor := linbat.phone_sibling_investor(p_kind, v_address);
		if v_investor is null then
			insert into linbat.investor (display_name) values (v_profile) returning id into v_investor;
			v_new_investor := true;
		end if;
		insert into linbat.identity (investor_id, kind, address)
		values (v_investor, p_kind, v_address)
		on conflict (kind, address) do nothing
		returning id into v_identity;
		if v_identity is null then
			delete from linbat.investor where id = v_investor
				and not exists (select 1 from linbat.identity i where i.investor_id = v_investor);
			v_new_investor := false;
			select i.id, i.investor_id into v_identity, v_investor
			from linbat.identity i where i.kind = p_kind and i.address = v_address;
		end if;
	end if;

	-- The investor's open conversation; a resolved one is never reused, but
	-- the answer to its survey question is kept in it.
	perform linbat.xact_lock('investor', v_investor::text);
	select c.id, c.assigned_operator, c.queued_since, c.acked_at
	into v_conversation, v_assigned, v_queued, v_acked
	from linbat.conversation c
	where c.investor_id = v_investor and c.status <> 'resolved';
	if not found then
		if not v_new_investor and coalesce(p_content_type, 'text') = 'text' then
			v_survey := linbat.satisfaction_pending(v_investor, p_body);
		end if;
		if v_survey is not null then
			v_conversation := v_survey;
		else
			-- before the conversation's row is written (see the header)
			v_route := true;
			perform linbat.routing_lock_shared();
			insert into linbat.conversation (investor_id, queued_since) values (v_investor, now())
			on conflict (investor_id) where status <> 'resolved' do nothing
			returning id into v_conversation;
			if v_conversation is null then
				select c.id into v_conversation from linbat.conversation c
				where c.investor_id = v_investor and c.status <> 'resolved';
			end if;
		end if;
	elsif v_assigned is null and v_queued is null then
		-- open, with no operator, not waiting: it needs routing
		v_route := true;
		perform linbat.routing_lock_shared();
	end if;

	insert into linbat.message (conversation_id, direction, identity_id, channel_instance,
		provider_id, content_type, body, meta, status, received_at)
	values (v_conversation, 'in', v_identity, p_instance, p_provider_id,
		coalesce(p_content_type, 'text'), p_body, coalesce(p_meta, '{}'), 'received', v_at)
	returning id into v_message;

	-- Late webhooks must not move the window or the reply route backwards.
	update linbat.identity set last_inbound_at = greatest(last_inbound_at, v_at)
	where id = v_identity;
	update linbat.conversation set
		last_instance = case when last_message_at > v_at then last_instance else p_instance end,
		last_identity_id = case when last_message_at > v_at then last_identity_id else v_identity end,
		last_message_at = greatest(last_message_at, v_at)
	where id = v_conversation;
	if v_profile is not null and not v_new_investor then
		update linbat.investor set display_name = v_profile
		where id = v_investor and display_name is null;
	end if;

	if v_survey is not null then
		update linbat.satisfaction set score = substring(p_body from '[1-5]')::smallint,
			answered_at = now()
		where conversation_id = v_survey;
	elsif v_route then
		perform linbat.route_conversation(v_conversation);
	elsif v_assigned is not null then
		-- a follow-up: the operator keeps it; no routing lock
		perform linbat.sla_restart(v_conversation);
	elsif v_acked is null then
		-- waiting, never acknowledged (released by its operator): acknowledge it now
		perform linbat.acknowledge(v_conversation);
	end if;

	perform pg_notify('linbat_event', json_build_object('type', 'message',
		'conversation', v_conversation, 'message', v_message, 'direction', 'in')::text);
	return query select v_message, v_conversation, v_investor, false;
end
$$;

-- Resolving --------------------------------------------------------------------

-- Resolve a conversation (p_operator: who, null for the system), ask the
-- investor for a score, then give the freed place to the queue; returns how
-- many waiting ones were assigned. Resolving a resolved conversation (a
-- double submit) changes nothing. Replaces 0004's version, adding the survey.
create or replace function linbat.resolve_conversation(p_conversation bigint, p_operator bigint)
returns integer
language plpgsql
as $$
declare
	v_investor bigint;
	v_status text;
begin
	-- the investor lock orders this against ingest_inbound: a message is
	-- stored either before the conversation is resolved or in a new one
	select c.investor_id into v_investor from linbat.conversation c where c.id = p_conversation;
	if found then
		perform linbat.xact_lock('investor', v_investor::text);
	end if;
	perform linbat.routing_lock();
	if p_operator is not null then
		perform linbat.operator_check(p_operator);
	end if;
	select c.status into v_status from linbat.conversation c where c.id = p_conversation for update;
	if not found then
		raise exception using errcode = 'P0002',
			message = format('conversation %s does not exist', p_conversation);
	end if;
	if v_status = 'resolved' then
		return 0;
	end if;
	update linbat.conversation set status = 'resolved', resolved_at = now(), queued_since = null
	where id = p_conversation;
	-- the question before the status event: whoever replays the events sees
	-- it leave while the conversation still has its operator
	perform linbat.satisfaction_ask(p_conversation);
	perform linbat.conversation_audit(p_operator, 'conversation.resolve', p_conversation, '{}');
	perform pg_notify('linbat_event', json_build_object('type', 'conversation',
		'conversation', p_conversation, 'status', 'resolved')::text);
	return linbat.assign_waiting();
end
$$;

-- Operators ---------------------------------------------------------------------

-- Change an operator on behalf of p_actor (null arguments change nothing);
-- capacity and disabling go through the router. Audited; returns the
-- operator. Replaces 0008's version: a change that goes through the router
-- takes the routing lock before the operator's row, the order every router
-- keeps (a router may be waiting for that row while holding the lock).
create or replace function linbat.operator_update(p_actor bigint, p_id bigint, p_name text, p_role text,
	p_capacity integer, p_hash text, p_disabled boolean, p_addr text)
returns json
language plpgsql
as $$
declare
	v_o linbat.operator;
begin
	if p_disabled or p_capacity is not null then
		perform linbat.routing_lock();
	end if;
	select * into v_o from linbat.operator o where o.id = p_id;
	if not found then
		raise exception using errcode = 'P0002', message = format('operator %s does not exist', p_id);
	end if;
	perform linbat.operator_role_check(p_actor, v_o.role);
	perform linbat.operator_role_check(p_actor, p_role);
	update linbat.operator set name = coalesce(btrim(p_name), name), role = coalesce(p_role, role),
		password_hash = coalesce(p_hash, password_hash),
		disabled_at = case when p_disabled then coalesce(disabled_at, now())
			when not p_disabled then null else disabled_at end
	where id = p_id;
	if p_disabled then
		perform linbat.set_presence(p_id, 'offline');
		delete from linbat.session where operator_id = p_id;
	end if;
	if p_capacity is not null then
		perform linbat.set_capacity(p_id, p_capacity);
	end if;
	perform linbat.audit(p_actor, 'operator.update', 'operator', p_id::text,
		jsonb_strip_nulls(jsonb_build_object('name', p_name, 'role', p_role, 'capacity', p_capacity,
			'password', case when p_hash is not null then 'changed' end, 'disabled', p_disabled)),
		p_addr);
	return linbat.operator_json(p_id);
end
$$;
