-- 0019_satisfaction: the satisfaction survey (DESIGN.md, "Satisfaction").
-- When an operator resolves a conversation, the investor is asked for a
-- score of 1 to 5 on the way they last wrote; a reply that is only that
-- digit, while no other conversation of theirs is open, is recorded here
-- and not routed. One row per conversation asked: asked_at when the
-- question was queued, score and answered_at once the investor replied.
-- The functions that ask and record live with the routing and ingest
-- functions they extend (0011); this file holds the table, so
-- that reports can be written against it.

create table linbat.satisfaction (
	conversation_id bigint primary key references linbat.conversation (id),
	investor_id bigint not null references linbat.investor (id),
	asked_at timestamptz not null default now(),
	score smallint check (score between 1 and 5),
	answered_at timestamptz,
	-- a score is an answer, and an answer has a score
	constraint satisfaction_answered check ((score is null) = (answered_at is null))
);

-- Serves the ingest's question "has this investor a question pending?".
create index satisfaction_pending on linbat.satisfaction (investor_id, asked_at)
	where score is null;
