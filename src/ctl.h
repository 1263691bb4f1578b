/*
 * ctl.h: what linbatctl's commands share. A command module defines a const
 * table of struct ctl_cmd; linbatctl.c lists the tables.
 */
#ifndef LINBAT_CTL_H
#define LINBAT_CTL_H

#include <libpq-fe.h>

#include "conf.h"

#define CTL_NEED_CONF 0x1
#define CTL_NEED_DB 0x2

struct ctl {
	const char *conf_path;
	const char *conninfo;       /* -d, or NULL */
	const char *migrations_dir; /* -m, or NULL */
	struct conf *conf;          /* loaded when needed */
	PGconn *conn;               /* connected when the command needs it */
};

struct ctl_cmd {
	const char *name;
	const char *usage;
	const char *help;
	int need;
	/* argv[0] is the command name; returns the exit status. */
	int (*fn)(struct ctl *, int argc, char **argv);
};

/* The command tables of the modules (ctl-*.c). */
extern const struct ctl_cmd ctl_operator_cmds[];
extern const size_t ctl_operator_ncmds;
extern const struct ctl_cmd ctl_lkpm_cmds[];
extern const size_t ctl_lkpm_ncmds;
extern const struct ctl_cmd ctl_import_cmds[];
extern const size_t ctl_import_ncmds;
extern const struct ctl_cmd ctl_campaign_cmds[];
extern const size_t ctl_campaign_ncmds;

/* Print "usage: linbatctl USAGE" and return 2. */
int ctl_usage_error(struct ctl *, const char *usage);

#endif
