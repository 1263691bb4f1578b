-- 0002_outbox: the outbound side. Outbound message rows in status queued or
-- sending are the outbox; linbatd's dispatcher claims due rows with a lease
-- (FOR UPDATE SKIP LOCKED, so several processes share one database), sends
-- them, and reports each send back as sent or failed. Retries, backoff,
-- template fallback and channel fallback are decided here, in one place.

-- Serve the claim: queued rows in the order they are due (a scan that stops
-- at the batch size however long the queue), and the few leased rows.
create index message_outbox_due on linbat.message (next_attempt_at, id)
	where direction = 'out' and status = 'queued';
create index message_outbox_leased on linbat.message (locked_until)
	where direction = 'out' and status = 'sending';

-- Wake the dispatchers when an outbound message becomes due: the payload is
-- the channel instance. NOTIFY folds equal payloads of one transaction, so a
-- campaign of thousands of rows costs one notification per instance.
create function linbat.outbox_notify()
returns trigger
language plpgsql
as $$
begin
	perform pg_notify('linbat_outbox', new.channel_instance);
	return null;
end
$$;

create trigger message_outbox_insert after insert on linbat.message
	for each row when (new.direction = 'out' and new.status = 'queued')
	execute function linbat.outbox_notify();

create trigger message_outbox_requeue after update of status on linbat.message
	for each row when (new.direction = 'out' and new.status = 'queued'
		and old.status is distinct from 'queued')
	execute function linbat.outbox_notify();

-- Queue an operator's reply on the channel the investor last wrote from.
create function linbat.enqueue_reply(p_conversation bigint, p_body text, p_operator bigint)
returns bigint
language plpgsql
as $$
declare
	v_conversation linbat.conversation;
	v_id bigint;
begin
	if p_body is null or btrim(p_body) = '' then
		raise exception using errcode = '22023',
			message = format('reply to conversation %s has no text', p_conversation);
	end if;
	select * into v_conversation from linbat.conversation c where c.id = p_conversation for update;
	if not found then
		raise exception using errcode = 'P0002',
			message = format('conversation %s does not exist', p_conversation);
	end if;
	if v_conversation.last_instance is null or v_conversation.last_identity_id is null then
		raise exception using errcode = '22023',
			message = format('conversation %s has no channel to reply on yet', p_conversation),
			hint = 'A reply leaves on the channel of the investor''s last message.';
	end if;
	if p_operator is not null and not exists (select 1 from linbat.operator o where o.id = p_operator) then
		raise exception using errcode = 'P0002',
			message = format('operator %s does not exist', p_operator);
	end if;

	insert into linbat.message (conversation_id, direction, identity_id, channel_instance,
		author_operator, body, status, next_attempt_at)
	values (p_conversation, 'out', v_conversation.last_identity_id, v_conversation.last_instance,
		p_operator, p_body, 'queued', now())
	returning id into v_id;

	-- last_message_at stays the investor's: it decides the way back (ingest_inbound)
	update linbat.conversation set first_response_at = coalesce(first_response_at, now())
	where id = p_conversation;
	perform pg_notify('linbat_event', json_build_object('type', 'message',
		'conversation', p_conversation, 'message', v_id, 'direction', 'out')::text);
	return v_id;
end
$$;

-- Claim up to p_limit due outbound messages for p_owner for p_lease_seconds:
-- sending rows whose lease ran out (their owner died) first, then queued rows
-- whose time has come, in order. Rows another process is claiming are
-- skipped, not waited for.
create function linbat.claim_outbound(p_owner text, p_limit integer, p_lease_seconds integer)
returns table (id bigint, instance text, kind text, address text, body text,
	use_template boolean, template jsonb, attempts integer, window_open boolean, meta jsonb,
	language text)
language plpgsql
as $$
#variable_conflict use_column
declare
	v_ids bigint[];
begin
	if p_owner is null or p_owner = '' or p_limit is null or p_limit < 1
			or p_lease_seconds is null or p_lease_seconds < 1 then
		raise exception using errcode = '22023',
			message = format('claim_outbound(%L, %s, %s): need an owner, a limit >= 1 and a lease >= 1 s',
				p_owner, p_limit, p_lease_seconds);
	end if;
	select coalesce(array_agg(x.id), '{}') into v_ids from (
		select m.id from linbat.message m
		where m.direction = 'out' and m.status = 'sending' and m.locked_until < now()
		order by m.next_attempt_at, m.id
		limit p_limit
		for update skip locked
	) x;
	if cardinality(v_ids) < p_limit then
		select v_ids || coalesce(array_agg(x.id), '{}') into v_ids from (
			select m.id from linbat.message m
			where m.direction = 'out' and m.status = 'queued' and m.next_attempt_at <= now()
			order by m.next_attempt_at, m.id
			limit p_limit - cardinality(v_ids)
			for update skip locked
		) x;
	end if;

	return query
	with claimed as (
		update linbat.message m set status = 'sending',
			locked_until = now() + make_interval(secs => p_lease_seconds),
			locked_by = p_owner, attempts = m.attempts + 1
		where m.id = any (v_ids)
		returning m.id, m.channel_instance, m.identity_id, m.body, m.use_template, m.template,
			m.attempts, m.meta, m.next_attempt_at
	)
	select c.id, c.channel_instance, i.kind, i.address, c.body, c.use_template, c.template,
		c.attempts, coalesce(i.last_inbound_at > now() - interval '24 hours', false), c.meta,
		inv.language
	from claimed c
	join linbat.identity i on i.id = c.identity_id
	join linbat.investor inv on inv.id = i.investor_id
	order by c.next_attempt_at, c.id;
end
$$;

-- Record that the provider accepted a message under p_provider_id. Forward
-- only (a status webhook may already have moved it past 'sent') and idempotent.
-- Returns true if this call moved the message to 'sent'.
create function linbat.outbound_sent(p_id bigint, p_provider_id text)
returns boolean
language plpgsql
as $$
declare
	v_instance text;
	v_old text;
	v_provider_id text;
	v_early linbat.status_early;
begin
	if p_provider_id = '' then
		p_provider_id := null;
	end if;
	select m.channel_instance into v_instance from linbat.message m
	where m.id = p_id and m.direction = 'out';
	if not found then
		raise exception using errcode = 'P0002',
			message = format('outbound message %s does not exist', p_id);
	end if;
	-- pairs with the same lock in linbat.status_update (see status_early)
	if p_provider_id is not null then
		perform linbat.xact_lock('provider_id', v_instance || ':' || p_provider_id);
	end if;
	select m.status into v_old from linbat.message m where m.id = p_id for update;
	update linbat.message m set provider_id = coalesce(m.provider_id, p_provider_id),
		locked_until = null, locked_by = null
	where m.id = p_id
	returning m.provider_id into v_provider_id;
	perform linbat.message_status_apply(p_id, 'sent', now(), null, null);

	for v_early in
		delete from linbat.status_early e
		where e.channel_instance = v_instance and e.provider_id = v_provider_id
		returning e.*
	loop
		perform linbat.message_status_apply(p_id, v_early.status, v_early.at,
			v_early.error_code, v_early.error_text);
	end loop;
	return linbat.message_status_rank(v_old) < linbat.message_status_rank('sent');
end
$$;

-- Queue a failed message again on the investor's next channel kind; returns
-- the new message's id, or null if the message has not failed or no channel
-- is left. Safe to call twice: a message has at most one fallback.
--
-- Order: the preferred channel if set (the investor asked for it); then the
-- kinds of fallback_order after the failed one; then those before it. Kinds
-- already tried in this fallback chain are skipped, and so are opted-out
-- identities and kinds without a registered channel instance.
create function linbat.outbound_fallback(p_id bigint)
returns bigint
language plpgsql
as $$
declare
	v_m linbat.message;
	v_kind text;
	v_investor linbat.investor;
	v_order text[];
	v_tried text[];
	v_identity bigint;
	v_instance text;
	v_id bigint;
begin
	select * into v_m from linbat.message m where m.id = p_id and m.direction = 'out' for update;
	if not found or v_m.status <> 'failed' or v_m.identity_id is null then
		return null;
	end if;
	select m.id into v_id from linbat.message m where m.fallback_of = p_id;
	if found then
		return v_id;
	end if;

	select i.kind into v_kind from linbat.identity i where i.id = v_m.identity_id;
	select inv.* into v_investor from linbat.investor inv
	join linbat.identity i on i.investor_id = inv.id where i.id = v_m.identity_id;
	v_order := v_investor.fallback_order;
	if v_investor.preferred_channel <> all (v_order) then
		v_order := v_order || v_investor.preferred_channel;
	end if;
	with recursive chain (id, fallback_of, identity_id) as (
		select m.id, m.fallback_of, m.identity_id from linbat.message m where m.id = p_id
		union all
		select m.id, m.fallback_of, m.identity_id
		from linbat.message m join chain on m.id = chain.fallback_of
	)
	select array_agg(distinct i.kind) into v_tried
	from chain join linbat.identity i on i.id = chain.identity_id;

	select i.id, ci.name into v_identity, v_instance
	from unnest(v_order) with ordinality as o (kind, n)
	cross join lateral (
		select i.id from linbat.identity i
		where i.investor_id = v_investor.id and i.kind = o.kind and i.opted_out_at is null
		order by i.last_inbound_at desc nulls last, i.id
		limit 1
	) i
	cross join lateral (
		-- the instance the investor last wrote to on this kind, else any of the kind
		select ci.name from linbat.channel_instance ci
		where ci.kind = o.kind
		order by ci.name = (select m.channel_instance from linbat.message m
			where m.identity_id = i.id and m.direction = 'in'
			order by m.id desc limit 1) desc nulls last, ci.name
		limit 1
	) ci
	where o.kind <> all (v_tried)
	order by o.kind is not distinct from v_investor.preferred_channel desc,
		o.n <= coalesce(array_position(v_order, v_kind), 0), o.n
	limit 1;
	if not found then
		return null;
	end if;

	insert into linbat.message (conversation_id, direction, identity_id, channel_instance,
		author_operator, content_type, body, meta, status, template, next_attempt_at, fallback_of)
	values (v_m.conversation_id, 'out', v_identity, v_instance, v_m.author_operator,
		v_m.content_type, v_m.body, v_m.meta, 'queued', v_m.template, now(), p_id)
	returning id into v_id;
	perform pg_notify('linbat_event', json_build_object('type', 'message',
		'conversation', v_m.conversation_id, 'message', v_id, 'direction', 'out')::text);
	return v_id;
end
$$;

-- Delay before retry number p_attempts + 1: exponential from p_base_ms with
-- jitter in [0.5, 1.5), at least p_retry_after_s, at most one hour.
create function linbat.outbound_backoff(p_attempts integer, p_retry_after_s integer,
	p_base_ms integer)
returns interval
language sql volatile
as $$
	select make_interval(secs => least(3600.0, greatest(coalesce(p_retry_after_s, 0)::float8,
		p_base_ms / 1000.0 * power(2.0, least(greatest(p_attempts - 1, 0), 32))
			* (0.5 + random()))))
$$;

-- Record that sending a claimed message failed, and decide what comes next:
-- 'retry' (queued again after a backoff), 'template' (queued again as a
-- WhatsApp template: the 24 h window is closed), 'fallback' (failed here,
-- queued on the investor's next channel), 'failed' (no way left), or
-- 'ignored' (the message is no longer 'sending': its lease ran out and it was
-- claimed again, or a status webhook settled it; nothing changed).
create function linbat.outbound_failed(p_id bigint, p_kind text, p_code text, p_text text,
	p_retry_after_s integer, p_max_attempts integer, p_backoff_base_ms integer)
returns text
language plpgsql
as $$
declare
	v_m linbat.message;
begin
	if p_kind is null or p_kind not in ('temporary', 'rate_limited', 'permanent', 'window_closed') then
		raise exception using errcode = '22023',
			message = format('unknown failure kind %L', p_kind),
			hint = 'A failure is temporary, rate_limited, permanent or window_closed.';
	end if;
	if p_max_attempts is null or p_max_attempts < 1 or p_backoff_base_ms is null
			or p_backoff_base_ms < 0 then
		raise exception using errcode = '22023',
			message = format('outbound_failed: max attempts %s must be >= 1 and backoff base %s ms >= 0',
				p_max_attempts, p_backoff_base_ms);
	end if;
	select * into v_m from linbat.message m where m.id = p_id and m.direction = 'out' for update;
	if not found then
		raise exception using errcode = 'P0002',
			message = format('outbound message %s does not exist', p_id);
	end if;
	if v_m.status <> 'sending' then
		return 'ignored';
	end if;
	update linbat.message set error_kind = p_kind, error_code = p_code, error_text = p_text
	where id = p_id;

	if p_kind = 'window_closed' and not v_m.use_template then
		update linbat.message set use_template = true, status = 'queued', next_attempt_at = now(),
			locked_until = null, locked_by = null
		where id = p_id;
		return 'template';
	end if;
	if p_kind in ('temporary', 'rate_limited') and v_m.attempts < p_max_attempts then
		update linbat.message set status = 'queued',
			next_attempt_at = now() + linbat.outbound_backoff(v_m.attempts, p_retry_after_s,
				p_backoff_base_ms),
			locked_until = null, locked_by = null
		where id = p_id;
		return 'retry';
	end if;

	-- permanent, out of attempts, or a template that failed too
	perform linbat.message_status_apply(p_id, 'failed', now(), p_code, p_text);
	if linbat.outbound_fallback(p_id) is not null then
		return 'fallback';
	end if;
	return 'failed';
end
$$;
