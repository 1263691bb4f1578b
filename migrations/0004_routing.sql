-- 0004_routing: hand each conversation to the next free operator. An
-- operator is free when online with fewer open (not resolved) conversations
-- than their capacity. A new or waiting conversation goes to the investor's
-- previous operator if free (sticky), else to the free operator with the
-- fewest open conversations, then the longest since their last assignment.
-- Nobody free: it waits in a FIFO queue (queued_since, id) and the investor
-- gets one acknowledgement; whoever frees up (resolve, release, transfer,
-- coming online, more capacity) takes the oldest waiting conversation.
--
-- Locking: every assignment decision holds the one advisory lock
-- ('routing', 'all'), so two decisions never both see the same free slot.
-- It comes after 'identity' and 'investor' keys and before any conversation
-- or operator row lock: a transaction never waits for the routing lock while
-- holding a row that a router may need, so routers cannot deadlock with it.

alter table linbat.conversation
	-- the investor's SLA ran out unanswered at least once; the manager sees it
	add column sla_breached boolean not null default false,
	-- when the investor was told that nobody is free (one acknowledgement per conversation)
	add column acked_at timestamptz,
	-- when it first waited: a released conversation waits again from here
	add column queued_first_at timestamptz,
	add constraint conversation_assigned_not_queued
		check (assigned_operator is null or queued_since is null);

-- Serves the SLA sweep: assigned open conversations by due time.
create index conversation_sla_due on linbat.conversation (sla_due_at)
	where status <> 'resolved' and assigned_operator is not null;

-- Take the routing lock that serialises every assignment decision.
create function linbat.routing_lock()
returns void
language sql
as $$
	select linbat.xact_lock('routing', 'all')
$$;

-- The time an operator has to answer: setting linbat.sla, 15 minutes if unset.
create function linbat.routing_sla()
returns interval
language plpgsql stable
as $$
declare
	v text := nullif(btrim(current_setting('linbat.sla', true)), '');
begin
	return coalesce(v::interval, interval '15 minutes');
exception when invalid_datetime_format or datetime_field_overflow then
	raise exception using errcode = '22023',
		message = format('setting linbat.sla is %L, not an interval', v),
		hint = 'Set it to an interval such as ''15 minutes''.';
end
$$;

-- The routing helpers are plpgsql, not sql: plpgsql keeps its query plans for
-- the session, where a sql function that cannot be inlined is planned anew on
-- every call, and these run on every inbound message.

-- How many open conversations an operator has.
create function linbat.operator_open(p_operator bigint)
returns integer
language plpgsql stable
as $$
begin
	return (select count(*) from linbat.conversation c
		where c.assigned_operator = p_operator and c.status <> 'resolved');
end
$$;

-- The free operator the router picks, other than p_exclude; null if none.
create function linbat.operator_next_free(p_exclude bigint)
returns bigint
language plpgsql stable
as $$
begin
	return (select o.id from linbat.operator o
		cross join lateral (select count(*) as n from linbat.conversation c
			where c.assigned_operator = o.id and c.status <> 'resolved') l
		where o.presence = 'online' and l.n < o.capacity and o.id is distinct from p_exclude
		order by l.n, o.last_assigned_at nulls first, o.id
		limit 1);
end
$$;

-- The operator a conversation should go to now (sticky first); null if none is free.
create function linbat.operator_for(p_conversation bigint)
returns bigint
language plpgsql stable
as $$
declare
	v_previous bigint;
begin
	select e.assigned_operator into v_previous
	from linbat.conversation c
	join linbat.conversation e on e.investor_id = c.investor_id and e.id < c.id
	where c.id = p_conversation
	order by e.id desc limit 1;
	if exists (select 1 from linbat.operator o where o.id = v_previous and o.presence = 'online'
			and linbat.operator_open(o.id) < o.capacity) then
		return v_previous;
	end if;
	return linbat.operator_next_free(null);
end
$$;

-- Tell the inbox that a conversation changed hands (p_operator null: to the queue).
create function linbat.assignment_notify(p_conversation bigint, p_operator bigint,
	p_previous bigint, p_reason text)
returns void
language sql
as $$
	select pg_notify('linbat_event', json_build_object('type', 'assignment',
		'conversation', p_conversation, 'operator', p_operator, 'previous', p_previous,
		'reason', p_reason)::text)
$$;

-- Give a conversation to an operator and start its SLA clock at p_now; the
-- caller holds the routing lock and has checked the operator.
create function linbat.assign(p_conversation bigint, p_operator bigint, p_reason text,
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
	update linbat.operator set last_assigned_at = now() where id = p_operator;
	perform linbat.assignment_notify(p_conversation, p_operator, v_previous, p_reason);
	return p_operator;
end
$$;

-- The acknowledgement text for a language: settings linbat.ack_text_id and
-- linbat.ack_text_en (linbatd sets them from its templates), else a default.
create function linbat.ack_text(p_language text)
returns text
language sql stable
as $$
	select coalesce(nullif(btrim(current_setting('linbat.ack_text_' || p_language, true)), ''),
		case p_language
		when 'en' then 'Thank you, we have received your message. All our officers are helping '
			'other investors right now; the next free officer will reply to you here as soon '
			'as possible. Our service is open 24 hours a day, 7 days a week.'
		else 'Terima kasih, pesan Anda sudah kami terima. Saat ini semua petugas kami sedang '
			'melayani investor lain; petugas berikutnya yang tersedia akan segera membalas '
			'Anda di sini. Layanan kami buka 24 jam sehari, 7 hari seminggu.'
		end)
$$;

-- Queue the one acknowledgement of a waiting conversation, on the way the
-- investor last wrote; nothing if already acknowledged or no way back yet.
create function linbat.acknowledge(p_conversation bigint)
returns bigint
language plpgsql
as $$
declare
	v_c linbat.conversation;
	v_id bigint;
begin
	select * into v_c from linbat.conversation c where c.id = p_conversation for update;
	if v_c.acked_at is not null or v_c.last_instance is null or v_c.last_identity_id is null then
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
-- oldest message that no operator has answered yet.
create function linbat.sla_restart(p_conversation bigint)
returns void
language plpgsql
as $$
begin
	update linbat.conversation c
	set sla_due_at = greatest(c.sla_due_at, u.first_in + linbat.routing_sla())
	from (
		select min(m.created_at) as first_in from linbat.message m
		where m.conversation_id = p_conversation and m.direction = 'in'
			and m.id > coalesce((select max(r.id) from linbat.message r
				where r.conversation_id = p_conversation and r.direction = 'out'
					and r.author_operator is not null and r.content_type <> 'note'), 0)
	) u
	where c.id = p_conversation and u.first_in is not null;
end
$$;

-- Route one conversation: an open unassigned one goes to the operator
-- operator_for picks, or waits (acknowledged once); an assigned one keeps its
-- operator and its SLA clock restarts if the investor had been answered.
-- Returns the operator, null if it waits or is resolved.
create function linbat.route_conversation(p_conversation bigint)
returns bigint
language plpgsql
as $$
declare
	v_c linbat.conversation;
	v_operator bigint;
begin
	perform linbat.routing_lock();
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

-- Store one inbound message: find or create its identity, investor and open
-- conversation, deduplicated on the provider's id, and route the conversation,
-- in one transaction. Replaces 0001's version, adding the routing.
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
	v_conversation bigint;
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

	-- A repeated webhook changes nothing. Checked again under the lock below,
	-- which orders every message of one sender.
	for pass in 1 .. 2 loop
		return query
			select m.id, m.conversation_id, c.investor_id, true
			from linbat.message m join linbat.conversation c on c.id = m.conversation_id
			where m.channel_instance = p_instance and m.provider_id = p_provider_id;
		if found then
			return;
		end if;
		if pass = 1 then
			perform linbat.xact_lock('identity', p_kind || ':' || v_address);
		end if;
	end loop;

	-- The identity, and a new investor if the address is new. ON CONFLICT
	-- covers writers that do not take the lock (imports).
	select i.id, i.investor_id into v_identity, v_investor
	from linbat.identity i where i.kind = p_kind and i.address = v_address;
	if not found then
		insert into linbat.investor (display_name) values (v_profile) returning id into v_investor;
		insert into linbat.identity (investor_id, kind, address)
		values (v_investor, p_kind, v_address)
		on conflict (kind, address) do nothing
		returning id into v_identity;
		if v_identity is null then
			delete from linbat.investor where id = v_investor;
			select i.id, i.investor_id into v_identity, v_investor
			from linbat.identity i where i.kind = p_kind and i.address = v_address;
		end if;
	end if;

	-- The investor's open conversation; a resolved one is never reused.
	perform linbat.xact_lock('investor', v_investor::text);
	-- before the conversation's row is locked below (see the header)
	perform linbat.routing_lock();
	select c.id into v_conversation from linbat.conversation c
	where c.investor_id = v_investor and c.status <> 'resolved';
	if not found then
		insert into linbat.conversation (investor_id, queued_since) values (v_investor, now())
		on conflict (investor_id) where status <> 'resolved' do nothing
		returning id into v_conversation;
		if v_conversation is null then
			select c.id into v_conversation from linbat.conversation c
			where c.investor_id = v_investor and c.status <> 'resolved';
		end if;
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
	if v_profile is not null then
		update linbat.investor set display_name = v_profile
		where id = v_investor and display_name is null;
	end if;

	perform linbat.route_conversation(v_conversation);

	perform pg_notify('linbat_event', json_build_object('type', 'message',
		'conversation', v_conversation, 'message', v_message, 'direction', 'in')::text);
	return query select v_message, v_conversation, v_investor, false;
end
$$;

-- Give the oldest waiting conversations (FIFO) to free operators until none
-- is free or none waits; returns how many were assigned.
create function linbat.assign_waiting()
returns integer
language plpgsql
as $$
declare
	v_conversation bigint;
	v_operator bigint;
	v_n integer := 0;
begin
	perform linbat.routing_lock();
	loop
		select c.id into v_conversation from linbat.conversation c
		where c.status <> 'resolved' and c.assigned_operator is null
			and c.queued_since is not null
		order by c.queued_since, c.id
		limit 1;
		exit when not found;
		-- the free set does not depend on the conversation: none for it, none for any
		v_operator := linbat.operator_for(v_conversation);
		exit when v_operator is null;
		perform linbat.assign(v_conversation, v_operator, 'queue');
		v_n := v_n + 1;
	end loop;
	return v_n;
end
$$;

-- Raise P0002 unless operator p_operator exists.
create function linbat.operator_check(p_operator bigint)
returns void
language plpgsql stable
as $$
begin
	if p_operator is null or not exists (select 1 from linbat.operator o where o.id = p_operator) then
		raise exception using errcode = 'P0002',
			message = format('operator %s does not exist', coalesce(p_operator::text, 'null'));
	end if;
end
$$;

-- Lock and return an open conversation, or raise P0002 (unknown) or P0001 (resolved).
create function linbat.conversation_open_for_update(p_conversation bigint)
returns linbat.conversation
language plpgsql
as $$
declare
	v_c linbat.conversation;
begin
	select * into v_c from linbat.conversation c where c.id = p_conversation for update;
	if not found then
		raise exception using errcode = 'P0002',
			message = format('conversation %s does not exist', p_conversation);
	end if;
	if v_c.status = 'resolved' then
		raise exception using errcode = 'P0001',
			message = format('conversation %s is resolved', p_conversation);
	end if;
	return v_c;
end
$$;

-- Raise P0001 if operator p_operator has no room for one more open conversation.
create function linbat.operator_room_check(p_operator bigint)
returns void
language plpgsql
as $$
declare
	v_open integer := linbat.operator_open(p_operator);
	v_capacity integer;
begin
	select o.capacity into v_capacity from linbat.operator o where o.id = p_operator;
	if v_open >= v_capacity then
		raise exception using errcode = 'P0001',
			message = format('operator %s is at capacity: %s of %s open conversations',
				p_operator, v_open, v_capacity),
			hint = 'Resolve or release a conversation first, or raise the capacity.';
	end if;
end
$$;

-- Record in the audit log what an operator did to a conversation.
create function linbat.conversation_audit(p_operator bigint, p_action text,
	p_conversation bigint, p_detail jsonb)
returns void
language sql
as $$
	insert into linbat.audit_log (operator_id, actor, action, object_type, object_id, detail)
	values (p_operator, case when p_operator is null then 'linbatd' else 'operator' end, p_action,
		'conversation', p_conversation::text, p_detail)
$$;

-- Resolve a conversation (p_operator: who, null for the system), then give
-- the freed place to the queue; returns how many waiting ones were assigned.
-- Resolving a resolved conversation (a double submit) changes nothing.
create function linbat.resolve_conversation(p_conversation bigint, p_operator bigint)
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
	perform linbat.conversation_audit(p_operator, 'conversation.resolve', p_conversation, '{}');
	perform pg_notify('linbat_event', json_build_object('type', 'conversation',
		'conversation', p_conversation, 'status', 'resolved')::text);
	return linbat.assign_waiting();
end
$$;

-- Set an operator's presence; coming online takes waiting conversations.
-- Returns how many were assigned.
create function linbat.set_presence(p_operator bigint, p_presence text)
returns integer
language plpgsql
as $$
begin
	if p_presence is null or p_presence not in ('online', 'away', 'offline') then
		raise exception using errcode = '22023',
			message = format('unknown presence %L', p_presence),
			hint = 'A presence is one of online, away, offline.';
	end if;
	perform linbat.routing_lock();
	perform linbat.operator_check(p_operator);
	update linbat.operator set presence = p_presence where id = p_operator;
	perform pg_notify('linbat_event', json_build_object('type', 'presence',
		'operator', p_operator, 'presence', p_presence)::text);
	if p_presence <> 'online' then
		return 0;
	end if;
	return linbat.assign_waiting();
end
$$;

-- Set an operator's capacity; more room takes waiting conversations. A lower
-- capacity takes nothing away. Returns how many were assigned.
create function linbat.set_capacity(p_operator bigint, p_capacity integer)
returns integer
language plpgsql
as $$
begin
	if p_capacity is null or p_capacity < 0 then
		raise exception using errcode = '22023',
			message = format('capacity %s of operator %s must be 0 or more',
				coalesce(p_capacity::text, 'null'), p_operator);
	end if;
	perform linbat.routing_lock();
	perform linbat.operator_check(p_operator);
	update linbat.operator set capacity = p_capacity where id = p_operator;
	return linbat.assign_waiting();
end
$$;

-- An operator takes an open conversation by hand: a waiting one, or one they
-- have already. Refused (P0001) if it is someone else's or they are full.
create function linbat.take_conversation(p_conversation bigint, p_operator bigint)
returns bigint
language plpgsql
as $$
declare
	v_c linbat.conversation;
begin
	perform linbat.routing_lock();
	perform linbat.operator_check(p_operator);
	v_c := linbat.conversation_open_for_update(p_conversation);
	if v_c.assigned_operator = p_operator then
		return p_operator;
	end if;
	if v_c.assigned_operator is not null then
		raise exception using errcode = 'P0001',
			message = format('conversation %s is assigned to operator %s', p_conversation,
				v_c.assigned_operator),
			hint = 'Ask for a transfer instead.';
	end if;
	perform linbat.operator_room_check(p_operator);
	perform linbat.conversation_audit(p_operator, 'conversation.take', p_conversation, '{}');
	return linbat.assign(p_conversation, p_operator, 'take');
end
$$;

-- Hand an open conversation to operator p_to (online or away, with room) on
-- behalf of p_by; the place it leaves goes to the queue. Returns p_to.
create function linbat.transfer_conversation(p_conversation bigint, p_to_operator bigint,
	p_by_operator bigint)
returns bigint
language plpgsql
as $$
declare
	v_c linbat.conversation;
	v_presence text;
begin
	perform linbat.routing_lock();
	perform linbat.operator_check(p_to_operator);
	perform linbat.operator_check(p_by_operator);
	v_c := linbat.conversation_open_for_update(p_conversation);
	if v_c.assigned_operator = p_to_operator then
		return p_to_operator;
	end if;
	select o.presence into v_presence from linbat.operator o where o.id = p_to_operator;
	if v_presence = 'offline' then
		raise exception using errcode = 'P0001',
			message = format('operator %s is offline', p_to_operator),
			hint = 'Transfer to an operator who is online or away.';
	end if;
	perform linbat.operator_room_check(p_to_operator);
	perform linbat.conversation_audit(p_by_operator, 'conversation.transfer', p_conversation,
		jsonb_build_object('from', v_c.assigned_operator, 'to', p_to_operator));
	perform linbat.assign(p_conversation, p_to_operator, 'transfer');
	perform linbat.assign_waiting();
	return p_to_operator;
end
$$;

-- An operator gives a conversation back: it waits again from when it first
-- waited, then the queue is served (it may come straight back to them).
-- Returns how many waiting conversations were assigned.
create function linbat.release_conversation(p_conversation bigint, p_operator bigint)
returns integer
language plpgsql
as $$
declare
	v_c linbat.conversation;
begin
	perform linbat.routing_lock();
	perform linbat.operator_check(p_operator);
	v_c := linbat.conversation_open_for_update(p_conversation);
	if v_c.assigned_operator is distinct from p_operator then
		raise exception using errcode = 'P0001',
			message = format('conversation %s is not assigned to operator %s', p_conversation,
				p_operator);
	end if;
	update linbat.conversation set assigned_operator = null, sla_due_at = null,
		queued_since = coalesce(queued_first_at, created_at)
	where id = p_conversation;
	perform linbat.conversation_audit(p_operator, 'conversation.release', p_conversation, '{}');
	perform linbat.assignment_notify(p_conversation, null, p_operator, 'release');
	return linbat.assign_waiting();
end
$$;

-- Move assigned open conversations whose SLA ran out before p_now with the
-- investor unanswered (no operator reply since the last inbound message) to
-- the next free other operator, or leave them; flag them sla_breached either
-- way. Returns how many were moved or newly flagged.
create function linbat.sweep_sla(p_now timestamptz default now())
returns integer
language plpgsql
as $$
declare
	v_c linbat.conversation;
	v_operator bigint;
	v_n integer := 0;
begin
	perform linbat.routing_lock();
	for v_c in
		select c.* from linbat.conversation c
		where c.status <> 'resolved' and c.assigned_operator is not null and c.sla_due_at < p_now
			and not exists (select 1 from linbat.message r
				where r.conversation_id = c.id and r.direction = 'out'
					and r.author_operator is not null and r.content_type <> 'note'
					and r.id > (select max(m.id) from linbat.message m
						where m.conversation_id = c.id and m.direction = 'in'))
			and exists (select 1 from linbat.message m
				where m.conversation_id = c.id and m.direction = 'in')
		order by c.sla_due_at, c.id
		for update
	loop
		v_operator := linbat.operator_next_free(v_c.assigned_operator);
		if v_operator is null and v_c.sla_breached then
			continue;
		end if;
		update linbat.conversation set sla_breached = true where id = v_c.id;
		if v_operator is not null then
			perform linbat.assign(v_c.id, v_operator, 'sla', p_now);
		end if;
		perform pg_notify('linbat_event', json_build_object('type', 'sla_breach',
			'conversation', v_c.id, 'operator', v_c.assigned_operator,
			'moved_to', v_operator)::text);
		v_n := v_n + 1;
	end loop;
	perform linbat.assign_waiting();
	return v_n;
end
$$;
