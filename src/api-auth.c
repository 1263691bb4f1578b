/*
 * api-auth.c: logging in and out of the web inbox, and the caller's presence.
 * A login checks the throttle and fetches the account's argon2id hash in one
 * query, checks the password on a worker thread (crypto_pwhash_str_verify
 * takes tens of milliseconds and 64 MiB: never on the loop), then opens a
 * session. The cookie holds a random token whose SHA-256 the session row
 * keeps; the CSRF token goes back in the JSON answer for the page to echo in
 * X-CSRF-Token. An unknown account is checked against a dummy hash, so the
 * answer takes as long as for a wrong password.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "api.h"
#include "db.h"
#include "log.h"
#include "server.h"
#include "util.h"

/* The argon2id hash of a random password nobody knows (for unknown accounts). */
static const char api_auth_dummy_hash[] =
    "$argon2id$v=19$m=65536,t=2,p=1$4mbv+U5M5P3KI+K9TG5yXw$jND0OZPc+0YpKhKpSGfARdUCnXy+r5lzBl1X5S7aIFU";

/* A login in progress. */
struct api_login {
	struct api_call *call;
	char *email;
	char *password;       /* wiped and freed once checked */
	char *hash;           /* the account's argon2id string, or NULL */
	char operator_id[24]; /* "" when no such account */
	int ok;               /* the password matched */
	char token[65];       /* the session cookie's value */
	char token_hash[65];
	char csrf[65];
};

/* Free a login's state, wiping the password. */
static void
api_login_free(struct api_login *l)
{
	if (l->password != NULL) {
		sodium_memzero(l->password, strlen(l->password));
		free(l->password);
	}
	free(l->email);
	free(l->hash);
	sodium_memzero(l->token, sizeof l->token);
	free(l);
}

/* On a worker thread: check the password against the hash. */
static void
api_login_verify(void *arg)
{
	struct api_login *l = arg;
	const char *hash = l->hash != NULL ? l->hash : api_auth_dummy_hash;

	l->ok = crypto_pwhash_str_verify(hash, l->password, strlen(l->password)) == 0 && l->hash != NULL &&
	    l->operator_id[0] != '\0';
}

/* The session was stored: set the cookie and answer with the CSRF token. */
static void
api_login_opened(const PGresult *res, const char *error, const char *sqlstate, void *arg)
{
	struct api_login *l = arg;
	struct api_call *call = l->call;
	char *cookie;
	const char *v;
	long long ttl = conf_int(call->srv->conf, "auth", "session_ttl") / 1000;
	int secure = strncmp(conf_str(call->srv->conf, "daemon", "public_url"), "https:", 6) == 0;

	if (error != NULL)
		api_sql_error(call->hr, error, sqlstate);
	else {
		xasprintf(&cookie, "%s=%s; Path=/; Max-Age=%lld; HttpOnly; SameSite=Strict%s", API_SESSION_COOKIE,
		    l->token, ttl, secure ? "; Secure" : "");
		http_add_header(call->hr, "Set-Cookie", cookie);
		free(cookie);
		log_info("api", "Operator logged in. operator=%s peer=%s", l->operator_id, http_req_peer(call->hr));
		v = PQgetvalue(res, 0, 0);
		http_reply(call->hr, 200, "application/json", v, strlen(v));
	}
	api_login_free(l);
}

/* The failure was recorded: answer 401. */
static void
api_login_refused(const PGresult *res, const char *error, const char *sqlstate, void *arg)
{
	struct api_login *l = arg;

	log_info("api", "A login failed. peer=%s", http_req_peer(l->call->hr));
	http_reply_error(l->call->hr, HTTP_ERR_UNAUTHORIZED, "The e-mail or the password is wrong.");
	api_login_free(l);
}

/* 32 random bytes as hex into out (65 bytes). */
static void
api_auth_random(char *out)
{
	unsigned char raw[32];

	util_random(raw, sizeof raw);
	util_hex(raw, sizeof raw, out);
}

/* Back on the loop with the worker's verdict: open a session, or count a failure. */
static void
api_login_checked(void *arg)
{
	struct api_login *l = arg;
	struct api_call *call = l->call;
	char ttl[24];
	const char *params[5] = { l->operator_id, l->token_hash, l->csrf, ttl, http_req_peer(call->hr) };

	if (!l->ok) {
		params[0] = l->email;
		params[1] = http_req_peer(call->hr);
		db_query(call->srv->db, "select linbat.login_failed($1, $2)", 2, params, api_login_refused, l);
		return;
	}
	snprintf(ttl, sizeof ttl, "%lld", conf_int(call->srv->conf, "auth", "session_ttl") / 1000);
	api_auth_random(l->token);
	api_auth_random(l->csrf);
	api_token_hash(l->token, l->token_hash);
	db_query(call->srv->db, "select linbat.login_succeeded($1::bigint, $2, $3, $4::integer, $5)", 5, params,
	    api_login_opened, l);
}

/* The throttle and the account came back: refuse, or check the password. */
static void
api_login_found(const PGresult *res, const char *error, const char *sqlstate, void *arg)
{
	struct api_login *l = arg;

	if (error != NULL) {
		api_sql_error(l->call->hr, error, sqlstate);
		api_login_free(l);
		return;
	}
	if (strcmp(PQgetvalue(res, 0, 0), "t") == 0) {
		log_warn("api", "A login was throttled. peer=%s", http_req_peer(l->call->hr));
		http_reply_error(l->call->hr, HTTP_ERR_RATE_LIMITED, "Too many failed logins; try again later.");
		api_login_free(l);
		return;
	}
	if (!PQgetisnull(res, 0, 1))
		snprintf(l->operator_id, sizeof l->operator_id, "%s", PQgetvalue(res, 0, 1));
	if (!PQgetisnull(res, 0, 2))
		l->hash = xstrdup(PQgetvalue(res, 0, 2));
	api_work(l->call->srv, api_login_verify, api_login_checked, l);
}

/* POST /api/v1/login {"email", "password"} */
static void
api_login(struct api_call *call)
{
	json_t *req, *email, *password;
	struct api_login *l;
	const char *params[2];

	if ((req = http_req_json(call->hr)) == NULL)
		return;
	email = json_object_get(req, "email");
	password = json_object_get(req, "password");
	if (!json_is_string(email) || !json_is_string(password) || json_string_length(email) > 254 ||
	    json_string_length(password) > 1024) {
		json_decref(req);
		http_reply_error(call->hr, HTTP_ERR_BAD_REQUEST, "Send {\"email\": \"...\", \"password\": \"...\"}.");
		return;
	}
	l = xcalloc(1, sizeof *l);
	l->call = call;
	l->email = xstrdup(json_string_value(email));
	l->password = xstrdup(json_string_value(password));
	json_decref(req);
	params[0] = l->email;
	params[1] = http_req_peer(call->hr);
	db_query(call->srv->db, "select throttled, operator_id, password_hash from linbat.login_begin($1, $2)", 2,
	    params, api_login_found, l);
}

/* The session row is gone: clear the cookie. */
static void
api_logout_done(const PGresult *res, const char *error, const char *sqlstate, void *arg)
{
	struct api_call *call = arg;

	if (error != NULL) {
		api_sql_error(call->hr, error, sqlstate);
		return;
	}
	http_add_header(call->hr, "Set-Cookie", API_SESSION_COOKIE "=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict");
	http_reply(call->hr, 204, NULL, NULL, 0);
}

/* POST /api/v1/logout: end the session of the cookie (a bearer caller has none). */
static void
api_logout(struct api_call *call)
{
	const char *cookie = http_req_header(call->hr, "Cookie");
	const char *p = cookie != NULL ? strstr(cookie, API_SESSION_COOKIE "=") : NULL;
	char hash[65], value[256];
	const char *params[2] = { hash, http_req_peer(call->hr) };
	size_t n;

	if (!call->by_cookie || p == NULL) {
		api_logout_done(NULL, NULL, NULL, call);
		return;
	}
	p += strlen(API_SESSION_COOKIE "=");
	n = strcspn(p, "; ");
	snprintf(value, sizeof value, "%.*s", (int)(n < sizeof value ? n : sizeof value - 1), p);
	api_token_hash(value, hash);
	db_query(call->srv->db, "select linbat.logout($1, $2)", 2, params, api_logout_done, call);
}

/* GET /api/v1/me: who the caller is. */
static void
api_me(struct api_call *call)
{
	const char *params[1] = { call->operator_str };

	api_json_query(call, 200, "select linbat.operator_json($1::bigint)", 1, params);
}

/* GET /api/v1/me/presence */
static void
api_presence_get(struct api_call *call)
{
	const char *params[1] = { call->operator_str };

	api_json_query(call, 200, "select json_build_object('presence', presence) from linbat.operator "
	    "where id = $1::bigint", 1, params);
}

/* PUT /api/v1/me/presence {"presence": "online|away|offline"} */
static void
api_presence_put(struct api_call *call)
{
	json_t *req, *p;
	const char *params[2] = { call->operator_str, NULL };

	if ((req = http_req_json(call->hr)) == NULL)
		return;
	p = json_object_get(req, "presence");
	if (!json_is_string(p)) {
		json_decref(req);
		http_reply_error(call->hr, HTTP_ERR_BAD_REQUEST, "Send {\"presence\": \"online|away|offline\"}.");
		return;
	}
	params[1] = json_string_value(p);
	api_json_query(call, 200, "select json_build_object('assigned', linbat.set_presence($1::bigint, $2), "
	    "'presence', $2::text)", 2, params);
	json_decref(req);
}

static const struct api_route api_auth_routes[] = {
	{ "POST", "/api/v1/login", API_ROLE_ANON, api_login },
	{ "POST", "/api/v1/logout", API_ROLE_OPERATOR, api_logout },
	{ "GET", "/api/v1/me", API_ROLE_OPERATOR, api_me },
	{ "GET", "/api/v1/me/presence", API_ROLE_OPERATOR, api_presence_get },
	{ "PUT", "/api/v1/me/presence", API_ROLE_OPERATOR, api_presence_put },
};

void
api_auth_init(struct server *srv)
{
	if (sodium_init() < 0)
		log_fatal("api", "libsodium could not be initialised.");
	api_add_routes(srv, api_auth_routes, nitems(api_auth_routes));
}
