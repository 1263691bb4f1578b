-- linbat.ingest_inbound: one call stores an inbound message with its identity,
-- investor and open conversation, once, whatever the provider repeats.
begin;
select plan(44);

select linbat.channel_register('wa-in', 'whatsapp') as _ \gset
select linbat.channel_register('wa-in2', 'whatsapp') as _ \gset
select linbat.channel_register('mail-in', 'email') as _ \gset
select linbat.channel_register('test-in', 'test') as _ \gset

-- a new sender
create temp table first as
select * from linbat.ingest_inbound('wa-in', 'whatsapp', ' +6281299000001 ', 'wamid.A1', 'Halo pak',
	'text', '{"wa":{"type":"text"}}', '2025-03-01 09:00+08', 'Budi Santoso');
select is((select duplicate from first), false, 'a new message is not a duplicate');
select is((select count(*) from linbat.identity where address = '+6281299000001'), 1::bigint,
	'the first message makes one identity, address trimmed');
select is((select count(*) from linbat.investor where id = (select investor_id from first)), 1::bigint,
	'and one investor');
select is((select investor_id from linbat.identity where address = '+6281299000001'),
	(select investor_id from first), 'the identity belongs to the investor returned');
select is((select count(*) from linbat.conversation where investor_id = (select investor_id from first)),
	1::bigint, 'and one conversation');
select is((select status from linbat.conversation where id = (select conversation_id from first)), 'open',
	'the conversation is open');
select ok((select queued_since is not null and assigned_operator is null from linbat.conversation
	where id = (select conversation_id from first)), 'and waits for an operator');
select results_eq($$select m.conversation_id, m.direction, m.status, m.channel_instance, m.provider_id,
		m.content_type, m.body, m.meta, m.received_at, i.address
	from linbat.message m join linbat.identity i on i.id = m.identity_id
	where m.id = (select message_id from first)$$,
	$$values ((select conversation_id from first), 'in', 'received', 'wa-in', 'wamid.A1', 'text',
		'Halo pak', '{"wa":{"type":"text"}}'::jsonb, '2025-03-01 09:00+08'::timestamptz, '+6281299000001')$$,
	'the message is stored as received, with its provider id, body, meta and time');
select is((select display_name from linbat.investor where id = (select investor_id from first)),
	'Budi Santoso', 'the profile name becomes the display name');
select is((select last_inbound_at from linbat.identity where address = '+6281299000001'),
	'2025-03-01 09:00+08'::timestamptz, 'the identity remembers when the investor last wrote');
select results_eq($$select last_instance, last_identity_id, last_message_at from linbat.conversation
	where id = (select conversation_id from first)$$,
	$$select 'wa-in'::text, id, '2025-03-01 09:00+08'::timestamptz from linbat.identity
	where address = '+6281299000001'$$, 'the conversation remembers the way back');

-- the same webhook again
create temp table again as
select * from linbat.ingest_inbound('wa-in', 'whatsapp', '+6281299000001', 'wamid.A1', 'changed',
	'image', '{}', '2025-03-01 10:00+08', 'Someone Else');
select results_eq('select message_id, conversation_id, investor_id, true from again',
	'select message_id, conversation_id, investor_id, true from first',
	'a repeated provider id returns the first ids with duplicate = true');
select is((select count(*) from linbat.message where provider_id = 'wamid.A1'), 1::bigint,
	'and stores no second row');
select is((select body from linbat.message where provider_id = 'wamid.A1'), 'Halo pak',
	'and changes nothing');
select is((select last_inbound_at from linbat.identity where address = '+6281299000001'),
	'2025-03-01 09:00+08'::timestamptz, 'not even the identity');

-- a second message of the same sender
create temp table second as
select * from linbat.ingest_inbound('wa-in2', 'whatsapp', '+6281299000001', 'wamid.A2', 'NIB saya',
	null, null, '2025-03-01 09:05+08', 'Budi S.');
select is((select conversation_id from second), (select conversation_id from first),
	'a second message joins the open conversation');
select is((select investor_id from second), (select investor_id from first), 'of the same investor');
select is((select count(*) from linbat.message where conversation_id = (select conversation_id from first)
		and direction = 'in'), 2::bigint, 'which now has two messages from the investor');
select is((select content_type || ' ' || meta::text from linbat.message where provider_id = 'wamid.A2'),
	'text {}', 'content type and meta default to text and {}');
select is((select display_name from linbat.investor where id = (select investor_id from first)),
	'Budi Santoso', 'a display name once set is kept');
select is((select last_instance from linbat.conversation where id = (select conversation_id from first)),
	'wa-in2', 'a reply will leave on the number the investor last wrote to');

-- provider ids are unique per instance only
select is((select duplicate from linbat.ingest_inbound('wa-in2', 'whatsapp', '+6281299000001', 'wamid.A1',
	'x', 'text', '{}', '2025-03-01 09:06+08', null)), false,
	'the same provider id on another instance is another message');

-- late webhooks do not move things backwards
select lives_ok($$select linbat.ingest_inbound('wa-in', 'whatsapp', '+6281299000001', 'wamid.A0', 'old',
	'text', '{}', '2025-03-01 08:00+08', null)$$, 'a late message is stored');
select is((select last_inbound_at from linbat.identity where address = '+6281299000001'),
	'2025-03-01 09:06+08'::timestamptz, 'but does not move the 24 h window back');
select is((select last_instance from linbat.conversation where id = (select conversation_id from first)),
	'wa-in2', 'nor the way back');
create temp table future as
select * from linbat.ingest_inbound('wa-in', 'whatsapp', '+6281299000001', 'wamid.F', 'future', 'text',
	'{}', now() + interval '1 day', null);
select is((select received_at from linbat.message where id = (select message_id from future)), now(),
	'a provider clock in the future is clamped to now');

-- email addresses are lower-cased; a second identity of the same investor
create temp table mail as
select * from linbat.ingest_inbound('mail-in', 'email', ' Siti.Aminah@Contoh.CO.ID ', '<a1@contoh.co.id>',
	'Selamat pagi', 'text', '{}', now(), null);
select is((select address from linbat.identity i join linbat.message m on m.identity_id = i.id
	where m.id = (select message_id from mail)), 'siti.aminah@contoh.co.id', 'an email address is lower-cased');
select is((select investor_id from linbat.ingest_inbound('mail-in', 'email', 'siti.aminah@contoh.co.id',
	'<a2@contoh.co.id>', 'lagi', 'text', '{}', now(), null)), (select investor_id from mail),
	'and found again whatever its case');
select is((select display_name from linbat.investor where id = (select investor_id from mail)), null,
	'without a profile name there is no display name');
insert into linbat.identity (investor_id, kind, address)
select investor_id, 'whatsapp', '+6281299000002' from mail;
select is((select conversation_id from linbat.ingest_inbound('wa-in', 'whatsapp', '+6281299000002', 'wamid.S1',
	'dari WA', 'text', '{}', now(), null)), (select conversation_id from mail),
	'another identity of the same investor joins the same open conversation');

-- a resolved conversation is not reused
update linbat.conversation set status = 'resolved', resolved_at = now()
where id = (select conversation_id from first);
create temp table after_resolve as
select * from linbat.ingest_inbound('wa-in', 'whatsapp', '+6281299000001', 'wamid.A3', 'satu lagi',
	'text', '{}', now(), null);
select isnt((select conversation_id from after_resolve), (select conversation_id from first),
	'after resolution a new message opens a new conversation');
select is((select status from linbat.conversation where id = (select conversation_id from first)), 'resolved',
	'the resolved one stays resolved');
select is((select investor_id from after_resolve), (select investor_id from first), 'for the same investor');

-- a test instance takes any kind
select is((select duplicate from linbat.ingest_inbound('test-in', 'sms', '+6281299000009', 't1', 'x',
	'text', '{}', now(), null)), false, 'a test instance takes messages of any kind');

-- bad input is refused with 22023 and a message that names it
select throws_ok($$select linbat.ingest_inbound('wa-in', 'fax', '+6281299000001', 'x1', 'x', 'text', '{}', now(), null)$$,
	'22023', 'unknown channel kind ''fax''', 'an unknown kind is refused');
select throws_ok($$select linbat.ingest_inbound('nope', 'whatsapp', '+6281299000001', 'x1', 'x', 'text', '{}', now(), null)$$,
	'22023', 'unknown channel instance ''nope''', 'an unknown instance is refused');
select throws_ok($$select linbat.ingest_inbound('mail-in', 'whatsapp', '+6281299000001', 'x1', 'x', 'text', '{}', now(), null)$$,
	'22023', 'channel instance ''mail-in'' is email, not whatsapp', 'a kind the instance does not carry is refused');
select throws_ok($$select linbat.ingest_inbound('wa-in', 'whatsapp', '081299000001', 'x1', 'x', 'text', '{}', now(), null)$$,
	'22023', 'invalid whatsapp address ''081299000001'': expected E.164 such as +6281234567890',
	'a phone not in E.164 is refused');
select throws_ok($$select linbat.ingest_inbound('mail-in', 'email', 'siti at contoh', 'x1', 'x', 'text', '{}', now(), null)$$,
	'22023', 'invalid email address ''siti at contoh''', 'an email address without @ is refused');
select throws_ok($$select linbat.ingest_inbound('wa-in', 'whatsapp', null, 'x1', 'x', 'text', '{}', now(), null)$$,
	'22023', null, 'a missing address is refused');
select throws_ok($$select linbat.ingest_inbound('wa-in', 'whatsapp', '+6281299000001', '', 'x', 'text', '{}', now(), null)$$,
	'22023', 'inbound message on ''wa-in'' has no provider id', 'a message without a provider id is refused');
select throws_ok($$select linbat.ingest_inbound('wa-in', 'whatsapp', '+6281299000001', 'x1', 'x', 'gif', '{}', now(), null)$$,
	'22023', 'unknown inbound content type ''gif''', 'an unknown content type is refused');
select throws_ok($$select linbat.ingest_inbound('wa-in', 'whatsapp', '+6281299000001', 'x1', 'x', 'note', '{}', now(), null)$$,
	'22023', 'unknown inbound content type ''note''', 'an investor cannot write an internal note');
select is((select count(*) from linbat.identity where address in ('081299000001', 'siti at contoh')),
	0::bigint, 'a refused message leaves nothing behind');

select * from finish();
rollback;
