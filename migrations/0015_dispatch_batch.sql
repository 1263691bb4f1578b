-- 0015_dispatch_batch: record a batch of sends in one statement, keep
-- sent_at no later than what the provider says happened after it, and make
-- attachments of inbound messages that name a list of media (Twilio's MMS).
--
-- The dispatcher used to call linbat.outbound_sent once per row of a batch
-- (each with its own lookups, lock, UPDATE and status_early probe): at
-- thousands of messages a second that was most of PostgreSQL's CPU.
-- outbound_sent_batch does the same work set-based, and outbound_sent is
-- now the batch of one, so there is one implementation.
--
-- sent_at: a report by our own id (Kannel's DLR, Twilio's callback) can be
-- recorded before the send is, and a provider's times can be coarser than
-- ours (Kannel's are whole seconds). A message is sent before it is
-- delivered or read, so sent_at is the least of the times known for it.

-- Record that providers accepted messages p_ids[i] under p_provider_ids[i]
-- (null or '' for none). Per message exactly what outbound_sent did: forward
-- only (a status report may have moved it past 'sent'), the first provider id
-- stays, the lease ends, statuses that overtook the send (status_early) are
-- applied, and the inbox hears of each message that moved. Idempotent; an id
-- that is not an outbound message is left out of the result, an id given
-- twice counts once (its first provider id). Returns each message recorded
-- and whether this call moved it to 'sent'.
create function linbat.outbound_sent_batch(p_ids bigint[], p_provider_ids text[])
returns table (id bigint, moved boolean)
language plpgsql
as $$
#variable_conflict use_column
declare
	v_ids bigint[];
	v_moved boolean[];
	v_conversations bigint[];
	v_instances text[];
	v_provider_ids text[];
	v_early record;
begin
	if p_ids is null or p_provider_ids is null or cardinality(p_ids) <> cardinality(p_provider_ids)
			or array_position(p_ids, null) is not null then
		raise exception using errcode = '22023',
			message = format('outbound_sent_batch: need one provider id (or null) per message id, '
				'and no null id; got %s ids and %s provider ids',
				cardinality(p_ids), cardinality(p_provider_ids));
	end if;
	-- pairs with the same lock in linbat.status_update (see status_early);
	-- taken in one order, so two batches never wait for each other in a circle
	perform linbat.xact_lock('provider_id', k.key)
	from (
		select distinct m.channel_instance || ':' || t.provider_id as key
		from unnest(p_ids, p_provider_ids) as t (id, provider_id)
		join linbat.message m on m.id = t.id and m.direction = 'out'
		where t.provider_id <> ''
		order by 1
	) k;
	-- lock the rows in id order; the next statement's snapshot sees them as they are
	perform 1 from linbat.message m
	where m.id = any (p_ids) and m.direction = 'out'
	order by m.id
	for update;

	with t as (
		select distinct on (t.id) t.id, nullif(t.provider_id, '') as provider_id
		from unnest(p_ids, p_provider_ids) with ordinality as t (id, provider_id, n)
		order by t.id, t.n
	), old as (
		select m.id, m.status from linbat.message m join t on t.id = m.id
		where m.direction = 'out'
	), upd as (
		update linbat.message m set
			provider_id = coalesce(m.provider_id, t.provider_id),
			status = case when linbat.message_status_rank(old.status) < linbat.message_status_rank('sent')
				then 'sent' else m.status end,
			sent_at = coalesce(m.sent_at, least(now(), m.delivered_at, m.read_at)),
			locked_until = null, locked_by = null
		from t join old on old.id = t.id
		where m.id = t.id
		returning m.id, m.conversation_id, m.channel_instance, m.provider_id,
			linbat.message_status_rank(old.status) < linbat.message_status_rank('sent') as moved
	)
	select coalesce(array_agg(u.id order by u.id), '{}'), coalesce(array_agg(u.moved order by u.id), '{}'),
		coalesce(array_agg(u.conversation_id order by u.id), '{}'),
		coalesce(array_agg(u.channel_instance order by u.id), '{}'),
		coalesce(array_agg(u.provider_id order by u.id), '{}')
	into v_ids, v_moved, v_conversations, v_instances, v_provider_ids
	from upd u;

	perform pg_notify('linbat_event', json_build_object('type', 'status',
		'conversation', u.conversation_id, 'message', u.id, 'status', 'sent')::text)
	from unnest(v_ids, v_moved, v_conversations) as u (id, moved, conversation_id)
	where u.moved;

	for v_early in
		with gone as (
			delete from linbat.status_early e
			using unnest(v_ids, v_instances, v_provider_ids) as u (id, channel_instance, provider_id)
			where e.channel_instance = u.channel_instance and e.provider_id = u.provider_id
			returning u.id as message_id, e.id as early_id, e.status, e.at, e.error_code, e.error_text
		)
		select * from gone order by gone.early_id
	loop
		perform linbat.message_status_apply(v_early.message_id, v_early.status, v_early.at,
			v_early.error_code, v_early.error_text);
	end loop;

	return query select * from unnest(v_ids, v_moved);
end
$$;

-- Record that the provider accepted one message (see outbound_sent_batch).
-- Returns true if this call moved the message to 'sent'.
create or replace function linbat.outbound_sent(p_id bigint, p_provider_id text)
returns boolean
language plpgsql
as $$
declare
	v_moved boolean;
begin
	select b.moved into v_moved
	from linbat.outbound_sent_batch(array[p_id], array[p_provider_id]) b;
	if not found then
		raise exception using errcode = 'P0002',
			message = format('outbound message %s does not exist', p_id);
	end if;
	return v_moved;
end
$$;

-- Apply a delivery status to outbound message p_id, forward only (see 0001
-- and 0010); as in 0010, but sent_at is never later than a known delivery or
-- read time: a 'sent' report takes the least of the times known, and a
-- delivery or read report earlier than sent_at moves sent_at back to it.
create or replace function linbat.message_status_apply(p_id bigint, p_status text, p_at timestamptz,
	p_code text, p_text text)
returns bigint
language plpgsql
as $$
declare
	v_old text;
	v_conversation bigint;
	v_at timestamptz := coalesce(p_at, now());
	v_moves boolean;
begin
	perform linbat.delivery_status_check(p_status);
	select m.status, m.conversation_id into v_old, v_conversation
	from linbat.message m where m.id = p_id and m.direction = 'out' for update;
	if not found then
		return null;
	end if;
	v_moves := linbat.message_status_rank(p_status) > linbat.message_status_rank(v_old);
	if p_status = 'failed' and not v_moves then
		-- a failure report after delivery is stale news
		return p_id;
	end if;
	-- Timestamps record each event even when the status stays (read before delivered).
	update linbat.message m set
		status = case when v_moves then p_status else m.status end,
		sent_at = case
			when p_status = 'sent' then coalesce(m.sent_at, least(v_at, m.delivered_at, m.read_at))
			when p_status in ('delivered', 'read') and m.sent_at is not null then least(m.sent_at, v_at)
			else m.sent_at end,
		delivered_at = case when p_status = 'delivered' then coalesce(m.delivered_at, v_at)
			else m.delivered_at end,
		read_at = case when p_status = 'read' then coalesce(m.read_at, v_at) else m.read_at end,
		failed_at = case when p_status = 'failed' then v_at else m.failed_at end,
		error_code = case when p_status = 'failed' then p_code else m.error_code end,
		error_text = case when p_status = 'failed' then p_text else m.error_text end,
		locked_until = case when v_moves then null else m.locked_until end,
		locked_by = case when v_moves then null else m.locked_by end
	where m.id = p_id;
	if v_moves then
		perform pg_notify('linbat_event', json_build_object('type', 'status',
			'conversation', v_conversation, 'message', p_id, 'status', p_status)::text);
	end if;
	if v_moves and p_status = 'failed' then
		perform linbat.status_failure_followup(p_id, p_code);
	end if;
	return p_id;
end
$$;

-- Media of inbound messages that name several, as a list: Twilio's MMS
-- (NumMedia, MediaUrlN, MediaContentTypeN) is stored with meta
-- {"media": [{"url": ..., "mime_type": ...}, ...]}. Each becomes a pending
-- attachment whose provider media id is the URL (or an element's "id"), in
-- the transaction that stores the message, and linbat_media wakes the
-- instance's fetcher after the commit, as for WhatsApp's one media (0003).
create function linbat.attachment_from_message_list()
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
		perform pg_notify('linbat_media', new.channel_instance);
	end if;
	return null;
end
$$;

create trigger message_media_list_insert after insert on linbat.message
	for each row when (new.direction = 'in' and jsonb_typeof(new.meta->'media') = 'array')
	execute function linbat.attachment_from_message_list();
