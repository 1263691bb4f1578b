-- 0020_deferred_events: take NOTIFY out of the ingest transaction.
--
-- What cost: a transaction that has queued a NOTIFY takes one lock for the
-- whole database when it commits and keeps it until the commit is done, so
-- every ingest (each said what it stored with pg_notify('linbat_event'),
-- a new conversation its assignment too, a waiting one its acknowledgement
-- and linbat_outbox) committed one at a time, behind each other's commit.
--
-- Now the business functions say what changed with linbat.event_emit,
-- which is pg_notify as before, unless the transaction asked for its events
-- to be deferred (linbat.events_defer): then they are kept, in order, and
-- handed back by linbat.events_take instead of being sent at commit.
-- linbat.ingest_inbound_deferred, what linbatd calls for each webhook
-- message, does that and returns them beside its result; linbatd sends the
-- events of all the ingests that finished meanwhile in one statement after
-- their commits (src/db.c, db_notify_later): one lock per batch instead of
-- one per message. A crash between an ingest's commit and that statement
-- loses only those live hints, never a message: a page shows it when it
-- next reads, the dispatchers look for due messages every second and the
-- media fetchers every 30 s. Everything else (linbat.ingest_inbound called
-- directly, the operators' actions) still notifies in its own transaction.
-- Events of one linbatd go out in the order their ingests came back;
-- against another process's, or an operator's action notified at its own
-- commit, they may arrive a batch late.

-- Whether this transaction keeps its events (linbat.events_defer) and
-- those kept so far: two settings local to the transaction, so that a
-- rollback (of a savepoint too) forgets them with the rest.

-- From here to the end of the transaction (or linbat.events_take), keep the
-- events instead of sending them.
create function linbat.events_defer()
returns void
language sql
as $$
	select set_config('linbat.events_deferred', 'on', true), set_config('linbat.events', '', true)
$$;

-- Say that something changed: pg_notify(p_channel, p_payload), or keep it
-- if this transaction defers its events.
create function linbat.event_emit(p_channel text, p_payload text)
returns void
language plpgsql
as $$
declare
	v_kept text;
begin
	if current_setting('linbat.events_deferred', true) is distinct from 'on' then
		perform pg_notify(p_channel, p_payload);
		return;
	end if;
	v_kept := current_setting('linbat.events', true);
	perform set_config('linbat.events', case when coalesce(v_kept, '') = '' then '' else v_kept || ',' end
		|| json_build_array(p_channel, p_payload)::text, true);
end
$$;

-- The events kept since linbat.events_defer, oldest first, as a JSON array
-- of [channel, payload] pairs (null if none), and stop keeping them: what
-- follows in the transaction notifies at commit again.
create function linbat.events_take()
returns text
language plpgsql
as $$
declare
	v_kept text := current_setting('linbat.events', true);
begin
	perform set_config('linbat.events_deferred', 'off', true), set_config('linbat.events', '', true);
	return case when coalesce(v_kept, '') = '' then null else '[' || v_kept || ']' end;
end
$$;

-- The functions and triggers an ingest runs, from their latest versions
-- (0002, 0003, 0004, 0011, 0015), with pg_notify replaced by
-- linbat.event_emit and nothing else changed.

-- Tell the inbox that a conversation changed hands (p_operator null: to the queue).
-- Replaces 0004's version.
create or replace function linbat.assignment_notify(p_conversation bigint, p_operator bigint,
	p_previous bigint, p_reason text)
returns void
language sql
as $$
	select linbat.event_emit('linbat_event', json_build_object('type', 'assignment',
		'conversation', p_conversation, 'operator', p_operator, 'previous', p_previous,
		'reason', p_reason)::text)
$$;


-- Wake the dispatchers when an outbound message becomes due (0002's, via event_emit).
-- campaign of thousands of rows costs one notification per instance.
create or replace function linbat.outbox_notify()
returns trigger
language plpgsql
as $$
begin
	perform linbat.event_emit('linbat_outbox', new.channel_instance);
	return null;
end
$$;


-- The pending attachment of an inbound WhatsApp media message (0003's, via event_emit).
create or replace function linbat.attachment_from_message()
returns trigger
language plpgsql
as $$
begin
	if not exists (select 1 from linbat.channel_instance ci
			where ci.name = new.channel_instance and ci.kind = 'whatsapp') then
		return null;
	end if;
	insert into linbat.attachment (message_id, mime_type, filename, provider_media_id)
	values (new.id, linbat.mime_type_normalise(new.meta->'media'->>'mime_type'),
		nullif(new.meta->'media'->>'filename', ''), new.meta->'media'->>'id')
	on conflict do nothing;
	perform linbat.event_emit('linbat_media', new.channel_instance);
	return null;
end
$$;

-- The pending attachments of an inbound message naming several media (0015's, via event_emit).
create or replace function linbat.attachment_from_message_list()
returns trigger
language plpgsql
as $$
begin
	insert into linbat.attachment (message_id, mime_type, filename, provider_media_id)
	select new.id, linbat.mime_type_normalise(e->>'mime_type'), nullif(e->>'filename', ''),
		coalesce(nullif(e->>'id', ''), e->>'url')
	from jsonb_array_elements(new.meta->'media') as e
	where jsonb_typeof(e) = 'object' and coalesce(nullif(e->>'id', ''), e->>'url', '') <> ''
	on conflict do nothing;
	if found then
		perform linbat.event_emit('linbat_media', new.channel_instance);
	end if;
	return null;
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
	perform linbat.event_emit('linbat_event', json_build_object('type', 'message',
		'conversation', p_conversation, 'message', v_id, 'direction', 'out')::text);
	return v_id;
end
$$;

-- Store one inbound message: find or create its identity, investor and open
-- conversation, deduplicated on the provider's id, and route the conversation,
-- in one transaction. Replaces 0011's version, saying what it stored with
-- linbat.event_emit.
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

	perform linbat.event_emit('linbat_event', json_build_object('type', 'message',
		'conversation', v_conversation, 'message', v_message, 'direction', 'in')::text);
	return query select v_message, v_conversation, v_investor, false;
end
$$;

-- linbat.ingest_inbound, with its events (those of the routing and the
-- triggers it ran too) handed back in events instead of notified at commit:
-- a JSON array of [channel, payload] pairs in the order they happened, null
-- if none. The caller sends them after the commit (linbatd batches them,
-- see the header); a duplicate has none.
create function linbat.ingest_inbound_deferred(p_instance text, p_kind text, p_address text,
	p_provider_id text, p_body text, p_content_type text, p_meta jsonb,
	p_received_at timestamptz, p_profile_name text)
returns table (message_id bigint, conversation_id bigint, investor_id bigint, duplicate boolean,
	events text)
language plpgsql
as $$
declare
	v_r record;
begin
	perform linbat.events_defer();
	select * into strict v_r from linbat.ingest_inbound(p_instance, p_kind, p_address, p_provider_id,
		p_body, p_content_type, p_meta, p_received_at, p_profile_name) i;
	return query select v_r.message_id, v_r.conversation_id, v_r.investor_id, v_r.duplicate,
		linbat.events_take();
end
$$;
