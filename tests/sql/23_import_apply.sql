-- linbat.investor_import_apply (0023): new investors and identities are
-- inserted, changed ones updated, unchanged ones not written at all; an
-- address an unknown sender had moves to the imported investor; skipped
-- lines stay out; and when another writer takes a NIB or an address first,
-- the apply falls back to upserts with the same outcome.
-- The trigger of the race below, committed so that the other connection can
-- write investors while the test's transaction runs (it is dropped at the end).
create function public.test_import_race() returns trigger language plpgsql
as $$ begin
	if new.nib = '9300000000012' and new.company_name = 'PT Dua Belas' then
		perform dblink_exec('other', 'insert into linbat.investor (nib, company_name, scale)
			values (''9300000000012'', ''PT Lain'', ''besar'') on conflict do nothing');
		perform dblink_exec('other', 'insert into linbat.identity (investor_id, kind, address)
			select id, ''sms'', ''+6281300000012'' from linbat.investor where nib = ''9300000000012''
			on conflict do nothing');
	end if;
	return new;
end $$;
create trigger test_import_race before insert on linbat.investor for each row execute function public.test_import_race();
begin;
select plan(12);

select linbat.investor_import_table();
-- Stage rows (line, nib, company_name, phone, whatsapp, email) in the import table.
create function pg_temp.stage(p_rows text[]) returns void language sql
as $$
	delete from pg_temp.investor_import;
	insert into pg_temp.investor_import (line, nib, company_name, scale, kbli, phone, whatsapp, email)
	select (r[1])::integer, r[2], r[3], 'besar', '{}', nullif(r[4], ''), nullif(r[5], ''), nullif(r[6], '')
	from unnest(p_rows) x, lateral (select string_to_array(x, '|') as r) y;
$$;
create function pg_temp.where_is() returns text language sql
as $$ select string_agg(i.nib || ' ' || d.kind || ' ' || d.address, ', ' order by i.nib, d.kind)
	from linbat.identity d join linbat.investor i on i.id = d.investor_id where i.nib like '93%' $$;

-- An unknown sender wrote from +6281300000002 before the import.
insert into linbat.investor (company_name) values ('tak dikenal');
insert into linbat.identity (investor_id, kind, address)
select id, 'whatsapp', '+6281300000002' from linbat.investor where company_name = 'tak dikenal';

select pg_temp.stage(array['2|9300000000001|PT Satu|+6281300000001||satu@example.co.id',
	'3|9300000000002|PT Dua||+6281300000002|', '4|9300000000003|PT Tiga|+6281300000003||']);
select is(linbat.investor_import_apply('{4}'), 2, 'two rows imported, line 4 skipped');
select is(pg_temp.where_is(), '9300000000001 email satu@example.co.id, 9300000000001 sms +6281300000001, '
	|| '9300000000002 whatsapp +6281300000002', 'identities inserted; the unknown sender''s address moved');
select is((select count(*)::integer from linbat.investor where nib = '9300000000003'), 0, 'the skipped line is not');

create temp table before as select nib, ctid::text as at from linbat.investor where nib like '93%'
	union all select address, ctid::text from linbat.identity where address like '%13000000%';
select pg_temp.stage(array['2|9300000000001|PT Satu|+6281300000001||satu@example.co.id',
	'3|9300000000002|PT Dua Baru||+6281300000002|']);
select is(linbat.investor_import_apply('{}'), 2, 'again: both rows counted');
select is((select i.ctid::text from linbat.investor i where nib = '9300000000001'),
	(select at from before where nib = '9300000000001'), 'an unchanged investor is not rewritten');
select isnt((select i.ctid::text from linbat.investor i where nib = '9300000000002'),
	(select at from before where nib = '9300000000002'), 'a changed one is');
select is((select company_name from linbat.investor where nib = '9300000000002'), 'PT Dua Baru', 'with its new name');
select is((select count(*)::integer from linbat.identity d join before b on b.nib = d.address
	where d.ctid::text <> b.at), 0, 'identities that belong where they are are not rewritten');

-- Another transaction takes a NIB and an address first, and commits, while
-- the apply runs (here: just before the apply writes that investor, a
-- trigger makes it through dblink): the plain insert meets the unique key,
-- and the upserts run.
select dblink_connect('other', format('host=%s port=%s dbname=%s user=%s',
	split_part(current_setting('unix_socket_directories'), ',', 1), current_setting('port'),
	current_database(), current_user)) as _ \gset
select pg_temp.stage(array['5|9300000000011|PT Sebelas|+6281300000011||',
	'6|9300000000012|PT Dua Belas|+6281300000012||']);
select is(linbat.investor_import_apply('{}'), 2, 'a race: both rows imported');
select is((select company_name from linbat.investor where nib = '9300000000012'), 'PT Dua Belas',
	'the NIB the other writer took is updated from the file');
select is((select string_agg(i.nib || ' ' || d.address, ', ' order by d.address) from linbat.identity d
	join linbat.investor i on i.id = d.investor_id where d.address in ('+6281300000011', '+6281300000012')),
	'9300000000011 +6281300000011, 9300000000012 +6281300000012', 'and every address is where the file says');
select is((select count(*)::integer from linbat.investor where nib like '930000000001%'), 2, 'nothing twice');

select * from finish();
rollback;
-- what the other transaction committed
select dblink_exec('other', 'delete from linbat.identity where address = ''+6281300000012''') as _ \gset
select dblink_exec('other', 'delete from linbat.investor where nib = ''9300000000012''') as _ \gset
select dblink_disconnect('other') as _ \gset
drop trigger test_import_race on linbat.investor;
drop function public.test_import_race();
