/*
 * ctl-campaign.c: linbatctl's campaign commands. A campaign is written as
 * JSON (etc/campaign-default.json is the office's default) and handed to
 * linbat.campaign_create; the other commands are one SQL function call each
 * (migrations/0009_campaigns.sql), so linbatctl and the API agree.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ctl.h"
#include "template.h"
#include "util.h"

static const char ctl_campaign_usage[] =
    "campaign create FILE.json | list | preview ID [--from YYYY-MM-DD] [--days N] | "
    "activate|pause|resume|archive ID | stats ID";

/* Run a statement; print PostgreSQL's message (without the call stack) on failure. */
static PGresult *
ctl_campaign_exec(struct ctl *ctl, const char *sql, int n, const char *const *params)
{
	PGresult *res = PQexecParams(ctl->conn, sql, n, NULL, params, NULL, NULL, 0);
	const char *msg;

	if (PQresultStatus(res) != PGRES_TUPLES_OK && PQresultStatus(res) != PGRES_COMMAND_OK) {
		msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
		fprintf(stderr, "linbatctl: %s\n", msg != NULL ? msg : PQerrorMessage(ctl->conn));
		PQclear(res);
		return NULL;
	}
	return res;
}

/* Whether s is a positive integer id. */
static int
ctl_campaign_id_ok(const char *s)
{
	char *end;

	return s != NULL && strtoll(s, &end, 10) > 0 && *end == '\0';
}

/* Read a whole file; NULL and a message if it cannot be. */
static char *
ctl_campaign_slurp(const char *path)
{
	char *data, *cause = NULL;
	size_t len;

	if ((data = util_read_file(path, &len, &cause)) == NULL) {
		fprintf(stderr, "linbatctl: %s\n", cause);
		free(cause);
	}
	return data;
}

/* linbatctl campaign create FILE.json */
static int
ctl_campaign_create(struct ctl *ctl, int argc, char **argv)
{
	const char *params[1];
	char *json, *cause = NULL;
	json_t *doc;
	PGresult *res;

	if (argc != 2)
		return ctl_usage_error(ctl, ctl_campaign_usage);
	if ((json = ctl_campaign_slurp(argv[1])) == NULL)
		return 1;
	/* a placeholder that does not exist is refused by name, before anything is saved */
	if ((doc = json_loads(json, 0, NULL)) != NULL && template_campaign_check(doc, &cause) != 0) {
		fprintf(stderr, "linbatctl: %s: %s\n", argv[1], cause);
		free(cause);
		json_decref(doc);
		free(json);
		return 1;
	}
	json_decref(doc);
	params[0] = json;
	res = ctl_campaign_exec(ctl, "select c ->> 'id', c ->> 'name' from linbat.campaign_create($1::jsonb, null) c",
	    1, params);
	free(json);
	if (res == NULL)
		return 1;
	printf("created campaign %s \"%s\" (draft; activate it to start).\n", PQgetvalue(res, 0, 0),
	    PQgetvalue(res, 0, 1));
	PQclear(res);
	return 0;
}

/* Print every row of a result, fields separated by tabs. */
static void
ctl_campaign_print(const PGresult *res)
{
	int i, j;

	for (i = 0; i < PQntuples(res); i++) {
		for (j = 0; j < PQnfields(res); j++)
			printf("%s%s", j > 0 ? "\t" : "", PQgetvalue(res, i, j));
		putchar('\n');
	}
}

/* linbatctl campaign list */
static int
ctl_campaign_list(struct ctl *ctl, int argc, char **argv)
{
	PGresult *res;

	if (argc != 1)
		return ctl_usage_error(ctl, ctl_campaign_usage);
	res = ctl_campaign_exec(ctl, "select id, status, name, array_to_string(offsets, ','), "
	    "to_char(window_start, 'HH24:MI') || '-' || to_char(window_end, 'HH24:MI') || ' WITA', "
	    "(select count(*) from linbat.reminder r where r.campaign_id = c.id) "
	    "from linbat.campaign c order by id", 0, NULL);
	if (res == NULL)
		return 1;
	printf("ID\tSTATUS\tNAME\tOFFSETS\tWINDOW\tPLANNED\n");
	ctl_campaign_print(res);
	PQclear(res);
	return 0;
}

/* linbatctl campaign preview ID [--from YYYY-MM-DD] [--days N] */
static int
ctl_campaign_preview(struct ctl *ctl, int argc, char **argv)
{
	const char *params[3] = { argv[1], NULL, "30" };
	PGresult *res;
	int i;

	if (argc < 2 || !ctl_campaign_id_ok(argv[1]))
		return ctl_usage_error(ctl, ctl_campaign_usage);
	for (i = 2; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--from") == 0)
			params[1] = argv[i + 1];
		else if (strcmp(argv[i], "--days") == 0 && atoi(argv[i + 1]) > 0 && atoi(argv[i + 1]) <= 400)
			params[2] = argv[i + 1];
		else
			return ctl_usage_error(ctl, ctl_campaign_usage);
	}
	if (i != argc)
		return ctl_usage_error(ctl, ctl_campaign_usage);
	res = ctl_campaign_exec(ctl, "select to_char(send_at at time zone 'Asia/Makassar', "
	    "'YYYY-MM-DD HH24:MI') || ' WITA', nib, coalesce(company_name, ''), period, offset_days, channel, "
	    "address, case when template is not null then 'template ' || (template ->> 'name') || ' ' || "
	    "(template -> 'params')::text else replace(body, E'\\n', ' ') end, "
	    "case when planned then 'planned' else 'due' end "
	    "from linbat.campaign_preview($1::bigint, coalesce($2::date, "
	    "(now() at time zone 'Asia/Makassar')::date), $3::integer)", 3, params);
	if (res == NULL)
		return 1;
	printf("SEND_AT\tNIB\tCOMPANY\tPERIOD\tOFFSET\tCHANNEL\tADDRESS\tMESSAGE\tSTATE\n");
	ctl_campaign_print(res);
	fprintf(stderr, "%d reminders.\n", PQntuples(res));
	PQclear(res);
	return 0;
}

/* linbatctl campaign activate|pause|resume|archive ID */
static int
ctl_campaign_status(struct ctl *ctl, int argc, char **argv)
{
	const char *params[2] = { argc == 2 ? argv[1] : NULL, argv[0] };
	PGresult *res;

	if (argc != 2 || !ctl_campaign_id_ok(argv[1]))
		return ctl_usage_error(ctl, ctl_campaign_usage);
	res = ctl_campaign_exec(ctl, "select c ->> 'status' from linbat.campaign_set_status($1::bigint, $2, null) c",
	    2, params);
	if (res == NULL)
		return 1;
	printf("campaign %s is %s.\n", argv[1], PQgetvalue(res, 0, 0));
	PQclear(res);
	return 0;
}

/* linbatctl campaign stats ID */
static int
ctl_campaign_stats(struct ctl *ctl, int argc, char **argv)
{
	const char *params[1] = { argc == 2 ? argv[1] : NULL };
	PGresult *res;

	if (argc != 2 || !ctl_campaign_id_ok(argv[1]))
		return ctl_usage_error(ctl, ctl_campaign_usage);
	res = ctl_campaign_exec(ctl, "select s ->> 'period', s ->> 'channel', s ->> 'planned', s ->> 'sent', "
	    "s ->> 'delivered', s ->> 'read', s ->> 'failed', s ->> 'replied', s ->> 'filed_after_reminder' "
	    "from jsonb_array_elements(linbat.campaign_stats($1::bigint) -> 'stats') s", 1, params);
	if (res == NULL)
		return 1;
	printf("PERIOD\tCHANNEL\tPLANNED\tSENT\tDELIVERED\tREAD\tFAILED\tREPLIED\tFILED_AFTER\n");
	ctl_campaign_print(res);
	PQclear(res);
	return 0;
}

/* The subcommands, by name. */
static const struct {
	const char *name;
	int (*fn)(struct ctl *, int, char **);
} ctl_campaign_subs[] = {
	{ "create", ctl_campaign_create }, { "list", ctl_campaign_list }, { "preview", ctl_campaign_preview },
	{ "activate", ctl_campaign_status }, { "pause", ctl_campaign_status }, { "resume", ctl_campaign_status },
	{ "archive", ctl_campaign_status }, { "stats", ctl_campaign_stats },
};

/* linbatctl campaign SUBCOMMAND ... */
static int
ctl_campaign(struct ctl *ctl, int argc, char **argv)
{
	size_t i;

	for (i = 0; argc >= 2 && i < nitems(ctl_campaign_subs); i++) {
		if (strcmp(argv[1], ctl_campaign_subs[i].name) == 0)
			return ctl_campaign_subs[i].fn(ctl, argc - 1, argv + 1);
	}
	return ctl_usage_error(ctl, ctl_campaign_usage);
}

const struct ctl_cmd ctl_campaign_cmds[] = {
	{ "campaign", "campaign create|list|preview|activate|pause|resume|archive|stats",
	    "manage LKPM reminder campaigns", CTL_NEED_DB, ctl_campaign },
};
const size_t ctl_campaign_ncmds = nitems(ctl_campaign_cmds);
