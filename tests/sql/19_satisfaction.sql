-- The satisfaction survey: resolving a conversation asks the investor for a
-- 1-5 score on the way they last wrote (linbat.satisfaction_ask, from
-- resolve_conversation); a reply that is only that digit, within 3 days and
-- while nothing else of theirs is open, is recorded in the resolved
-- conversation and not routed; anything else opens a conversation as before.
begin;
select plan(37);

select has_table('linbat', 'satisfaction', 'the survey has its table');
select col_is_pk('linbat', 'satisfaction', 'conversation_id', 'one question per conversation');
select fk_ok('linbat', 'satisfaction', 'conversation_id', 'linbat', 'conversation', 'id',
	'for a conversation that exists');
select columns_are('linbat', 'satisfaction',
	array['conversation_id', 'investor_id', 'asked_at', 'score', 'answered_at'],
	'the columns reports rely on');

select linbat.channel_register('wa-sat', 'whatsapp') as _ \gset
select linbat.channel_register('sms-sat', 'sms') as _ \gset
insert into linbat.operator (name, email, presence, capacity)
values ('Sari', 'sari@example.com', 'online', 5);
create temp sequence pid;
-- Investor number p_n writes p_body on WhatsApp; the ingest's row.
create function pg_temp.write(p_n integer, p_body text) returns linbat.message language plpgsql as $$
declare
	v_id bigint;
	v_m linbat.message;
begin
	select message_id into v_id from linbat.ingest_inbound('wa-sat', 'whatsapp',
		'+628129950' || lpad(p_n::text, 4, '0'), 'wamid.sat' || nextval('pid'), p_body, 'text', '{}',
		now(), null);
	select * into v_m from linbat.message where id = v_id;
	return v_m;
end
$$;
-- The questions queued in conversation p_c.
create function pg_temp.asked(p_c bigint) returns bigint language sql as $$
	select count(*) from linbat.message where conversation_id = p_c and meta ? 'satisfaction'
$$;
create function pg_temp.sari() returns bigint language sql as $$
	select id from linbat.operator where email = 'sari@example.com'
$$;

-- Resolving asks, once, on the way the investor wrote --------------------------
create temp table c1 as select * from pg_temp.write(1, 'Halo, soal LKPM');
select is((select assigned_operator from linbat.conversation where id = (select conversation_id from c1)),
	pg_temp.sari(), 'the conversation is Sari''s');
select is(linbat.resolve_conversation((select conversation_id from c1), pg_temp.sari()), 0,
	'Sari resolves it');
select results_eq($$select m.direction, m.status, m.channel_instance, m.identity_id, m.author_operator,
		m.body, m.next_attempt_at from linbat.message m
		where m.conversation_id = (select conversation_id from c1) and m.direction = 'out'$$,
	$$select 'out'::text, 'queued'::text, 'wa-sat'::text, identity_id, null::bigint,
		'Terima kasih. Seberapa puas Anda dengan layanan kami? Balas 1-5 (5 = sangat puas).'
		|| E'\n' || 'Thank you. How satisfied are you? Reply 1-5.', now() from c1$$,
	'the question is queued on the same way, Indonesian first, then English');
select results_eq($$select conversation_id, investor_id, asked_at, score, answered_at from linbat.satisfaction$$,
	$$select c.id, c.investor_id, now(), null::smallint, null::timestamptz
		from linbat.conversation c where c.id = (select conversation_id from c1)$$,
	'and recorded as asked, not answered');
select is(linbat.resolve_conversation((select conversation_id from c1), pg_temp.sari()), 0,
	'resolving it again (a double submit)');
select is(pg_temp.asked((select conversation_id from c1)), 1::bigint, 'asks nothing more');

-- A bare digit is the answer: recorded, not routed ------------------------------
create temp table a1 as select * from pg_temp.write(1, '  4 ');
select is((select conversation_id from a1), (select conversation_id from c1),
	'the answer joins the resolved conversation');
select is((select status from linbat.conversation where id = (select conversation_id from c1)), 'resolved',
	'which stays resolved');
select is((select count(*) from linbat.conversation c join c1 on c.investor_id = (select investor_id
		from linbat.conversation where id = c1.conversation_id)), 1::bigint,
	'no conversation is opened for it');
select is((select count(*) from linbat.conversation where status <> 'resolved'), 0::bigint,
	'nothing waits for an operator');
select is((select count(*) from linbat.message where direction = 'out'
		and conversation_id = (select conversation_id from c1)), 1::bigint,
	'no acknowledgement or other answer is sent');
select results_eq($$select score, answered_at from linbat.satisfaction
		where conversation_id = (select conversation_id from c1)$$,
	$$values (4::smallint, now())$$, 'the score is 4, answered now');
select is((select open_count from linbat.operator where id = pg_temp.sari()), 0,
	'Sari''s load stays empty');

-- Once answered, a digit is an ordinary message ----------------------------------
create temp table a2 as select * from pg_temp.write(1, '5');
select isnt((select conversation_id from a2), (select conversation_id from c1),
	'a second digit opens a new conversation');
select is((select assigned_operator from linbat.conversation where id = (select conversation_id from a2)),
	pg_temp.sari(), 'and is routed as usual');
select is((select score from linbat.satisfaction where conversation_id = (select conversation_id from c1)),
	4::smallint, 'the recorded score stays 4');
select is((select count(*) from linbat.satisfaction), 1::bigint, 'the open one has no question yet');

-- Anything but a bare digit 1-5 is routed, and the question stays open -----------
select linbat.resolve_conversation((select conversation_id from a2), pg_temp.sari()) as _ \gset
select is(pg_temp.asked((select conversation_id from a2)), 1::bigint, 'the next resolve asks again');
create temp table o1 as select * from pg_temp.write(1, '6');
select isnt((select conversation_id from o1), (select conversation_id from a2), '6 is not a score');
select linbat.resolve_conversation((select conversation_id from o1), null) as _ \gset
create temp table o2 as select * from pg_temp.write(1, '4 bintang');
select isnt((select conversation_id from o2), (select conversation_id from o1),
	'nor is "4 bintang": a new conversation');
select is((select status from linbat.conversation where id = (select conversation_id from o2)), 'open',
	'that is open');
create temp table o3 as select * from pg_temp.write(1, '3');
select is((select conversation_id from o3), (select conversation_id from o2),
	'while a conversation is open, a digit joins it');
select is((select count(*) from linbat.satisfaction where score is not null), 1::bigint,
	'and is not taken for a score');

-- The question expires after 3 days ------------------------------------------------
select linbat.resolve_conversation((select conversation_id from o2), pg_temp.sari()) as _ \gset
update linbat.satisfaction set asked_at = now() - interval '3 days 1 minute' where score is null;
create temp table late as select * from pg_temp.write(1, '5');
select isnt((select conversation_id from late), (select conversation_id from o2),
	'a digit more than 3 days after the question opens a new conversation');
select is((select score from linbat.satisfaction where conversation_id = (select conversation_id from o2)),
	null, 'and the old question stays unanswered');
select linbat.resolve_conversation((select conversation_id from late), pg_temp.sari()) as _ \gset
update linbat.satisfaction set asked_at = now() - interval '2 days 23 hours'
where conversation_id = (select conversation_id from late);
create temp table in_time as select * from pg_temp.write(1, '2');
select is((select conversation_id from in_time), (select conversation_id from late),
	'within 3 days it is the answer');

-- Who is not asked -------------------------------------------------------------------
create temp table q2 as select * from pg_temp.write(2, 'Halo');
update linbat.identity set opted_out_at = now() where id = (select identity_id from q2);
select linbat.resolve_conversation((select conversation_id from q2), pg_temp.sari()) as _ \gset
select is(pg_temp.asked((select conversation_id from q2)), 0::bigint,
	'an investor who opted out is not asked');
insert into linbat.investor (display_name) values ('Tanpa pesan');
insert into linbat.conversation (investor_id) select max(id) from linbat.investor;
create temp table silent as select max(id) as id from linbat.conversation;
select linbat.resolve_conversation((select id from silent), null) as _ \gset
select is((select count(*) from linbat.satisfaction where conversation_id = (select id from silent)),
	0::bigint, 'nor one who never wrote in the conversation (no way to ask)');
create temp table kw as select * from pg_temp.write(3, 'BERHENTI');
select is((select status from linbat.conversation where id = (select conversation_id from kw)), 'resolved',
	'a keyword alone is answered and closed by itself');
select is(pg_temp.asked((select conversation_id from kw)), 0::bigint, 'without a question');

-- The table's own rules -----------------------------------------------------------------
select throws_like($$update linbat.satisfaction set score = 6
		where conversation_id = (select conversation_id from late)$$,
	'%satisfaction_score_check%', 'a score above 5 is refused');
select throws_like($$update linbat.satisfaction set score = 0
		where conversation_id = (select conversation_id from late)$$,
	'%satisfaction_score_check%', 'and below 1');
select throws_like($$update linbat.satisfaction set answered_at = null
		where conversation_id = (select conversation_id from late)$$,
	'%"satisfaction_answered"', 'a score comes with the time it was given');

select * from finish();
rollback;
