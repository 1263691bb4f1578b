-- 0025_reminder_slim_plan: a planned reminder is who, when and on which
-- identity; its text is rendered when it is handed over; a reminder that can
-- no longer be sent is marked skipped, with why.
--
-- Why: bench/campaign planned 100,000 investors in 1.8-3.0 s against a goal
-- of 1 s (a bare INSERT ... SELECT of as many rows: 0.06-0.11 s). Backend CPU
-- of 0022's plan_reminders, one 100,000-investor plan on this machine: 1.9 s,
-- of it about 0.5 s choosing the investors and their identity, 0.3 s
-- rendering (two replace() calls a text, and for WhatsApp a JSON text parsed
-- back to jsonb, per investor), and the write of 100,000 rows of some 400
-- bytes each, with two btree indexes (the surrogate id and the unique key),
-- three checks and the statement's reference check. Here:
-- * A reminder row holds no text. reminder_send_due renders each text once
--   per (campaign, period, days left, channel, language) of its batch, then
--   fills in NIB and company name per message, as plan_reminders did. So a
--   message carries what is true when it leaves: the campaign's text of that
--   day, the company's name of that day, and the days really left (a
--   reminder held overnight by the send window says 13 days, not 14).
-- * The surrogate id goes: nothing refers to a reminder by it, and the
--   unique key (campaign, investor, period, offset) becomes the primary key.
--   One index and one sequence call less per reminder.
-- * The identity is chosen with one aggregate over the identities (the
--   least identity per kind) and arithmetic per investor, not a join of
--   every identity to its investor before the aggregate.
-- * The reference check of a reminder to its investor and campaign (0022)
--   is left out for rows plan_reminders writes, which took them from those
--   very tables in the same statement, under the lock that a delete of
--   either takes first (reminder_referenced_check). Any other writer is
--   still checked.
--
-- And a bug: 0022's reminder_send_due took a reminder whose identity was
-- gone out of the queue by setting send_at to null, which its own check
-- reminder_unsent refuses; the chore then failed in every round and no
-- reminder left at all. Such a reminder is now marked skipped = 'identity'.
-- The same hand-over also skips (skipped = 'filed') a reminder whose
-- investor has filed its period since it was planned, and one whose
-- identity has opted out since (skipped = 'identity'); it holds back, without
-- skipping, the reminders of a campaign that is paused, and skips those of an
-- archived one (skipped = 'campaign').

alter table linbat.reminder
	drop constraint reminder_unsent,
	drop constraint reminder_pkey,
	drop column id,
	drop column body,
	drop column template,
	drop column subject,
	add column skipped text check (skipped in ('identity', 'filed', 'campaign')),
	add constraint reminder_unsent check (message_id is not null or skipped is not null
		or (identity_id is not null and instance is not null and send_at is not null));
alter table linbat.reminder
	drop constraint reminder_campaign_id_investor_id_period_offset_days_key,
	add constraint reminder_pkey primary key (campaign_id, investor_id, period, offset_days);
drop index linbat.reminder_due;
create index reminder_due on linbat.reminder using brin (send_at) where message_id is null and skipped is null;

-- The texts of a campaign for one period and day: per channel and language,
-- the body, the WhatsApp template (JSON text, not yet parsed) and the email
-- subject, with every placeholder filled but {{nib}} and {{company_name}},
-- which linbat.reminder_fill puts in per investor.
create function linbat.reminder_texts(p_campaign bigint, p_period text, p_deadline date, p_days_left integer)
returns table (kind text, language text, body text, template text, subject text)
language sql stable
as $$
	select k.kind, l.language,
		linbat.reminder_render(linbat.campaign_text(c.texts, k.kind, l.language),
			'{{company_name}}', '{{nib}}', p_period, p_deadline, p_days_left, l.language),
		case when k.kind = 'whatsapp' and c.wa_template_name is not null then
			'{"name": ' || to_json(c.wa_template_name)::text || ', "language": "' || l.language
			|| '", "params": ' || linbat.reminder_render(linbat.campaign_params_json(c.wa_template_params),
				'{{company_name}}', '{{nib}}', p_period, p_deadline, p_days_left, l.language) || '}'
		end,
		case l.language when 'en' then 'LKPM report ' || p_period || ' due '
			else 'Laporan LKPM ' || p_period || ' jatuh tempo ' end
			|| linbat.date_text(p_deadline, l.language)
	from linbat.campaign c, (values ('whatsapp'), ('sms'), ('email')) k (kind), (values ('id'), ('en')) l (language)
	where c.id = p_campaign
$$;

-- A text of linbat.reminder_texts for one investor: {{nib}} first and
-- {{company_name}} last, so no value is scanned again for placeholders (the
-- one-pass rendering of src/template.c). p_json: the text is JSON, and the
-- name goes in JSON-escaped.
create function linbat.reminder_fill(p_text text, p_nib text, p_company_name text, p_json boolean)
returns text
language sql immutable parallel safe
as $$
	select replace(replace(p_text, '{{nib}}', coalesce(p_nib, '')), '{{company_name}}',
		case when p_json then (select substr(j, 2, length(j) - 2)
				from (select to_json(coalesce(p_company_name, ''))::text) x (j))
			else coalesce(p_company_name, '') end)
$$;

-- Who gets a reminder of an active campaign (or of p_campaign) at p_now, on
-- which identity and channel instance, and when it may leave; planned: it
-- has been planned already. The rules of 0012: the (campaign, scale, offset)
-- groups whose deadline is today minus the offset; investors of the scale,
-- with a NIB, not exempt, in the audience, not filed; the preferred kind if
-- usable, then the fallback order, then the oldest identity of a kind. A kind
-- is usable if it has a channel instance and the campaign a text for it in
-- the investor's language (or a WhatsApp template): before, a campaign with
-- texts for SMS only planned WhatsApp reminders with no text, which 0022's
-- check refused, failing the whole plan (a campaign's texts never change
-- after it is made, so the plan's choice holds at hand-over).
create function linbat.reminder_targets(p_now timestamptz, p_campaign bigint)
returns table (campaign_id bigint, investor_id bigint, period text, offset_days integer,
	deadline date, channel text, identity_id bigint, instance text, send_at timestamptz,
	language text, planned boolean)
language sql stable
as $$
	with today as materialized (
		select (p_now at time zone 'Asia/Makassar')::date as d
	), inst as materialized (
		-- the instance of each kind; a kind with none is not usable
		select min(ci.name) filter (where ci.kind = 'whatsapp') as wa,
			min(ci.name) filter (where ci.kind = 'sms') as sms,
			min(ci.name) filter (where ci.kind = 'email') as em
		from linbat.channel_instance ci
	), due as materialized (
		-- the (campaign, scale, offset) groups, per language, with what of
		-- the campaign the investors are matched against, and the kinds it
		-- can use for that language: an instance, and a text (or for
		-- WhatsApp a template)
		select c.id as campaign_id, c.kbli_prefixes, c.districts,
			linbat.window_next(p_now, c.window_start, c.window_end) as send_at,
			s.scale, o.off, nd.period, nd.deadline, l.language,
			inst.wa is not null and (linbat.campaign_text(c.texts, 'whatsapp', l.language) is not null
				or c.wa_template_name is not null) as wa_ok,
			inst.sms is not null and linbat.campaign_text(c.texts, 'sms', l.language) is not null as sms_ok,
			inst.em is not null and linbat.campaign_text(c.texts, 'email', l.language) is not null as em_ok
		from linbat.campaign c, today, inst, (values ('id'), ('en')) l (language),
			unnest(case when cardinality(c.scales) = 0 then array['kecil', 'menengah', 'besar']
				else c.scales end) as s (scale),
			unnest(c.offsets) as o (off),
			lateral linbat.lkpm_next_deadline(s.scale, today.d - o.off) nd
		where ((p_campaign is null and c.status = 'active') or c.id = p_campaign)
			and nd.deadline = today.d - o.off
	), ids as (
		-- the oldest identity of each kind that may be written to
		select id.investor_id,
			min(id.id) filter (where id.kind = 'whatsapp') as wa,
			min(id.id) filter (where id.kind = 'sms') as sms,
			min(id.id) filter (where id.kind = 'email') as em
		from linbat.identity id
		where id.opted_out_at is null
		group by id.investor_id
	), pick as (
		-- per investor the least of three keys that sort the kinds by
		-- preference (bits 42 on), carry the kind (bits 40-41) and the
		-- identity; offset 0 keeps the key computed once, not again in the
		-- filter on it
		select due.campaign_id, due.off, due.period, due.deadline, due.send_at, i.id as investor_id,
			i.language,
			least(
				case when due.wa_ok then ((('whatsapp' is distinct from
					coalesce(i.preferred_channel, i.fallback_order[1]))::integer * 100
					+ coalesce(array_position(i.fallback_order, 'whatsapp'), 99))::bigint << 42) | ids.wa end,
				case when due.sms_ok then ((('sms' is distinct from
					coalesce(i.preferred_channel, i.fallback_order[1]))::integer * 100
					+ coalesce(array_position(i.fallback_order, 'sms'), 99))::bigint << 42)
					| (1::bigint << 40) | ids.sms end,
				case when due.em_ok then ((('email' is distinct from
					coalesce(i.preferred_channel, i.fallback_order[1]))::integer * 100
					+ coalesce(array_position(i.fallback_order, 'email'), 99))::bigint << 42)
					| (2::bigint << 40) | ids.em end) as k
		from due
		join linbat.investor i on i.scale = due.scale and i.language = due.language
			and i.nib is not null and not i.exempt
		join ids on ids.investor_id = i.id
		where (cardinality(due.kbli_prefixes) = 0 or exists (select 1
				from unnest(i.kbli) k, unnest(due.kbli_prefixes) p where starts_with(k, p)))
			and (cardinality(due.districts) = 0 or i.district = any (due.districts))
			and not exists (select 1 from linbat.lkpm_filing f
				where f.investor_id = i.id and f.period = due.period and linbat.lkpm_filed(f.status))
		offset 0
	)
	select pick.campaign_id, pick.investor_id, pick.period, pick.off, pick.deadline,
		(array['whatsapp', 'sms', 'email'])[(pick.k >> 40 & 3) + 1],
		pick.k & ((1::bigint << 40) - 1),
		(select array[inst.wa, inst.sms, inst.em] from inst)[(pick.k >> 40 & 3) + 1],
		pick.send_at, pick.language, r.campaign_id is not null
	from pick
	left join linbat.reminder r on r.campaign_id = pick.campaign_id and r.investor_id = pick.investor_id
		and r.period = pick.period and r.offset_days = pick.off
	where pick.k is not null
$$;

-- The candidates with their texts, for campaign_preview (same columns as
-- 0012's, which plan_reminders read too).
create or replace function linbat.reminder_candidates(p_now timestamptz, p_campaign bigint)
returns table (campaign_id bigint, investor_id bigint, period text, offset_days integer,
	deadline date, channel text, identity_id bigint, instance text, body text,
	template jsonb, send_at timestamptz, subject text, language text, planned boolean)
language sql stable
as $$
	with t as materialized (
		select * from linbat.reminder_targets(p_now, p_campaign)
	), texts as materialized (
		-- rendered once per group, not per investor
		select g.campaign_id, g.period, g.offset_days, x.*
		from (select distinct t.campaign_id, t.period, t.deadline, t.offset_days from t) g,
			linbat.reminder_texts(g.campaign_id, g.period, g.deadline, -g.offset_days) x
	)
	select t.campaign_id, t.investor_id, t.period, t.offset_days, t.deadline, t.channel, t.identity_id,
		t.instance, linbat.reminder_fill(x.body, i.nib, i.company_name, false),
		linbat.reminder_fill(x.template, i.nib, i.company_name, true)::jsonb,
		t.send_at, x.subject, t.language, t.planned
	from t
	join linbat.investor i on i.id = t.investor_id
	join texts x on x.campaign_id = t.campaign_id and x.period = t.period and x.offset_days = t.offset_days
		and x.kind = t.channel and x.language = t.language
$$;

-- Plan every reminder due at p_now: one reminder row per target not yet
-- planned. Returns how many; 0 at once if another process is planning.
-- Settings as in 0012.
create or replace function linbat.plan_reminders(p_now timestamptz default now())
returns integer
language plpgsql
set jit = off
set work_mem = '64MB'
set enable_nestloop = off
as $$
declare
	v_n integer;
begin
	if not pg_try_advisory_xact_lock(hashtextextended('linbat.plan_reminders', 0)) then
		return 0;
	end if;
	perform set_config('linbat.reminder_refs', 'planner', true);
	insert into linbat.reminder (campaign_id, investor_id, period, offset_days, deadline, channel,
		created_at, identity_id, instance, send_at)
	select t.campaign_id, t.investor_id, t.period, t.offset_days, t.deadline, t.channel,
		p_now, t.identity_id, t.instance, t.send_at
	from linbat.reminder_targets(p_now, null) t
	where not t.planned;
	get diagnostics v_n = row_count;
	perform set_config('linbat.reminder_refs', '', true);
	return v_n;
end
$$;

-- 0022's reference check, but not for the rows of plan_reminders (see above).
drop trigger reminder_refs_insert on linbat.reminder;
create trigger reminder_refs_insert after insert on linbat.reminder
	referencing new table as new_rows for each statement
	when (coalesce(current_setting('linbat.reminder_refs', true), '') <> 'planner')
	execute function linbat.reminder_refs_check();

-- Make the message of each reminder whose time has come (at most p_limit, the
-- oldest first) of an active campaign, rendered now; for an investor who
-- never wrote, a closed conversation to carry it. First, the due reminders
-- that can no longer be sent are marked skipped. Returns how many messages;
-- 0 at once if another process is at it.
create or replace function linbat.reminder_send_due(p_now timestamptz default now(), p_limit integer default 20000)
returns integer
language plpgsql
set jit = off
as $$
declare
	v_mseq regclass := pg_get_serial_sequence('linbat.message', 'id')::regclass;
	v_cseq regclass := pg_get_serial_sequence('linbat.conversation', 'id')::regclass;
	v_n integer;
	v_instances text[];
begin
	if not pg_try_advisory_xact_lock(hashtextextended('linbat.reminder_send_due', 0)) then
		return 0;
	end if;
	update linbat.reminder r set skipped = s.why
	from (
		select r2.campaign_id, r2.investor_id, r2.period, r2.offset_days,
			case when c.status = 'archived' then 'campaign'
				when not exists (select 1 from linbat.identity i where i.id = r2.identity_id
					and i.opted_out_at is null) then 'identity'
				when exists (select 1 from linbat.lkpm_filing f where f.investor_id = r2.investor_id
					and f.period = r2.period and linbat.lkpm_filed(f.status)) then 'filed'
			end as why
		from linbat.reminder r2 join linbat.campaign c on c.id = r2.campaign_id
		where r2.message_id is null and r2.skipped is null and r2.send_at <= p_now
	) s
	where s.why is not null and r.campaign_id = s.campaign_id and r.investor_id = s.investor_id
		and r.period = s.period and r.offset_days = s.offset_days;
	with due as materialized (
		select r.*, i.nib, i.company_name, i.language,
			r.deadline - (greatest(r.send_at, p_now) at time zone 'Asia/Makassar')::date as days_left
		from linbat.reminder r
		join linbat.campaign c on c.id = r.campaign_id and c.status = 'active'
		join linbat.investor i on i.id = r.investor_id
		where r.message_id is null and r.skipped is null and r.send_at <= p_now
		order by r.send_at, r.investor_id
		limit p_limit
	), texts as materialized (
		select g.campaign_id, g.period, g.deadline, g.days_left, x.*
		from (select distinct due.campaign_id, due.period, due.deadline, due.days_left from due) g,
			linbat.reminder_texts(g.campaign_id, g.period, g.deadline, g.days_left) x
	), ids as materialized (
		select due.*, nextval(v_mseq) as new_message_id, coalesce(cv.id, nextval(v_cseq)) as conversation_id,
			cv.id is null as new_conversation,
			linbat.reminder_fill(t.body, due.nib, due.company_name, false) as body,
			linbat.reminder_fill(t.template, due.nib, due.company_name, true)::jsonb as template,
			t.subject
		from due
		join texts t on t.campaign_id = due.campaign_id and t.period = due.period
			and t.deadline = due.deadline and t.days_left = due.days_left
			and t.kind = due.channel and t.language = due.language
		left join lateral (select max(x.id) as id from linbat.conversation x
			where x.investor_id = due.investor_id) cv on true
	), conv as (
		insert into linbat.conversation (id, investor_id, status, resolved_at, queued_since)
		select ids.conversation_id, ids.investor_id, 'resolved', p_now, null
		from ids where ids.new_conversation
	), msg as (
		insert into linbat.message (id, conversation_id, direction, identity_id, channel_instance,
			content_type, body, meta, status, next_attempt_at, use_template, template)
		select ids.new_message_id, ids.conversation_id, 'out', ids.identity_id, ids.instance, 'text',
			ids.body, jsonb_build_object('reminder', true, 'campaign', ids.campaign_id,
				'subject', ids.subject, 'auto_submitted', true, 'channel', ids.channel),
			'queued', ids.send_at, ids.template is not null, ids.template
		from ids
	), upd as (
		update linbat.reminder r set message_id = ids.new_message_id
		from ids where r.campaign_id = ids.campaign_id and r.investor_id = ids.investor_id
			and r.period = ids.period and r.offset_days = ids.offset_days
		returning 1
	)
	select (select count(*) from upd), array(select distinct ids.instance from ids)
	into v_n, v_instances;
	perform linbat.event_emit('linbat_outbox', x) from unnest(v_instances) x;
	return v_n;
end
$$;
