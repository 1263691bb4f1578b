/*
 * server.h: the state of one linbatd process, shared by the modules that run
 * on its loop. There is one of these, made in linbatd.c; PostgreSQL holds
 * everything that must outlive the process.
 */
#ifndef LINBAT_SERVER_H
#define LINBAT_SERVER_H

#include <event2/event.h>

#include "channel.h"
#include "conf.h"
#include "curlev.h"
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
	struct curlev *curl;
	struct channel_env env;       /* what every channel instance is lent */
	struct channel **channels;    /* one per [channel NAME] section */
	size_t nchannels;
	struct dispatch *dispatch;
	struct api *api;              /* the API's state (api.c) */
	char owner[96];  /* "host:pid", the lease owner of claimed work */
	int stopping;
};

/* Register GET /healthz. */
void health_init(struct server *);
/* The channel instance called name, or NULL. */
struct channel *server_channel(struct server *, const char *name);

#endif
