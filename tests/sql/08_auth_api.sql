-- What the inbox API needs from 0008_auth_api: logins throttled per account
-- and per address, sessions that expire and end, disabled accounts, who may
-- give which role, the conversations each caller may see and act on, the
-- list's filters and cursor, notes, presence through live connections, and
-- the merge of two investors.
begin;
select plan(63);

select linbat.channel_register('wa-auth', 'whatsapp') as _ \gset
insert into linbat.operator (name, email, role, presence, capacity, password_hash) values
	('Ani', 'ani@example.com', 'operator', 'online', 5, 'hash-ani'),
	('Budi', 'budi@example.com', 'operator', 'online', 5, 'hash-budi'),
	('Mira', 'mira@example.com', 'manager', 'offline', 5, 'hash-mira'),
	('Root', 'root@example.com', 'admin', 'offline', 5, 'hash-root');
create function pg_temp.o(p_name text) returns bigint language sql
as $$ select id from linbat.operator where name = p_name $$;
create temp sequence pid;
-- Investor p_n writes; the conversation.
create function pg_temp.write(p_n integer) returns bigint language sql as $$
	select conversation_id from linbat.ingest_inbound('wa-auth', 'whatsapp',
		'+628129970' || lpad(p_n::text, 4, '0'), 'wamid.auth' || nextval('pid'), 'Halo nomor ' || p_n,
		'text', '{}', now(), null)
$$;

-- Logins and their throttle ---------------------------------------------------------
select results_eq($$select throttled, operator_id, password_hash from linbat.login_begin('ANI@example.com', '192.0.2.1')$$,
	$$values (false, pg_temp.o('Ani'), 'hash-ani'::text)$$,
	'a login finds the account by its email, any case, with its hash');
select results_eq($$select throttled, operator_id from linbat.login_begin('nobody@example.com', '192.0.2.1')$$,
	$$values (false, null::bigint)$$, 'an unknown email gives no account (and one row, not none)');
select count(linbat.login_failed('ani@example.com', '192.0.2.1')) as _ from generate_series(1, 4) \gset
select is((select throttled from linbat.login_begin('ani@example.com', '192.0.2.9')), false,
	'four failures of an account: not yet throttled');
select linbat.login_failed('Ani@Example.com', '192.0.2.1') as _ \gset
select is((select throttled from linbat.login_begin('ani@example.com', '192.0.2.9')), true,
	'the fifth throttles the account, from any address');
select is((select throttled from linbat.login_begin('budi@example.com', '192.0.2.9')), false,
	'but not another account');
select is((select count(*) from linbat.audit_log where action = 'login.failed'
		and operator_id = pg_temp.o('Ani')), 5::bigint, 'each failure is audited with the account');
update linbat.login_failure set at = now() - interval '16 minutes';
select is((select throttled from linbat.login_begin('ani@example.com', '192.0.2.9')), false,
	'failures older than 15 minutes no longer count');
select count(linbat.login_failed('x' || n || '@example.com', '198.51.100.7')) as _
from generate_series(1, 19) n \gset
select is((select throttled from linbat.login_begin('budi@example.com', '198.51.100.7')), false,
	'19 failures from one address over many accounts: not yet');
select linbat.login_failed('x20@example.com', '198.51.100.7') as _ \gset
select is((select throttled from linbat.login_begin('budi@example.com', '198.51.100.7')), true,
	'the 20th throttles the address, for every account');
select is((select throttled from linbat.login_begin('budi@example.com', '198.51.100.8')), false,
	'but not another address');

-- Sessions ---------------------------------------------------------------------------
select linbat.login_failed('ani@example.com', '192.0.2.1') as _ \gset
select is((linbat.login_succeeded(pg_temp.o('Ani'), repeat('a', 64), 'csrf-a', 3600, '192.0.2.1')->'operator'->>'role'),
	'operator', 'a good password opens a session and says who and what role');
select is((select count(*) from linbat.login_failure where email = 'ani@example.com'), 0::bigint,
	'and forgets the account''s failures');
select results_eq($$select expires_at, remote_addr from linbat.session where token_hash = repeat('a', 64)$$,
	$$values (now() + interval '1 hour', '192.0.2.1'::inet)$$, 'the session expires after its TTL');
select results_eq($$select operator_id, role, csrf_token from linbat.session_check(repeat('a', 64))$$,
	$$values (pg_temp.o('Ani'), 'operator'::text, 'csrf-a'::text)$$,
	'a live session gives the operator, role and CSRF token');
select is_empty($$select * from linbat.session_check(repeat('b', 64))$$, 'an unknown token gives nothing');
select linbat.login_succeeded(pg_temp.o('Budi'), repeat('c', 64), 'csrf-c', 60, null) as _ \gset
update linbat.session set expires_at = now() - interval '1 second' where token_hash = repeat('c', 64);
select is_empty($$select * from linbat.session_check(repeat('c', 64))$$, 'an expired session gives nothing');
select is(linbat.logout(repeat('a', 64), '192.0.2.1'), true, 'logout ends a session');
select is_empty($$select * from linbat.session_check(repeat('a', 64))$$, 'which then gives nothing');
select is(linbat.logout(repeat('a', 64), '192.0.2.1'), false, 'logging out twice finds nothing');
select is((select count(*) from linbat.audit_log where action in ('login', 'logout')
		and operator_id = pg_temp.o('Ani')), 2::bigint, 'login and logout are audited');

-- Accounts and roles -------------------------------------------------------------------
select throws_ok($$select linbat.operator_create(pg_temp.o('Mira'), 'baru@example.com', 'Baru', 'admin', 5, null, null)$$,
	'42501', 'only an admin may create or change an admin', 'a manager cannot make an admin');
select throws_ok($$select linbat.operator_update(pg_temp.o('Mira'), pg_temp.o('Root'), 'Akar', null, null, null, null, null)$$,
	'42501', null, 'nor change one');
select is((linbat.operator_create(pg_temp.o('Root'), ' Dewi@Example.com ', 'Dewi', 'admin', 3, null, '192.0.2.5')->>'email'),
	'dewi@example.com', 'an admin makes an admin; the email is stored trimmed and lower-cased');
select is((select detail from linbat.audit_log where action = 'operator.create'),
	'{"email": "dewi@example.com", "role": "admin"}'::jsonb, 'audited');
select linbat.login_succeeded(pg_temp.o('Budi'), repeat('d', 64), 'csrf-d', 3600, null) as _ \gset
select is((linbat.operator_update(pg_temp.o('Mira'), pg_temp.o('Budi'), null, null, null, null, true, null)->>'disabled')::boolean,
	true, 'a manager disables an operator');
select results_eq($$select presence, disabled_at from linbat.operator where name = 'Budi'$$,
	$$values ('offline'::text, now())$$, 'who goes offline');
select is((select count(*) from linbat.session where operator_id = pg_temp.o('Budi')), 0::bigint,
	'and loses every session');
select throws_ok($$select linbat.login_succeeded(pg_temp.o('Budi'), repeat('e', 64), 'x', 60, null)$$,
	'42501', 'the account is disabled', 'a disabled account cannot log in');
select is((select operator_id from linbat.login_begin('budi@example.com', null)), null,
	'and is not found by a login');
select linbat.operator_update(null, pg_temp.o('Budi'), null, null, null, null, false, null) as _ \gset
select linbat.set_presence(pg_temp.o('Budi'), 'online') as _ \gset

-- Presence through live connections --------------------------------------------------------
create temp table live as select linbat.live_open(pg_temp.o('Ani'), 'proc-a') as a,
	linbat.live_open(pg_temp.o('Ani'), 'proc-b') as b;
select linbat.live_close((select a from live)) as _ \gset
select is(linbat.live_idle(pg_temp.o('Ani')), false, 'an operator with a stream open elsewhere stays online');
select linbat.live_forget('proc-b') as _ \gset
select is(linbat.live_idle(pg_temp.o('Ani')), true, 'with none left anywhere, they go away');
select is((select presence from linbat.operator where name = 'Ani'), 'away', 'away');
select is(linbat.live_idle(pg_temp.o('Ani')), false, 'and only once');
select linbat.set_presence(pg_temp.o('Ani'), 'online') as _ \gset

-- Who sees and acts on what ------------------------------------------------------------------
update linbat.operator set capacity = 1 where name in ('Ani', 'Budi');
select pg_temp.write(1) as c1 \gset
select pg_temp.write(2) as c2 \gset
select pg_temp.write(3) as c3 \gset
select is((select array_agg(assigned_operator order by id) from linbat.conversation
		where id in (:c1, :c2, :c3)), array[pg_temp.o('Ani'), pg_temp.o('Budi'), null],
	'Ani and Budi have one each, the third waits');
select lives_ok($$select linbat.conversation_access($$ || :c1 || $$, pg_temp.o('Ani'), 'operator', true)$$,
	'an operator acts on their own conversation');
select throws_ok($$select linbat.conversation_access($$ || :c2 || $$, pg_temp.o('Ani'), 'operator', false)$$,
	'42501', format('conversation %s is not yours', :c2), 'but does not even see someone else''s');
select lives_ok($$select linbat.conversation_access($$ || :c3 || $$, pg_temp.o('Ani'), 'operator', false)$$,
	'sees a waiting one');
select throws_ok($$select linbat.conversation_access($$ || :c3 || $$, pg_temp.o('Ani'), 'operator', true)$$,
	'42501', null, 'but may not act on it');
select lives_ok($$select linbat.conversation_access($$ || :c2 || $$, pg_temp.o('Mira'), 'manager', true)$$,
	'a manager acts on any');
select throws_ok($$select linbat.conversation_access(-1, pg_temp.o('Mira'), 'manager', false)$$,
	'P0002', null, 'an unknown conversation is not found');
select throws_ok($$select linbat.inbox_resolve($$ || :c2 || $$, pg_temp.o('Ani'), 'operator')$$,
	'42501', null, 'the inbox refuses to resolve someone else''s');
select is((select status from linbat.conversation where id = :c2), 'open', 'which stays open');
select throws_ok($$select linbat.inbox_note($$ || :c2 || $$, pg_temp.o('Ani'), 'operator', 'intip')$$,
	'42501', null, 'or to note on it');

-- The list: visibility, filters, cursor -----------------------------------------------------------
create function pg_temp.ids(p json) returns bigint[] language sql as $$
	select coalesce(array_agg((e->>'id')::bigint order by k), '{}')
	from json_array_elements(p->'conversations') with ordinality x (e, k)
$$;
update linbat.conversation set last_message_at = now() - (id || ' minutes')::interval
where id in (:c1, :c2, :c3);
select is(pg_temp.ids(linbat.conversation_list(pg_temp.o('Ani'), 'operator', null, null, null, null, null, null)),
	array[:c1, :c3]::bigint[], 'an operator lists their own and the waiting ones, newest first');
select is(pg_temp.ids(linbat.conversation_list(pg_temp.o('Mira'), 'manager', null, null, null, null, null, null)),
	array[:c1, :c2, :c3]::bigint[], 'a manager lists all');
select is(pg_temp.ids(linbat.conversation_list(pg_temp.o('Ani'), 'operator', null, 'me', null, null, null, null)),
	array[:c1]::bigint[], 'assigned=me');
select is(pg_temp.ids(linbat.conversation_list(pg_temp.o('Mira'), 'manager', null, 'none', null, null, null, null)),
	array[:c3]::bigint[], 'assigned=none');
select is(pg_temp.ids(linbat.conversation_list(pg_temp.o('Mira'), 'manager', null, null, null, 'NOMOR 2', null, null)),
	array[:c2]::bigint[], 'text search over the messages, any case');
select is(pg_temp.ids(linbat.conversation_list(pg_temp.o('Mira'), 'manager', null, null, 'whatsapp', null, null, null)),
	array[:c1, :c2, :c3]::bigint[], 'channel by kind');
create temp table page1 as
select linbat.conversation_list(pg_temp.o('Mira'), 'manager', 'open', null, null, null, null, 2) as p;
select is(pg_temp.ids((select p from page1)), array[:c1, :c2]::bigint[], 'a page of two');
select is(pg_temp.ids(linbat.conversation_list(pg_temp.o('Mira'), 'manager', 'open', null, null, null,
		(select p->>'next' from page1), 2)), array[:c3]::bigint[], 'the next page goes on from its cursor');
select throws_ok($$select linbat.conversation_list(pg_temp.o('Mira'), 'manager', null, null, null, null, 'x.y', 2)$$,
	'22023', 'invalid cursor', 'a forged cursor is refused');
select throws_ok($$select linbat.conversation_list(pg_temp.o('Mira'), 'manager', null, 'mine', null, null, null, 2)$$,
	'22023', null, 'and an unknown assigned filter');

-- Merge -----------------------------------------------------------------------------------------
update linbat.investor set nib = '1234567890123', company_name = 'PT Dua'
where id = (select investor_id from linbat.conversation where id = :c2);
select investor_id as i1 from linbat.conversation where id = :c1 \gset
select investor_id as i2 from linbat.conversation where id = :c2 \gset
select is((linbat.investor_merge(:i1, :i2, pg_temp.o('Mira'), '192.0.2.7')->>'company_name'), 'PT Dua',
	'merging fills the empty fields from the other investor');
select results_eq($$select investor_id, count(*) from linbat.identity where investor_id in ($$ || :i1 || ',' || :i2 || $$) group by 1$$,
	$$values ($$ || :i1 || $$::bigint, 2::bigint)$$, 'the identities move');
select is((select count(*) from linbat.message where conversation_id = :c1 and direction = 'in'), 2::bigint,
	'both open conversations became one: the messages moved');
select results_eq($$select status, investor_id from linbat.conversation where id = $$ || :c2,
	$$values ('resolved'::text, $$ || :i1 || $$::bigint)$$, 'the emptied one is resolved, under the kept investor');
select results_eq($$select merged_into, nib from linbat.investor where id = $$ || :i2,
	$$values ($$ || :i1 || $$::bigint, null::text)$$, 'the merged investor points to the kept one and lost the NIB');
select is((select assigned_operator from linbat.conversation where id = :c3), pg_temp.o('Budi'),
	'the operator of the emptied conversation has a place again, which the waiting one takes');
select results_eq($$select open_count from linbat.operator where name = 'Budi'$$,
	$$select count(*)::integer from linbat.conversation where assigned_operator = pg_temp.o('Budi')
		and status <> 'resolved'$$, 'and their open count is exact: one');
select is((select detail from linbat.audit_log where action = 'investor.merge'),
	jsonb_build_object('from', :i2, 'moved_messages_of', :c2), 'the merge is audited');
select throws_ok($$select linbat.investor_merge($$ || :i1 || ',' || :i2 || $$, null, null)$$,
	'P0002', null, 'a merged investor cannot be merged again');
select throws_ok($$select linbat.investor_merge($$ || :i1 || ',' || :i1 || $$, null, null)$$,
	'22023', null, 'nor an investor into itself');

select * from finish();
rollback;
