-- 0009_campaigns: LKPM reminder campaigns, the reminders they plan, the
-- investor and filing imports, and the keywords an investor may send.
--
-- A reminder is a queued outbound message (the outbox of 0002) plus one row
-- of linbat.reminder, unique per (campaign, investor, period, offset): the
-- guarantee that nothing is planned twice, however often or by how many
-- processes the planner runs. Planning is one INSERT ... SELECT over
-- linbat.reminder_candidates, which linbatctl's preview reads too.
--
-- Time: deadlines are dates in WITA (Asia/Makassar). A reminder with offset o
-- is due on the day deadline + o; planned at any hour of that day, its
-- message waits (next_attempt_at) for the campaign's send window, so nothing
-- leaves outside the window and nothing is dropped.
--
-- Decisions:
-- * "Filed" is any status but 'draf' (terkirim, perlu_perbaikan,
--   sudah_diperbaiki, disetujui) and 'claimed': an investor who answered
--   SUDAH stops getting reminders while an operator checks the claim.
-- * BERHENTI/STOP opts every identity of the investor out, not only the one
--   it came from: someone who says stop on WhatsApp does not want the SMS.
-- * Keywords are applied by a trigger on inbound messages, in the ingest
--   transaction, without touching linbat.ingest_inbound. A keyword that
--   opens a conversation of its own (BERHENTI, MULAI, KANAL, BANTUAN) is
--   answered and the conversation closed, so no operator is disturbed; in a
--   conversation already under way the operator sees it as usual. SUDAH and
--   NIB always reach an operator: they must be confirmed. SUDAH is a keyword
--   only from an identified investor who files LKPM (NIB and a scale that
--   reports); from anyone else it is an ordinary message for the operator.

-- Helpers -----------------------------------------------------------------------

-- A date written the Indonesian way, '15 April 2026' ('en': English months).
-- This and the helpers below are single expressions, not strict, so that
-- the planner inlines them: called per reminder, a function call each would
-- cost more than the rest of planning.
create function linbat.date_text(p_date date, p_language text)
returns text
language sql immutable parallel safe
as $$
	select extract(day from p_date)::integer || ' ' || (case p_language when 'en' then
		array['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August',
			'September', 'October', 'November', 'December']
		else array['Januari', 'Februari', 'Maret', 'April', 'Mei', 'Juni', 'Juli', 'Agustus',
			'September', 'Oktober', 'November', 'Desember'] end)[extract(month from p_date)::integer]
		|| ' ' || extract(year from p_date)::integer
$$;

-- Fill the placeholders {{company_name}} {{nib}} {{period}} {{deadline}}
-- {{days_left}} of a reminder text; the one renderer of linbat.
create function linbat.reminder_render(p_text text, p_company text, p_nib text, p_period text,
	p_deadline date, p_days_left integer, p_language text)
returns text
language sql immutable parallel safe
as $$
	select replace(replace(replace(replace(replace(p_text,
		'{{company_name}}', coalesce(p_company, '')),
		'{{nib}}', coalesce(p_nib, '')),
		'{{period}}', coalesce(p_period, '')),
		'{{deadline}}', coalesce(linbat.date_text(p_deadline, p_language), '')),
		'{{days_left}}', coalesce(p_days_left::text, ''))
$$;

-- The same for a JSON text whose strings hold placeholders (the WhatsApp
-- template's parameters): values are JSON-escaped, so one replace chain per
-- reminder renders every parameter at once.
create function linbat.reminder_render_json(p_json text, p_company text, p_nib text, p_period text,
	p_deadline date, p_days_left integer, p_language text)
returns jsonb
language sql immutable parallel safe
as $$
	select replace(replace(replace(replace(replace(p_json,
		'{{company_name}}', btrim(to_json(coalesce(p_company, ''))::text, '"')),
		'{{nib}}', btrim(to_json(coalesce(p_nib, ''))::text, '"')),
		'{{period}}', btrim(to_json(coalesce(p_period, ''))::text, '"')),
		'{{deadline}}', coalesce(linbat.date_text(p_deadline, p_language), '')),
		'{{days_left}}', coalesce(p_days_left::text, ''))::jsonb
$$;

-- When a message planned at p_now may leave: now inside the WITA window
-- [p_start, p_end), else the window's next opening.
create function linbat.window_next(p_now timestamptz, p_start time, p_end time)
returns timestamptz
language sql immutable parallel safe
as $$
	select case
		when (p_now at time zone 'Asia/Makassar')::time < p_start
			then ((p_now at time zone 'Asia/Makassar')::date + p_start) at time zone 'Asia/Makassar'
		when (p_now at time zone 'Asia/Makassar')::time < p_end then p_now
		else ((p_now at time zone 'Asia/Makassar')::date + 1 + p_start) at time zone 'Asia/Makassar'
	end
$$;

-- True if a filing status means the period needs no more reminders.
create function linbat.lkpm_filed(p_status text)
returns boolean
language sql immutable parallel safe
as $$
	select p_status is not null and p_status <> 'draf'
$$;

-- Tables ------------------------------------------------------------------------

create table linbat.campaign (
	id bigint generated by default as identity primary key,
	name text not null unique check (btrim(name) <> ''),
	status text not null default 'draft' check (status in ('draft', 'active', 'paused', 'archived')),
	-- audience: an empty array means everyone
	scales text[] not null default '{}'
		check (linbat.text_array_ok(scales, '^(kecil|menengah|besar)$')),
	kbli_prefixes text[] not null default '{}' check (linbat.text_array_ok(kbli_prefixes, '^[0-9]{1,5}$')),
	districts text[] not null default '{}',
	-- days relative to the deadline: -14 is two weeks before, +3 three days after
	offsets integer[] not null check (cardinality(offsets) between 1 and 31
		and linbat.text_array_ok(offsets::text[], '^-?[0-9]{1,3}$')),
	window_start time not null default '09:00',
	window_end time not null default '16:00',
	-- {"whatsapp"|"sms"|"email"|"default": {"id": TEXT, "en": TEXT}}
	texts jsonb not null check (jsonb_typeof(texts) = 'object'),
	wa_template_name text check (wa_template_name ~ '^[a-z0-9_]{1,255}$'),
	-- the template's body parameters, each a text with placeholders
	wa_template_params text[] not null default '{}',
	created_by bigint references linbat.operator (id) on delete set null,
	created_at timestamptz not null default now(),
	updated_at timestamptz not null default now(),
	constraint campaign_window check (window_start < window_end),
	constraint campaign_texts check (texts ?| array['whatsapp', 'sms', 'email', 'default'])
);

create trigger campaign_touch before update on linbat.campaign
	for each row execute function linbat.touch_updated_at();

create table linbat.reminder (
	id bigint generated by default as identity primary key,
	campaign_id bigint not null references linbat.campaign (id),
	investor_id bigint not null references linbat.investor (id),
	period text not null check (linbat.lkpm_period_ok(period)),
	offset_days integer not null,
	deadline date not null,
	channel text not null check (channel in ('whatsapp', 'sms', 'email')),
	message_id bigint not null references linbat.message (id),
	created_at timestamptz not null default now(),
	unique (campaign_id, investor_id, period, offset_days)
);

create index reminder_campaign_period on linbat.reminder (campaign_id, period);
create index reminder_investor on linbat.reminder (investor_id, period);
create index reminder_message on linbat.reminder (message_id);
-- the planner finds an investor's latest conversation
create index conversation_investor on linbat.conversation (investor_id, id);
create index investor_scale on linbat.investor (scale) where nib is not null and not exempt;

-- A sender's claim to be the investor of a NIB (keyword NIB), until an
-- operator confirms or rejects it.
create table linbat.nib_claim (
	id bigint generated by default as identity primary key,
	identity_id bigint not null references linbat.identity (id),
	nib text not null check (nib ~ '^[0-9]{13}$'),
	message_id bigint references linbat.message (id),
	status text not null default 'pending' check (status in ('pending', 'confirmed', 'rejected')),
	decided_by bigint references linbat.operator (id) on delete set null,
	decided_at timestamptz,
	created_at timestamptz not null default now()
);

create unique index nib_claim_pending on linbat.nib_claim (identity_id, nib) where status = 'pending';

-- Planning ----------------------------------------------------------------------

-- The text of a campaign for a channel and language: the channel's, else the
-- default's; the investor's language, else Indonesian.
create function linbat.campaign_text(p_texts jsonb, p_channel text, p_language text)
returns text
language sql immutable parallel safe
as $$
	select coalesce(p_texts -> p_channel ->> p_language, p_texts -> p_channel ->> 'id',
		p_texts -> 'default' ->> p_language, p_texts -> 'default' ->> 'id')
$$;

-- Every reminder due at p_now (its day in WITA) of the active campaigns (or
-- of campaign p_campaign in any status, for a preview): who, which period and
-- offset, on which channel, instance and identity, what text or template,
-- and when it may leave. Filed, exempt, mikro and opted-out investors and
-- kinds without a channel instance are left out; planned is true if the
-- reminder row exists already. The deadline of each (scale, offset) is
-- computed once, not per investor: that keeps planning a single fast join.
create function linbat.reminder_candidates(p_now timestamptz, p_campaign bigint)
returns table (campaign_id bigint, investor_id bigint, period text, offset_days integer,
	deadline date, channel text, identity_id bigint, instance text, body text,
	template jsonb, send_at timestamptz, subject text, language text, planned boolean)
language sql stable
as $$
	with today as (
		select (p_now at time zone 'Asia/Makassar')::date as d
	), camp as (
		select c.* from linbat.campaign c
		where (p_campaign is null and c.status = 'active') or c.id = p_campaign
	), due as (
		-- (campaign, scale, offset) whose deadline is today - offset
		select camp.id as campaign_id, s.scale, o.off, nd.period, nd.deadline
		from camp, today,
			unnest(case when cardinality(camp.scales) = 0 then array['kecil', 'menengah', 'besar']
				else camp.scales end) as s (scale),
			unnest(camp.offsets) as o (off),
			lateral linbat.lkpm_next_deadline(s.scale, today.d - o.off) nd
		where nd.deadline = today.d - o.off
	), inv as (
		select due.*, i.id as investor_id, i.company_name, i.nib, i.language,
			coalesce(i.preferred_channel, i.fallback_order[1]) as preferred, i.fallback_order
		from due
		join camp on camp.id = due.campaign_id
		join linbat.investor i on i.scale = due.scale and i.nib is not null and not i.exempt
		where (cardinality(camp.kbli_prefixes) = 0 or exists (select 1
				from unnest(i.kbli) k, unnest(camp.kbli_prefixes) p where starts_with(k, p)))
			and (cardinality(camp.districts) = 0 or i.district = any (camp.districts))
			and not exists (select 1 from linbat.lkpm_filing f
				where f.investor_id = i.id and f.period = due.period and linbat.lkpm_filed(f.status))
	)
	select inv.campaign_id, inv.investor_id, inv.period, inv.off, inv.deadline, w.kind, w.identity_id,
		w.instance,
		linbat.reminder_render(linbat.campaign_text(camp.texts, w.kind, inv.language),
			inv.company_name, inv.nib, inv.period, inv.deadline, inv.deadline - today.d, inv.language),
		case when w.kind = 'whatsapp' and camp.wa_template_name is not null then
			jsonb_build_object('name', camp.wa_template_name, 'language', inv.language,
				'params', linbat.reminder_render_json(to_jsonb(camp.wa_template_params)::text,
					inv.company_name, inv.nib, inv.period, inv.deadline, inv.deadline - today.d, inv.language))
		end,
		linbat.window_next(p_now, camp.window_start, camp.window_end),
		case inv.language when 'en' then 'LKPM report ' || inv.period || ' due '
			else 'Laporan LKPM ' || inv.period || ' jatuh tempo ' end
			|| linbat.date_text(inv.deadline, inv.language),
		inv.language,
		exists (select 1 from linbat.reminder r where r.campaign_id = inv.campaign_id
			and r.investor_id = inv.investor_id and r.period = inv.period and r.offset_days = inv.off)
	from inv
	join camp on camp.id = inv.campaign_id
	cross join today
	cross join lateral (
		-- the preferred kind if usable, then the fallback order
		select id.kind, id.id as identity_id, ci.name as instance
		from linbat.identity id
		join lateral (select min(ci.name) as name from linbat.channel_instance ci
			where ci.kind = id.kind) ci on ci.name is not null
		where id.investor_id = inv.investor_id and id.opted_out_at is null
		order by id.kind is distinct from inv.preferred,
			coalesce(array_position(inv.fallback_order, id.kind), 99), id.id
		limit 1
	) w
$$;

-- Plan every reminder due at p_now, in one statement: a reminder row, its
-- queued message (held until the send window opens) and, for an investor
-- who never wrote, a closed conversation to carry it. Returns how many were
-- planned; 0 at once if another process is planning (it plans the same).
--
-- jit is off: the row estimates of the unnests make the plan look costly
-- enough for JIT, whose compilation took seconds, far longer than the work.
create function linbat.plan_reminders(p_now timestamptz default now())
returns integer
language plpgsql
set jit = off
as $$
declare
	v_mseq regclass := pg_get_serial_sequence('linbat.message', 'id')::regclass;
	v_cseq regclass := pg_get_serial_sequence('linbat.conversation', 'id')::regclass;
	v_n integer;
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
				'subject', ids.subject, 'auto_submitted', true),
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
	select count(*) into v_n from rem;
	return v_n;
end
$$;

-- Campaigns ---------------------------------------------------------------------

-- A campaign as JSON (the API's and linbatctl's shape).
create function linbat.campaign_json(c linbat.campaign)
returns jsonb
language sql stable
as $$
	select jsonb_build_object('id', c.id, 'name', c.name, 'status', c.status,
		'audience', jsonb_build_object('scales', c.scales, 'kbli_prefixes', c.kbli_prefixes,
			'districts', c.districts),
		'offsets', c.offsets, 'window', jsonb_build_object('start', to_char(c.window_start, 'HH24:MI'),
			'end', to_char(c.window_end, 'HH24:MI'), 'timezone', 'WITA'),
		'texts', c.texts, 'whatsapp_template', jsonb_build_object('name', c.wa_template_name,
			'params', c.wa_template_params), 'created_at', c.created_at)
$$;

-- A JSON array of text as text[] (an absent key: the empty array).
create function linbat.jsonb_texts(p jsonb)
returns text[]
language sql immutable
as $$
	select coalesce(array(select jsonb_array_elements_text(coalesce(p, '[]'))), '{}')
$$;

-- Create a draft campaign from its JSON (see linbat.campaign_json); returns it.
create function linbat.campaign_create(p jsonb, p_operator bigint)
returns jsonb
language plpgsql
as $$
declare
	v linbat.campaign;
begin
	if jsonb_typeof(p) is distinct from 'object' then
		raise exception using errcode = '22023', message = 'a campaign is a JSON object';
	end if;
	insert into linbat.campaign (name, scales, kbli_prefixes, districts, offsets, window_start,
		window_end, texts, wa_template_name, wa_template_params, created_by)
	values (p ->> 'name', linbat.jsonb_texts(p -> 'audience' -> 'scales'),
		linbat.jsonb_texts(p -> 'audience' -> 'kbli_prefixes'),
		linbat.jsonb_texts(p -> 'audience' -> 'districts'),
		linbat.jsonb_texts(p -> 'offsets')::integer[],
		coalesce((p -> 'window' ->> 'start')::time, '09:00'),
		coalesce((p -> 'window' ->> 'end')::time, '16:00'),
		coalesce(p -> 'texts', '{}'), p -> 'whatsapp_template' ->> 'name',
		linbat.jsonb_texts(p -> 'whatsapp_template' -> 'params'), p_operator)
	returning * into v;
	insert into linbat.audit_log (operator_id, actor, action, object_type, object_id)
	values (p_operator, case when p_operator is null then 'linbatctl' else 'operator' end,
		'campaign.create', 'campaign', v.id::text);
	return linbat.campaign_json(v);
end
$$;

-- Move a campaign to a status: activate (draft or paused), pause (active),
-- resume (paused), archive (any); 22023 for a move that makes no sense.
create function linbat.campaign_set_status(p_id bigint, p_action text, p_operator bigint)
returns jsonb
language plpgsql
as $$
declare
	v linbat.campaign;
	v_to text;
begin
	select * into v from linbat.campaign c where c.id = p_id for update;
	if not found then
		raise exception using errcode = 'P0002', message = format('campaign %s does not exist', p_id);
	end if;
	select t.to_status into v_to from (values ('activate', 'draft', 'active'),
		('activate', 'paused', 'active'), ('pause', 'active', 'paused'), ('resume', 'paused', 'active'),
		('archive', 'draft', 'archived'), ('archive', 'active', 'archived'),
		('archive', 'paused', 'archived')) t (action, from_status, to_status)
	where t.action = p_action and t.from_status = v.status;
	if not found then
		raise exception using errcode = '22023',
			message = format('cannot %s campaign %s: it is %s', p_action, p_id, v.status);
	end if;
	update linbat.campaign set status = v_to where id = p_id returning * into v;
	insert into linbat.audit_log (operator_id, actor, action, object_type, object_id, detail)
	values (p_operator, case when p_operator is null then 'linbatctl' else 'operator' end,
		'campaign.' || p_action, 'campaign', p_id::text, jsonb_build_object('status', v_to));
	return linbat.campaign_json(v);
end
$$;

-- Who would get what, on which channel and when, for campaign p_id over
-- p_days days from p_from (each day as the planner sees it at 00:00 WITA).
create function linbat.campaign_preview(p_id bigint, p_from date, p_days integer)
returns table (day date, investor_id bigint, nib text, company_name text, period text,
	offset_days integer, deadline date, channel text, address text, send_at timestamptz,
	body text, template jsonb, planned boolean)
language sql stable
set jit = off
as $$
	select d::date, c.investor_id, i.nib, i.company_name, c.period, c.offset_days, c.deadline,
		c.channel, id.address, c.send_at, c.body, c.template, c.planned
	from generate_series(p_from, p_from + greatest(p_days, 1) - 1, interval '1 day') d,
		lateral linbat.reminder_candidates((d::date + time '00:00') at time zone 'Asia/Makassar', p_id) c
	join linbat.investor i on i.id = c.investor_id
	join linbat.identity id on id.id = c.identity_id
	order by 1, c.send_at, i.nib, c.offset_days
$$;

-- The funnel of a campaign per period and channel, as JSON.
create function linbat.campaign_stats(p_id bigint)
returns jsonb
language sql stable
as $$
	select case when exists (select 1 from linbat.campaign where id = p_id) then
		jsonb_build_object('campaign', p_id, 'stats', coalesce(jsonb_agg(s order by s.period, s.channel),
			'[]')) end
	from (
		select r.period, r.channel, count(*) as planned,
			count(*) filter (where m.sent_at is not null
				or m.status in ('sent', 'delivered', 'read')) as sent,
			count(*) filter (where m.delivered_at is not null
				or m.status in ('delivered', 'read')) as delivered,
			count(*) filter (where m.read_at is not null or m.status = 'read') as read,
			count(*) filter (where m.status = 'failed') as failed,
			count(*) filter (where exists (select 1 from linbat.message im
				join linbat.identity ii on ii.id = im.identity_id
				where ii.investor_id = r.investor_id and im.direction = 'in'
					and im.created_at > r.created_at)) as replied,
			count(*) filter (where exists (select 1 from linbat.lkpm_filing f
				where f.investor_id = r.investor_id and f.period = r.period
					and linbat.lkpm_filed(f.status)
					and coalesce(f.filed_at, f.created_at) > r.created_at)) as filed_after_reminder
		from linbat.reminder r join linbat.message m on m.id = r.message_id
		where r.campaign_id = p_id
		group by r.period, r.channel
	) s
$$;

-- Filings -----------------------------------------------------------------------

-- Record an operator's (or an import's) word on a period: filed with a
-- status, confirming any claim; returns the filing as JSON.
create function linbat.filing_mark(p_investor bigint, p_period text, p_status text,
	p_filed_at timestamptz, p_operator bigint)
returns jsonb
language plpgsql
as $$
declare
	v linbat.lkpm_filing;
begin
	if not exists (select 1 from linbat.investor where id = p_investor) then
		raise exception using errcode = 'P0002',
			message = format('investor %s does not exist', p_investor);
	end if;
	if p_status = 'claimed' then
		raise exception using errcode = '22023',
			message = 'an operator records an OSS status, not a claim',
			hint = 'The status is draf, terkirim, perlu_perbaikan, sudah_diperbaiki or disetujui.';
	end if;
	insert into linbat.lkpm_filing (investor_id, period, status, source, filed_at, confirmed_by)
	values (p_investor, p_period, coalesce(p_status, 'terkirim'), 'operator',
		coalesce(p_filed_at, now()), p_operator)
	on conflict (investor_id, period) do update set status = excluded.status,
		source = excluded.source, filed_at = coalesce(linbat.lkpm_filing.filed_at, excluded.filed_at),
		confirmed_by = excluded.confirmed_by
	returning * into v;
	insert into linbat.audit_log (operator_id, actor, action, object_type, object_id, detail)
	values (p_operator, 'operator', 'filing.mark', 'investor', p_investor::text,
		jsonb_build_object('period', p_period, 'status', v.status));
	return jsonb_build_object('investor', v.investor_id, 'period', v.period, 'status', v.status,
		'source', v.source, 'filed_at', v.filed_at, 'confirmed_by', v.confirmed_by);
end
$$;

-- Confirm (or reject) a NIB claim: the sender's identity moves to the
-- investor of that NIB. Returns the claim as JSON.
create function linbat.nib_claim_decide(p_id bigint, p_confirm boolean, p_operator bigint)
returns jsonb
language plpgsql
as $$
declare
	v linbat.nib_claim;
	v_investor bigint;
begin
	select * into v from linbat.nib_claim where id = p_id and status = 'pending' for update;
	if not found then
		raise exception using errcode = 'P0002', message = format('no pending NIB claim %s', p_id);
	end if;
	select id into v_investor from linbat.investor where nib = v.nib;
	if p_confirm and v_investor is null then
		raise exception using errcode = '22023',
			message = format('no investor has NIB %s; import it first', v.nib);
	end if;
	if p_confirm then
		update linbat.identity set investor_id = v_investor, verified_at = now()
		where id = v.identity_id;
	end if;
	update linbat.nib_claim set status = case when p_confirm then 'confirmed' else 'rejected' end,
		decided_by = p_operator, decided_at = now()
	where id = p_id returning * into v;
	return jsonb_build_object('id', v.id, 'nib', v.nib, 'status', v.status, 'investor', v_investor);
end
$$;

-- Imports -----------------------------------------------------------------------
-- linbatctl parses and validates a CSV file, COPYs the rows into a temporary
-- table of its session (pg_temp.investor_import or pg_temp.filing_import,
-- made by the *_import_table functions), asks the *_import_check function for
-- the errors only the database can see, and applies the good rows with one
-- INSERT ... SELECT per table, all in one transaction.

-- Make the session's temporary table of an investor import.
create function linbat.investor_import_table()
returns void
language sql
as $$
	create temporary table if not exists investor_import (line integer primary key, nib text not null,
		company_name text, scale text, kbli text[] not null, kbli_version text, district text,
		phone text, whatsapp text, email text, preferred_channel text, language text)
		on commit drop
$$;

-- The rows of an investor import that the database refuses: an address that
-- belongs to another identified investor. (line, column, reason) per error.
create function linbat.investor_import_check()
returns table (line integer, col text, reason text)
language plpgsql stable
as $$
begin
	return query
	select x.line, x.col, format('%s belongs to the investor with NIB %s', x.address, inv.nib)
		from (
			select r.line, r.nib, c.col, c.kind, c.address
			from pg_temp.investor_import r, lateral (values ('phone', 'sms', r.phone),
				('whatsapp', 'whatsapp', r.whatsapp), ('email', 'email', r.email)) c (col, kind, address)
			where c.address is not null
		) x
		join linbat.identity i on i.kind = x.kind and i.address = x.address
		join linbat.investor inv on inv.id = i.investor_id
		where inv.nib is not null and inv.nib <> x.nib
		order by 1, 2;
end
$$;

-- Apply the investor import, leaving out p_skip lines: upsert investors by
-- NIB, then their identities (an unidentified sender's identity is taken
-- over). Returns the number of investor rows applied.
create function linbat.investor_import_apply(p_skip integer[])
returns integer
language plpgsql
as $$
declare
	v_n integer;
begin
	delete from pg_temp.investor_import where line = any (p_skip);
	insert into linbat.investor (nib, company_name, scale, kbli, kbli_version, district,
		preferred_channel, language)
	select r.nib, r.company_name, r.scale, r.kbli,
		case when cardinality(r.kbli) > 0 then coalesce(r.kbli_version, '2020') end,
		r.district, r.preferred_channel, coalesce(r.language, 'id')
	from pg_temp.investor_import r
	on conflict (nib) do update set company_name = excluded.company_name, scale = excluded.scale,
		kbli = excluded.kbli, kbli_version = excluded.kbli_version, district = excluded.district,
		preferred_channel = excluded.preferred_channel, language = excluded.language;
	get diagnostics v_n = row_count;
	insert into linbat.identity (investor_id, kind, address)
	select inv.id, c.kind, c.address
	from pg_temp.investor_import r
	join linbat.investor inv on inv.nib = r.nib,
	lateral (values ('sms', r.phone), ('whatsapp', r.whatsapp), ('email', r.email)) c (kind, address)
	where c.address is not null
	on conflict (kind, address) do update set investor_id = excluded.investor_id
	where linbat.identity.investor_id <> excluded.investor_id;
	insert into linbat.audit_log (actor, action, object_type, detail)
	values ('linbatctl', 'investor.import', 'investor', jsonb_build_object('rows', v_n));
	return v_n;
end
$$;

-- Make the session's temporary table of a filing import.
create function linbat.filing_import_table()
returns void
language sql
as $$
	create temporary table if not exists filing_import (line integer primary key, nib text not null,
		period text not null, status text not null, filed_at date) on commit drop
$$;

-- The rows of a filing import whose NIB no investor has.
create function linbat.filing_import_check()
returns table (line integer, col text, reason text)
language plpgsql stable
as $$
begin
	return query
	select r.line, 'nib', format('no investor has NIB %s', r.nib)
		from pg_temp.filing_import r
		where not exists (select 1 from linbat.investor i where i.nib = r.nib)
		order by 1;
end
$$;

-- Apply the filing import (OSS's word wins over a claim), leaving out p_skip lines.
create function linbat.filing_import_apply(p_skip integer[])
returns integer
language plpgsql
as $$
declare
	v_n integer;
begin
	insert into linbat.lkpm_filing (investor_id, period, status, source, filed_at)
	select i.id, r.period, r.status, 'oss_import',
		(r.filed_at + time '12:00') at time zone 'Asia/Makassar'
	from pg_temp.filing_import r join linbat.investor i on i.nib = r.nib
	where r.line <> all (p_skip)
	on conflict (investor_id, period) do update set status = excluded.status,
		source = excluded.source, filed_at = coalesce(excluded.filed_at, linbat.lkpm_filing.filed_at);
	get diagnostics v_n = row_count;
	return v_n;
end
$$;

-- Keywords ----------------------------------------------------------------------

-- The keywords, Indonesian and English, and what each does.
create table linbat.keyword (
	word text primary key check (word = upper(word)),
	action text not null check (action in ('stop', 'start', 'channel', 'filed', 'nib', 'help')),
	-- routed: the message also goes to an operator (the action needs a person)
	routed boolean not null default false
);

insert into linbat.keyword (word, action, routed) values
	('BERHENTI', 'stop', false), ('STOP', 'stop', false),
	('MULAI', 'start', false), ('START', 'start', false),
	('KANAL', 'channel', false), ('CHANNEL', 'channel', false),
	('SUDAH', 'filed', true), ('DONE', 'filed', true),
	('NIB', 'nib', true),
	('BANTUAN', 'help', false), ('HELP', 'help', false);

-- The answers, Indonesian first then English (STYLE.md); %s is filled by the action.
create table linbat.keyword_reply (
	outcome text primary key,
	body text not null check (body <> '')
);

insert into linbat.keyword_reply (outcome, body) values
	('stop', 'Baik, Anda tidak akan menerima pengingat LKPM lagi. Kirim MULAI untuk mengaktifkannya kembali.'
		|| E'\n' || 'You will no longer receive LKPM reminders. Send START to turn them back on.'),
	('start', 'Pengingat LKPM aktif kembali. Terima kasih.'
		|| E'\n' || 'LKPM reminders are on again. Thank you.'),
	('channel', 'Pengingat LKPM selanjutnya akan dikirim melalui %s.'
		|| E'\n' || 'Further LKPM reminders will be sent by %s.'),
	('channel_missing', 'Pengingat akan dikirim melalui %s setelah kami mencatat alamat %s Anda; sementara itu kami memakai saluran lain.'
		|| E'\n' || 'Reminders will go by %s once we have your %s address; until then we use another channel.'),
	('channel_usage', 'Tulis KANAL WA, KANAL SMS atau KANAL EMAIL.'
		|| E'\n' || 'Write KANAL WA, KANAL SMS or KANAL EMAIL.'),
	('filed', 'Terima kasih, laporan LKPM periode %s kami catat sudah dikirim. Petugas kami akan memeriksanya di OSS.'
		|| E'\n' || 'Thank you, we have noted your LKPM report for %s as filed. An officer will check it in OSS.'),
	('nib', 'Terima kasih, NIB %s kami terima. Petugas kami akan mengonfirmasinya.'
		|| E'\n' || 'Thank you, we have received NIB %s. An officer will confirm it.'),
	('nib_usage', 'NIB terdiri dari 13 angka, contoh: NIB 1234567890123.'
		|| E'\n' || 'A NIB has 13 digits, e.g. NIB 1234567890123.'),
	('help', 'Kata kunci: BERHENTI (hentikan pengingat), MULAI (aktifkan lagi), KANAL WA/SMS/EMAIL (pilih saluran), SUDAH (LKPM sudah dikirim), NIB 1234567890123 (hubungkan NIB Anda). Pertanyaan lain: tulis saja di sini, petugas kami siap membantu 24 jam.'
		|| E'\n' || 'Keywords: STOP (stop reminders), START (turn them on), CHANNEL WA/SMS/EMAIL (choose a channel), DONE (LKPM filed), NIB 1234567890123 (link your NIB). Anything else: just write here, our officers help 24 hours a day.');

-- Apply a keyword's action for the investor of p_identity; returns the answer.
create function linbat.keyword_apply(p_action text, p_arg text, p_identity bigint, p_message bigint)
returns text
language plpgsql
as $$
declare
	v_inv linbat.investor;
	v_kind text;
	v_label text;
	v_period text;
	v_today date := (now() at time zone 'Asia/Makassar')::date;
begin
	select inv.* into v_inv from linbat.investor inv
	join linbat.identity i on i.investor_id = inv.id where i.id = p_identity;
	if p_action = 'stop' or p_action = 'start' then
		update linbat.identity set opted_out_at = case when p_action = 'stop' then now() end
		where investor_id = v_inv.id;
		return (select body from linbat.keyword_reply where outcome = p_action);
	elsif p_action = 'channel' then
		select k.kind, k.label into v_kind, v_label from (values ('WA', 'whatsapp', 'WhatsApp'),
			('WHATSAPP', 'whatsapp', 'WhatsApp'), ('SMS', 'sms', 'SMS'), ('EMAIL', 'email', 'email'),
			('E-MAIL', 'email', 'email')) k (word, kind, label)
		where k.word = upper(coalesce(p_arg, ''));
		if not found then
			return (select body from linbat.keyword_reply where outcome = 'channel_usage');
		end if;
		update linbat.investor set preferred_channel = v_kind where id = v_inv.id;
		if not exists (select 1 from linbat.identity where investor_id = v_inv.id and kind = v_kind) then
			return (select format(body, v_label, v_label, v_label, v_label)
				from linbat.keyword_reply where outcome = 'channel_missing');
		end if;
		return (select format(body, v_label, v_label) from linbat.keyword_reply where outcome = 'channel');
	elsif p_action = 'filed' then
		-- the period that ended last: the one being filed now
		v_period := linbat.lkpm_current_period(v_inv.scale,
			linbat.lkpm_period_start(linbat.lkpm_current_period(v_inv.scale, v_today)) - 1);
		insert into linbat.lkpm_filing (investor_id, period, status, source, filed_at)
		values (v_inv.id, v_period, 'claimed', 'keyword', now())
		on conflict (investor_id, period) do nothing;
		return (select format(body, v_period, v_period) from linbat.keyword_reply where outcome = 'filed');
	elsif p_action = 'nib' then
		if coalesce(p_arg, '') !~ '^[0-9]{13}$' then
			return (select body from linbat.keyword_reply where outcome = 'nib_usage');
		end if;
		insert into linbat.nib_claim (identity_id, nib, message_id) values (p_identity, p_arg, p_message)
		on conflict (identity_id, nib) where status = 'pending' do nothing;
		return (select format(body, p_arg, p_arg) from linbat.keyword_reply where outcome = 'nib');
	end if;
	return (select body from linbat.keyword_reply where outcome = 'help');
end
$$;

-- On an inbound text that is a keyword (the whole message: the word and at
-- most one argument, any case), apply it and queue the answer on the same
-- way back; close a conversation that the keyword alone opened unless the
-- keyword needs an operator.
create function linbat.keyword_inbound()
returns trigger
language plpgsql
as $$
declare
	v_m text[] := regexp_match(coalesce(new.body, ''), '^\s*([A-Za-z]+)(?:\s+(\S+))?\s*$');
	v_k linbat.keyword;
	v_answer text;
begin
	select * into v_k from linbat.keyword where word = upper(v_m[1]);
	if not found then
		return null;
	end if;
	-- "Sudah" from someone linbat cannot tie to an LKPM filer is just a word
	-- in a conversation: the operator answers it
	if v_k.action = 'filed' and not exists (select 1 from linbat.identity i
			join linbat.investor v on v.id = i.investor_id
			where i.id = new.identity_id and v.nib is not null and v.scale in ('kecil', 'menengah', 'besar')) then
		return null;
	end if;
	v_answer := linbat.keyword_apply(v_k.action, v_m[2], new.identity_id, new.id);
	insert into linbat.message (conversation_id, direction, identity_id, channel_instance, body,
		meta, status, next_attempt_at)
	values (new.conversation_id, 'out', new.identity_id, new.channel_instance, v_answer,
		jsonb_build_object('keyword', v_k.action), 'queued', now());
	if not v_k.routed and not exists (select 1 from linbat.message m
			where m.conversation_id = new.conversation_id and m.direction = 'in' and m.id <> new.id) then
		update linbat.conversation set status = 'resolved', resolved_at = now(), queued_since = null
		where id = new.conversation_id and status <> 'resolved' and assigned_operator is null;
	end if;
	return null;
end
$$;

create trigger message_keyword after insert on linbat.message
	for each row when (new.direction = 'in' and new.content_type in ('text', 'button'))
	execute function linbat.keyword_inbound();
