/*
 * statuses.h: delivery statuses by linbat's own message id (Kannel's
 * dlr-url carries it), recorded in batches through
 * linbat.status_update_by_id: what comes while earlier batches are in the
 * database goes together in the next statement (see statuses.c).
 */
#ifndef LINBAT_STATUSES_H
#define LINBAT_STATUSES_H

#include "db.h"

/*
 * Record status (at: unix seconds as text, NULL for now; code and text may
 * be NULL) for outbound message id. cb is called once, with res NULL, when
 * this status's row is committed (error NULL) or failed: error and sqlstate
 * as db_cb gives them for the row alone.
 */
void statuses_by_id(struct db *, long long id, const char *status, const char *at, const char *code,
    const char *text, db_cb cb, void *arg);

#endif
