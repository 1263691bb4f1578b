-- 0003_whatsapp_media: fetching the media of inbound WhatsApp messages.
-- A WhatsApp webhook carries only a media id; the bytes must be fetched from
-- the Graph API while the id lives (7 days). The attachment row that says
-- "fetch this" is made by a trigger in the transaction that stores the
-- message, so it exists exactly when the message is committed, and a NOTIFY
-- (delivered only at commit) wakes the adapter of that instance. Fetches are
-- claimed with a lease like the outbox, so several linbatd processes share
-- the work and the claim of a process that died runs out.

alter table linbat.attachment
	add column attempts integer not null default 0 check (attempts >= 0),
	add column locked_until timestamptz,
	-- why the last fetch failed; cleared when a later fetch succeeds
	add column error text,
	add column fetched_at timestamptz;

-- One attachment per provider media per message, whatever repeats.
create unique index attachment_media on linbat.attachment (message_id, provider_media_id)
	where provider_media_id is not null;
-- Serves the claim query: pending rows only.
create index attachment_pending on linbat.attachment (id) where status = 'pending';

-- A MIME type the attachment table accepts: parameters (";codecs=opus") and
-- spaces dropped, lower-cased; application/octet-stream when nothing is left.
create function linbat.mime_type_normalise(p_type text)
returns text
language sql immutable parallel safe
as $$
	select case when v ~ '^[^/[:space:]]+/[^/[:space:]]+$' then v else 'application/octet-stream' end
	from (select lower(btrim(split_part(coalesce(p_type, ''), ';', 1))) as v) s
$$;

-- Make the pending attachment of an inbound WhatsApp message whose meta names
-- a media id, and wake the adapters listening on linbat_media.
create function linbat.attachment_from_message()
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
	perform pg_notify('linbat_media', new.channel_instance);
	return null;
end
$$;

create trigger message_media_insert after insert on linbat.message
	for each row when (new.direction = 'in' and jsonb_typeof(new.meta->'media') = 'object'
		and coalesce(new.meta->'media'->>'id', '') <> '')
	execute function linbat.attachment_from_message();

-- Claim up to p_limit pending media fetches of one instance for
-- p_lease_seconds: rows never tried, and rows whose lease or backoff ran out.
create function linbat.attachment_claim(p_instance text, p_limit integer, p_lease_seconds integer)
returns table (id bigint, media_id text, mime_type text, attempts integer)
language plpgsql
as $$
#variable_conflict use_column
begin
	if p_limit is null or p_limit < 1 or p_lease_seconds is null or p_lease_seconds < 1 then
		raise exception using errcode = '22023',
			message = format('attachment_claim(%L, %s, %s): need a limit >= 1 and a lease >= 1 s',
				p_instance, p_limit, p_lease_seconds);
	end if;
	return query
	with due as (
		select a.id from linbat.attachment a
		join linbat.message m on m.id = a.message_id
		where a.status = 'pending' and a.provider_media_id is not null
			and m.channel_instance = p_instance
			and (a.locked_until is null or a.locked_until < now())
		order by a.id
		limit p_limit
		for update of a skip locked
	)
	update linbat.attachment a set locked_until = now() + make_interval(secs => p_lease_seconds),
		attempts = a.attempts + 1
	from due where a.id = due.id
	returning a.id, a.provider_media_id, a.mime_type, a.attempts;
end
$$;

-- Store the fetched bytes of a claimed attachment. p_sha256 is the lower-case
-- hex SHA-256 the fetcher computed; it must match the bytes that arrived here.
-- Returns false if the row is no longer pending (another process stored it).
create function linbat.attachment_stored(p_id bigint, p_mime_type text, p_data bytea, p_sha256 text)
returns boolean
language plpgsql
as $$
declare
	v_message bigint;
	v_conversation bigint;
begin
	if p_data is null or p_sha256 is distinct from encode(sha256(p_data), 'hex') then
		raise exception using errcode = '22023',
			message = format('attachment %s: the SHA-256 %L does not match the bytes', p_id, p_sha256);
	end if;
	update linbat.attachment a set status = 'stored', data = p_data, size = octet_length(p_data),
		sha256 = p_sha256, mime_type = case when p_mime_type is null or p_mime_type = ''
			then a.mime_type else linbat.mime_type_normalise(p_mime_type) end,
		locked_until = null, error = null, fetched_at = now()
	where a.id = p_id and a.status = 'pending'
	returning a.message_id into v_message;
	if not found then
		return false;
	end if;
	select m.conversation_id into v_conversation from linbat.message m where m.id = v_message;
	perform pg_notify('linbat_event', json_build_object('type', 'attachment',
		'conversation', v_conversation, 'message', v_message, 'attachment', p_id,
		'status', 'stored')::text);
	return true;
end
$$;

-- Record a failed fetch: a temporary failure is tried again later (backoff
-- 30 s doubling, up to 1 h) until p_max_attempts; anything else is final.
-- Returns the attachment's status afterwards: 'pending' or 'failed'.
create function linbat.attachment_fetch_failed(p_id bigint, p_error text, p_temporary boolean,
	p_max_attempts integer)
returns text
language plpgsql
as $$
declare
	v_a linbat.attachment;
begin
	select * into v_a from linbat.attachment a where a.id = p_id for update;
	if not found or v_a.status <> 'pending' then
		return v_a.status;
	end if;
	if p_temporary and v_a.attempts < coalesce(p_max_attempts, 1) then
		update linbat.attachment a set error = p_error,
			locked_until = now() + least(interval '1 hour',
				interval '30 seconds' * power(2, greatest(v_a.attempts - 1, 0)))
		where a.id = p_id;
		return 'pending';
	end if;
	update linbat.attachment a set status = 'failed', error = p_error, locked_until = null,
		fetched_at = now()
	where a.id = p_id;
	perform pg_notify('linbat_event', json_build_object('type', 'attachment',
		'message', v_a.message_id, 'attachment', p_id, 'status', 'failed')::text);
	return 'failed';
end
$$;
