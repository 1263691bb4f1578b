-- 0024_campaign_import_tune: two follow-ups of 0022 and 0023.
--
-- * A deleted investor without a NIB no longer waits for the planner's
--   advisory lock (0022's reminder_referenced_check, redefined here): the
--   planner plans only investors with a NIB, and ingest deletes a NIB-less
--   investor it has just made when it loses a race for an address
--   (ingest_inbound); that delete should not wait seconds for a planning
--   round. The check for reminders still runs for it.
-- * investor_import_check no longer analyzes the staging table (0.3 s of CPU
--   per 100,000 rows): nested loops are off there already, and that alone
--   keeps the address check a hash join. investor_import_apply gets nested
--   loops off too, so that its anti-joins stay hash joins without those
--   statistics.

create or replace function linbat.reminder_referenced_check()
returns trigger
language plpgsql
as $$
declare
	v_used boolean;
begin
	if tg_op = 'UPDATE' and old.id = new.id then
		return null;
	end if;
	if tg_table_name = 'investor' then
		if old.nib is not null then
			perform pg_advisory_xact_lock(hashtextextended('linbat.plan_reminders', 0));
		end if;
		-- a probe of the unique key per campaign: campaigns are few
		v_used := exists (select 1 from linbat.campaign c
			where exists (select 1 from linbat.reminder r where r.campaign_id = c.id and r.investor_id = old.id));
	else
		perform pg_advisory_xact_lock(hashtextextended('linbat.plan_reminders', 0));
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

create or replace function linbat.investor_import_check()
returns table (line integer, col text, reason text)
language plpgsql
set jit = off
set work_mem = '64MB'
set enable_nestloop = off
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

alter function linbat.investor_import_apply(integer[]) set enable_nestloop = off;
