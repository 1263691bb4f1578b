/*
 * template.h: the placeholders of reminder texts, {{company_name}} {{nib}}
 * {{period}} {{deadline}} {{days_left}}: checking a text before a campaign
 * is saved, and rendering one the way the planner in SQL does
 * (linbat.reminder_candidates of migration 0012; tests/integration/
 * test_template.py holds the two to the same output).
 */
#ifndef LINBAT_TEMPLATE_H
#define LINBAT_TEMPLATE_H

#include <jansson.h>

/* The placeholders, without braces; NULL-terminated. */
extern const char *const template_placeholders[];

/* What a text is filled with; NULL strings are empty. */
struct template_values {
	const char *company_name;
	const char *nib;
	const char *period;
	int deadline_year, deadline_month, deadline_day; /* a month of 0: no deadline, empty */
	int days_left;
	const char *language; /* "en": English month names; anything else: Indonesian */
};

/*
 * Check that every {{NAME}} in text (NAME: letters, digits, underscores) is
 * a placeholder. 0 if so; else -1 with *cause "unknown placeholder {{NAME}}
 * ..." (allocated).
 */
int template_check(const char *text, char **cause);

/*
 * Check the texts and WhatsApp template parameters of a campaign as JSON
 * (linbat.campaign_json's shape): 0, or -1 with *cause naming the text and
 * the placeholder (allocated).
 */
int template_campaign_check(const json_t *campaign, char **cause);

/* A date the Indonesian way, "15 April 2026" ("en": English months), into out. */
void template_date_text(int year, int month, int day, const char *language, char *out, size_t len);

/*
 * Render text: each placeholder replaced by its value, in one pass (a value
 * is never searched for placeholders); anything else, an unknown {{x}}
 * too, is copied. Returns an allocated string.
 */
char *template_render(const char *text, const struct template_values *v);

#endif
