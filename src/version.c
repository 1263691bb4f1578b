/*
 * version.c: --version for both programs. The library versions are read at
 * run time where the library can tell, so the output shows what is linked.
 */
#include "config.h"

#include <event2/event.h>
#include <curl/curl.h>
#include <gmime/gmime.h>
#include <jansson.h>
#include <libesmtp.h>
#include <libpq-fe.h>
#include <openssl/crypto.h>
#include <sodium.h>

#include "version.h"

void
version_print(FILE *f, const char *program)
{
	char esmtp[32] = "";
	int pq = PQlibVersion();

	smtp_version(esmtp, sizeof esmtp, 0);
	fprintf(f, "%s %s\n", program, PACKAGE_VERSION);
	fprintf(f, "libevent %s\n", event_get_version());
	fprintf(f, "libpq %d.%d\n", pq / 10000, pq % 10000);
	fprintf(f, "libcurl %s\n", curl_version_info(CURLVERSION_NOW)->version);
	fprintf(f, "jansson %s\n", jansson_version_str());
	fprintf(f, "openssl %s\n", OpenSSL_version(OPENSSL_VERSION));
	fprintf(f, "libsodium %s\n", sodium_version_string());
	fprintf(f, "libesmtp %s\n", esmtp);
	fprintf(f, "gmime %u.%u.%u\n", gmime_major_version, gmime_minor_version, gmime_micro_version);
	fprintf(f, "inih %s\n", INIH_VERSION);
}
