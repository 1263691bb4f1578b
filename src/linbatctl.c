/*
 * linbatctl.c: the admin tool. Each command is an entry of one const table
 * (tmux's habit) with its usage line; main() finds the entry, loads the
 * config and connects when the command needs the database, and runs it.
 * linbatctl is not on the event loop, so it uses blocking libpq.
 */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "conf.h"
#include "ctl.h"
#include "log.h"
#include "migrate.h"
#include "util.h"
#include "version.h"

static int ctl_migrate(struct ctl *, int, char **);
static int ctl_check_config(struct ctl *, int, char **);

static const struct ctl_cmd ctl_builtin[] = {
	{ "migrate", "migrate [--dry-run]", "apply pending database migrations", CTL_NEED_DB, ctl_migrate },
	{ "check-config", "check-config", "check the configuration file", CTL_NEED_CONF, ctl_check_config },
};

static const char ctl_usage_head[] =
    "usage: linbatctl [-c FILE] [-d CONNINFO] [-m DIR] COMMAND [ARGS]\n"
    "\n"
    "  -c, --config FILE     configuration file (default " LINBAT_SYSCONFDIR "/linbat.conf)\n"
    "  -d, --database URL    libpq connection string; overrides [database] url\n"
    "  -m, --migrations DIR  migrations directory; overrides [daemon] migrations_dir\n"
    "  -V, --version         print versions and exit\n"
    "  -h, --help            print this help\n"
    "\n"
    "commands:\n";

/* Every command table, builtin first; the other modules add theirs here. */
static const size_t ctl_builtin_ncmds = nitems(ctl_builtin);
static const struct {
	const struct ctl_cmd *cmds;
	const size_t *n;
} ctl_tables[] = {
	{ ctl_builtin, &ctl_builtin_ncmds },
	{ ctl_operator_cmds, &ctl_operator_ncmds },
	{ ctl_lkpm_cmds, &ctl_lkpm_ncmds },
	{ ctl_import_cmds, &ctl_import_ncmds },
	{ ctl_campaign_cmds, &ctl_campaign_ncmds },
};

/* Print the usage with every command. */
static void
ctl_usage(FILE *f)
{
	size_t t, i;

	fputs(ctl_usage_head, f);
	for (t = 0; t < nitems(ctl_tables); t++) {
		for (i = 0; i < *ctl_tables[t].n; i++)
			fprintf(f, "  %-34s %s\n", ctl_tables[t].cmds[i].usage, ctl_tables[t].cmds[i].help);
	}
}

/* Find a command by name. */
static const struct ctl_cmd *
ctl_find(const char *name)
{
	size_t t, i;

	for (t = 0; t < nitems(ctl_tables); t++) {
		for (i = 0; i < *ctl_tables[t].n; i++) {
			if (strcmp(ctl_tables[t].cmds[i].name, name) == 0)
				return &ctl_tables[t].cmds[i];
		}
	}
	return NULL;
}

/* Load the config and connect, as the command needs. */
static int
ctl_prepare(struct ctl *ctl, int need)
{
	char *cause = NULL;
	const char *url;

	if ((need & CTL_NEED_CONF) || ctl->conninfo == NULL) {
		ctl->conf = conf_load(ctl->conf_path, channel_schema, &cause);
		if (ctl->conf == NULL) {
			fprintf(stderr, "linbatctl: %s\n", cause);
			free(cause);
			return -1;
		}
	}
	if (!(need & CTL_NEED_DB))
		return 0;
	url = ctl->conninfo != NULL ? ctl->conninfo : conf_str(ctl->conf, "database", "url");
	ctl->conn = PQconnectdb(url);
	if (PQstatus(ctl->conn) != CONNECTION_OK) {
		fprintf(stderr, "linbatctl: cannot connect to PostgreSQL: %s", PQerrorMessage(ctl->conn));
		return -1;
	}
	PQclear(PQexec(ctl->conn, "set client_min_messages = warning"));
	return 0;
}

/* Print one migration as it is applied or would be. */
static void
ctl_migrate_report(const struct migration *m, void *arg)
{
	const int *dry_run = arg;

	printf("%s %s\n", *dry_run ? "would apply" : "applied", m->name);
	fflush(stdout);
}

/* linbatctl migrate [--dry-run] */
static int
ctl_migrate(struct ctl *ctl, int argc, char **argv)
{
	struct migration_set set;
	const char *dir = ctl->migrations_dir;
	char *cause = NULL;
	int dry_run = argc > 1 && strcmp(argv[1], "--dry-run") == 0, rc;
	int count = 0;

	if (argc > 1 + dry_run)
		return ctl_usage_error(ctl, "migrate [--dry-run]");
	if (dir == NULL)
		dir = ctl->conf != NULL ? conf_str(ctl->conf, "daemon", "migrations_dir") : LINBAT_DATADIR "/migrations";
	if (migrate_scan(dir, &set, &cause) != 0) {
		fprintf(stderr, "linbatctl: %s\n", cause);
		free(cause);
		return 1;
	}
	rc = migrate_apply(ctl->conn, &set, dry_run, ctl_migrate_report, &dry_run, &cause);
	if (rc != 0) {
		fprintf(stderr, "linbatctl: %s\n", cause);
		free(cause);
	} else {
		count = (int)set.n;
		printf("The schema is %s. migrations=%d\n", dry_run ? "checked" : "current", count);
	}
	migrate_free(&set);
	return rc == 0 ? 0 : 1;
}

/* linbatctl check-config */
static int
ctl_check_config(struct ctl *ctl, int argc, char **argv)
{
	printf("linbatctl: the configuration %s is valid.\n", ctl->conf_path);
	return 0;
}

int
ctl_usage_error(struct ctl *ctl, const char *usage)
{
	fprintf(stderr, "usage: linbatctl %s\n", usage);
	return 2;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "database", required_argument, NULL, 'd' },
		{ "migrations", required_argument, NULL, 'm' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct ctl ctl = { .conf_path = LINBAT_SYSCONFDIR "/linbat.conf" };
	const struct ctl_cmd *cmd;
	int ch, rc;

	log_set_level(LOG_LEVEL_WARN);
	while ((ch = getopt_long(argc, argv, "+c:d:m:Vh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c': ctl.conf_path = optarg; break;
		case 'd': ctl.conninfo = optarg; break;
		case 'm': ctl.migrations_dir = optarg; break;
		case 'V': version_print(stdout, "linbatctl"); return 0;
		case 'h': ctl_usage(stdout); return 0;
		default: ctl_usage(stderr); return 2;
		}
	}
	if (optind >= argc) {
		ctl_usage(stderr);
		return 2;
	}
	if ((cmd = ctl_find(argv[optind])) == NULL) {
		fprintf(stderr, "linbatctl: unknown command \"%s\"\n", argv[optind]);
		ctl_usage(stderr);
		return 2;
	}
	if (ctl_prepare(&ctl, cmd->need) != 0)
		rc = 1;
	else
		rc = cmd->fn(&ctl, argc - optind, argv + optind);
	if (ctl.conn != NULL)
		PQfinish(ctl.conn);
	if (ctl.conf != NULL)
		conf_free(ctl.conf);
	return rc;
}
