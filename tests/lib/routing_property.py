"""The routing property run: random inbound messages, resolves and presence
changes driven through two (or more) linbatd processes on one database, and
the invariants checked on the history of every assignment that PostgreSQL
announced (NOTIFY linbat_event, in commit order):

  - no operator is ever over capacity;
  - no conversation is assigned twice (a router never takes one that already
    has an operator: each assignment's "previous" is what the history says);
  - the queue is FIFO (queue assignments take conversations oldest first);
  - every waiting conversation is assigned once someone is free (after the
    run, and after each round of resolves that drains the queue).

Inbound messages are signed WhatsApp webhooks posted to the processes in
turn; resolves and presence changes are API calls, also spread over them.
tests/integration/test_routing_property.py runs it small; bench/routing-property
runs the full size (10,000 messages, 2,000 investors, 20 operators of 5).
"""

import collections
import concurrent.futures
import hashlib
import json
import random
import select
import threading
import time

import psycopg2

import linbat
import os as _os
import sys as _sys

_sys.path.insert(0, _os.path.join(linbat.TOP_SRCDIR, "tests", "emulators"))
import wa_webhook as wh  # noqa: E402


class Listener(threading.Thread):
    """Collects every linbat_event notification, in order, on its own connection."""

    def __init__(self, dsn):
        super().__init__(daemon=True)
        self.conn = psycopg2.connect(dsn)
        self.conn.autocommit = True
        self.conn.cursor().execute("listen linbat_event")
        self.events = []
        self.stop = threading.Event()
        self.start()

    def run(self):
        while not self.stop.is_set():
            if select.select([self.conn], [], [], 0.1)[0]:
                self.conn.poll()
                while self.conn.notifies:
                    self.events.append(json.loads(self.conn.notifies.pop(0).payload))

    def close(self):
        self.stop.set()
        self.join()
        self.conn.close()


def sql(conn, query, params=None):
    with conn.cursor() as cur:
        cur.execute(query, params)
        return cur.fetchall() if cur.description else []


def make_operators(conn, n, capacity):
    """n operators with bearer tokens, the even ones online; returns [(id, token)]."""
    ops = []
    for i in range(n):
        tok = "prop-token-%03d-%s" % (i, random.getrandbits(64))
        oid = sql(conn, "insert into linbat.operator (name, email, capacity) values (%s, %s, %s) returning id",
                  ("Petugas %d" % i, "petugas%d@prop.example" % i, capacity))[0][0]
        sql(conn, "insert into linbat.api_token (token_hash, operator_id, name) values (%s, %s, 'prop')",
            (hashlib.sha256(tok.encode()).hexdigest(), oid))
        if i % 2 == 0:
            sql(conn, "select linbat.set_presence(%s, 'online')", (oid,))
        ops.append((oid, tok))
    return ops


def api(daemon, method, path, body, tok):
    return linbat.http(method, daemon.url + path, json.dumps(body).encode() if body is not None else None,
                       {"Authorization": "Bearer " + tok, "Content-Type": "application/json"}, timeout=30)


def plan(rng, n_messages, n_investors, n_ops, resolve_every, presence_every):
    """The random sequence of actions: ("in", investor), ("resolve",), ("presence", op, state)."""
    actions = []
    for i in range(n_messages):
        actions.append(("in", rng.randrange(n_investors)))
        if i % resolve_every == resolve_every - 1:
            actions.append(("resolve",))
        if i % presence_every == presence_every - 1:
            actions.append(("presence", rng.randrange(n_ops), rng.choice(("online", "online", "away", "offline"))))
    return actions


def act(action, daemons, ops, conn_lock, conn, app_secret, rng, counts):
    """Carry out one action through one of the daemons."""
    d = daemons[rng.randrange(len(daemons))]
    if action[0] == "in":
        frm = "62812%07d" % action[1]
        status, answer = wh.post(d.url + "/webhooks/wa1", wh.webhook(wh.value(messages=[wh.text(frm, "Halo")])),
                                 app_secret, timeout=30)
        assert status == 200, (status, answer)
        counts["inbound"] += 1
    elif action[0] == "resolve":
        with conn_lock:
            rows = sql(conn, "select c.id, c.assigned_operator from linbat.conversation c "
                       "where c.status <> 'resolved' and c.assigned_operator is not null order by random() limit 1")
        if rows:
            tok = dict(ops)[rows[0][1]]
            r = api(d, "POST", "/api/v1/conversations/%d/resolve" % rows[0][0], None, tok)
            assert r.status in (200, 403, 409), r  # 403/409: another action moved it first
            counts["resolves"] += r.status == 200
    else:
        oid, tok = ops[action[1]]
        r = api(d, "PUT", "/api/v1/me/presence", {"presence": action[2]}, tok)
        assert r.status == 200, r
        counts["presence changes"] += 1


def check_history(events, capacity, created):
    """Replay the notifications; return a list of invariant violations.

    A conversation enters the queue in the transaction that queues its one
    acknowledgement (an outbound message notification: this run sends no
    replies), so the notifications, in commit order, say what waited when.
    FIFO: a queue assignment takes the oldest (queued time, id) of the
    conversations seen waiting at that point."""
    bad = []
    holder = {}                      # conversation -> operator now
    load = collections.Counter()     # operator -> open conversations
    waiting = set()
    for ev in events:
        kind = ev.get("type")
        if kind == "message" and ev.get("direction") == "out" and holder.get(ev["conversation"]) is None:
            waiting.add(ev["conversation"])
        elif kind == "assignment":
            conv, op, prev = ev["conversation"], ev["operator"], ev["previous"]
            if holder.get(conv) != prev:
                bad.append("conversation %d: assignment says previous %s, history says %s" % (conv, prev, holder.get(conv)))
            if ev["reason"] in ("route", "queue") and prev is not None:
                bad.append("conversation %d assigned twice (%s then %s)" % (conv, prev, op))
            if ev["reason"] == "queue" and waiting and min(created[w] for w in waiting) < created[conv]:
                bad.append("queue not FIFO: conversation %d taken before %s" %
                           (conv, min(waiting, key=lambda w: created[w])))
            waiting.discard(conv)
            if holder.get(conv) is not None:
                load[holder[conv]] -= 1
            holder[conv] = op
            if op is not None:
                load[op] += 1
                if load[op] > capacity:
                    bad.append("operator %d over capacity: %d > %d" % (op, load[op], capacity))
        elif kind == "conversation" and ev.get("status") == "resolved":
            if holder.get(ev["conversation"]) is not None:
                load[holder[ev["conversation"]]] -= 1
            holder[ev["conversation"]] = None
            waiting.discard(ev["conversation"])
    return bad


def waiting_while_free(conn):
    """(waiting conversations, free operators) now; both non-zero breaks the last invariant. Open
    conversations are counted afresh, not read from the router's operator.open_count."""
    return sql(conn, "select (select count(*) from linbat.conversation where status <> 'resolved' "
               "and assigned_operator is null), (select count(*) from linbat.operator o where o.presence = 'online' "
               "and (select count(*) from linbat.conversation c where c.assigned_operator = o.id "
               "and c.status <> 'resolved') < o.capacity)")[0]


def run(dsn, daemons, app_secret, n_messages=200, n_investors=40, n_operators=4, capacity=2, seed=None,
        workers=4, log=print):
    """Run the property; return (violations, counts)."""
    seed = seed if seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    ops = make_operators(conn, n_operators, capacity)
    listener = Listener(dsn)
    actions = plan(rng, n_messages, n_investors, n_operators, max(3, n_messages // 60 or 1), 7)
    counts = collections.Counter()
    lock = threading.Lock()
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        futs = [pool.submit(act, a, daemons, ops, lock, conn, app_secret, random.Random(rng.random()), counts)
                for a in actions]
        for f in futs:
            f.result()
    counts["seconds driving"] = round(time.monotonic() - started, 1)
    bad = []
    w, f = waiting_while_free(conn)
    if w and f:
        bad.append("after the run %d conversations wait while %d operators are free" % (w, f))
    counts["waiting at the end"] = w
    # everyone comes online; resolve in rounds until nothing is open, checking the queue drains
    for oid, tok in ops:
        api(daemons[oid % len(daemons)], "PUT", "/api/v1/me/presence", {"presence": "online"}, tok)
    for _ in range(10 * n_investors):
        w, f = waiting_while_free(conn)
        if w and f:
            bad.append("%d conversations wait while %d operators are free" % (w, f))
            break
        rows = sql(conn, "select id, assigned_operator from linbat.conversation "
                   "where status <> 'resolved' and assigned_operator is not null")
        if not rows:
            break
        for cid, oid in rows:
            api(daemons[cid % len(daemons)], "POST", "/api/v1/conversations/%d/resolve" % cid, None, dict(ops)[oid])
    time.sleep(0.5)
    listener.close()
    created = {cid: (at, cid) for cid, at in
               sql(conn, "select id, coalesce(queued_first_at, created_at) from linbat.conversation")}
    bad += check_history(listener.events, capacity, created)
    row = sql(conn, "select (select count(*) from linbat.message where direction = 'in'), "
              "(select count(*) from linbat.investor), (select count(*) from linbat.conversation), "
              "(select count(*) from linbat.message where meta ? 'ack'), "
              "(select count(*) from linbat.conversation where status <> 'resolved')")[0]
    counts.update({"seed": seed, "messages stored": row[0], "investors": row[1], "conversations": row[2],
                   "acknowledgements": row[3], "left open": row[4], "operators": n_operators, "capacity": capacity,
                   "assignments": sum(1 for e in listener.events if e.get("type") == "assignment"),
                   "route assignments": sum(1 for e in listener.events if e.get("reason") == "route"),
                   "queue assignments": sum(1 for e in listener.events if e.get("reason") == "queue"),
                   "violations": len(bad)})
    conn.close()
    log("routing property: " + ", ".join("%s=%s" % kv for kv in sorted(counts.items())))
    return bad, counts
