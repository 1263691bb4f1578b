/*
 * scheduler.h: linbatd's periodic chores. On a timer (the [scheduler]
 * interval) it runs a fixed list of SQL chores, one after the other: plan
 * the reminders that are due (linbat.plan_reminders, which takes an advisory
 * lock so that several linbatd processes plan once), hand the planned
 * reminders whose time has come to the outbox as messages, a batch a round
 * (linbat.reminder_send_due, the same way), move conversations past
 * their SLA (linbat.sweep_sla), drop stray early statuses. The chores are
 * SQL functions; the scheduler only calls them and logs what they did.
 */
#ifndef LINBAT_SCHEDULER_H
#define LINBAT_SCHEDULER_H

struct server;
struct scheduler;

/* Make the scheduler from the [scheduler] section; no I/O yet. */
struct scheduler *scheduler_create(struct server *, char **cause);
/* Arm the timer: the first round runs one interval after start. */
void scheduler_start(struct scheduler *);
/* Disarm the timer; a chore under way finishes on its own. */
void scheduler_stop(struct scheduler *);
/* Free the scheduler; its query callbacks must have run (stop, then drain the loop). */
void scheduler_destroy(struct scheduler *);

#endif
