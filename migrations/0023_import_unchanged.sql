-- 0023_import_unchanged: an investor import writes only what changes.
--
-- bench/import: 100,000 rows took 27-59 s the first time and 33 s again
-- (every row an update) at loads of 8-24. With the load taken out (the
-- backend's CPU time) the first import cost about 1.8 s for the investors
-- and 4.1 s for their 300,000 identities (of which 1.1 s the per-row checks
-- of the identity->investor foreign key and 0.8 s the ON CONFLICT probes).
-- Importing the same file again rewrote all 100,000 investors (a new row
-- version each, three index entries, the touch trigger and the array checks
-- of 0012) and probed and locked all 300,000 identities, to change nothing.
--
-- Now (from 0009's linbat.investor_import_apply):
-- * Changed investors are updated, new ones inserted, and a staged row equal
--   to its investor is left alone; identities likewise. Who is new is found
--   by one anti-join, not by an ON CONFLICT probe per row (a quarter of the
--   cost of the identities). Should another transaction write one of the
--   NIBs or addresses meanwhile, the insert fails on the unique key and the
--   whole apply runs again as 0009's upserts, so the outcome is the same.
-- * The count returned is still every row imported (changed or not).
-- * The staging table is analyzed before the check: without statistics the
--   planner took it for 52,500 rows and checked the 300,000 addresses of a
--   second import one by one against identity (a bitmap scan each, 12 s at
--   load 10), where one hash join does; with the statistics it still chose
--   that loop (a Memoize in front, missing every time), so nested loops are
--   off there. JIT is off (100 ms of compiling for one query), and work_mem
--   is raised so that the hashes and sorts of 300,000 addresses stay in
--   memory (the anti-join of a second import sorted 25 MB on disk). Merge
--   joins are off in the apply: the planner sorted both sides of 300,000
--   addresses (by text, under the database's collation) to anti-join them,
--   7.5 s at load 10, where hashing them takes a fraction of that.
create or replace function linbat.investor_import_check()
returns table (line integer, col text, reason text)
language plpgsql
set jit = off
set work_mem = '64MB'
set enable_nestloop = off
as $$
begin
	analyze pg_temp.investor_import;
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

create or replace function linbat.investor_import_apply(p_skip integer[])
returns integer
language plpgsql
set jit = off
set work_mem = '64MB'
set enable_mergejoin = off
as $$
declare
	v_n integer;
begin
	delete from pg_temp.investor_import where line = any (p_skip);
	select count(*) into v_n from pg_temp.investor_import;
	begin
		-- The usual case: nobody else writes these NIBs and addresses now.
		-- Changed investors are updated, new ones inserted, unchanged ones
		-- left alone; identities likewise.
		with r as (
			select r.nib, r.company_name, r.scale, r.kbli,
				case when cardinality(r.kbli) > 0 then coalesce(r.kbli_version, '2020') end as kbli_version,
				r.district, r.preferred_channel, coalesce(r.language, 'id') as language
			from pg_temp.investor_import r
		), upd as (
			update linbat.investor i set company_name = r.company_name, scale = r.scale, kbli = r.kbli,
				kbli_version = r.kbli_version, district = r.district, preferred_channel = r.preferred_channel,
				language = r.language
			from r
			where i.nib = r.nib
				and (i.company_name, i.scale, i.kbli, i.kbli_version, i.district, i.preferred_channel, i.language)
				is distinct from (r.company_name, r.scale, r.kbli, r.kbli_version, r.district,
					r.preferred_channel, r.language)
		)
		insert into linbat.investor (nib, company_name, scale, kbli, kbli_version, district,
			preferred_channel, language)
		select r.nib, r.company_name, r.scale, r.kbli, r.kbli_version, r.district, r.preferred_channel, r.language
		from r
		where not exists (select 1 from linbat.investor i where i.nib = r.nib);
		with c as (
			select inv.id as investor_id, c.kind, c.address
			from pg_temp.investor_import r
			join linbat.investor inv on inv.nib = r.nib,
			lateral (values ('sms', r.phone), ('whatsapp', r.whatsapp), ('email', r.email)) c (kind, address)
			where c.address is not null
		), upd as (
			update linbat.identity i set investor_id = c.investor_id
			from c
			where i.kind = c.kind and i.address = c.address and i.investor_id <> c.investor_id
		)
		insert into linbat.identity (investor_id, kind, address)
		select c.investor_id, c.kind, c.address
		from c
		where not exists (select 1 from linbat.identity i where i.kind = c.kind and i.address = c.address);
	exception when unique_violation then
		-- Another transaction wrote one of them meanwhile (or the file has an
		-- address twice): all of it again as upserts, as 0009 did.
		insert into linbat.investor (nib, company_name, scale, kbli, kbli_version, district,
			preferred_channel, language)
		select r.nib, r.company_name, r.scale, r.kbli,
			case when cardinality(r.kbli) > 0 then coalesce(r.kbli_version, '2020') end,
			r.district, r.preferred_channel, coalesce(r.language, 'id')
		from pg_temp.investor_import r
		on conflict (nib) do update set company_name = excluded.company_name, scale = excluded.scale,
			kbli = excluded.kbli, kbli_version = excluded.kbli_version, district = excluded.district,
			preferred_channel = excluded.preferred_channel, language = excluded.language;
		insert into linbat.identity (investor_id, kind, address)
		select inv.id, c.kind, c.address
		from pg_temp.investor_import r
		join linbat.investor inv on inv.nib = r.nib,
		lateral (values ('sms', r.phone), ('whatsapp', r.whatsapp), ('email', r.email)) c (kind, address)
		where c.address is not null
		on conflict (kind, address) do update set investor_id = excluded.investor_id
		where linbat.identity.investor_id <> excluded.investor_id;
	end;
	insert into linbat.audit_log (actor, action, object_type, detail)
	values ('linbatctl', 'investor.import', 'investor', jsonb_build_object('rows', v_n));
	return v_n;
end
$$;
