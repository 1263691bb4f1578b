/*
 * ctl-operator.c: linbatctl's operator and token commands. Passwords are read
 * from standard input (never from the command line, where ps shows them) and
 * stored as argon2id strings from libsodium; a token is printed once and only
 * its SHA-256 is stored. Accounts are created and changed through the same
 * SQL functions as the API's (linbat.operator_create and operator_update),
 * so the audit log records linbatctl's acts too.
 */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "api.h"
#include "ctl.h"
#include "util.h"

/* Read one line from standard input without its line end; NULL at EOF. */
static char *
ctl_read_line(const char *prompt)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;

	if (isatty(STDIN_FILENO))
		fprintf(stderr, "%s", prompt);
	if ((n = getline(&line, &cap, stdin)) < 0) {
		free(line);
		return NULL;
	}
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	return line;
}

/* Run a parameterised statement; print PostgreSQL's message on failure. */
static PGresult *
ctl_exec(struct ctl *ctl, const char *sql, int n, const char *const *params)
{
	PGresult *res = PQexecParams(ctl->conn, sql, n, NULL, params, NULL, NULL, 0);

	if (PQresultStatus(res) != PGRES_TUPLES_OK && PQresultStatus(res) != PGRES_COMMAND_OK) {
		fprintf(stderr, "linbatctl: %s", PQresultErrorMessage(res));
		PQclear(res);
		return NULL;
	}
	return res;
}

/* Hash a password with argon2id; NULL if libsodium fails (out of memory). */
static char *
ctl_hash_password(const char *password)
{
	char *out = xmalloc(crypto_pwhash_STRBYTES);

	if (sodium_init() < 0 || crypto_pwhash_str(out, password, strlen(password),
	    crypto_pwhash_OPSLIMIT_INTERACTIVE, crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0) {
		free(out);
		return NULL;
	}
	return out;
}

/* Read a new password from standard input and hash it; NULL (reason printed) if refused. */
static char *
ctl_new_password(void)
{
	char *password = ctl_read_line("Password: "), *hash;

	if (password == NULL || strlen(password) < 8) {
		fprintf(stderr, "linbatctl: give a password of at least 8 characters on standard input\n");
		free(password);
		return NULL;
	}
	hash = ctl_hash_password(password);
	sodium_memzero(password, strlen(password));
	free(password);
	if (hash == NULL)
		fprintf(stderr, "linbatctl: hashing the password failed\n");
	return hash;
}

/* linbatctl operator add --email E --name N [--role R] [--capacity C] */
static int
ctl_operator_add(struct ctl *ctl, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "email", required_argument, NULL, 'e' }, { "name", required_argument, NULL, 'n' },
		{ "role", required_argument, NULL, 'r' }, { "capacity", required_argument, NULL, 'k' },
		{ NULL, 0, NULL, 0 },
	};
	const char *usage = "operator add --email E --name N [--role operator|manager|admin] [--capacity N]";
	const char *params[5] = { NULL, NULL, "operator", "5", NULL };
	char *hash;
	PGresult *res;
	int ch;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'e': params[0] = optarg; break;
		case 'n': params[1] = optarg; break;
		case 'r': params[2] = optarg; break;
		case 'k': params[3] = optarg; break;
		default: return ctl_usage_error(ctl, usage);
		}
	}
	if (params[0] == NULL || params[1] == NULL || optind != argc)
		return ctl_usage_error(ctl, usage);
	if ((hash = ctl_new_password()) == NULL)
		return 1;
	params[4] = hash;
	res = ctl_exec(ctl, "select (linbat.operator_create(null, $1, $2, $3, $4::integer, $5, null)->>'id')", 5,
	    params);
	free(hash);
	if (res == NULL)
		return 1;
	printf("operator %s added: id=%s role=%s\n", params[0], PQgetvalue(res, 0, 0), params[2]);
	PQclear(res);
	return 0;
}

/* linbatctl operator list */
static int
ctl_operator_list(struct ctl *ctl, int argc, char **argv)
{
	PGresult *res;
	int i;

	if (argc != 1)
		return ctl_usage_error(ctl, "operator list");
	res = ctl_exec(ctl, "select id, email, role, presence, capacity, linbat.operator_open(id), "
	    "case when disabled_at is null then '' else 'disabled' end, name from linbat.operator order by id", 0, NULL);
	if (res == NULL)
		return 1;
	printf("%-5s %-32s %-8s %-8s %8s %5s %-8s %s\n", "ID", "EMAIL", "ROLE", "PRESENCE", "CAPACITY", "OPEN",
	    "STATE", "NAME");
	for (i = 0; i < PQntuples(res); i++)
		printf("%-5s %-32s %-8s %-8s %8s %5s %-8s %s\n", PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
		    PQgetvalue(res, i, 2), PQgetvalue(res, i, 3), PQgetvalue(res, i, 4), PQgetvalue(res, i, 5),
		    PQgetvalue(res, i, 6), PQgetvalue(res, i, 7));
	PQclear(res);
	return 0;
}

/* linbatctl operator set --email E [--name N] [--role R] [--capacity C] [--password] [--disable|--enable] */
static int
ctl_operator_set(struct ctl *ctl, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "email", required_argument, NULL, 'e' }, { "name", required_argument, NULL, 'n' },
		{ "role", required_argument, NULL, 'r' }, { "capacity", required_argument, NULL, 'k' },
		{ "password", no_argument, NULL, 'p' }, { "disable", no_argument, NULL, 'd' },
		{ "enable", no_argument, NULL, 'E' }, { NULL, 0, NULL, 0 },
	};
	const char *usage = "operator set --email E [--name N] [--role R] [--capacity N] [--password] "
	    "[--disable|--enable]";
	/* $1 email, $2 name, $3 role, $4 capacity, $5 hash, $6 disabled */
	const char *params[6] = { NULL };
	char *hash = NULL;
	PGresult *res;
	int ch, password = 0;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'e': params[0] = optarg; break;
		case 'n': params[1] = optarg; break;
		case 'r': params[2] = optarg; break;
		case 'k': params[3] = optarg; break;
		case 'p': password = 1; break;
		case 'd': params[5] = "true"; break;
		case 'E': params[5] = "false"; break;
		default: return ctl_usage_error(ctl, usage);
		}
	}
	if (params[0] == NULL || optind != argc)
		return ctl_usage_error(ctl, usage);
	if (password && (params[4] = hash = ctl_new_password()) == NULL)
		return 1;
	res = ctl_exec(ctl, "select linbat.operator_update(null, o.id, $2, $3, $4::integer, $5, $6::boolean, null) "
	    "from linbat.operator o where o.email = lower($1)", 6, params);
	free(hash);
	if (res == NULL)
		return 1;
	ch = PQntuples(res) == 1 ? 0 : 1;
	if (ch == 0)
		printf("%s\n", PQgetvalue(res, 0, 0));
	else
		fprintf(stderr, "linbatctl: no operator has the e-mail %s\n", params[0]);
	PQclear(res);
	return ch;
}

/* linbatctl token create --email E [--name NAME] */
static int
ctl_token_create(struct ctl *ctl, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "email", required_argument, NULL, 'e' }, { "name", required_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 },
	};
	char hash[65], *token;
	const char *params[3] = { NULL, "default", hash };
	PGresult *res;
	int ch;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'e': params[0] = optarg; break;
		case 'n': params[1] = optarg; break;
		default: return ctl_usage_error(ctl, "token create --email E [--name NAME]");
		}
	}
	if (params[0] == NULL || optind != argc)
		return ctl_usage_error(ctl, "token create --email E [--name NAME]");
	token = util_random_hex(32);
	api_token_hash(token, hash);
	res = ctl_exec(ctl, "insert into linbat.api_token (operator_id, name, token_hash) "
	    "select id, $2, $3 from linbat.operator where email = lower($1) returning operator_id", 3, params);
	if (res != NULL && PQntuples(res) == 0)
		fprintf(stderr, "linbatctl: no operator has the e-mail %s\n", params[0]);
	if (res != NULL && PQntuples(res) == 1)
		printf("%s\n", token);
	ch = res != NULL && PQntuples(res) == 1 ? 0 : 1;
	PQclear(res);
	free(token);
	return ch;
}

/* linbatctl operator SUBCOMMAND */
static int
ctl_operator(struct ctl *ctl, int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(struct ctl *, int, char **);
	} subs[] = {
		{ "add", ctl_operator_add }, { "list", ctl_operator_list }, { "set", ctl_operator_set },
	};

	for (size_t i = 0; argc >= 2 && i < nitems(subs); i++) {
		if (strcmp(argv[1], subs[i].name) == 0)
			return subs[i].fn(ctl, argc - 1, argv + 1);
	}
	return ctl_usage_error(ctl, "operator add|list|set ...");
}

/* linbatctl token SUBCOMMAND */
static int
ctl_token(struct ctl *ctl, int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "create") == 0)
		return ctl_token_create(ctl, argc - 1, argv + 1);
	return ctl_usage_error(ctl, "token create --email E [--name NAME]");
}

const struct ctl_cmd ctl_operator_cmds[] = {
	{ "operator", "operator add|list|set --email E ...", "add, list or change operators (passwords on stdin)",
	    CTL_NEED_DB, ctl_operator },
	{ "token", "token create --email E [--name NAME]", "create a bearer API token and print it", CTL_NEED_DB,
	    ctl_token },
};
const size_t ctl_operator_ncmds = nitems(ctl_operator_cmds);
