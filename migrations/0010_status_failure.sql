-- A failure that arrives as a delivery report, after the provider accepted
-- the send, must lead where a failed send leads. WhatsApp reports 131026
-- (not a WhatsApp user) and 131047 (the 24-hour window closed) this way, as
-- a "failed" status webhook after the API answered 200: without this the
-- message would stop at failed and the investor would hear nothing.

-- What follows a failed delivery report of outbound message p_id: the
-- template for a closed WhatsApp window (if not sent as one already), else
-- the investor's next channel. Returns 'template', 'fallback' or 'failed'.
create function linbat.status_failure_followup(p_id bigint, p_code text)
returns text
language plpgsql
as $$
declare
	v_template boolean;
	v_kind text;
begin
	select m.use_template, i.kind into v_template, v_kind
	from linbat.message m join linbat.identity i on i.id = m.identity_id
	where m.id = p_id and m.direction = 'out';
	if not found then
		return 'failed';
	end if;
	if p_code = '131047' and v_kind = 'whatsapp' and not v_template then
		-- The template is a new send with a new provider id; the old one is kept for the record.
		update linbat.message set use_template = true, status = 'queued', next_attempt_at = now(),
			error_kind = 'window_closed', locked_until = null, locked_by = null,
			meta = meta || jsonb_build_object('window_closed_provider_id', provider_id),
			provider_id = null
		where id = p_id;
		return 'template';
	end if;
	update linbat.message set error_kind = coalesce(error_kind, 'permanent') where id = p_id;
	if linbat.outbound_fallback(p_id) is not null then
		return 'fallback';
	end if;
	return 'failed';
end
$$;

-- Apply a delivery status to outbound message p_id, forward only (see 0001);
-- a failure that moves the status is followed up as a failed send would be.
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
		sent_at = case when p_status = 'sent' then coalesce(m.sent_at, v_at) else m.sent_at end,
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
