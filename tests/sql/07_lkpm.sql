-- The LKPM calendar: period labels, deadlines under the 2021 and 2025 rules,
-- the quarter that straddles 2025-10-02, year rollover, overrides, and the
-- next deadline of each scale on either side of every change.
begin;
select plan(69);

-- "PERIOD DEADLINE" of the next deadline, or 'none'.
create function pg_temp.nd(p_scale text, p_date date) returns text language sql
as $$ select coalesce((select period || ' ' || deadline from linbat.lkpm_next_deadline(p_scale, p_date)),
	'none') $$;

-- Tables and seeded rules
select has_table('linbat', t, 'table linbat.' || t || ' exists')
from unnest(array['lkpm_rule', 'lkpm_deadline_override', 'lkpm_filing']) as t;
select results_eq('select effective_from, deadline_day, window_opens_day from linbat.lkpm_rule order by 1',
	$$values ('2021-04-02'::date, 10, 1), ('2025-10-02'::date, 15, 1)$$,
	'the 2021 rule (day 10) and the 2025 rule (day 15, from 2025-10-02) are seeded');
select throws_like($$insert into linbat.lkpm_rule (effective_from, regime, deadline_day)
	values ('2030-01-01', 'x', 32)$$, '%"lkpm_rule_deadline_day_check"', 'a deadline day is 1..31');
select throws_like($$insert into linbat.lkpm_deadline_override (period, deadline, source)
	values ('2026-Q5', '2026-04-20', 'x')$$, '%"lkpm_deadline_override_period_check"',
	'an override names a real period');

-- Period labels
select is(linbat.lkpm_period_start('2026-Q3'), '2026-07-01'::date, 'Q3 starts on 1 July');
select is(linbat.lkpm_period_start('2026-S2'), '2026-07-01'::date, 'S2 starts on 1 July');
select throws_ok($$select linbat.lkpm_period_deadline(p) from (values ('2026-Q5')) v (p)$$, '22023',
	'invalid LKPM period ''2026-Q5''', 'Q5 is not a period');
select throws_ok($$select linbat.lkpm_period_deadline('2026-S3')$$, '22023', null, 'S3 is not a period');
select throws_ok($$select linbat.lkpm_period_deadline('2026Q1')$$, '22023', null, 'the dash is required');
select throws_ok($$select linbat.lkpm_period_deadline('2026-q1')$$, '22023', null, 'Q is upper case');
select throws_ok($$select linbat.lkpm_period_deadline(' 2026-Q1')$$, '22023', null, 'no spaces');
select throws_ok($$select linbat.lkpm_period_deadline('26-Q1')$$, '22023', null, 'the year has 4 digits');
select throws_ok($$select linbat.lkpm_period_deadline('0000-Q1')$$, '22023', null, 'there is no year 0');
select throws_ok($$select linbat.lkpm_period_deadline('')$$, '22023', null, 'an empty label is refused');
select is(linbat.lkpm_period_deadline(null), null, 'a null period has no deadline');

-- Deadlines of periods under each rule
select is(linbat.lkpm_period_deadline('2025-Q1'), '2025-04-10'::date, '2021 rule: Q1 2025 due 10 April');
select is(linbat.lkpm_period_deadline('2025-Q2'), '2025-07-10'::date, '2021 rule: Q2 2025 due 10 July');
select is(linbat.lkpm_period_deadline('2025-S1'), '2025-07-10'::date, '2021 rule: S1 2025 due 10 July');
select is(linbat.lkpm_period_deadline('2024-Q4'), '2025-01-10'::date,
	'2021 rule: Q4 2024 due 10 January of the next year');
select is(linbat.lkpm_period_deadline('2024-S2'), '2025-01-10'::date,
	'2021 rule: S2 2024 due 10 January of the next year');
select is(linbat.lkpm_period_deadline('2025-Q3'), '2025-10-10'::date,
	'Q3 2025 straddles the change: the rule in force when its window opened (1 October) gives 10 October');
select is(linbat.lkpm_period_deadline('2025-Q4'), '2026-01-15'::date, '2025 rule: Q4 2025 due 15 January 2026');
select is(linbat.lkpm_period_deadline('2025-S2'), '2026-01-15'::date, '2025 rule: S2 2025 due 15 January 2026');
select is(linbat.lkpm_period_deadline('2026-Q1'), '2026-04-15'::date, '2025 rule: Q1 2026 due 15 April');
select is(linbat.lkpm_period_deadline('2026-S1'), '2026-07-15'::date, '2025 rule: S1 2026 due 15 July');
select throws_ok($$select linbat.lkpm_period_deadline('2020-Q4')$$, '22023',
	'no LKPM rule is in force on 2021-01-01', 'a period due before the calendar starts has no deadline');

-- The next deadline: kecil (semesters)
select is(pg_temp.nd('kecil', '2025-07-05'), '2025-S1 2025-07-10', 'kecil 2025-07-05: S1 due 10 July');
select is(pg_temp.nd('kecil', '2025-07-10'), '2025-S1 2025-07-10', 'kecil: the deadline day itself has not passed');
select is(pg_temp.nd('kecil', '2025-07-11'), '2025-S2 2026-01-15', 'kecil 2025-07-11: S2 due 15 January (2025 rule)');
select is(pg_temp.nd('kecil', '2025-10-02'), '2025-S2 2026-01-15', 'kecil on the day of the change');
select is(pg_temp.nd('kecil', '2025-12-31'), '2025-S2 2026-01-15', 'kecil on the last day of the year');
select is(pg_temp.nd('kecil', '2026-01-15'), '2025-S2 2026-01-15', 'kecil 2026-01-15: S2 of the year before');
select is(pg_temp.nd('kecil', '2026-01-16'), '2026-S1 2026-07-15', 'kecil 2026-01-16: S1 due 15 July');
select is(pg_temp.nd('kecil', '2026-07-15'), '2026-S1 2026-07-15', 'kecil 2026-07-15: S1, last day');
select is(pg_temp.nd('kecil', '2025-01-10'), '2024-S2 2025-01-10', 'kecil 2025-01-10: S2 2024 under the 2021 rule');

-- menengah and besar (quarters)
select is(pg_temp.nd('menengah', '2025-07-05'), '2025-Q2 2025-07-10', 'menengah 2025-07-05: Q2 due 10 July');
select is(pg_temp.nd('menengah', '2025-07-11'), '2025-Q3 2025-10-10', 'menengah 2025-07-11: Q3 due 10 October');
select is(pg_temp.nd('menengah', '2025-10-01'), '2025-Q3 2025-10-10', 'menengah the day before the change');
select is(pg_temp.nd('menengah', '2025-10-02'), '2025-Q3 2025-10-10', 'menengah on the day of the change');
select is(pg_temp.nd('menengah', '2025-10-10'), '2025-Q3 2025-10-10', 'menengah 2025-10-10: Q3, last day');
select is(pg_temp.nd('menengah', '2025-10-11'), '2025-Q4 2026-01-15', 'menengah 2025-10-11: Q4 due 15 January');
select is(pg_temp.nd('besar', '2025-04-10'), '2025-Q1 2025-04-10', 'besar 2025-04-10: Q1, last day');
select is(pg_temp.nd('besar', '2025-04-11'), '2025-Q2 2025-07-10', 'besar 2025-04-11: Q2 due 10 July');
select is(pg_temp.nd('besar', '2025-10-11'), '2025-Q4 2026-01-15', 'besar 2025-10-11: Q4 due 15 January');
select is(pg_temp.nd('besar', '2025-12-31'), '2025-Q4 2026-01-15', 'besar on the last day of the year');
select is(pg_temp.nd('besar', '2026-01-05'), '2025-Q4 2026-01-15', 'besar 2026-01-05: Q4 of the year before');
select is(pg_temp.nd('besar', '2026-01-16'), '2026-Q1 2026-04-15', 'besar 2026-01-16: Q1 due 15 April');
select is(pg_temp.nd('besar', '2026-04-16'), '2026-Q2 2026-07-15', 'besar 2026-04-16: Q2 due 15 July');

-- mikro, unknown and null
select is(pg_temp.nd('mikro', '2025-07-05'), 'none', 'mikro files no LKPM, before the change');
select is(pg_temp.nd('mikro', '2026-01-05'), 'none', 'mikro files no LKPM, after the change');
select throws_ok($$select * from linbat.lkpm_next_deadline('raksasa', '2026-01-05')$$, '22023',
	'unknown investor scale ''raksasa''', 'an unknown scale is refused');
select throws_ok($$select * from linbat.lkpm_next_deadline('Besar', '2026-01-05')$$, '22023', null,
	'scales are lower case');
select is(pg_temp.nd(null, '2026-01-05'), 'none', 'an investor of unknown scale has no deadline');
select is(pg_temp.nd('besar', null), 'none', 'no date, no deadline');
select is(linbat.lkpm_current_period('kecil', '2026-06-30'), '2026-S1', 'current period: 30 June is in S1');
select is(linbat.lkpm_current_period('besar', '2026-10-01'), '2026-Q4', 'current period: 1 October is in Q4');

-- A later rule, and a deadline day that some months lack
insert into linbat.lkpm_rule (effective_from, regime, deadline_day) values ('2030-01-01', 'a test rule', 31);
select is(linbat.lkpm_period_deadline('2029-Q4'), '2030-01-31'::date,
	'a rule in force on the 1st of the deadline month applies');
select is(linbat.lkpm_period_deadline('2030-Q1'), '2030-04-30'::date,
	'day 31 in a 30-day month is its last day');
select is(linbat.lkpm_period_deadline('2029-S1'), '2029-07-15'::date, 'the rule before it still holds before');

-- Overrides win
insert into linbat.lkpm_deadline_override (period, deadline, source, note) values
	('2025-Q3', '2025-10-15', 'test', 'if OSS applied the 2025 rule to Q3 2025'),
	('2026-Q1', '2026-04-20', 'test', 'a holiday'),
	('2025-Q2', '2025-10-31', 'test', 'an outage keeps an old quarter open');
select is(linbat.lkpm_period_deadline('2025-Q3'), '2025-10-15'::date, 'an override sets Q3 2025 to 15 October');
select is(pg_temp.nd('besar', '2025-10-11'), '2025-Q3 2025-10-15', 'and Q3 is next on 11 October');
select is(pg_temp.nd('besar', '2026-04-16'), '2026-Q1 2026-04-20', 'an override moves Q1 2026 to 20 April');
select is(pg_temp.nd('menengah', '2025-10-20'), '2025-Q2 2025-10-31',
	'an override keeps a quarter from before the last one open');
select is(pg_temp.nd('kecil', '2025-10-20'), '2025-S2 2026-01-15', 'a quarter''s override does not touch semesters');

-- Filings
insert into linbat.investor (nib, scale) values ('9120005550001', 'besar');
\set inv '(select id from linbat.investor where nib = ''9120005550001'')'
select lives_ok($$insert into linbat.lkpm_filing (investor_id, period, status, source)
	values ($$ || :'inv' || $$, '2025-Q4', 'terkirim', 'oss_import')$$, 'a filing is recorded');
select throws_ok($$insert into linbat.lkpm_filing (investor_id, period, status, source)
	values ($$ || :'inv' || $$, '2025-Q4', 'claimed', 'keyword')$$, '23505', null,
	'one filing per investor and period');
select throws_like($$insert into linbat.lkpm_filing (investor_id, period, status, source)
	values ($$ || :'inv' || $$, '2025-Q1', 'ditolak', 'operator')$$, '%"lkpm_filing_status_check"',
	'a filing status is an OSS status or claimed');

select * from finish();
rollback;
