-- 0012_campaign_speed: plan reminders set-based, with no function call per
-- reminder that the set can do once.
--
-- What EXPLAIN (ANALYZE, BUFFERS) of 0009's linbat.plan_reminders showed
-- for 100,000 investors (bench/campaign): choosing the investors took about
-- 1.2 s, the per-investor channel choice (a LATERAL with a sort each) about
-- 1.9 s, and rendering about 8 s: linbat.reminder_render_json alone cost
-- some 90 microseconds a call, and every text paid for the Indonesian date,
-- the period and days left again, though they are the same for everyone of
-- one (campaign, scale, offset). Then the writes: the BEFORE INSERT trigger
-- message_email_meta (PL/pgSQL, run for every outbound message, which looks
-- up the channel instance just to return) and the NOTIFY of every message.
--
-- So here:
-- * linbat.reminder_candidates renders each text once per (campaign, scale,
--   offset, channel, language), with every placeholder but {{nib}} and
--   {{company_name}} filled; per reminder only two replace() calls remain
--   (and one for the WhatsApp template's JSON, parsed once). {{nib}} goes
--   first and {{company_name}} last, so no value is scanned again for
--   placeholders: the result is the one-pass rendering of src/template.c.
-- * The channel is chosen for all investors at once (one aggregate over
--   their identities), planned reminders are found by one join on the
--   unique key, not a subquery per candidate.
-- * Reminder messages carry meta.channel; message_email_meta runs for them
--   only on email, and message_outbox_insert not at all: plan_reminders
--   sends one NOTIFY per channel instance that has something due now.
-- The foreign keys of message, reminder and conversation are still checked
-- row by row by PostgreSQL: that is most of what planning costs now.

-- The WhatsApp template parameters of a campaign as JSON text with
-- placeholders, JSON-escaped (a placeholder has no character JSON escapes).
create function linbat.campaign_params_json(p_params text[])
returns text
language sql immutable parallel safe
as $$
	select to_json(coalesce(p_params, '{}'))::text
$$;

create or replace function linbat.reminder_candidates(p_now timestamptz, p_campaign bigint)
returns table (campaign_id bigint, investor_id bigint, period text, offset_days integer,
	deadline date, channel text, identity_id bigint, instance text, body text,
	template jsonb, send_at timestamptz, subject text, language text, planned boolean)
language sql stable
as $$
	with today as materialized (
		select (p_now at time zone 'Asia/Makassar')::date as d
	), camp as materialized (
		select c.*, linbat.window_next(p_now, c.window_start, c.window_end) as send_at
		from linbat.campaign c
		where (p_campaign is null and c.status = 'active') or c.id = p_campaign
	), due as materialized (
		-- (campaign, scale, offset) whose deadline is today - offset
		select camp.id as campaign_id, s.scale, o.off, nd.period, nd.deadline, nd.deadline - today.d as days_left
		from camp, today,
			unnest(case when cardinality(camp.scales) = 0 then array['kecil', 'menengah', 'besar']
				else camp.scales end) as s (scale),
			unnest(camp.offsets) as o (off),
			lateral linbat.lkpm_next_deadline(s.scale, today.d - o.off) nd
		where nd.deadline = today.d - o.off
	), pre as materialized (
		-- every text of a due group with all but {{nib}} and {{company_name}} filled
		select due.campaign_id, due.scale, due.off, k.kind, l.language,
			linbat.reminder_render(linbat.campaign_text(camp.texts, k.kind, l.language),
				'{{company_name}}', '{{nib}}', due.period, due.deadline, due.days_left, l.language) as body,
			case when k.kind = 'whatsapp' and camp.wa_template_name is not null then
				'{"name": ' || to_json(camp.wa_template_name)::text || ', "language": "' || l.language
				|| '", "params": ' || linbat.reminder_render(linbat.campaign_params_json(camp.wa_template_params),
					'{{company_name}}', '{{nib}}', due.period, due.deadline, due.days_left, l.language) || '}'
			end as template,
			case l.language when 'en' then 'LKPM report ' || due.period || ' due '
				else 'Laporan LKPM ' || due.period || ' jatuh tempo ' end
				|| linbat.date_text(due.deadline, l.language) as subject
		from due join camp on camp.id = due.campaign_id,
			(values ('whatsapp'), ('sms'), ('email')) k (kind), (values ('id'), ('en')) l (language)
	), inv as materialized (
		select due.campaign_id, due.scale, due.off, due.period, due.deadline, i.id as investor_id,
			i.company_name, i.nib, i.language,
			coalesce(i.preferred_channel, i.fallback_order[1]) as preferred, i.fallback_order
		from due
		join camp on camp.id = due.campaign_id
		join linbat.investor i on i.scale = due.scale and i.nib is not null and not i.exempt
		where (cardinality(camp.kbli_prefixes) = 0 or exists (select 1
				from unnest(i.kbli) k, unnest(camp.kbli_prefixes) p where starts_with(k, p)))
			and (cardinality(camp.districts) = 0 or i.district = any (camp.districts))
			and not exists (select 1 from linbat.lkpm_filing f
				where f.investor_id = i.id and f.period = due.period and linbat.lkpm_filed(f.status))
	), inst as materialized (
		select ci.kind, min(ci.name) as name from linbat.channel_instance ci group by ci.kind
	), pick as (
		-- per investor the identity to use: the preferred kind if usable, then
		-- the fallback order, then the oldest; one aggregate over a key that
		-- sorts that way and carries the kind (bits 40-41) and the identity
		select x.investor_id, min((((id.kind is distinct from x.preferred)::integer * 100
				+ coalesce(array_position(x.fallback_order, id.kind), 99))::bigint << 42)
			| (array_position(array['whatsapp', 'sms', 'email'], id.kind)::bigint - 1 << 40)
			| id.id) as k
		from inv x
		join linbat.identity id on id.investor_id = x.investor_id and id.opted_out_at is null
		where id.kind in (select inst.kind from inst)
		group by x.investor_id
	), ch as (
		select inv.*, (array['whatsapp', 'sms', 'email'])[(pick.k >> 40 & 3) + 1] as kind,
			pick.k & ((1::bigint << 40) - 1) as identity_id
		from inv join pick on pick.investor_id = inv.investor_id
	)
	select ch.campaign_id, ch.investor_id, ch.period, ch.off, ch.deadline, ch.kind, ch.identity_id,
		inst.name,
		replace(replace(pre.body, '{{nib}}', ch.nib), '{{company_name}}', coalesce(ch.company_name, '')),
		case when pre.template is not null then
			replace(replace(pre.template, '{{nib}}', ch.nib), '{{company_name}}',
				(select substr(j, 2, length(j) - 2) from (select to_json(coalesce(ch.company_name, ''))::text) x (j))
			)::jsonb
		end,
		camp.send_at, pre.subject, ch.language, r.id is not null
	from ch
	join inst on inst.kind = ch.kind
	join camp on camp.id = ch.campaign_id
	-- a nested loop over the dozen texts (offset 0 keeps it one): joined as
	-- a hash, the planner's guess of the rows of ch made it hash ch instead
	cross join lateral (select * from pre where pre.campaign_id = ch.campaign_id and pre.scale = ch.scale
		and pre.off = ch.off and pre.kind = ch.kind and pre.language = ch.language offset 0) pre
	left join linbat.reminder r on r.campaign_id = ch.campaign_id and r.investor_id = ch.investor_id
		and r.period = ch.period and r.offset_days = ch.off
$$;

-- The planner looks a candidate up by the whole unique key. With this index
-- beside it, and statistics from before a big plan (autovacuum had not yet
-- analyzed), the planner chose (campaign_id, period) and filtered every
-- reminder of the period for each candidate: planning again after 100,000
-- reminders ran for minutes. The unique key serves campaign_id lookups too.
drop index linbat.reminder_campaign_period;

alter function linbat.campaign_preview(bigint, date, integer) set enable_nestloop = off;

-- Reminder messages skip the per-row triggers the planner does for the set.
drop trigger message_email_meta on linbat.message;
create trigger message_email_meta before insert on linbat.message
	for each row when (new.direction = 'out' and new.channel_instance is not null
		and coalesce(new.meta ->> 'channel', 'email') = 'email')
	execute function linbat.email_outbound_meta();

drop trigger message_outbox_insert on linbat.message;
create trigger message_outbox_insert after insert on linbat.message
	for each row when (new.direction = 'out' and new.status = 'queued' and not (new.meta ? 'reminder'))
	execute function linbat.outbox_notify();

-- Plan every reminder due at p_now, in one statement: a reminder row, its
-- queued message (held until the send window opens) and, for an investor
-- who never wrote, a closed conversation to carry it. Returns how many were
-- planned; 0 at once if another process is planning (it plans the same).
-- The dispatcher hears of them by one NOTIFY per channel instance.
--
-- jit is off: the row estimates of the unnests make the plan look costly
-- enough for JIT, whose compilation took seconds, far longer than the work.
-- work_mem is raised so that the hashes stay in memory, and nested loops
-- are off: the row estimates of the unnests and CTEs are far too low (1,000
-- investors for 100,000), and a nested loop over the channel choice made
-- planning quadratic. Hash joins cost the same for a few rows.
create or replace function linbat.plan_reminders(p_now timestamptz default now())
returns integer
language plpgsql
set jit = off
set work_mem = '64MB'
set enable_nestloop = off
as $$
declare
	v_mseq regclass := pg_get_serial_sequence('linbat.message', 'id')::regclass;
	v_cseq regclass := pg_get_serial_sequence('linbat.conversation', 'id')::regclass;
	v_n integer;
	v_instances text[];
begin
	if not pg_try_advisory_xact_lock(hashtextextended('linbat.plan_reminders', 0)) then
		return 0;
	end if;
	-- Under the lock no other planner runs, and candidates already planned
	-- are left out, so the inserts need no ON CONFLICT (and no join back to
	-- what it kept); the unique key still refuses a duplicate outright.
	with ids as materialized (
		select c.*, nextval(v_mseq) as message_id, coalesce(cv.id, nextval(v_cseq)) as conversation_id,
			cv.id is null as new_conversation
		from linbat.reminder_candidates(p_now, null) c
		left join lateral (select max(x.id) as id from linbat.conversation x
			where x.investor_id = c.investor_id) cv on true
		where not c.planned
	), conv as (
		insert into linbat.conversation (id, investor_id, status, resolved_at, queued_since)
		select ids.conversation_id, ids.investor_id, 'resolved', p_now, null
		from ids where ids.new_conversation
	), msg as (
		insert into linbat.message (id, conversation_id, direction, identity_id, channel_instance,
			content_type, body, meta, status, next_attempt_at, use_template, template)
		select ids.message_id, ids.conversation_id, 'out', ids.identity_id, ids.instance, 'text',
			ids.body, jsonb_build_object('reminder', true, 'campaign', ids.campaign_id,
				'subject', ids.subject, 'auto_submitted', true, 'channel', ids.channel),
			'queued', ids.send_at, ids.template is not null, ids.template
		from ids
	), rem as (
		insert into linbat.reminder (campaign_id, investor_id, period, offset_days, deadline,
			channel, message_id, created_at)
		select ids.campaign_id, ids.investor_id, ids.period, ids.offset_days, ids.deadline,
			ids.channel, ids.message_id, p_now
		from ids
		returning 1
	)
	select (select count(*) from rem),
		array(select distinct ids.instance from ids where ids.send_at <= p_now)
	into v_n, v_instances;
	perform pg_notify('linbat_outbox', x) from unnest(v_instances) x;
	return v_n;
end
$$;

-- Imports -------------------------------------------------------------------------
-- linbat.text_array_ok checks kbli and fallback_order of every investor row
-- (and the arrays of a campaign). As an aggregate over unnest() it was a SQL
-- function the planner cannot inline, run through the executor on each
-- call: some 50 microseconds, twice per imported investor. The same test as
-- a loop costs a third of that. Same answers: null or empty is ok, every
-- element must be non-null, match the pattern and appear once.
create or replace function linbat.text_array_ok(a text[], pattern text)
returns boolean
language plpgsql immutable parallel safe
as $$
declare
	x text;
	seen text[] := '{}';
begin
	foreach x in array coalesce(a, '{}') loop
		if x is null or x !~ pattern or x = any (seen) then
			return false;
		end if;
		seen := seen || x;
	end loop;
	return true;
end
$$;
