-- 0006_sms: one investor per phone number across WhatsApp and SMS. An
-- investor who writes by SMS from the number they use on WhatsApp is the
-- same person: ingest_inbound links the new sms identity to the investor of
-- the whatsapp one (and the other way round), so the SMS lands in the open
-- conversation their WhatsApp messages are in, and the dispatcher's fallback
-- finds the sms identity when WhatsApp cannot deliver. Both phone kinds of
-- one number share one advisory lock key, so a WhatsApp message and an SMS
-- of a new number arriving together still make one investor.

-- The advisory lock key of an identity: phone kinds share "phone:+62...".
create function linbat.identity_lock_key(p_kind text, p_address text)
returns text
language sql immutable
as $$
	select case when p_kind in ('whatsapp', 'sms') then 'phone:' || p_address
		else p_kind || ':' || p_address end
$$;

-- The investor of the other phone kind's identity of this number, or null.
create function linbat.phone_sibling_investor(p_kind text, p_address text)
returns bigint
language sql stable
as $$
	select i.investor_id from linbat.identity i
	where p_kind in ('whatsapp', 'sms') and i.kind in ('whatsapp', 'sms') and i.kind <> p_kind
		and i.address = p_address
	order by i.id
	limit 1
$$;

-- Store one inbound message: find or create its identity, investor and open
-- conversation, deduplicated on the provider's id, and route the conversation,
-- in one transaction. Replaces 0004's version: a new phone identity joins the
-- investor of the same number's other phone identity.
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
			perform linbat.xact_lock('identity', linbat.identity_lock_key(p_kind, v_address));
		end if;
	end loop;

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
		end if;
		insert into linbat.identity (investor_id, kind, address)
		values (v_investor, p_kind, v_address)
		on conflict (kind, address) do nothing
		returning id into v_identity;
		if v_identity is null then
			delete from linbat.investor where id = v_investor
				and not exists (select 1 from linbat.identity i where i.investor_id = v_investor);
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
