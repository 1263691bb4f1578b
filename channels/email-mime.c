/*
 * email-mime.c: mail as GMime sees it, without I/O. It builds the mails we
 * send (text/plain UTF-8 in quoted-printable, CRLF, our Message-ID and
 * threading headers) and parses the ones we receive: the text (text/plain
 * preferred, HTML made text when it is the only part) converted to UTF-8
 * from whatever charset it declares, RFC 2047 headers decoded, recipients and
 * references for threading, attachments under a size cap, and the original
 * Message-ID and status of a delivery status notification (bounce).
 */
#include "config.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <gmime/gmime.h>

#include "email.h"
#include "util.h"

/* What the walk over a mail's parts gathers. */
struct email_walk {
	struct email_parsed *p;
	size_t max_attachment;
	char *plain; /* the first text/plain body part */
	char *html;  /* the first text/html body part */
};

/* The recipient headers that may carry the conversation token. */
static const char *const email_mime_rcpt_headers[] = { "Delivered-To", "X-Original-To", "Envelope-To" };

/* HTML tags that end a line of text. */
static const char *const email_mime_block_tags[] = { "br", "p", "/p", "div", "/div", "tr", "/tr", "li",
	"h1", "h2", "h3", "/h1", "/h2", "/h3", "table", "/table", "blockquote", "/blockquote" };

/* HTML entities we turn into their characters (numeric ones are decoded too). */
static const struct {
	const char *name;
	const char *text;
} email_mime_entities[] = {
	{ "amp", "&" }, { "lt", "<" }, { "gt", ">" }, { "quot", "\"" }, { "apos", "'" }, { "nbsp", " " },
	{ "#39", "'" }, { "hellip", "..." }, { "ndash", "-" }, { "mdash", "-" },
};

void
email_mime_init(void)
{
	static int done;

	if (!done) {
		g_mime_init();
		done = 1;
	}
}

/* "<a> <b>" from a JSON array of ids, or NULL when empty (caller frees). */
static char *
email_mime_refs(json_t *refs)
{
	struct buf b;
	size_t i;
	json_t *v;

	buf_init(&b);
	json_array_foreach(refs, i, v) {
		if (json_is_string(v))
			buf_addf(&b, "%s<%s>", b.len > 0 ? " " : "", json_string_value(v));
	}
	if (b.len == 0) {
		buf_free(&b);
		return NULL;
	}
	return buf_take(&b);
}

/* The body: text/plain, or multipart/alternative with the HTML after it. */
static GMimeObject *
email_mime_body(const struct email_out *o)
{
	GMimeTextPart *text = g_mime_text_part_new_with_subtype("plain");
	GMimeTextPart *html;
	GMimeMultipart *alt;

	g_mime_text_part_set_text(text, o->body);
	g_mime_text_part_set_charset(text, "utf-8"); /* GMime would say us-ascii for ASCII text */
	g_mime_part_set_content_encoding(GMIME_PART(text), GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE);
	if (o->html == NULL)
		return GMIME_OBJECT(text);
	html = g_mime_text_part_new_with_subtype("html");
	g_mime_text_part_set_text(html, o->html);
	g_mime_text_part_set_charset(html, "utf-8");
	g_mime_part_set_content_encoding(GMIME_PART(html), GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE);
	alt = g_mime_multipart_new_with_subtype("alternative");
	g_mime_multipart_add(alt, GMIME_OBJECT(text));
	g_mime_multipart_add(alt, GMIME_OBJECT(html));
	g_object_unref(text);
	g_object_unref(html);
	return GMIME_OBJECT(alt);
}

/* Set a header given without brackets as "<id>". */
static void
email_mime_set_id_header(GMimeMessage *m, const char *name, const char *id)
{
	char *v;

	xasprintf(&v, "<%s>", id);
	g_mime_object_set_header(GMIME_OBJECT(m), name, v, NULL);
	free(v);
}

/* Set a structured header as written: GMime would fold a long one into RFC 2047 words. */
static void
email_mime_set_raw_header(GMimeMessage *m, const char *name, const char *value)
{
	GMimeHeaderList *list = g_mime_object_get_header_list(GMIME_OBJECT(m));
	char *raw;

	g_mime_object_set_header(GMIME_OBJECT(m), name, value, NULL);
	xasprintf(&raw, " %s\n", value);
	g_mime_header_set_raw_value(g_mime_header_list_get_header(list, name), raw);
	free(raw);
}

/* The threading and automation headers. */
static void
email_mime_headers(GMimeMessage *m, const struct email_out *o)
{
	char *refs;

	if (o->in_reply_to != NULL && *o->in_reply_to != '\0')
		email_mime_set_id_header(m, "In-Reply-To", o->in_reply_to);
	if (o->references != NULL && (refs = email_mime_refs(o->references)) != NULL) {
		g_mime_object_set_header(GMIME_OBJECT(m), "References", refs, NULL);
		free(refs);
	}
	if (o->auto_submitted != NULL)
		g_mime_object_set_header(GMIME_OBJECT(m), "Auto-Submitted", o->auto_submitted, NULL);
	if (o->list_unsubscribe != NULL)
		email_mime_set_raw_header(m, "List-Unsubscribe", o->list_unsubscribe);
}

char *
email_mime_build(const struct email_out *o)
{
	GMimeMessage *m = g_mime_message_new(TRUE);
	GMimeFormatOptions *fo = g_mime_format_options_new();
	GMimeObject *body = email_mime_body(o);
	GDateTime *now = g_date_time_new_now_utc();
	char *s, *out;

	g_mime_message_add_mailbox(m, GMIME_ADDRESS_TYPE_FROM, NULL, o->from);
	g_mime_message_add_mailbox(m, GMIME_ADDRESS_TYPE_TO, NULL, o->to);
	if (o->reply_to != NULL)
		g_mime_message_add_mailbox(m, GMIME_ADDRESS_TYPE_REPLY_TO, NULL, o->reply_to);
	g_mime_message_set_subject(m, o->subject, "utf-8");
	g_mime_message_set_message_id(m, o->message_id);
	g_mime_message_set_date(m, now);
	email_mime_headers(m, o);
	g_mime_message_set_mime_part(m, body);
	g_mime_format_options_set_newline_format(fo, GMIME_NEWLINE_FORMAT_DOS);
	s = g_mime_object_to_string(GMIME_OBJECT(m), fo);
	out = xstrdup(s);
	g_free(s);
	g_date_time_unref(now);
	g_object_unref(body);
	g_mime_format_options_free(fo);
	g_object_unref(m);
	return out;
}

/* Append the UTF-8 of code point c. */
static void
email_mime_utf8(struct buf *b, unsigned long c)
{
	char tmp[8];
	int n;

	if (c == 0 || c > 0x10ffff)
		c = 0xfffd;
	n = g_unichar_to_utf8((gunichar)c, tmp);
	buf_add(b, tmp, (size_t)n);
}

/* Decode the entity at s ("&...;"); returns the bytes used, 0 if not an entity. */
static size_t
email_mime_entity(const char *s, struct buf *b)
{
	const char *end = strchr(s, ';');
	size_t n, i;

	if (end == NULL || (n = (size_t)(end - s - 1)) == 0 || n > 10)
		return 0;
	for (i = 0; i < nitems(email_mime_entities); i++) {
		if (strlen(email_mime_entities[i].name) == n && strncmp(s + 1, email_mime_entities[i].name, n) == 0) {
			buf_adds(b, email_mime_entities[i].text);
			return n + 2;
		}
	}
	if (s[1] != '#')
		return 0;
	email_mime_utf8(b, s[2] == 'x' || s[2] == 'X' ? strtoul(s + 3, NULL, 16) : strtoul(s + 2, NULL, 10));
	return n + 2;
}

/* Handle the tag at s ("<...>"): a line break for block tags, skip script and style. */
static const char *
email_mime_tag(const char *s, struct buf *b)
{
	const char *end = strchr(s, '>');
	char name[16];
	size_t n = strcspn(s + 1, " \t\r\n/>"), i;

	if (s[1] == '/')
		n = 1 + strcspn(s + 2, " \t\r\n>");
	if (end == NULL)
		return s + strlen(s);
	if (n >= sizeof name)
		return end + 1;
	for (i = 0; i < n; i++)
		name[i] = (char)tolower((unsigned char)s[1 + i]);
	name[n] = '\0';
	if (strcmp(name, "script") == 0 || strcmp(name, "style") == 0) {
		const char *close = strcasestr(end, strcmp(name, "script") == 0 ? "</script" : "</style");
		return close != NULL ? email_mime_tag(close, b) : s + strlen(s);
	}
	for (i = 0; i < nitems(email_mime_block_tags); i++) {
		if (strcmp(name, email_mime_block_tags[i]) == 0)
			buf_adds(b, "\n");
	}
	return end + 1;
}

/* Collapse runs of blanks, trim each line, keep at most one empty line in a row. */
static char *
email_mime_tidy(const char *s)
{
	struct buf b;
	int space = 0, newlines = 0;

	buf_init(&b);
	for (; *s != '\0'; s++) {
		if (*s == '\n') {
			newlines++;
			space = 0;
		} else if (*s == ' ' || *s == '\t' || *s == '\r') {
			space = 1;
		} else {
			if (b.len > 0 && newlines > 0)
				buf_adds(&b, newlines > 1 ? "\n\n" : "\n");
			else if (b.len > 0 && space)
				buf_adds(&b, " ");
			buf_add(&b, s, 1);
			space = newlines = 0;
		}
	}
	return buf_take(&b);
}

char *
email_mime_html_text(const char *html)
{
	struct buf b;
	const char *s = html;
	char *out;
	size_t n;

	buf_init(&b);
	while (*s != '\0') {
		if (*s == '<')
			s = email_mime_tag(s, &b);
		else if (*s == '&' && (n = email_mime_entity(s, &b)) > 0)
			s += n;
		else if (*s == '\n' || *s == '\r')
			buf_adds(&b, " "), s++;
		else
			buf_add(&b, s++, 1);
	}
	out = email_mime_tidy(b.data != NULL ? b.data : "");
	buf_free(&b);
	return out;
}

/* Text that claims a charset it is not in: read it as ISO-8859-1 (caller frees). */
static char *
email_mime_utf8_fix(char *s)
{
	gchar *conv;
	char *out;

	if (g_utf8_validate(s, -1, NULL))
		return s;
	conv = g_convert(s, -1, "UTF-8", "ISO-8859-1", NULL, NULL, NULL);
	free(s);
	out = xstrdup(conv != NULL ? conv : "");
	g_free(conv);
	return out;
}

/* The decoded bytes of a part. */
static GByteArray *email_mime_part_bytes(GMimePart *);

/* The bytes of a part as a string (caller frees); an empty part has no data pointer at all. */
static char *
email_mime_bytes_text(const GByteArray *bytes)
{
	return bytes->len == 0 ? xstrdup("") : xstrndup((const char *)bytes->data, bytes->len);
}

/*
 * The text of a text part, in UTF-8 with LF line ends (caller frees). GMime
 * converts declared charsets; text that says UTF-8 or ASCII (or nothing) but
 * is not valid UTF-8 is read as ISO-8859-1 rather than losing its letters.
 */
static char *
email_mime_part_text(GMimeTextPart *part)
{
	const char *cs = g_mime_object_get_content_type_parameter(GMIME_OBJECT(part), "charset");
	const char *canon = cs != NULL ? g_mime_charset_canon_name(cs) : "utf-8";
	GByteArray *bytes;
	char *t, *s, *r, *w;

	if (g_ascii_strcasecmp(canon, "utf-8") == 0 || g_ascii_strcasecmp(canon, "us-ascii") == 0) {
		bytes = email_mime_part_bytes(GMIME_PART(part));
		s = email_mime_bytes_text(bytes);
		g_byte_array_unref(bytes);
	} else {
		t = g_mime_text_part_get_text(part);
		s = xstrdup(t != NULL ? t : "");
		g_free(t);
	}
	for (r = w = s; *r != '\0'; r++) {
		if (*r != '\r')
			*w++ = *r;
	}
	*w = '\0';
	return email_mime_utf8_fix(s);
}

/* The decoded bytes of a part. */
static GByteArray *
email_mime_part_bytes(GMimePart *part)
{
	GMimeDataWrapper *w = g_mime_part_get_content(part);
	GMimeStream *mem = g_mime_stream_mem_new();
	GByteArray *copy = g_byte_array_new(), *arr;

	if (w != NULL)
		g_mime_data_wrapper_write_to_stream(w, mem);
	arr = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem));
	g_byte_array_append(copy, arr->data, arr->len);
	g_object_unref(mem);
	return copy;
}

/* Keep an attachment: its bytes in base64 under the cap, else only a note. */
static void
email_mime_attachment(struct email_walk *w, GMimePart *part)
{
	GMimeContentType *ct = g_mime_object_get_content_type(GMIME_OBJECT(part));
	GByteArray *bytes = email_mime_part_bytes(part);
	const char *name = g_mime_part_get_filename(part);
	char *type = g_mime_content_type_get_mime_type(ct), *b64;
	json_t *a = json_pack("{s:s,s:s?,s:I}", "mime_type", type, "filename", name, "size", (json_int_t)bytes->len);

	if (bytes->len > w->max_attachment) {
		json_object_set_new(a, "refused", json_string("larger than max_attachment"));
		w->p->refused++;
	} else {
		b64 = util_base64(bytes->data, bytes->len);
		json_object_set_new(a, "data", json_string(b64));
		free(b64);
	}
	json_array_append_new(w->p->attachments, a);
	g_free(type);
	g_byte_array_unref(bytes);
}

/* The value of "Name: value" in a block of header-like lines (caller frees), or NULL. */
static char *
email_mime_field(const char *text, const char *name)
{
	size_t n = strlen(name);
	const char *s;

	for (s = text; s != NULL && *s != '\0'; s = strchr(s, '\n') != NULL ? strchr(s, '\n') + 1 : NULL) {
		if (strncasecmp(s, name, n) == 0 && s[n] == ':') {
			s += n + 1;
			s += strspn(s, " \t");
			return xstrndup(s, strcspn(s, "\r\n"));
		}
	}
	return NULL;
}

/* Take the Message-ID in field name of a header block as the bounced mail's id. */
static void
email_mime_dsn_id(struct email_parsed *p, const char *text, const char *name)
{
	char *id = email_mime_field(text, name);
	GMimeReferences *r;

	if (id == NULL)
		return;
	if ((r = g_mime_references_parse(NULL, id)) != NULL && g_mime_references_length(r) > 0)
		p->dsn_original = xstrdup(g_mime_references_get_message_id(r, 0));
	if (r != NULL)
		g_mime_references_free(r);
	free(id);
}

/* A delivery-status part: the status and the diagnostic of the (first) recipient. */
static void
email_mime_dsn_status(struct email_walk *w, GMimePart *part)
{
	GByteArray *bytes = email_mime_part_bytes(part);
	char *text = email_mime_bytes_text(bytes);

	if (w->p->dsn_status == NULL)
		w->p->dsn_status = email_mime_field(text, "Status");
	if (w->p->dsn_text == NULL)
		w->p->dsn_text = email_mime_field(text, "Diagnostic-Code");
	if (w->p->dsn_original == NULL)
		email_mime_dsn_id(w->p, text, "Original-Message-ID");
	free(text);
	g_byte_array_unref(bytes);
}

/* The returned headers of a bounce (text/rfc822-headers): the Message-ID in them. */
static void
email_mime_dsn_headers(struct email_walk *w, GMimePart *part)
{
	GByteArray *bytes = email_mime_part_bytes(part);
	char *text = email_mime_bytes_text(bytes);

	if (w->p->dsn_original == NULL)
		email_mime_dsn_id(w->p, text, "Message-ID");
	free(text);
	g_byte_array_unref(bytes);
}

/* One leaf part: a body text, a DSN piece, or an attachment. */
static void
email_mime_leaf(struct email_walk *w, GMimePart *part)
{
	GMimeContentType *ct = g_mime_object_get_content_type(GMIME_OBJECT(part));
	int attached = g_mime_part_is_attachment(part);

	if (w->p->is_dsn && g_mime_content_type_is_type(ct, "message", "delivery-status"))
		email_mime_dsn_status(w, part);
	else if (w->p->is_dsn && g_mime_content_type_is_type(ct, "text", "rfc822-headers"))
		email_mime_dsn_headers(w, part);
	else if (!attached && w->plain == NULL && g_mime_content_type_is_type(ct, "text", "plain"))
		w->plain = email_mime_part_text(GMIME_TEXT_PART(part));
	else if (!attached && w->html == NULL && g_mime_content_type_is_type(ct, "text", "html"))
		w->html = email_mime_part_text(GMIME_TEXT_PART(part));
	else
		email_mime_attachment(w, part);
}

/* Walk a part and its children. */
static void
email_mime_walk(struct email_walk *w, GMimeObject *obj)
{
	GMimeMessage *inner;
	int i, n;

	if (GMIME_IS_MULTIPART(obj)) {
		n = g_mime_multipart_get_count(GMIME_MULTIPART(obj));
		for (i = 0; i < n; i++)
			email_mime_walk(w, g_mime_multipart_get_part(GMIME_MULTIPART(obj), i));
	} else if (GMIME_IS_MESSAGE_PART(obj)) {
		inner = g_mime_message_part_get_message(GMIME_MESSAGE_PART(obj));
		if (w->p->is_dsn && inner != NULL && w->p->dsn_original == NULL &&
		    g_mime_message_get_message_id(inner) != NULL)
			w->p->dsn_original = xstrdup(g_mime_message_get_message_id(inner));
	} else if (GMIME_IS_PART(obj))
		email_mime_leaf(w, GMIME_PART(obj));
}

/* Add the mailbox addresses of a list (lower-cased) to a JSON array. */
static void
email_mime_addrs(InternetAddressList *list, json_t *out)
{
	InternetAddress *a;
	int i, n = list != NULL ? internet_address_list_length(list) : 0;
	char *addr;

	for (i = 0; i < n; i++) {
		a = internet_address_list_get_address(list, i);
		if (INTERNET_ADDRESS_IS_GROUP(a))
			email_mime_addrs(internet_address_group_get_members(INTERNET_ADDRESS_GROUP(a)), out);
		else if (INTERNET_ADDRESS_IS_MAILBOX(a)) {
			addr = g_ascii_strdown(internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(a)), -1);
			json_array_append_new(out, json_string(addr));
			g_free(addr);
		}
	}
}

/* The recipients that may carry the token: To, Cc and the delivery headers. */
static void
email_mime_recipients(GMimeMessage *m, struct email_parsed *p)
{
	InternetAddressList *l;
	const char *v;
	size_t i;

	email_mime_addrs(g_mime_message_get_addresses(m, GMIME_ADDRESS_TYPE_TO), p->recipients);
	email_mime_addrs(g_mime_message_get_addresses(m, GMIME_ADDRESS_TYPE_CC), p->recipients);
	for (i = 0; i < nitems(email_mime_rcpt_headers); i++) {
		if ((v = g_mime_object_get_header(GMIME_OBJECT(m), email_mime_rcpt_headers[i])) == NULL)
			continue;
		if ((l = internet_address_list_parse(NULL, v)) != NULL) {
			email_mime_addrs(l, p->recipients);
			g_object_unref(l);
		}
	}
}

/* In-Reply-To, then References, as ids without brackets. */
static void
email_mime_references(GMimeMessage *m, struct email_parsed *p)
{
	static const char *const names[] = { "In-Reply-To", "References" };
	GMimeReferences *r;
	const char *v;
	size_t i;
	int j;

	for (i = 0; i < nitems(names); i++) {
		if ((v = g_mime_object_get_header(GMIME_OBJECT(m), names[i])) == NULL)
			continue;
		if ((r = g_mime_references_parse(NULL, v)) == NULL)
			continue;
		for (j = 0; j < g_mime_references_length(r); j++)
			json_array_append_new(p->references, json_string(g_mime_references_get_message_id(r, j)));
		g_mime_references_free(r);
	}
}

/* The sender, subject, date and Auto-Submitted of the top-level message. */
static void
email_mime_envelope(GMimeMessage *m, struct email_parsed *p)
{
	InternetAddressList *from = g_mime_message_get_from(m);
	InternetAddress *a = from != NULL && internet_address_list_length(from) > 0 ?
	    internet_address_list_get_address(from, 0) : NULL;
	const char *v;
	GDateTime *d;

	if (a != NULL && INTERNET_ADDRESS_IS_MAILBOX(a)) {
		char *addr = g_ascii_strdown(internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(a)), -1);

		p->from_addr = xstrdup(addr);
		g_free(addr);
		if ((v = internet_address_get_name(a)) != NULL && *v != '\0')
			p->from_name = email_mime_utf8_fix(xstrdup(v));
	}
	v = g_mime_message_get_subject(m);
	p->subject = email_mime_utf8_fix(xstrdup(v != NULL ? v : ""));
	if ((v = g_mime_message_get_message_id(m)) != NULL && *v != '\0')
		p->message_id = xstrdup(v);
	if ((v = g_mime_object_get_header(GMIME_OBJECT(m), "Auto-Submitted")) != NULL)
		p->auto_submitted = xstrndup(v + strspn(v, " \t"), strcspn(v + strspn(v, " \t"), " \t;("));
	if ((d = g_mime_message_get_date(m)) != NULL)
		p->date = (long long)g_date_time_to_unix(d);
}

/* Whether the top part is multipart/report; report-type=delivery-status. */
static int
email_mime_is_dsn(GMimeMessage *m)
{
	GMimeObject *top = g_mime_message_get_mime_part(m);
	GMimeContentType *ct = top != NULL ? g_mime_object_get_content_type(top) : NULL;
	const char *rt = ct != NULL ? g_mime_content_type_get_parameter(ct, "report-type") : NULL;

	return ct != NULL && g_mime_content_type_is_type(ct, "multipart", "report") &&
	    (rt == NULL || g_ascii_strcasecmp(rt, "delivery-status") == 0);
}

int
email_mime_parse(const char *raw, size_t len, size_t max_attachment, struct email_parsed *p, char **cause)
{
	GMimeStream *st = g_mime_stream_mem_new_with_buffer(raw, len);
	GMimeParser *parser = g_mime_parser_new_with_stream(st);
	GMimeMessage *m = g_mime_parser_construct_message(parser, NULL);
	struct email_walk w = { p, max_attachment, NULL, NULL };

	memset(p, 0, sizeof *p);
	g_object_unref(parser);
	g_object_unref(st);
	if (m == NULL) {
		xasprintf(cause, "the mail could not be parsed as MIME");
		return -1;
	}
	p->recipients = json_array();
	p->references = json_array();
	p->attachments = json_array();
	email_mime_envelope(m, p);
	email_mime_recipients(m, p);
	email_mime_references(m, p);
	p->is_dsn = email_mime_is_dsn(m);
	if (g_mime_message_get_mime_part(m) != NULL)
		email_mime_walk(&w, g_mime_message_get_mime_part(m));
	if (w.plain != NULL)
		p->body = email_mime_tidy(w.plain);
	else if (w.html != NULL)
		p->body = email_mime_html_text(w.html);
	else
		p->body = xstrdup("");
	free(w.plain);
	free(w.html);
	g_object_unref(m);
	return 0;
}

void
email_parsed_free(struct email_parsed *p)
{
	free(p->message_id);
	free(p->from_addr);
	free(p->from_name);
	free(p->subject);
	free(p->body);
	free(p->auto_submitted);
	json_decref(p->recipients);
	json_decref(p->references);
	json_decref(p->attachments);
	free(p->dsn_original);
	free(p->dsn_status);
	free(p->dsn_text);
	memset(p, 0, sizeof *p);
}
