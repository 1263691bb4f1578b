-- 0021_ingest_plpgsql: less CPU per ingest.
--
-- bench/ingest, once 0020 took NOTIFY out of the ingest's transaction, was
-- bound by PostgreSQL's CPU: some 2 ms a message for a new conversation
-- (0.6 ms for a follow-up), against 0.07 ms for a bare INSERT. Part of it
-- (auto_explain, perf) were sql functions that the planner cannot inline:
-- they are parsed and planned again on every call, where plpgsql keeps its
-- plans for the session (as 0011 says of the routing helpers). Now
-- linbat.events_defer (every webhook ingest), linbat.assignment_notify
-- (every assignment) and linbat.phone_sibling_investor (every new number)
-- are plpgsql, with the same answers.
--
-- Tried and left out: inserting a new conversation with its last_* columns
-- set instead of updating it just after. It saved a quarter of a new
-- conversation's CPU but made the follow-ups that came before the next
-- vacuum dearer by as much (same cluster, interleaved runs).

-- From here to the end of the transaction (or linbat.events_take), keep the
-- events instead of sending them. Replaces 0020's (sql) version.
create or replace function linbat.events_defer()
returns void
language plpgsql
as $$
begin
	perform set_config('linbat.events_deferred', 'on', true), set_config('linbat.events', '', true);
end
$$;

-- Tell the inbox that a conversation changed hands (p_operator null: to the
-- queue). Replaces 0020's (sql) version.
create or replace function linbat.assignment_notify(p_conversation bigint, p_operator bigint,
	p_previous bigint, p_reason text)
returns void
language plpgsql
as $$
begin
	perform linbat.event_emit('linbat_event', json_build_object('type', 'assignment',
		'conversation', p_conversation, 'operator', p_operator, 'previous', p_previous,
		'reason', p_reason)::text);
end
$$;

-- The investor of the other phone kind's identity of this number, or null.
-- Replaces 0006's (sql) version.
create or replace function linbat.phone_sibling_investor(p_kind text, p_address text)
returns bigint
language plpgsql stable
as $$
begin
	if p_kind not in ('whatsapp', 'sms') then
		return null;
	end if;
	return (select i.investor_id from linbat.identity i
		where i.kind in ('whatsapp', 'sms') and i.kind <> p_kind and i.address = p_address
		order by i.id
		limit 1);
end
$$;
