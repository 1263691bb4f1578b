-- Constraints of the core schema: the rules hold in the database whoever writes.
begin;
select plan(52);

select has_table('linbat', t, 'table linbat.' || t || ' exists')
from unnest(array['investor', 'identity', 'channel_instance', 'conversation', 'message',
	'attachment', 'operator', 'session', 'api_token', 'audit_log', 'status_early']) as t;

-- investor: NIB, scale, KBLI, fallback order, language
select lives_ok($$insert into linbat.investor (nib) values ('9120001234567')$$,
	'a 13-digit NIB is accepted');
select throws_like($$insert into linbat.investor (nib) values ('912000123456')$$,
	'%"investor_nib_check"', 'a 12-digit NIB is refused');
select throws_like($$insert into linbat.investor (nib) values ('912000123456a')$$,
	'%"investor_nib_check"', 'a NIB with a letter is refused');
select throws_like($$insert into linbat.investor (nib) values (' 9120001234567')$$,
	'%"investor_nib_check"', 'a NIB with a space is refused');
select throws_ok($$insert into linbat.investor (nib) values ('9120001234567')$$,
	'23505', null, 'a NIB belongs to one investor');
select lives_ok($$insert into linbat.investor (nib) values (null), (null)$$,
	'many investors may have no NIB yet');
select throws_like($$insert into linbat.investor (scale) values ('raksasa')$$,
	'%"investor_scale_check"', 'scale is mikro, kecil, menengah or besar');
select lives_ok($$insert into linbat.investor (kbli, kbli_version) values ('{01111,46100}', '2020')$$,
	'5-digit KBLI codes with their edition are accepted');
select throws_like($$insert into linbat.investor (kbli, kbli_version) values ('{0111}', '2020')$$,
	'%"investor_kbli_check"', 'a KBLI code has 5 digits');
select throws_like($$insert into linbat.investor (kbli) values ('{01111}')$$,
	'%"investor_kbli_version"', 'KBLI codes need their edition');
select throws_like($$insert into linbat.investor (fallback_order) values ('{sms,sms}')$$,
	'%"investor_fallback_order_check"', 'a fallback order names each channel once');
select throws_like($$insert into linbat.investor (fallback_order) values ('{fax}')$$,
	'%"investor_fallback_order_check"', 'a fallback order names only known channels');
select throws_like($$insert into linbat.investor (preferred_channel) values ('telegram')$$,
	'%"investor_preferred_channel_check"', 'the preferred channel is a known one');
select throws_like($$insert into linbat.investor (language) values ('jv')$$,
	'%"investor_language_check"', 'language is id or en');
select is((select language || ' ' || fallback_order::text from linbat.investor where nib = '9120001234567'),
	'id {whatsapp,sms,email}', 'an investor speaks Indonesian and falls back WhatsApp, SMS, email by default');

-- identity: normalised addresses, one investor per (kind, address)
insert into linbat.investor (nib) values ('9120001234568');
\set inv '(select id from linbat.investor where nib = ''9120001234568'')'
select lives_ok($$insert into linbat.identity (investor_id, kind, address)
	values ($$ || :'inv' || $$, 'whatsapp', '+6281234500001')$$, 'an E.164 WhatsApp address is accepted');
select throws_ok($$insert into linbat.identity (investor_id, kind, address)
	values ($$ || :'inv' || $$, 'whatsapp', '+6281234500001')$$,
	'23505', null, 'a (kind, address) pair belongs to one identity');
select lives_ok($$insert into linbat.identity (investor_id, kind, address)
	values ($$ || :'inv' || $$, 'sms', '+6281234500001')$$, 'the same number may be an SMS identity too');
select throws_like($$insert into linbat.identity (investor_id, kind, address)
	values ($$ || :'inv' || $$, 'sms', '081234500002')$$,
	'%"identity_address"', 'a phone is stored in E.164');
select throws_like($$insert into linbat.identity (investor_id, kind, address)
	values ($$ || :'inv' || $$, 'whatsapp', '6281234500002')$$,
	'%"identity_address"', 'E.164 starts with +');
select throws_like($$insert into linbat.identity (investor_id, kind, address)
	values ($$ || :'inv' || $$, 'sms', '+0281234500002')$$,
	'%"identity_address"', 'a country code does not start with 0');
select throws_like($$insert into linbat.identity (investor_id, kind, address)
	values ($$ || :'inv' || $$, 'email', 'Budi@example.com')$$,
	'%"identity_address"', 'an email address is lower-case');
select throws_like($$insert into linbat.identity (investor_id, kind, address)
	values ($$ || :'inv' || $$, 'email', 'budi.example.com')$$,
	'%"identity_address"', 'an email address has an @');
select throws_like($$insert into linbat.identity (investor_id, kind, address)
	values ($$ || :'inv' || $$, 'fax', '+6281234500002')$$,
	'%"identity_kind_check"', 'kind is whatsapp, sms or email');
select throws_ok($$insert into linbat.identity (investor_id, kind, address)
	values (-1, 'email', 'x@example.com')$$, '23503', null, 'an identity belongs to an existing investor');

-- conversation: at most one that is not resolved, per investor
insert into linbat.conversation (investor_id) select id from linbat.investor where nib = '9120001234568';
select throws_ok($$insert into linbat.conversation (investor_id, status) values ($$ || :'inv' || $$, 'pending')$$,
	'23505', null, 'a second unresolved conversation of one investor is refused');
select throws_like($$update linbat.conversation set status = 'resolved' where investor_id = $$ || :'inv',
	'%"conversation_resolved_at"', 'a resolved conversation says when');
update linbat.conversation set status = 'resolved', resolved_at = now() where investor_id = :inv;
select lives_ok($$insert into linbat.conversation (investor_id) values ($$ || :'inv' || $$)$$,
	'once resolved, a new conversation may open');
select matches((select email_token from linbat.conversation where investor_id = :inv and status = 'open'),
	'^[0-9a-f]{32}$', 'a conversation gets a random email threading token');

-- message: direction and status agree, a message has a peer and a way
insert into linbat.channel_instance (name, kind) values ('wa-schema', 'whatsapp');
select throws_like($$insert into linbat.message (conversation_id, direction, identity_id, channel_instance, status)
	select c.id, 'in', i.id, 'wa-schema', 'queued' from linbat.conversation c, linbat.identity i
	where c.investor_id = $$ || :'inv' || $$ and c.status = 'open' and i.investor_id = c.investor_id limit 1$$,
	'%"message_direction_status"', 'an inbound message is not queued');
select throws_like($$insert into linbat.message (conversation_id, direction, identity_id, channel_instance, status)
	select c.id, 'out', null, 'wa-schema', 'queued' from linbat.conversation c
	where c.investor_id = $$ || :'inv' || $$ and c.status = 'open'$$,
	'%"message_peer"', 'an outbound message has an identity to go to');

-- operator, session
select throws_like($$insert into linbat.operator (name, email) values ('Ani', 'Ani@example.com')$$,
	'%"operator_email_check"', 'an operator email is lower-case');
select throws_like($$insert into linbat.operator (name, email, capacity) values ('Ani', 'ani@example.com', -1)$$,
	'%"operator_capacity_check"', 'capacity is not negative');
select throws_like($$insert into linbat.operator (name, email, role) values ('Ani', 'ani@example.com', 'root')$$,
	'%"operator_role_check"', 'role is operator, manager or admin');
insert into linbat.operator (name, email) values ('Ani', 'ani@example.com');
select is((select presence || ' ' || capacity || ' ' || role from linbat.operator where email = 'ani@example.com'),
	'offline 5 operator', 'a new operator is an offline operator with capacity 5');
select throws_like($$insert into linbat.session (token_hash, operator_id, csrf_token, expires_at)
	select 'secret-token', id, 'c', now() from linbat.operator where email = 'ani@example.com'$$,
	'%"session_token_hash_check"', 'a session is stored by the hex SHA-256 of its token, never the token');

-- channel instances
select lives_ok($$select linbat.channel_register('wa-kantor', 'whatsapp')$$, 'channel_register adds an instance');
select lives_ok($$select linbat.channel_register('wa-kantor', 'test')$$, 'channel_register again updates it');
select is((select kind from linbat.channel_instance where name = 'wa-kantor'), 'test',
	'the last registration wins');
select throws_ok($$select linbat.channel_register('wa2', 'telegram')$$, '22023',
	'unknown channel kind ''telegram'' for instance ''wa2''', 'an unknown kind is refused by name');
select throws_ok($$select linbat.channel_register('wa/2', 'whatsapp')$$, '22023', null,
	'an instance name is safe in a URL path');

select * from finish();
rollback;
