/*
 * sdnotify.h: systemd's notify protocol, spoken directly over the datagram
 * socket named by $NOTIFY_SOCKET, so linbatd needs no libsystemd. Outside
 * systemd (no $NOTIFY_SOCKET) every call does nothing.
 */
#ifndef LINBAT_SDNOTIFY_H
#define LINBAT_SDNOTIFY_H

#include <event2/event.h>

/* Send one state string ("READY=1", "STOPPING=1", ...); 0, or -1 if it could not be sent. */
int sdnotify_send(const char *state);
/* If $WATCHDOG_USEC is set, send WATCHDOG=1 at half that interval from the loop. */
void sdnotify_watchdog_start(struct event_base *);
void sdnotify_watchdog_stop(void);

#endif
