-- 0007_email: threading of inbound mail (token, then our Message-ID, then the
-- sender), the outbound threading meta, auto-replies stored but not routed,
-- bounces failing the original, and the IMAP position per UIDVALIDITY.
begin;
select plan(14);

select linbat.channel_register('mail-e', 'email') as _ \gset
-- a poll round begins by telling the database the mailbox's UIDVALIDITY
select linbat.email_imap_begin('mail-e', 7) as _ \gset

create temp table q1 as
select * from linbat.ingest_email('mail-e', 'Budi@PT.example', 'q1@pt.example', 'Halo',
	'{"subject": "Tanya LKPM"}', null, 'Budi', '["lkpm@office.example"]', '[]', false, '\x4142',
	'[{"filename": "a.txt", "mime_type": "text/plain", "data": "aGVsbG8="}]', 7, 1);
select is((select threaded_by from q1), 'address', 'a first mail is threaded by its sender');
select is((select count(*) from linbat.attachment where message_id = (select message_id from q1)), 2::bigint,
	'the original and the attachment are kept');
select is((select last_uid from linbat.email_imap_state where instance = 'mail-e'), 1::bigint,
	'the UID is recorded in the same transaction');

select linbat.enqueue_reply((select conversation_id from q1), 'Balasan', null) as reply \gset
select is((select meta->>'in_reply_to' from linbat.message where id = :reply), 'q1@pt.example',
	'a reply on e-mail carries the investor''s Message-ID');
select is((select meta->>'email_token' from linbat.message where id = :reply),
	(select email_token from linbat.conversation where id = (select conversation_id from q1)),
	'and the conversation''s token');
update linbat.message set provider_id = 'linbat.' || :reply || '.ab@office.example', status = 'sent'
where id = :reply;

create temp table q2 as
select * from linbat.ingest_email('mail-e', 'colleague@pt.example', 'q2@pt.example', 'Saya juga',
	'{}', null, null, (select jsonb_build_array('lkpm+' || email_token || '@office.example')
		from linbat.conversation where id = (select conversation_id from q1)), '[]', false, null, '[]', 7, 2);
select is((select threaded_by from q2), 'token', 'a recipient with the token threads first');
select is((select conversation_id from q2), (select conversation_id from q1), 'into the same conversation');

create temp table q3 as
select * from linbat.ingest_email('mail-e', 'third@pt.example', 'q3@pt.example', 'Lagi', '{}', null, null,
	'[]', jsonb_build_array('x@y', 'linbat.' || :reply || '.ab@office.example'), false, null, '[]', 7, 3);
select is((select threaded_by from q3), 'message_id', 'our Message-ID in References threads next');
select is((select conversation_id from q3), (select conversation_id from q1), 'into the same conversation');

create temp table q4 as
select * from linbat.ingest_email('mail-e', 'ooo@lain.example', 'q4@lain.example', 'Cuti',
	'{"auto_submitted": "auto-replied"}', null, null, '[]', '[]', true, null, '[]', 7, 4);
select is((select status from linbat.conversation where id = (select conversation_id from q4)), 'resolved',
	'an auto-reply from a stranger is kept in a resolved conversation, not queued');
select is((select count(*) from linbat.message where conversation_id = (select conversation_id from q4)
	and direction = 'out'), 0::bigint, 'and nobody answers it');

select is(linbat.email_bounce('mail-e', '<linbat.' || :reply || '.ab@office.example>', '5.1.1', 'no such user',
	7, 5), :reply::bigint, 'a bounce finds our message by its Message-ID');
select is((select status || ' ' || error_code from linbat.message where id = :reply), 'failed 5.1.1',
	'and fails it');

select is(linbat.email_imap_begin('mail-e', 8), 0::bigint, 'a new UIDVALIDITY starts again at UID 0');

select * from finish();
rollback;
