-- 0007_email: the email channel's side of the database. Outbound mail learns
-- its threading (the conversation's token for Reply-To, the investor's last
-- Message-ID for In-Reply-To/References) from a trigger on the outbox row, so
-- operator replies, acknowledgements and fallbacks from other channels all
-- carry it. Inbound mail is stored by linbat.ingest_email, which finds the
-- conversation by the token in a recipient, then by our Message-ID in
-- In-Reply-To/References, then by the sender's address, keeps the original
-- and the attachments, and records the IMAP UID it came from, in one
-- transaction. A bounce marks the original failed and falls back.

-- Where each email instance's IMAP poll stands: the mailbox's UIDVALIDITY and
-- the highest UID committed under it (fetching marks a mail seen, so mails
-- above last_uid are taken even when seen).
create table linbat.email_imap_state (
	instance text primary key references linbat.channel_instance (name) on delete cascade,
	uidvalidity bigint not null check (uidvalidity > 0),
	last_uid bigint not null default 0 check (last_uid >= 0),
	updated_at timestamptz not null default now()
);

-- The last UID committed under p_uidvalidity; a new UIDVALIDITY starts again at 0.
create function linbat.email_imap_begin(p_instance text, p_uidvalidity bigint)
returns bigint
language plpgsql
as $$
declare
	v_state linbat.email_imap_state;
begin
	insert into linbat.email_imap_state as s (instance, uidvalidity)
	values (p_instance, p_uidvalidity)
	on conflict (instance) do update set
		last_uid = case when s.uidvalidity = excluded.uidvalidity then s.last_uid else 0 end,
		uidvalidity = excluded.uidvalidity, updated_at = now()
	returning * into v_state;
	return v_state.last_uid;
end
$$;

-- Record that UID p_uid under p_uidvalidity is committed (forward only).
create function linbat.email_imap_done(p_instance text, p_uidvalidity bigint, p_uid bigint)
returns void
language sql
as $$
	update linbat.email_imap_state set last_uid = greatest(last_uid, p_uid), updated_at = now()
	where instance = p_instance and uidvalidity = p_uidvalidity and p_uid is not null
$$;

-- Fill the threading of an outbound mail: the conversation's token, and the
-- Message-IDs the investor's last mail and its references carried.
create function linbat.email_outbound_meta()
returns trigger
language plpgsql
as $$
declare
	v_token text;
	v_last linbat.message;
begin
	if not exists (select 1 from linbat.channel_instance ci
			where ci.name = new.channel_instance and ci.kind = 'email') then
		return new;
	end if;
	select c.email_token into v_token from linbat.conversation c where c.id = new.conversation_id;
	select m.* into v_last from linbat.message m
	join linbat.channel_instance ci on ci.name = m.channel_instance and ci.kind = 'email'
	where m.conversation_id = new.conversation_id and m.direction = 'in'
		and coalesce(m.meta->>'auto_submitted', 'no') = 'no'
	order by m.id desc limit 1;
	new.meta := new.meta || jsonb_build_object('email_token', v_token);
	if v_last.id is not null then
		new.meta := new.meta || jsonb_build_object('in_reply_to', v_last.provider_id,
			'references', coalesce(v_last.meta->'references', '[]'::jsonb)
				|| to_jsonb(v_last.provider_id),
			'reply_subject', v_last.meta->>'subject');
	end if;
	return new;
end
$$;

create trigger message_email_meta before insert on linbat.message
	for each row when (new.direction = 'out' and new.channel_instance is not null)
	execute function linbat.email_outbound_meta();

-- The conversation an inbound mail threads into, and how it was found:
-- 'token' (lkpm+TOKEN@ in a recipient), 'message_id' (our Message-ID in its
-- references), or null (the sender's address decides).
create function linbat.email_thread(p_recipients jsonb, p_references jsonb,
	out o_conversation bigint, out o_how text)
language plpgsql stable
as $$
begin
	select c.id, 'token' into o_conversation, o_how
	from jsonb_array_elements_text(coalesce(p_recipients, '[]')) r (addr)
	join linbat.conversation c
		on c.email_token = substring(lower(r.addr) from '\+([0-9a-z]{16,64})@')
	limit 1;
	if found then
		return;
	end if;
	select m.conversation_id, 'message_id' into o_conversation, o_how
	from jsonb_array_elements_text(coalesce(p_references, '[]')) with ordinality x (ref, n)
	join linbat.message m on m.direction = 'out' and m.provider_id = btrim(x.ref, '<> ')
		and m.id = substring(x.ref from '^<?linbat\.([0-9]{1,18})\.')::bigint
	order by x.n desc
	limit 1;
end
$$;

-- Store the bytes a mail came with as attachments of p_message: the original
-- (message/rfc822) and each part in p_attachments [{filename, mime_type, data
-- (base64)}]; parts refused for their size are only noted in the meta.
create function linbat.email_attach(p_message bigint, p_raw bytea, p_attachments jsonb)
returns void
language sql
as $$
	insert into linbat.attachment (message_id, mime_type, filename, size, sha256, data, status)
	select p_message, a.mime_type, a.filename, octet_length(a.data), encode(sha256(a.data), 'hex'),
		a.data, 'stored'
	from (
		select 'message/rfc822' as mime_type, 'original.eml' as filename, p_raw as data, 0 as n
		where p_raw is not null
		union all
		select linbat.mime_type_normalise(x.v->>'mime_type'), nullif(x.v->>'filename', ''),
			decode(x.v->>'data', 'base64'), x.n
		from jsonb_array_elements(coalesce(p_attachments, '[]')) with ordinality x (v, n)
		where x.v ? 'data'
	) a
	order by a.n
$$;

-- Store an auto-submitted mail (auto-reply, vacation notice) without routing
-- it: in the sender's open conversation, else the latest one, else a new
-- resolved one; nothing is queued and no operator is asked.
create function linbat.email_store_auto(p_instance text, p_address text, p_message_id text,
	p_body text, p_meta jsonb, p_received_at timestamptz, p_conversation bigint)
returns table (message_id bigint, conversation_id bigint, investor_id bigint)
language plpgsql
as $$
#variable_conflict use_column
declare
	v_address text := linbat.address_normalise('email', p_address);
	v_identity bigint;
	v_investor bigint;
	v_conversation bigint := p_conversation;
	v_message bigint;
begin
	perform linbat.xact_lock('identity', 'email:' || v_address);
	select i.id, i.investor_id into v_identity, v_investor
	from linbat.identity i where i.kind = 'email' and i.address = v_address;
	if not found then
		insert into linbat.investor (display_name) values (null) returning id into v_investor;
		insert into linbat.identity (investor_id, kind, address)
		values (v_investor, 'email', v_address) returning id into v_identity;
	end if;
	if v_conversation is null then
		select c.id into v_conversation from linbat.conversation c where c.investor_id = v_investor
		order by c.status <> 'resolved' desc, c.id desc limit 1;
	end if;
	if v_conversation is null then
		insert into linbat.conversation (investor_id, status, resolved_at)
		values (v_investor, 'resolved', now()) returning id into v_conversation;
	end if;
	insert into linbat.message (conversation_id, direction, identity_id, channel_instance,
		provider_id, content_type, body, meta, status, received_at)
	values (v_conversation, 'in', v_identity, p_instance, p_message_id, 'text', p_body,
		coalesce(p_meta, '{}'), 'received', least(coalesce(p_received_at, now()), now()))
	returning id into v_message;
	select c.investor_id into v_investor from linbat.conversation c where c.id = v_conversation;
	return query select v_message, v_conversation, v_investor;
end
$$;

-- Store one inbound mail in one transaction: dedupe on its Message-ID, thread
-- it (see linbat.email_thread), attach the sender's address to the threaded
-- conversation's investor when it is new, then store it through
-- linbat.ingest_inbound (which routes), or linbat.email_store_auto when it is
-- auto-submitted; keep the original and the attachments, and record the UID.
create function linbat.ingest_email(p_instance text, p_address text, p_message_id text,
	p_body text, p_meta jsonb, p_received_at timestamptz, p_profile_name text,
	p_recipients jsonb, p_references jsonb, p_auto boolean, p_raw bytea, p_attachments jsonb,
	p_uidvalidity bigint, p_uid bigint)
returns table (message_id bigint, conversation_id bigint, investor_id bigint, duplicate boolean,
	threaded_by text)
language plpgsql
as $$
#variable_conflict use_column
declare
	v_address text := linbat.address_normalise('email', p_address);
	v_thread record;
	v_investor bigint;
	v_r record;
	v_meta jsonb := coalesce(p_meta, '{}');
begin
	select m.id, m.conversation_id, c.investor_id into v_r
	from linbat.message m join linbat.conversation c on c.id = m.conversation_id
	where m.channel_instance = p_instance and m.provider_id = p_message_id;
	if found then
		perform linbat.email_imap_done(p_instance, p_uidvalidity, p_uid);
		return query select v_r.id, v_r.conversation_id, v_r.investor_id, true, null::text;
		return;
	end if;
	select * into v_thread from linbat.email_thread(p_recipients, p_references);
	if v_thread.o_conversation is not null then
		select c.investor_id into v_investor from linbat.conversation c
		where c.id = v_thread.o_conversation;
		perform linbat.xact_lock('identity', 'email:' || v_address);
		insert into linbat.identity (investor_id, kind, address)
		values (v_investor, 'email', v_address)
		on conflict (kind, address) do nothing;
		v_meta := v_meta || jsonb_build_object('threaded_by', v_thread.o_how);
	end if;
	if p_auto then
		select * into v_r from linbat.email_store_auto(p_instance, v_address, p_message_id, p_body,
			v_meta, p_received_at, null);
	else
		select * into v_r from linbat.ingest_inbound(p_instance, 'email', v_address, p_message_id,
			p_body, 'text', v_meta, p_received_at, p_profile_name);
	end if;
	perform linbat.email_attach(v_r.message_id, p_raw, p_attachments);
	perform linbat.email_imap_done(p_instance, p_uidvalidity, p_uid);
	return query select v_r.message_id, v_r.conversation_id, v_r.investor_id, false,
		coalesce(v_thread.o_how, 'address');
end
$$;

-- A delivery status notification (bounce) for our mail p_original_id: mark
-- that outbound message failed and queue it on the investor's next channel.
-- Returns the failed message's id, null if the mail is not ours.
create function linbat.email_bounce(p_instance text, p_original_id text, p_code text, p_text text,
	p_uidvalidity bigint, p_uid bigint)
returns bigint
language plpgsql
as $$
declare
	v_id bigint;
begin
	select m.id into v_id from linbat.message m
	where m.direction = 'out' and m.provider_id = btrim(p_original_id, '<> ')
		and m.id = substring(p_original_id from '^<?linbat\.([0-9]{1,18})\.')::bigint;
	perform linbat.email_imap_done(p_instance, p_uidvalidity, p_uid);
	if v_id is null then
		return null;
	end if;
	perform linbat.message_status_apply(v_id, 'failed', now(), coalesce(p_code, 'bounce'),
		coalesce(p_text, 'The mail bounced.'));
	update linbat.message set error_kind = 'permanent' where id = v_id and status = 'failed';
	perform linbat.outbound_fallback(v_id);
	return v_id;
end
$$;
