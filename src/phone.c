/*
 * phone.c: telephone numbers as people write them, to E.164. Indonesian
 * numbers get the country code 62 and are checked against the national plan
 * (mobiles 8xx with 9 to 12 digits after 62, landlines with a 2- to 4-digit
 * area code starting 2 to 7); other countries only against E.164's shape.
 * The rules are a table of prefixes, read in order.
 */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "phone.h"
#include "util.h"

/* The digits of a number, once the separators are gone. */
#define PHONE_DIGITS_MAX 32

/* How a written prefix turns into the international digits. */
struct phone_prefix {
	const char *written; /* what the digits start with */
	int plus;            /* only when written with (1) / without (0) a "+"; -1 either */
	size_t drop;         /* digits dropped from the front */
	const char *add;     /* then put in front */
};

/* Checked in order: the first match wins. */
static const struct phone_prefix phone_prefixes[] = {
	{ "620", -1, 3, "62" },  /* "+62 (0)812...", "620812...": a trunk 0 written after 62 */
	{ "62", -1, 0, "" },     /* "+62812...", "62812..." */
	{ "", 1, 0, "" },        /* "+<cc>..." another country */
	{ "00", 0, 2, "" },      /* "00<cc>..." international call prefix */
	{ "0", 0, 1, "62" },     /* "0812...", "(0511) ..." national */
	{ "8", 0, 0, "62" },     /* "812-3456-7890": a mobile without its trunk 0 */
};

/* Collect the digits of in; 1 in *plus if it starts with "+". -1 with *cause if it holds other text. */
static int
phone_digits(const char *in, char *digits, int *plus, char **cause)
{
	size_t n = 0;
	const char *p;

	while (isspace((unsigned char)*in))
		in++;
	*plus = *in == '+';
	for (p = in + *plus; *p != '\0'; p++) {
		if (isdigit((unsigned char)*p)) {
			if (n + 1 >= PHONE_DIGITS_MAX) {
				xasprintf(cause, "too many digits for a telephone number");
				return -1;
			}
			digits[n++] = *p;
		} else if (strchr(" -./()\t", *p) == NULL) {
			xasprintf(cause, "unexpected character '%c' in a telephone number", *p);
			return -1;
		}
	}
	digits[n] = '\0';
	if (n == 0) {
		xasprintf(cause, "no digits in the telephone number");
		return -1;
	}
	return 0;
}

/* Check an Indonesian national significant number (the digits after 62). */
static int
phone_check_id(const char *nsn, char **cause)
{
	size_t n = strlen(nsn);

	if (nsn[0] == '8') {
		if (n < 9 || n > 12) {
			xasprintf(cause, "an Indonesian mobile number has 10 to 13 digits with its leading 0, "
			    "this one has %zu", n + 1);
			return -1;
		}
		return 0;
	}
	if (nsn[0] < '2' || nsn[0] > '7') {
		xasprintf(cause, "no Indonesian area code or mobile prefix starts with %c", nsn[0]);
		return -1;
	}
	if (n < 7 || n > 11) {
		xasprintf(cause, "an Indonesian landline has 8 to 12 digits with its area code and leading 0, "
		    "this one has %zu", n + 1);
		return -1;
	}
	return 0;
}

/* Check the international digits (country code first) against E.164 and, for 62, the Indonesian plan. */
static int
phone_check(const char *intl, char **cause)
{
	size_t n = strlen(intl);

	if (intl[0] == '0') {
		xasprintf(cause, "a country code cannot start with 0");
		return -1;
	}
	if (strncmp(intl, "62", 2) == 0 && n > 2)
		return phone_check_id(intl + 2, cause);
	if (n < 8 || n > 15) {
		xasprintf(cause, "an international number has 8 to 15 digits, this one has %zu", n);
		return -1;
	}
	return 0;
}

int
phone_normalise(const char *in, char *out, size_t outlen, char **cause)
{
	char digits[PHONE_DIGITS_MAX], intl[PHONE_DIGITS_MAX + 4];
	const struct phone_prefix *pp;
	size_t i;
	int plus;

	if (phone_digits(in != NULL ? in : "", digits, &plus, cause) != 0)
		return -1;
	for (i = 0; i < nitems(phone_prefixes); i++) {
		pp = &phone_prefixes[i];
		if ((pp->plus == -1 || pp->plus == plus) &&
		    strncmp(digits, pp->written, strlen(pp->written)) == 0)
			break;
	}
	if (i == nitems(phone_prefixes)) {
		xasprintf(cause, "no country code: write it with +, or as an Indonesian number starting with 0");
		return -1;
	}
	snprintf(intl, sizeof intl, "%s%s", pp->add, digits + pp->drop);
	if (phone_check(intl, cause) != 0)
		return -1;
	if (outlen < strlen(intl) + 2) {
		xasprintf(cause, "no room for the number");
		return -1;
	}
	snprintf(out, outlen, "+%s", intl);
	return 0;
}
