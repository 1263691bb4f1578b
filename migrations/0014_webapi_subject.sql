-- 0014_webapi_subject: a message's email subject in the inbox (helper web
-- asked for it: the conversation view shows it, and the browser tests send
-- their XSS payloads as subjects too). Inbound mail and reminders keep it in
-- meta->>'subject'; other messages have none (null).

-- One page of a conversation's messages, as in 0013, with each one's subject.
create or replace function linbat.inbox_messages(p_conversation bigint, p_viewer bigint, p_role text,
	p_after bigint, p_limit integer)
returns json
language plpgsql stable
as $$
declare
	v_limit integer := least(greatest(coalesce(p_limit, 100), 1), 500);
	v_page json;
	v_n integer;
	v_last bigint;
begin
	perform linbat.conversation_access(p_conversation, p_viewer, p_role, false);
	select coalesce(json_agg(m order by m.id), '[]'), count(*), max(m.id) into v_page, v_n, v_last
	from (select m.id, m.direction, m.channel_instance as channel, m.content_type, m.body, m.status,
			m.author_operator as author, m.error_code, m.error_text, m.error_kind, m.fallback_of,
			m.created_at, m.received_at, m.sent_at, m.delivered_at, m.read_at, m.failed_at,
			nullif(m.meta ->> 'subject', '') as subject,
			case when m.status = 'failed' then json_build_object('kind', m.error_kind,
				'code', m.error_code, 'text', m.error_text) end as failure,
			coalesce((select json_agg(json_build_object('id', a.id, 'mime_type', a.mime_type,
					'filename', a.filename, 'size', a.size, 'status', a.status,
					'url', '/api/v1/media/' || a.id) order by a.id)
				from linbat.attachment a where a.message_id = m.id), '[]') as attachments
		from linbat.message m
		where m.conversation_id = p_conversation and m.id > coalesce(p_after, 0)
		order by m.id limit v_limit) m;
	return json_build_object('messages', v_page,
		'next', case when v_n = v_limit then v_last::text end);
end
$$;
