/*
 * template.c: checking and rendering the placeholders of reminder texts
 * (see template.h). The planner renders in SQL, set-based, for speed; this
 * is the same rendering for linbatctl and the API, which check a
 * campaign's texts before it is saved, so a typo such as {{deadlne}} is
 * refused by name instead of reaching investors as it is.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "template.h"
#include "util.h"

const char *const template_placeholders[] = {
	"company_name", "nib", "period", "deadline", "days_left", NULL,
};

static const char *const template_months_id[] = {
	"Januari", "Februari", "Maret", "April", "Mei", "Juni", "Juli", "Agustus", "September",
	"Oktober", "November", "Desember",
};

static const char *const template_months_en[] = {
	"January", "February", "March", "April", "May", "June", "July", "August", "September",
	"October", "November", "December",
};

/* Whether c may appear in a placeholder's name. */
static int
template_name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* The index of the placeholder whose "{{NAME}}" starts at s, or -1. */
static int
template_match(const char *s)
{
	size_t i, n;

	if (s[0] != '{' || s[1] != '{')
		return -1;
	for (i = 0; template_placeholders[i] != NULL; i++) {
		n = strlen(template_placeholders[i]);
		if (strncmp(s + 2, template_placeholders[i], n) == 0 && s[2 + n] == '}' && s[3 + n] == '}')
			return (int)i;
	}
	return -1;
}

int
template_check(const char *text, char **cause)
{
	const char *p, *name, *end;
	struct buf b;
	size_t i;

	for (p = text; (p = strstr(p, "{{")) != NULL; p++) {
		if (template_match(p) >= 0)
			continue;
		for (name = p + 2; *name == '{'; name++)
			;
		for (end = name; template_name_char(*end); end++)
			;
		/* "{{{nib}}": the placeholder is the last "{{" of the run */
		if (end == name || end[0] != '}' || end[1] != '}' || template_match(name - 2) >= 0)
			continue;
		buf_init(&b);
		buf_addf(&b, "unknown placeholder {{%.*s}}; the placeholders are", (int)(end - name), name);
		for (i = 0; template_placeholders[i] != NULL; i++)
			buf_addf(&b, " {{%s}}", template_placeholders[i]);
		*cause = buf_take(&b);
		return -1;
	}
	return 0;
}

/* Check one text of a campaign; what names it in an error. */
static int
template_check_named(const json_t *text, const char *what, char **cause)
{
	char *why = NULL;

	if (!json_is_string(text) || template_check(json_string_value(text), &why) == 0)
		return 0;
	xasprintf(cause, "%s: %s", what, why);
	free(why);
	return -1;
}

int
template_campaign_check(const json_t *campaign, char **cause)
{
	const json_t *texts = json_object_get(campaign, "texts"), *params, *langs, *text, *param;
	const char *channel, *lang;
	char *what;
	size_t i;
	int rc;

	json_object_foreach((json_t *)texts, channel, langs) {
		json_object_foreach((json_t *)langs, lang, text) {
			xasprintf(&what, "texts.%s.%s", channel, lang);
			rc = template_check_named(text, what, cause);
			free(what);
			if (rc != 0)
				return -1;
		}
	}
	params = json_object_get(json_object_get(campaign, "whatsapp_template"), "params");
	json_array_foreach(params, i, param) {
		xasprintf(&what, "whatsapp_template.params[%zu]", i);
		rc = template_check_named(param, what, cause);
		free(what);
		if (rc != 0)
			return -1;
	}
	return 0;
}

void
template_date_text(int year, int month, int day, const char *language, char *out, size_t len)
{
	const char *const *months = language != NULL && strcmp(language, "en") == 0 ? template_months_en :
	    template_months_id;

	if (month < 1 || month > 12) {
		if (len > 0)
			out[0] = '\0';
		return;
	}
	snprintf(out, len, "%d %s %d", day, months[month - 1], year);
}

char *
template_render(const char *text, const struct template_values *v)
{
	struct buf b;
	const char *p = text;
	char tmp[64];
	int i;

	buf_init(&b);
	buf_add(&b, "", 0);
	while (*p != '\0') {
		if ((i = template_match(p)) < 0) {
			buf_add(&b, p, 1);
			p++;
			continue;
		}
		switch (i) {
		case 0:
			buf_adds(&b, v->company_name != NULL ? v->company_name : "");
			break;
		case 1:
			buf_adds(&b, v->nib != NULL ? v->nib : "");
			break;
		case 2:
			buf_adds(&b, v->period != NULL ? v->period : "");
			break;
		case 3:
			template_date_text(v->deadline_year, v->deadline_month, v->deadline_day, v->language, tmp,
			    sizeof tmp);
			buf_adds(&b, tmp);
			break;
		default:
			snprintf(tmp, sizeof tmp, "%d", v->days_left);
			buf_adds(&b, tmp);
			break;
		}
		p += strlen(template_placeholders[i]) + 4;
	}
	return buf_take(&b);
}
