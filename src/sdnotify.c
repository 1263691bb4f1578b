/*
 * sdnotify.c: READY, STOPPING, RELOADING and WATCHDOG for Type=notify units.
 * The protocol is one datagram per state on an AF_UNIX socket; a leading '@'
 * in the path means the abstract namespace.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "sdnotify.h"

static struct event *sdnotify_timer;

int
sdnotify_send(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sun;
	socklen_t len;
	int fd, rc;

	if (path == NULL || *path == '\0')
		return 0;
	if ((path[0] != '/' && path[0] != '@') || strlen(path) >= sizeof sun.sun_path) {
		log_warn("sdnotify", "NOTIFY_SOCKET is not a socket path; not notifying.");
		return -1;
	}
	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, strlen(path));
	if (path[0] == '@')
		sun.sun_path[0] = '\0';
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path));
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
		return -1;
	rc = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sun, len) < 0 ? -1 : 0;
	if (rc != 0)
		log_warn("sdnotify", "Could not notify systemd. state=%s reason=\"%s\"", state, strerror(errno));
	close(fd);
	return rc;
}

/* Tell systemd the loop is alive. */
static void
sdnotify_tick(evutil_socket_t fd, short what, void *arg)
{
	sdnotify_send("WATCHDOG=1");
}

void
sdnotify_watchdog_start(struct event_base *base)
{
	const char *usec = getenv("WATCHDOG_USEC");
	long long us = usec != NULL ? atoll(usec) : 0;
	struct timeval tv;

	if (us <= 0 || getenv("NOTIFY_SOCKET") == NULL)
		return;
	tv.tv_sec = (time_t)(us / 2 / 1000000);
	tv.tv_usec = (suseconds_t)(us / 2 % 1000000);
	sdnotify_timer = event_new(base, -1, EV_PERSIST, sdnotify_tick, NULL);
	event_add(sdnotify_timer, &tv);
}

void
sdnotify_watchdog_stop(void)
{
	if (sdnotify_timer != NULL) {
		event_free(sdnotify_timer);
		sdnotify_timer = NULL;
	}
}
