/*
 * fuzz-conf.c: libFuzzer target for the configuration parser. conf_load()
 * takes a path, so the input is written to a memory file (memfd) and loaded
 * through /proc/self/fd, with the real channel schemas; a config that loads
 * is read back key by key as linbatd would, and checked for reload against
 * itself (which must always pass).
 */
#define _GNU_SOURCE
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "channel.h"
#include "conf.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The memory file the inputs are written to, and its path. */
static int fuzz_conf_fd = -1;
static char fuzz_conf_path[64];

/* Read every daemon key and every channel's name, type and keys. */
static void
fuzz_conf_walk(const struct conf *c)
{
	const struct conf_key *k;
	const struct conf_section *s;
	size_t n, i, j;

	k = conf_schema(&n);
	for (i = 0; i < n; i++)
		conf_str(c, k[i].section, k[i].name);
	k = conf_channel_schema(&n);
	for (j = 0; j < conf_channel_count(c); j++) {
		s = conf_channel(c, j);
		conf_channel_name(s);
		conf_channel_type(s);
		for (i = 0; i < n; i++)
			conf_channel_str(s, k[i].name);
	}
}

/* One input: a whole config file. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct conf *c;
	char *cause = NULL;

	if (fuzz_conf_fd < 0) {
		log_set_level(LOG_LEVEL_ERROR);
		if ((fuzz_conf_fd = memfd_create("linbat.conf", 0)) < 0)
			abort();
		snprintf(fuzz_conf_path, sizeof fuzz_conf_path, "/proc/self/fd/%d", fuzz_conf_fd);
	}
	if (ftruncate(fuzz_conf_fd, 0) != 0 || pwrite(fuzz_conf_fd, data, size, 0) != (ssize_t)size)
		abort();
	if ((c = conf_load(fuzz_conf_path, channel_schema, &cause)) == NULL) {
		if (cause == NULL)
			abort();
		free(cause);
		log_clear_secrets();
		return 0;
	}
	fuzz_conf_walk(c);
	if (conf_check_reload(c, c, &cause) != 0)
		abort();
	conf_free(c);
	log_clear_secrets();
	return 0;
}
