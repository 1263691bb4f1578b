-- 0022_reminder_plan_rows: planning writes reminder rows only; the
-- reminder's conversation and message are made when it falls due.
--
-- Why: bench/campaign spent 55-83 s planning 100,000 investors (a bare
-- INSERT ... SELECT of as many rows: 0.13-0.57 s). With the machine's load
-- taken out (backend CPU time, not wall time), 0012's plan_reminders cost
-- about 150 us of CPU per investor: a conversation (10 indexes), a message
-- (7 indexes, and the per-row checks of its foreign keys to conversation,
-- identity and channel instance), a reminder (4 indexes, 3 foreign keys):
-- three rows, some twenty index entries and seven foreign-key checks, each
-- of those a query of its own that PostgreSQL runs row by row at the end of
-- the statement. No plan of those three rows fits 10 us an investor. The
-- foreign-key checks were not slow in themselves (3-8 us each with the load
-- taken out): they were many, and a loaded machine multiplied each.
--
-- So a plan is now what the design said it is, the promise "this investor
-- gets this text on this channel at this time": one reminder row carrying
-- the chosen identity and instance, the rendered text, the WhatsApp template
-- and the time it may leave (the send window's next opening). The message
-- that carries it, and the closed conversation it hangs on, are made by
-- linbat.reminder_send_due when that time has come, a batch per scheduler
-- round, ahead of the dispatcher, who sends them at the channel's rate
-- anyway. Unchanged: one reminder per (campaign, investor, period, offset),
-- the advisory lock, the window, who is skipped, the channel choice, the
-- texts. A reminder whose identity is gone (merged away) before it is due is
-- not sent; it stays planned, with no message.

alter table linbat.reminder
	alter column message_id drop not null,
	add column identity_id bigint,
	add column instance text,
	add column send_at timestamptz,
	add column body text,
	add column template jsonb,
	add column subject text,
	-- a reminder not yet sent carries what its message will
	add constraint reminder_unsent check (message_id is not null
		or (identity_id is not null and instance is not null and send_at is not null and body is not null));

-- Every index is a write per planned reminder; planning keeps to those it
-- needs. Only sent reminders have a message to find. The reminders waiting
-- for their time are found by a BRIN index: it costs planning next to
-- nothing, and waiting reminders sit in the table's newest pages, which a
-- BRIN scan reads until VACUUM summarises them. reminder_investor (investor,
-- period) served the foreign key from investor, whose check now goes through
-- the unique key, campaign by campaign (see reminder_referenced_check).
drop index linbat.reminder_message;
create index reminder_message on linbat.reminder (message_id) where message_id is not null;
drop index linbat.reminder_investor;
create index reminder_due on linbat.reminder using brin (send_at) where message_id is null;

-- Plan every reminder due at p_now: one reminder row per candidate not yet
-- planned. Returns how many; 0 at once if another process is planning.
-- Settings as in 0012 (the estimates of the unnests and CTEs are far too
-- low: nested loops made the channel choice quadratic, JIT compiled for
-- seconds).
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
	-- Under the lock no other planner runs, and candidates already planned
	-- are left out, so no ON CONFLICT; the unique key still refuses a
	-- duplicate outright.
	insert into linbat.reminder (campaign_id, investor_id, period, offset_days, deadline, channel,
		created_at, identity_id, instance, send_at, body, template, subject)
	select c.campaign_id, c.investor_id, c.period, c.offset_days, c.deadline, c.channel,
		p_now, c.identity_id, c.instance, c.send_at, c.body, c.template, c.subject
	from linbat.reminder_candidates(p_now, null) c
	where not c.planned;
	get diagnostics v_n = row_count;
	return v_n;
end
$$;

-- Make the message of each reminder whose time has come (at most p_limit, the
-- oldest first): for an investor who never wrote, a closed conversation to
-- carry it, as 0012 did at planning. The message is queued with the time the
-- reminder was to leave. One event per channel instance (linbat.event_emit,
-- 0020) wakes the dispatcher. Returns how many; 0 at once if another process
-- is at it.
create function linbat.reminder_send_due(p_now timestamptz default now(), p_limit integer default 20000)
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
	-- a reminder whose identity is gone cannot be sent: it leaves the queue
	update linbat.reminder r set send_at = null
	where r.message_id is null and r.send_at <= p_now
		and not exists (select 1 from linbat.identity i where i.id = r.identity_id);
	with due as materialized (
		select r.* from linbat.reminder r
		where r.message_id is null and r.send_at <= p_now
		order by r.send_at, r.id
		limit p_limit
	), ids as materialized (
		select due.*, nextval(v_mseq) as new_message_id, coalesce(cv.id, nextval(v_cseq)) as conversation_id,
			cv.id is null as new_conversation
		from due
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
		from ids where r.id = ids.id
		returning 1
	)
	select (select count(*) from upd), array(select distinct ids.instance from ids)
	into v_n, v_instances;
	perform linbat.event_emit('linbat_outbox', x) from unnest(v_instances) x;
	return v_n;
end
$$;

-- Stats: a reminder not sent yet is planned, nothing more.
create or replace function linbat.campaign_stats(p_id bigint)
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
		from linbat.reminder r left join linbat.message m on m.id = r.message_id
		where r.campaign_id = p_id
		group by r.period, r.channel
	) s
$$;

-- The references of a reminder to its campaign and investor, checked once
-- per statement rather than once per row. As foreign keys, PostgreSQL
-- checked them with a query per inserted row at the end of the statement:
-- 1.8 s of CPU of the 4.3 s that planning 100,000 reminders took after the
-- change above. The guarantee is the same: a reminder's campaign and
-- investor exist when it is written, and neither can be deleted, nor its id
-- changed, while a reminder refers to it. A foreign key locks each referenced
-- row FOR KEY SHARE so that a delete waits for the writer; locking 100,000
-- investors so (a WAL record each) cost more than the checks. Here writers
-- and deleters take the planner's advisory lock instead (the planner holds
-- it already): a delete checks for reminders after the writer has committed,
-- and a writer checks for its investors after the deleter has committed.
-- Both checks run after the rows are written, as a NO ACTION key's do.
alter table linbat.reminder
	drop constraint reminder_campaign_id_fkey,
	drop constraint reminder_investor_id_fkey;

create function linbat.reminder_refs_check()
returns trigger
language plpgsql
as $$
declare
	v_bad record;
begin
	perform pg_advisory_xact_lock(hashtextextended('linbat.plan_reminders', 0));
	if tg_level = 'ROW' then
		-- an update that moves one reminder
		select new.campaign_id, new.investor_id,
			not exists (select 1 from linbat.campaign c where c.id = new.campaign_id) as no_campaign
		into v_bad
		where not exists (select 1 from linbat.investor i where i.id = new.investor_id)
			or not exists (select 1 from linbat.campaign c where c.id = new.campaign_id);
	else
		select n.campaign_id, n.investor_id,
			not exists (select 1 from linbat.campaign c where c.id = n.campaign_id) as no_campaign
		into v_bad
		from new_rows n
		where not exists (select 1 from linbat.investor i where i.id = n.investor_id)
			or not exists (select 1 from linbat.campaign c where c.id = n.campaign_id)
		limit 1;
	end if;
	if found then
		raise exception using errcode = '23503',
			message = case when v_bad.no_campaign
				then 'insert or update on table "reminder" violates foreign key constraint "reminder_campaign_id_fkey"'
				else 'insert or update on table "reminder" violates foreign key constraint "reminder_investor_id_fkey"' end,
			detail = case when v_bad.no_campaign
				then format('Key (campaign_id)=(%s) is not present in table "campaign".', v_bad.campaign_id)
				else format('Key (investor_id)=(%s) is not present in table "investor".', v_bad.investor_id) end;
	end if;
	return null;
end
$$;

create trigger reminder_refs_insert after insert on linbat.reminder
	referencing new table as new_rows for each statement execute function linbat.reminder_refs_check();
create trigger reminder_refs_update after update of campaign_id, investor_id on linbat.reminder
	for each row when (old.campaign_id <> new.campaign_id or old.investor_id <> new.investor_id)
	execute function linbat.reminder_refs_check();

-- A campaign or investor that reminders refer to stays (NO ACTION).
create function linbat.reminder_referenced_check()
returns trigger
language plpgsql
as $$
declare
	v_used boolean;
begin
	if tg_op = 'UPDATE' and old.id = new.id then
		return null;
	end if;
	perform pg_advisory_xact_lock(hashtextextended('linbat.plan_reminders', 0));
	if tg_table_name = 'investor' then
		-- a probe of the unique key per campaign: campaigns are few
		v_used := exists (select 1 from linbat.campaign c
			where exists (select 1 from linbat.reminder r where r.campaign_id = c.id and r.investor_id = old.id));
	else
		v_used := exists (select 1 from linbat.reminder r where r.campaign_id = old.id);
	end if;
	if v_used then
		raise exception using errcode = '23503',
			message = format('update or delete on table "%s" violates foreign key constraint "reminder_%s_id_fkey" on table "reminder"',
				tg_table_name, tg_table_name),
			detail = format('Key (id)=(%s) is still referenced from table "reminder".', old.id);
	end if;
	return null;
end
$$;

create trigger investor_reminder_refs after delete or update of id on linbat.investor
	for each row execute function linbat.reminder_referenced_check();
create trigger campaign_reminder_refs after delete or update of id on linbat.campaign
	for each row execute function linbat.reminder_referenced_check();
