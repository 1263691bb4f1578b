/*
 * test.h: the "test" channel adapter, which reaches no provider. Each send is
 * appended to a file as one JSON line and answered after a delay, as sent or
 * as the failure its config asks for; tests and benchmarks use it to drive
 * the dispatcher's retries, template resends and channel fallback. Its
 * instances reach identities of kind "sms", so that fallback can pick them
 * (see channels/test.c).
 */
#ifndef LINBAT_CHANNEL_TEST_H
#define LINBAT_CHANNEL_TEST_H

#include "channel.h"

extern const struct channel_type channel_test;

#endif
