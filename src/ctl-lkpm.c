/*
 * ctl-lkpm.c: linbatctl's LKPM calendar commands. The calendar lives in the
 * database (linbat.lkpm_rule and its overrides), so these commands only ask
 * the SQL functions of migrations/0005_lkpm.sql and print the answer.
 */
#include "config.h"

#include <ctype.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "util.h"

static const char ctl_lkpm_deadline_usage[] = "lkpm deadline --scale mikro|kecil|menengah|besar --date YYYY-MM-DD";

/* Whether s is a real calendar date written YYYY-MM-DD (year 0001 on). */
static int
ctl_lkpm_date_ok(const char *s)
{
	static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int i, y, m, d;

	/* a shorter string stops at its NUL, which is neither a digit nor a dash */
	for (i = 0; i < 10; i++) {
		if (i == 4 || i == 7 ? s[i] != '-' : !isdigit((unsigned char)s[i]))
			return 0;
	}
	if (s[10] != '\0')
		return 0;
	y = atoi(s);
	m = atoi(s + 5);
	d = atoi(s + 8);
	if (y < 1 || m < 1 || m > 12 || d < 1 || d > mdays[m - 1])
		return 0;
	return m != 2 || d != 29 || (y % 4 == 0 && (y % 100 != 0 || y % 400 == 0));
}

/* Whether s is one of the investor scales of linbat.investor. */
static int
ctl_lkpm_scale_ok(const char *s)
{
	static const char *const scales[] = { "mikro", "kecil", "menengah", "besar" };
	size_t i;

	for (i = 0; i < nitems(scales); i++) {
		if (strcmp(s, scales[i]) == 0)
			return 1;
	}
	return 0;
}

/* linbatctl lkpm deadline --scale SCALE --date YYYY-MM-DD */
static int
ctl_lkpm_deadline(struct ctl *ctl, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "scale", required_argument, NULL, 's' }, { "date", required_argument, NULL, 'D' },
		{ NULL, 0, NULL, 0 },
	};
	const char *params[2] = { NULL, NULL }, *hint;
	PGresult *res;
	int ch, rc;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 's': params[0] = optarg; break;
		case 'D': params[1] = optarg; break;
		default: return ctl_usage_error(ctl, ctl_lkpm_deadline_usage);
		}
	}
	if (params[0] == NULL || params[1] == NULL || optind != argc)
		return ctl_usage_error(ctl, ctl_lkpm_deadline_usage);
	if (!ctl_lkpm_scale_ok(params[0])) {
		fprintf(stderr, "linbatctl: unknown scale \"%s\": use mikro, kecil, menengah or besar\n", params[0]);
		return 2;
	}
	if (!ctl_lkpm_date_ok(params[1])) {
		fprintf(stderr, "linbatctl: invalid date \"%s\": use a calendar date YYYY-MM-DD\n", params[1]);
		return 2;
	}
	res = PQexecParams(ctl->conn, "select period, deadline::text from linbat.lkpm_next_deadline($1, $2::date)",
	    2, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		/* the message and its hint, without the PL/pgSQL call stack */
		hint = PQresultErrorField(res, PG_DIAG_MESSAGE_HINT);
		fprintf(stderr, "linbatctl: %s%s%s\n", PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) != NULL ?
		    PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : PQerrorMessage(ctl->conn),
		    hint != NULL ? ". " : "", hint != NULL ? hint : "");
		rc = 1;
	} else {
		if (PQntuples(res) == 0)
			printf("none\n");
		else
			printf("%s %s\n", PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1));
		rc = 0;
	}
	PQclear(res);
	return rc;
}

/* linbatctl lkpm SUBCOMMAND */
static int
ctl_lkpm(struct ctl *ctl, int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "deadline") == 0)
		return ctl_lkpm_deadline(ctl, argc - 1, argv + 1);
	return ctl_usage_error(ctl, ctl_lkpm_deadline_usage);
}

const struct ctl_cmd ctl_lkpm_cmds[] = {
	{ "lkpm", "lkpm deadline --scale S --date D", "print the next LKPM period and deadline", CTL_NEED_DB,
	    ctl_lkpm },
};
const size_t ctl_lkpm_ncmds = nitems(ctl_lkpm_cmds);
