/*
 * api-campaign.h: the campaign, filing and NIB-claim routes of /api/v1
 * (api-campaign.c), registered by api_init.
 */
#ifndef LINBAT_API_CAMPAIGN_H
#define LINBAT_API_CAMPAIGN_H

struct server;

/* Register the routes of api-campaign.c. */
void api_campaign_init(struct server *);

#endif
