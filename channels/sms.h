/*
 * sms.h: the SMS adapters, "sms-kannel" (Kannel's smsbox over HTTP) and
 * "sms-twilio" (Twilio's Messages API and the aggregators that copy it).
 * Both give numbers to phone_normalise(); what of their protocols needs no
 * I/O is declared here so the unit tests can drive it directly.
 */
#ifndef LINBAT_SMS_H
#define LINBAT_SMS_H

#include <stddef.h>

#include "channel.h"

extern const struct channel_type channel_sms_kannel;
extern const struct channel_type channel_sms_twilio;

/* Whether a UTF-8 text fits GSM 03.38's default alphabet and its extension table. */
int sms_kannel_gsm7(const char *utf8);

/* One name=value of a form body, decoded. */
struct sms_param {
	char *name;
	char *value;
};

/*
 * Decode an application/x-www-form-urlencoded body into an array sorted by
 * name, then value (the order Twilio signs in); *n is its length. Free with
 * sms_twilio_params_free.
 */
struct sms_param *sms_twilio_params(const char *body, size_t len, size_t *n);
void sms_twilio_params_free(struct sms_param *, size_t n);
/* The value of name in sorted params, or NULL. */
const char *sms_twilio_param(const struct sms_param *, size_t n, const char *name);

/*
 * X-Twilio-Signature for a request: base64 of HMAC-SHA1(token, url followed
 * by each parameter's name and value in sorted order). Caller frees.
 */
char *sms_twilio_signature(const char *token, const char *url, const struct sms_param *, size_t n);

#endif
