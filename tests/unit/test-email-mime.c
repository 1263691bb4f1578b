/*
 * test-email-mime.c: unit tests of the email adapter's MIME layer
 * (channels/email-mime.c): the mail we build (CRLF only, text/plain UTF-8
 * quoted-printable, threading and automation headers) read back by GMime's
 * parser, and the parser on ISO-8859-1, UTF-8 base64, HTML-only mail, RFC 2047
 * headers, recipients and references, attachments over the cap, and DSNs;
 * and inputs the fuzzer found wrong (empty parts have no data pointer at
 * all), kept so they stay right. No network, no database.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "email.h"
#include "util.h"

/* Parse a mail given as a string; fails the test if it does not parse. */
static void
parse(const char *raw, size_t max_attachment, struct email_parsed *p)
{
	char *cause = NULL;

	assert_int_equal(email_mime_parse(raw, strlen(raw), max_attachment, p, &cause), 0);
	assert_null(cause);
}

/* Whether a JSON array of strings holds s. */
static int
has(json_t *a, const char *s)
{
	size_t i;
	json_t *v;

	json_array_foreach(a, i, v) {
		if (strcmp(json_string_value(v), s) == 0)
			return 1;
	}
	return 0;
}

/* What we send: CRLF only, UTF-8 QP text, threading headers; and it reads back. */
static void
test_build_reply(void **state)
{
	json_t *refs = json_pack("[s,s]", "a@x", "q1@pt.example");
	struct email_out o = { "lkpm@dpmptsp.example.go.id", "budi@pt.example", "lkpm+abc123@dpmptsp.example.go.id",
		"linbat.7.ff@dpmptsp.example.go.id", "Re: Laporan triwulan — LKPM",
		"Selamat pagi, Pak. Batas waktunya 15 Oktober (WITA) ✓.\nTerima kasih.", NULL, "q1@pt.example", refs,
		NULL, NULL };
	char *raw = email_mime_build(&o), *p;
	struct email_parsed m;

	(void)state;
	for (p = raw; (p = strchr(p, '\n')) != NULL; p++)
		assert_true(p > raw && p[-1] == '\r');
	assert_non_null(strstr(raw, "Content-Type: text/plain; charset=utf-8\r\n"));
	assert_non_null(strstr(raw, "Content-Transfer-Encoding: quoted-printable\r\n"));
	assert_non_null(strstr(raw, "Message-Id: <linbat.7.ff@dpmptsp.example.go.id>\r\n"));
	assert_non_null(strstr(raw, "In-Reply-To: <q1@pt.example>\r\n"));
	assert_non_null(strstr(raw, "References: <a@x> <q1@pt.example>\r\n"));
	assert_non_null(strstr(raw, "Reply-To: lkpm+abc123@dpmptsp.example.go.id\r\n"));
	assert_null(strstr(raw, "Auto-Submitted"));
	assert_null(strstr(raw, "List-Unsubscribe"));
	parse(raw, 1024, &m);
	assert_string_equal(m.message_id, "linbat.7.ff@dpmptsp.example.go.id");
	assert_string_equal(m.subject, "Re: Laporan triwulan — LKPM");
	assert_string_equal(m.body, "Selamat pagi, Pak. Batas waktunya 15 Oktober (WITA) ✓.\nTerima kasih.");
	assert_true(has(m.references, "q1@pt.example"));
	assert_null(m.auto_submitted);
	email_parsed_free(&m);
	free(raw);
	json_decref(refs);
}

/* A reminder carries Auto-Submitted and List-Unsubscribe. */
static void
test_build_reminder(void **state)
{
	struct email_out o = { "lkpm@d.example", "budi@pt.example", NULL, "linbat.8.aa@d.example",
		"Pengingat LKPM / LKPM reminder", "Batas waktu LKPM: 15 Januari.", NULL, NULL, NULL, "auto-generated",
		"<mailto:lkpm+0123456789abcdef0123456789abcdef@dpmptsp.example.go.id?subject=BERHENTI>" };
	char *raw = email_mime_build(&o);
	struct email_parsed m;

	(void)state;
	assert_non_null(strstr(raw, "Auto-Submitted: auto-generated\r\n"));
	assert_non_null(strstr(raw, "List-Unsubscribe: <mailto:lkpm+0123456789abcdef0123456789abcdef"
				    "@dpmptsp.example.go.id?subject=BERHENTI>\r\n"));
	assert_null(strstr(raw, "Reply-To"));
	assert_null(strstr(raw, "In-Reply-To"));
	parse(raw, 0, &m);
	assert_string_equal(m.auto_submitted, "auto-generated");
	email_parsed_free(&m);
	free(raw);
}

/* ISO-8859-1 quoted-printable, with an RFC 2047 subject and sender name. */
static void
test_parse_latin1(void **state)
{
	struct email_parsed m;

	(void)state;
	parse("From: =?iso-8859-1?q?Jos=E9_Mu=F1oz?= <Jose@PT.Example>\r\n"
	      "To: LKPM <lkpm+0123456789abcdef@d.example>, other@d.example\r\n"
	      "Cc: cc@d.example\r\nDelivered-To: lkpm+tok@d.example\r\n"
	      "Subject: =?iso-8859-1?q?R=E9ponse_=E0_LKPM?=\r\nMessage-ID: <m1@pt.example>\r\n"
	      "In-Reply-To: <linbat.5.ab@d.example>\r\nReferences: <r0@pt.example> <linbat.5.ab@d.example>\r\n"
	      "Date: Sat, 28 Nov 2026 10:00:00 +0800\r\n"
	      "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"
	      "Content-Transfer-Encoding: quoted-printable\r\n\r\nCaf=E9 cr=E8me, =A9 2026.\r\n",
	    0, &m);
	assert_string_equal(m.body, "Café crème, © 2026.");
	assert_string_equal(m.subject, "Réponse à LKPM");
	assert_string_equal(m.from_name, "José Muñoz");
	assert_string_equal(m.from_addr, "jose@pt.example");
	assert_string_equal(m.message_id, "m1@pt.example");
	assert_int_equal(m.date, 1795831200LL);
	assert_true(has(m.recipients, "lkpm+0123456789abcdef@d.example"));
	assert_true(has(m.recipients, "cc@d.example"));
	assert_true(has(m.recipients, "lkpm+tok@d.example"));
	assert_true(has(m.references, "linbat.5.ab@d.example"));
	assert_true(has(m.references, "r0@pt.example"));
	assert_int_equal(m.is_dsn, 0);
	email_parsed_free(&m);
}

/* UTF-8 in base64, multipart/alternative: the text/plain part wins. */
static void
test_parse_base64_alternative(void **state)
{
	struct email_parsed m;

	(void)state;
	parse("From: a@b.example\r\nSubject: =?utf-8?b?TGFwb3JhbiDinJM=?=\r\nMIME-Version: 1.0\r\n"
	      "Auto-Submitted: auto-replied (vacation)\r\n"
	      "Content-Type: multipart/alternative; boundary=X\r\n\r\n--X\r\n"
	      "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
	      "TGFwb3JhbiBzdWRhaCBkaWtpcmltIOKckw==\r\n--X\r\n"
	      "Content-Type: text/html; charset=utf-8\r\n\r\n<p>HTML version</p>\r\n--X--\r\n",
	    0, &m);
	assert_string_equal(m.body, "Laporan sudah dikirim ✓");
	assert_string_equal(m.subject, "Laporan ✓");
	assert_string_equal(m.auto_submitted, "auto-replied");
	assert_null(m.message_id);
	assert_int_equal(json_array_size(m.attachments), 0);
	email_parsed_free(&m);
}

/* HTML only: tags, scripts and styles dropped, entities decoded, paragraphs kept. */
static void
test_parse_html_only(void **state)
{
	struct email_parsed m;
	char *t;

	(void)state;
	parse("From: a@b.example\r\nMIME-Version: 1.0\r\nContent-Type: text/html; charset=windows-1252\r\n"
	      "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
	      "<html><head><style>p { color: red }</style><script>alert(1)</script></head>\r\n"
	      "<body><p>Halo&nbsp;Bu,</p><p>NIB <b>1234567890123</b> &amp; =93KBLI=94 01111&#46;<br>Salam</p>"
	      "</body></html>\r\n",
	    0, &m);
	assert_string_equal(m.body, "Halo Bu,\n\nNIB 1234567890123 & \xe2\x80\x9c" "KBLI\xe2\x80\x9d 01111.\nSalam");
	email_parsed_free(&m);
	t = email_mime_html_text("a<br/>b &lt;c&gt; &#x41;&unknown; <unclosed");
	assert_string_equal(t, "a\nb <c> A&unknown;");
	free(t);
}

/* Attachments: kept in base64 under the cap, refused and noted over it. */
static void
test_parse_attachments(void **state)
{
	struct email_parsed m;
	json_t *small, *big;

	(void)state;
	parse("From: a@b.example\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=M\r\n\r\n"
	      "--M\r\nContent-Type: text/plain\r\n\r\nTerlampir.\r\n"
	      "--M\r\nContent-Type: text/csv\r\nContent-Disposition: attachment; filename=a.csv\r\n\r\nx,y\r\n"
	      "--M\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=b.pdf\r\n"
	      "Content-Transfer-Encoding: base64\r\n\r\nMDEyMzQ1Njc4OTAxMjM0NTY3ODk=\r\n--M--\r\n",
	    10, &m);
	assert_string_equal(m.body, "Terlampir.");
	assert_int_equal(json_array_size(m.attachments), 2);
	small = json_array_get(m.attachments, 0);
	big = json_array_get(m.attachments, 1);
	assert_string_equal(json_string_value(json_object_get(small, "filename")), "a.csv");
	assert_string_equal(json_string_value(json_object_get(small, "mime_type")), "text/csv");
	assert_string_equal(json_string_value(json_object_get(small, "data")), "eCx5");
	assert_int_equal(json_integer_value(json_object_get(big, "size")), 20);
	assert_null(json_object_get(big, "data"));
	assert_non_null(json_object_get(big, "refused"));
	assert_int_equal(m.refused, 1);
	email_parsed_free(&m);
}

/* A DSN: the original Message-ID from the returned headers, the status and diagnostic. */
static void
test_parse_dsn(void **state)
{
	struct email_parsed m;

	(void)state;
	parse("From: MAILER-DAEMON@mx.example\r\nMIME-Version: 1.0\r\n"
	      "Content-Type: multipart/report; report-type=delivery-status; boundary=B\r\n\r\n"
	      "--B\r\nContent-Type: text/plain\r\n\r\nNot delivered.\r\n"
	      "--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example\r\n\r\n"
	      "Final-Recipient: rfc822; x@pt.example\r\nAction: failed\r\nStatus: 5.1.1\r\n"
	      "Diagnostic-Code: smtp; 550 5.1.1 no such user\r\n"
	      "--B\r\nContent-Type: message/rfc822\r\n\r\nFrom: lkpm@d.example\r\n"
	      "Message-ID: <linbat.9.cd@d.example>\r\n\r\nBody\r\n--B--\r\n",
	    0, &m);
	assert_int_equal(m.is_dsn, 1);
	assert_string_equal(m.dsn_original, "linbat.9.cd@d.example");
	assert_string_equal(m.dsn_status, "5.1.1");
	assert_string_equal(m.dsn_text, "smtp; 550 5.1.1 no such user");
	email_parsed_free(&m);
}

/* A charset that lies (says utf-8, is Latin-1) still comes out as valid UTF-8. */
static void
test_parse_lying_charset(void **state)
{
	struct email_parsed m;

	(void)state;
	parse("From: a@b.example\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nCaf\xe9\r\n", 0, &m);
	assert_string_equal(m.body, "Café");
	email_parsed_free(&m);
}

/* A bounce whose returned headers and status parts are empty (fuzzer find). */
static void
test_dsn_empty_parts(void **state)
{
	struct email_parsed p;

	(void)state;
	parse("Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n"
		   "--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
		   "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
		   "--B--\r\n",
	    1024, &p);
	assert_true(p.is_dsn);
	assert_null(p.dsn_original);
	assert_null(p.dsn_status);
	assert_null(p.dsn_text);
	email_parsed_free(&p);
}

/* A mail whose only text part is empty: an empty body, not a missing one. */
static void
test_empty_text_part(void **state)
{
	struct email_parsed p;

	(void)state;
	parse("From: a@b.example\r\nSubject: kosong\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n", 1024, &p);
	assert_non_null(p.body);
	assert_string_equal(p.body, "");
	assert_string_equal(p.subject, "kosong");
	email_parsed_free(&p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_build_reply),
		cmocka_unit_test(test_build_reminder),
		cmocka_unit_test(test_parse_latin1),
		cmocka_unit_test(test_parse_base64_alternative),
		cmocka_unit_test(test_parse_html_only),
		cmocka_unit_test(test_parse_attachments),
		cmocka_unit_test(test_parse_dsn),
		cmocka_unit_test(test_parse_lying_charset),
		cmocka_unit_test(test_dsn_empty_parts),
		cmocka_unit_test(test_empty_text_part),
	};

	email_mime_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
