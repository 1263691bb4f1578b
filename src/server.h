/*
 * server.h: the state of one linbatd process, shared by the modules that run
 * on its loop. There is one of these, made in linbatd.c; PostgreSQL holds
 * everything that must outlive the process.
 */
#ifndef LINBAT_SERVER_H
#define LINBAT_SERVER_H

#include <event2/event.h>

#include "conf.h"
#include "db.h"
#include "http.h"
#include "migrate.h"

struct server {
	struct event_base *base;
	char *conf_path;
	struct conf *conf;
	struct db *db;
	struct http_server *http;
	struct migration_set migrations;
	char owner[96];  /* "host:pid", the lease owner of claimed work */
	int stopping;
};

/* Register GET /healthz. */
void health_init(struct server *);

#endif
