-- The satisfaction survey's table: one row per conversation asked, a score
-- of 1 to 5 once answered.
begin;
select plan(8);

select has_table('linbat', 'satisfaction', 'the survey has its table');
select col_is_pk('linbat', 'satisfaction', 'conversation_id', 'one question per conversation');
select fk_ok('linbat', 'satisfaction', 'conversation_id', 'linbat', 'conversation', 'id',
	'for a conversation that exists');
select columns_are('linbat', 'satisfaction',
	array['conversation_id', 'investor_id', 'asked_at', 'score', 'answered_at'],
	'the columns reports rely on');

select linbat.channel_register('wa-sat', 'whatsapp') as _ \gset
create temp table c as
select * from linbat.ingest_inbound('wa-sat', 'whatsapp', '+6281299500001', 'wamid.sat0', 'Halo', 'text',
	'{}', now(), null);
insert into linbat.satisfaction (conversation_id, investor_id)
select conversation_id, investor_id from c;
select throws_like($$update linbat.satisfaction set score = 6, answered_at = now()$$,
	'%satisfaction_score_check%', 'a score above 5 is refused');
select throws_like($$update linbat.satisfaction set score = 0, answered_at = now()$$,
	'%satisfaction_score_check%', 'and below 1');
select throws_like($$update linbat.satisfaction set score = 4$$,
	'%"satisfaction_answered"', 'a score comes with the time it was given');
select lives_ok($$update linbat.satisfaction set score = 5, answered_at = now()$$,
	'a score of 5 with its time is kept');

select * from finish();
rollback;
