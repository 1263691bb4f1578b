"""What the web pages read beyond the inbox core (migration 0013, src/api-desk.c):
list items with waiting time, unread count per operator and the last message;
read markers; the investor panel with identities, opt-outs and LKPM filings;
messages with delivery failures and attachments, and the attachment bytes;
quick replies; the operators' load; reports as JSON and CSV (response times,
satisfaction as IKM, who has not filed, a campaign's funnel and timeline).
Every route: its role, CSRF with a cookie, and bad input that changes nothing."""

import csv
import io
import json

import pytest

import inbox
from inbox import call, sql

ROLES = ("operator", "manager", "admin")


@pytest.fixture
def daemon(start_linbatd, tmp_path):
    d = start_linbatd(extra={"channel t1": {"type": "test", "record": str(tmp_path / "t1.jsonl")}})
    return d


@pytest.fixture
def team(daemon, db):
    """An operator (online, capacity 5), a second operator and a manager, with tokens."""
    ids = {"ani": inbox.add_operator(db, "ani@x.id", online=True),
           "budi": inbox.add_operator(db, "budi@x.id"),
           "mira": inbox.add_operator(db, "mira@x.id", role="manager")}
    toks = {k: inbox.token(db, "%s@x.id" % k) for k in ids}
    return ids, toks


def get(daemon, tok, path, status=200):
    r = call(daemon, "GET", path, None, inbox.bearer(tok))
    assert r.status == status, r
    return r.json() if r.headers.get("content-type", "").startswith("application/json") else r


def send(daemon, tok, method, path, body=None):
    return call(daemon, method, path, body, inbox.bearer(tok))


def item(daemon, tok, conv):
    page = get(daemon, tok, "/api/v1/conversations?limit=200")["conversations"]
    return [c for c in page if c["id"] == conv][0]


def investor_of(db, conv):
    return sql(db, "select investor_id from linbat.conversation where id = %s", (conv,))[0][0]


def test_list_items_carry_waiting_time_unread_per_operator_and_last_message(daemon, db, team):
    ids, toks = team
    conv = inbox.ingest(db, "+6281200000601", "w-1", "Selamat pagi")
    inbox.ingest(db, "+6281200000601", "w-2", "Mau tanya LKPM " + "x" * 200)
    it = item(daemon, toks["ani"], conv)
    assert it["assignee"] == ids["ani"] and it["unread"] == 2
    assert it["unanswered_since"] is not None and it["waiting_seconds"] >= 0
    assert it["last_message"]["direction"] == "in" and len(it["last_message"]["preview"]) == 120
    assert item(daemon, toks["mira"], conv)["unread"] == 2
    # Ani reads: her count drops, the manager's does not
    r = send(daemon, toks["ani"], "POST", "/api/v1/conversations/%d/read" % conv)
    assert r.status == 200 and r.json()["unread"] == 0, r
    last = r.json()["read_up_to"]
    assert item(daemon, toks["ani"], conv)["unread"] == 0
    assert item(daemon, toks["mira"], conv)["unread"] == 2
    # her reply answers the investor; a note does not; the next inbound waits again
    assert send(daemon, toks["ani"], "POST", "/api/v1/conversations/%d/notes" % conv,
                {"body": "cek dulu"}).status == 201
    assert item(daemon, toks["ani"], conv)["unanswered_since"] is not None
    assert send(daemon, toks["ani"], "POST", "/api/v1/conversations/%d/messages" % conv,
                {"body": "Baik, kami bantu."}).status == 201
    it = item(daemon, toks["ani"], conv)
    assert it["unanswered_since"] is None and it["waiting_seconds"] is None
    assert it["last_message"]["preview"] == "Baik, kami bantu." and it["last_message"]["direction"] == "out"
    inbox.ingest(db, "+6281200000601", "w-3", "Terima kasih")
    it = item(daemon, toks["ani"], conv)
    assert it["unread"] == 1 and it["unanswered_since"] is not None
    # marking up to an older message never moves the marker back
    r = send(daemon, toks["ani"], "POST", "/api/v1/conversations/%d/read" % conv, {"message": last - 1})
    assert r.status == 200 and r.json()["read_up_to"] == last and r.json()["unread"] == 1, r
    # bad input: 400 and the marker stays
    other = inbox.ingest(db, "+6281200000602", "w-4", "Lain")
    foreign = sql(db, "select max(id) from linbat.message where conversation_id = %s", (other,))[0][0]
    for body in ({"message": "abc"}, {"message": foreign}, {"message": 1.5}):
        r = send(daemon, toks["ani"], "POST", "/api/v1/conversations/%d/read" % conv, body)
        assert r.status == 400 and r.json()["error"]["code"] == "bad_request", (body, r)
    r = call(daemon, "POST", "/api/v1/conversations/%d/read" % conv, b"{not json", inbox.bearer(toks["ani"]))
    assert r.status == 400
    assert sql(db, "select message_id from linbat.conversation_read where operator_id = %s", (ids["ani"],)) \
        == [(last,)]
    # Budi may not read Ani's conversation, nor mark it; an unknown one is 404
    assert send(daemon, toks["budi"], "POST", "/api/v1/conversations/%d/read" % conv).status == 403
    assert send(daemon, toks["budi"], "POST", "/api/v1/conversations/999999/read").status == 404
    # with a cookie, the read marker needs the CSRF token like every change
    s = inbox.Session(daemon, "ani@x.id")
    r = s.request("POST", "/api/v1/conversations/%d/read" % conv, csrf=False)
    assert r.status == 403 and r.json()["error"]["code"] == "csrf"
    assert item(daemon, toks["ani"], conv)["unread"] == 1
    assert s.request("POST", "/api/v1/conversations/%d/read" % conv).status == 200
    assert item(daemon, toks["ani"], conv)["unread"] == 0


def test_conversation_detail_has_the_investor_panel(daemon, db, team):
    ids, toks = team
    conv = inbox.ingest(db, "+6281200000701", "p-1", "Halo")
    inv = investor_of(db, conv)
    sql(db, "update linbat.investor set nib = '1234567890123', company_name = 'PT Sulawesi Jaya', "
        "scale = 'menengah', kbli = '{46100,10110}', kbli_version = '2020', district = 'Kota Makassar' "
        "where id = %s", (inv,))
    sql(db, "insert into linbat.identity (investor_id, kind, address, opted_out_at) "
        "values (%s, 'email', 'direksi@sulawesijaya.co.id', now())", (inv,))
    r = send(daemon, toks["ani"], "POST", "/api/v1/investors/%d/filings" % inv,
             {"period": "2025-Q4", "status": "terkirim"})
    assert r.status == 200, r
    d = get(daemon, toks["ani"], "/api/v1/conversations/%d" % conv)
    i = d["investor"]
    assert (i["nib"], i["company_name"], i["scale"], i["kbli"], i["district"]) == \
        ("1234567890123", "PT Sulawesi Jaya", "menengah", ["46100", "10110"], "Kota Makassar")
    ident = {x["address"]: x for x in i["identities"]}
    assert ident["+6281200000701"]["opted_out_at"] is None
    assert ident["direksi@sulawesijaya.co.id"]["opted_out_at"] is not None
    f = {x["period"]: x for x in i["filings"]}
    assert f["2025-Q4"]["filed"] is True and f["2025-Q4"]["status"] == "terkirim"
    assert f["2025-Q4"]["deadline"] == "2026-01-15"
    # the current quarter and the three before it, and any period with a filing, newest first
    cur = sql(db, "select linbat.lkpm_current_period('menengah', (now() at time zone 'Asia/Makassar')::date)")[0][0]
    y, q = int(cur[:4]), int(cur[-1])
    obliged = []
    for _ in range(4):
        obliged.append("%d-Q%d" % (y, q))
        y, q = (y, q - 1) if q > 1 else (y - 1, 4)
    assert [x["period"] for x in i["filings"]] == sorted(set(obliged) | {"2025-Q4"}, reverse=True)
    assert f[obliged[1]]["overdue"] is True and f[obliged[0]]["overdue"] is False
    assert [x["filed"] for x in i["filings"]].count(True) == 1
    assert d["unread"] == 1 and "last_message" in d
    # a mikro investor files nothing: no periods
    sql(db, "update linbat.investor set scale = 'mikro' where id = %s", (inv,))
    assert [x["period"] for x in get(daemon, toks["ani"], "/api/v1/conversations/%d" % conv)
            ["investor"]["filings"]] == ["2025-Q4"]


PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


def attach(db, message, mime, name, data=None, status="stored"):
    return sql(db, "insert into linbat.attachment (message_id, mime_type, filename, size, sha256, data, "
               "provider_media_id, status) values (%s, %s, %s, %s, case when %s::bytea is null then null else "
               "encode(sha256(%s::bytea), 'hex') end, %s, 'media-' || gen_random_uuid(), %s) returning id",
               (message, mime, name, len(data) if data is not None else None, data, data, data, status))[0][0]


def test_messages_show_failures_and_attachments_and_media_downloads(daemon, db, team):
    ids, toks = team
    conv = inbox.ingest(db, "+6281200000801", "a-1", "Ini KTP saya")
    msg = sql(db, "select max(id) from linbat.message where conversation_id = %s", (conv,))[0][0]
    sql(db, "update linbat.message set meta = meta || '{\"subject\": \"<b>KTP</b> terlampir\"}' where id = %s",
        (msg,))
    png = attach(db, msg, "image/png", 'ktp "asli"; é.png', PNG)
    html = attach(db, msg, "text/html", None, b"<script>alert(1)</script>")
    pending = attach(db, msg, "application/pdf", "akta.pdf", None, "pending")
    ident = sql(db, "select identity_id from linbat.message where id = %s", (msg,))[0][0]
    failed = sql(db, "insert into linbat.message (conversation_id, direction, identity_id, channel_instance, "
                 "author_operator, body, status, error_kind, error_code, error_text, failed_at) values "
                 "(%s, 'out', %s, 't1', %s, 'Balasan', 'failed', 'permanent', '131026', "
                 "'Message undeliverable', now()) returning id", (conv, ident, ids["ani"]))[0][0]
    msgs = {m["id"]: m for m in get(daemon, toks["ani"], "/api/v1/conversations/%d/messages" % conv)["messages"]}
    assert msgs[failed]["failure"] == {"kind": "permanent", "code": "131026", "text": "Message undeliverable"}
    assert msgs[failed]["failed_at"] is not None and msgs[msg]["failure"] is None
    assert msgs[msg]["subject"] == "<b>KTP</b> terlampir" and msgs[failed]["subject"] is None
    atts = {a["id"]: a for a in msgs[msg]["attachments"]}
    assert atts[png] == {"id": png, "mime_type": "image/png", "filename": 'ktp "asli"; é.png', "size": len(PNG),
                         "status": "stored", "url": "/api/v1/media/%d" % png}
    assert atts[pending]["status"] == "pending" and msgs[failed]["attachments"] == []
    # the bytes, with their type, shown inline only for a raster image
    r = send(daemon, toks["ani"], "GET", "/api/v1/media/%d" % png)
    assert r.status == 200 and r.body == PNG, r
    assert r.headers["content-type"] == "image/png" and r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["content-disposition"] == \
        "inline; filename=\"ktp _asli__ __.png\"; filename*=UTF-8''ktp%20%22asli%22%3B%20%C3%A9.png"
    assert "sandbox" in r.headers["content-security-policy"]
    r = send(daemon, toks["mira"], "GET", "/api/v1/media/%d" % html)
    assert r.status == 200 and r.headers["content-type"] == "text/html"
    assert r.headers["content-disposition"].startswith("attachment; filename=\"lampiran-%d\"" % html)
    r = send(daemon, toks["ani"], "GET", "/api/v1/media/%d" % pending)
    assert r.status == 409 and r.json()["error"]["code"] == "conflict"
    # Budi may not see Ani's conversation, so not its media either
    assert send(daemon, toks["budi"], "GET", "/api/v1/media/%d" % png).status == 403
    assert send(daemon, toks["ani"], "GET", "/api/v1/media/999999").status == 404
    assert send(daemon, toks["ani"], "GET", "/api/v1/media/abc").status == 404
    assert call(daemon, "GET", "/api/v1/media/%d" % png).status == 401
    # a session cookie reads it (a GET needs no CSRF token)
    s = inbox.Session(daemon, "ani@x.id")
    assert s.request("GET", "/api/v1/media/%d" % png, csrf=False).body == PNG


def test_quick_replies_managed_by_managers_read_by_operators(daemon, db, team):
    ids, toks = team
    body = {"shortcut": "salam", "title": "Salam pembuka", "body": "Selamat pagi, Bapak/Ibu."}
    assert send(daemon, toks["ani"], "POST", "/api/v1/quick-replies", body).status == 403
    r = send(daemon, toks["mira"], "POST", "/api/v1/quick-replies", body)
    assert r.status == 201, r
    qr = r.json()
    assert (qr["shortcut"], qr["language"], qr["created_by"]) == ("salam", "id", ids["mira"])
    r = send(daemon, toks["mira"], "POST", "/api/v1/quick-replies",
             {"shortcut": "lkpm-en", "title": "LKPM", "body": "Please file your LKPM.", "language": "en"})
    assert r.status == 201
    lists = get(daemon, toks["ani"], "/api/v1/quick-replies")["quick_replies"]
    assert [q["shortcut"] for q in lists] == ["lkpm-en", "salam"]
    assert [q["shortcut"] for q in get(daemon, toks["ani"], "/api/v1/quick-replies?q=PAGI")["quick_replies"]] \
        == ["salam"]
    assert [q["shortcut"] for q in get(daemon, toks["ani"], "/api/v1/quick-replies?language=en")
            ["quick_replies"]] == ["lkpm-en"]
    # bad input is 400 (a taken shortcut 409), and nothing changes
    before = sql(db, "select id, shortcut, title, body, language from linbat.quick_reply order by id")
    for bad in ({"shortcut": "Salam Pagi", "title": "x", "body": "y"}, {"shortcut": "a", "title": "", "body": "y"},
                {"shortcut": "a", "title": "x", "body": "y" * 4097}, {"shortcut": "a", "title": "x"},
                {"shortcut": "a", "title": "x", "body": "y", "language": "fr"},
                {"shortcut": "a", "title": "x", "body": "y", "colour": "red"},
                {"shortcut": 5, "title": "x", "body": "y"}):
        r = send(daemon, toks["mira"], "POST", "/api/v1/quick-replies", bad)
        assert r.status == 400 and r.json()["error"]["code"] == "bad_request", (bad, r)
    assert send(daemon, toks["mira"], "POST", "/api/v1/quick-replies", body).status == 409
    assert send(daemon, toks["mira"], "PATCH", "/api/v1/quick-replies/%d" % qr["id"], {"title": ""}).status == 400
    assert send(daemon, toks["mira"], "PATCH", "/api/v1/quick-replies/%d" % qr["id"],
                {"shortcut": "lkpm-en"}).status == 409
    assert call(daemon, "POST", "/api/v1/quick-replies", b"[1]", inbox.bearer(toks["mira"])).status == 400
    assert sql(db, "select id, shortcut, title, body, language from linbat.quick_reply order by id") == before
    # edit and delete; operators may do neither
    assert send(daemon, toks["ani"], "PATCH", "/api/v1/quick-replies/%d" % qr["id"], {"title": "x"}).status == 403
    r = send(daemon, toks["mira"], "PATCH", "/api/v1/quick-replies/%d" % qr["id"], {"body": "Selamat siang."})
    assert r.status == 200 and r.json()["body"] == "Selamat siang." and r.json()["title"] == "Salam pembuka"
    assert send(daemon, toks["ani"], "DELETE", "/api/v1/quick-replies/%d" % qr["id"]).status == 403
    r = send(daemon, toks["mira"], "DELETE", "/api/v1/quick-replies/%d" % qr["id"])
    assert r.status == 200 and r.json() == {"id": qr["id"], "deleted": True}
    assert send(daemon, toks["mira"], "DELETE", "/api/v1/quick-replies/%d" % qr["id"]).status == 404
    assert send(daemon, toks["mira"], "PATCH", "/api/v1/quick-replies/999999", {"title": "x"}).status == 404
    assert [a for (a,) in sql(db, "select action from linbat.audit_log where object_type = 'quick_reply' "
                              "order by id")] == ["quick_reply.create"] * 2 + ["quick_reply.update",
                                                                               "quick_reply.delete"]
    # a manager's cookie session needs the CSRF token
    s = inbox.Session(daemon, "mira@x.id")
    r = s.request("POST", "/api/v1/quick-replies", dict(body, shortcut="baru"), csrf=False)
    assert r.status == 403 and r.json()["error"]["code"] == "csrf"
    assert s.request("POST", "/api/v1/quick-replies", dict(body, shortcut="baru")).status == 201


def test_operators_load_for_managers(daemon, db, team):
    ids, toks = team
    inbox.ingest(db, "+6281200000901", "l-1")
    inbox.ingest(db, "+6281200000902", "l-2")
    sql(db, "update linbat.operator set capacity = 1 where id = %s", (ids["ani"],))
    inbox.ingest(db, "+6281200000903", "l-3")
    get(daemon, toks["ani"], "/api/v1/operators/load", 403)
    load = get(daemon, toks["mira"], "/api/v1/operators/load")
    ops = {o["id"]: o for o in load["operators"]}
    assert (ops[ids["ani"]]["open"], ops[ids["ani"]]["capacity"], ops[ids["ani"]]["free"],
            ops[ids["ani"]]["presence"]) == (2, 1, 0, "online")
    assert ops[ids["budi"]]["open"] == 0 and ops[ids["budi"]]["presence"] == "offline"
    assert load["queue"]["waiting"] == 1 and load["queue"]["oldest_waiting_since"] is not None


def csv_rows(r):
    assert r.status == 200, r
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    assert r.headers["content-disposition"].startswith("attachment; filename=")
    text = r.body.decode("utf-8-sig")
    assert "\r\n" in text
    return list(csv.reader(io.StringIO(text)))


def test_response_times_report_json_and_csv(daemon, db, team):
    ids, toks = team
    sql(db, "select linbat.channel_register('wa1', 'whatsapp'); select linbat.channel_register('em1', 'email')")
    convs = []
    for n, (inst, kind, addr) in enumerate([("wa1", "whatsapp", "+628121000001"), ("wa1", "whatsapp",
                                            "+628121000002"), ("wa1", "whatsapp", "+628121000003"),
                                           ("em1", "email", "a@pt.co.id")]):
        convs.append(inbox.ingest(db, addr, "rt-%d" % n, "Halo", instance=inst, kind=kind))
    # first responses after 60, 120 and 600 s on WhatsApp, 30 s by email; one WhatsApp resolved in 1 h
    for conv, frt in zip(convs, (60, 120, 600, 30)):
        sql(db, "update linbat.conversation set created_at = now() - interval '2 hours', first_response_at = "
            "now() - interval '2 hours' + %s * interval '1 second' where id = %s", (frt, conv))
    sql(db, "update linbat.conversation set status = 'resolved', resolved_at = created_at + interval '1 hour', "
        "assigned_operator = null, queued_since = null where id = %s", (convs[0],))
    rep = get(daemon, toks["mira"], "/api/v1/reports/response-times")
    rows = {r["channel"]: r for r in rep["rows"]}
    assert set(rows) == {"all", "email", "whatsapp"} and rep["rows"][-1]["channel"] == "all"
    wa = rows["whatsapp"]
    assert (wa["conversations"], wa["responded"], wa["first_response_median_s"], wa["first_response_p90_s"],
            wa["resolved"], wa["resolution_median_s"]) == (3, 3, 120, 504, 1, 3600)
    assert rows["all"]["conversations"] == 4 and rows["all"]["first_response_median_s"] == 90
    assert list(rep["rows"][0]) == rep["columns"] or set(rep["rows"][0]) == set(rep["columns"])
    # the same rows as CSV, by suffix and by ?format=csv
    for path in ("/api/v1/reports/response-times.csv", "/api/v1/reports/response-times?format=csv"):
        table = csv_rows(send(daemon, toks["mira"], "GET", path))
        assert table[0] == rep["columns"] and len(table) == 4
        assert [r for r in table if r[0] == "whatsapp"][0][1:4] == ["3", "3", "120"]
    # a range without those conversations is empty; bad ranges are 400
    empty = get(daemon, toks["mira"], "/api/v1/reports/response-times?from=2020-01-01&to=2020-01-31")
    assert [(r["channel"], r["conversations"]) for r in empty["rows"]] == [("all", 0)]
    for q in ("from=2026-13-01", "from=2026-02-01&to=2026-01-01", "to=kemarin", "format=xml"):
        r = send(daemon, toks["mira"], "GET", "/api/v1/reports/response-times?" + q)
        assert r.status == 400 and r.json()["error"]["code"] == "bad_request", (q, r)
    get(daemon, toks["ani"], "/api/v1/reports/response-times", 403)
    get(daemon, toks["ani"], "/api/v1/reports/response-times.csv", 403)


def test_satisfaction_report_as_ikm(daemon, db, team):
    ids, toks = team
    # without the survey's table (migration 0019) the report says so: 409, not 500
    sql(db, "alter table linbat.satisfaction rename to satisfaction_away")
    r = send(daemon, toks["mira"], "GET", "/api/v1/reports/satisfaction")
    assert r.status == 409 and "satisfaction" in r.json()["error"]["detail"], r
    sql(db, "alter table linbat.satisfaction_away rename to satisfaction")
    sql(db, "select linbat.channel_register('wa1', 'whatsapp')")
    scores = [5, 5, 4, 3, None]
    for n, score in enumerate(scores):
        conv = inbox.ingest(db, "+62812200000%d" % n, "s-%d" % n, "Halo", instance="wa1", kind="whatsapp")
        sql(db, "insert into linbat.satisfaction (conversation_id, investor_id, asked_at, score, answered_at) "
            "values (%s, %s, now(), %s, case when %s::integer is null then null else now() end)",
            (conv, investor_of(db, conv), score, score))
    rep = get(daemon, toks["mira"], "/api/v1/reports/satisfaction")
    rows = {r["channel"]: r for r in rep["rows"]}
    # mean 4.25 -> 25 + 3.25 * 18.75 = 85.94 (mutu B)
    assert (rows["all"]["asked"], rows["all"]["answers"], rows["all"]["mean_score"], rows["all"]["ikm"],
            rows["all"]["mutu"], rows["all"]["score_5"]) == (5, 4, 4.25, 85.94, "B", 2)
    table = csv_rows(send(daemon, toks["mira"], "GET", "/api/v1/reports/satisfaction.csv"))
    assert table[0] == rep["columns"] and table[-1][:6] == ["all", "5", "4", "4.25", "85.94", "B"]
    get(daemon, toks["ani"], "/api/v1/reports/satisfaction", 403)


def test_unfiled_report_per_period(daemon, db, team):
    ids, toks = team
    rows = [("1000000000001", "PT Satu", "besar", None), ("1000000000002", "PT Dua; =HYPERLINK(\"x\")", "menengah",
            "draf"), ("1000000000003", "PT Tiga", "besar", "terkirim"), ("1000000000004", "CV Empat", "kecil", None),
            ("1000000000005", "UD Lima", "mikro", None)]
    inv = {}
    for nib, name, scale, status in rows:
        inv[nib] = sql(db, "insert into linbat.investor (nib, company_name, scale, district) values "
                       "(%s, %s, %s, 'Kota Makassar') returning id", (nib, name, scale))[0][0]
        if status:
            sql(db, "insert into linbat.lkpm_filing (investor_id, period, status, source) values "
                "(%s, '2026-Q2', %s, 'oss_import')", (inv[nib], status))
    rep = get(daemon, toks["mira"], "/api/v1/reports/unfiled?period=2026-Q2")
    assert [r["nib"] for r in rep["rows"]] == ["1000000000001", "1000000000002"]
    assert rep["rows"][1]["status"] == "draf" and rep["rows"][0]["deadline"] == "2026-07-15"
    assert rep["summary"] == [{"period": "2026-Q2", "deadline": "2026-07-15", "obliged": 3, "filed": 1,
                               "unfiled": 2}]
    both = get(daemon, toks["mira"], "/api/v1/reports/unfiled?period=2026-Q2,2026-S1")
    assert [(r["period"], r["nib"]) for r in both["rows"]][-1] == ("2026-S1", "1000000000004")
    # pages by cursor cover the rows once
    p1 = get(daemon, toks["mira"], "/api/v1/reports/unfiled?period=2026-Q2,2026-S1&limit=2")
    p2 = get(daemon, toks["mira"], "/api/v1/reports/unfiled?period=2026-Q2,2026-S1&limit=2&after=" + p1["next"])
    assert p1["rows"] + p2["rows"] == both["rows"] and p2["next"] is None
    # the CSV has every row, and a company name that looks like a formula is defused
    table = csv_rows(send(daemon, toks["mira"], "GET", "/api/v1/reports/unfiled.csv?period=2026-Q2,2026-S1&limit=1"))
    assert table[0] == rep["columns"] and len(table) == 4
    assert table[2][4] == 'PT Dua; =HYPERLINK("x")'
    sql(db, "update linbat.investor set company_name = '=cmd|calc' where nib = '1000000000001'")
    table = csv_rows(send(daemon, toks["mira"], "GET", "/api/v1/reports/unfiled?period=2026-Q2&format=csv"))
    assert table[1][4] == "'=cmd|calc"
    # the default periods are those whose deadline has passed
    dflt = get(daemon, toks["mira"], "/api/v1/reports/unfiled")
    assert len(dflt["periods"]) == 2 and all(s["deadline"] < "2099" for s in dflt["summary"])
    for q in ("period=2026-Q5", "period=2026", "after=zz", "limit=x"):
        r = send(daemon, toks["mira"], "GET", "/api/v1/reports/unfiled?" + q)
        assert r.status == 400, (q, r)
    get(daemon, toks["ani"], "/api/v1/reports/unfiled", 403)


def test_campaign_stats_funnel_and_timeline(daemon, db, team):
    ids, toks = team
    camp = sql(db, "insert into linbat.campaign (name, offsets, texts) values ('Q2 2026', '{-7}', "
               "'{\"default\": {\"id\": \"Lapor LKPM\"}}') returning id")[0][0]
    sql(db, "select linbat.channel_register('wa1', 'whatsapp')")
    outcome = [("whatsapp", "read", "2026-07-08 09:10"), ("whatsapp", "delivered", "2026-07-08 09:20"),
               ("whatsapp", "failed", "2026-07-08 10:05"), ("sms", "sent", "2026-07-08 10:30")]
    for n, (channel, status, at) in enumerate(outcome):
        inv = sql(db, "insert into linbat.investor (nib, scale) values (%s, 'besar') returning id",
                  ("20000000000%02d" % n,))[0][0]
        ident = sql(db, "insert into linbat.identity (investor_id, kind, address) values (%s, 'whatsapp', %s) "
                    "returning id", (inv, "+62812300000%d" % n))[0][0]
        conv = sql(db, "insert into linbat.conversation (investor_id, status, resolved_at) values "
                   "(%s, 'resolved', now()) returning id", (inv,))[0][0]
        t = "'%s+08'::timestamptz" % at
        msg = sql(db, "insert into linbat.message (conversation_id, direction, identity_id, channel_instance, "
                  "body, status, sent_at, delivered_at, read_at, failed_at) values (%%s, 'out', %%s, 'wa1', 'x', "
                  "%%s, case when %%s <> 'failed' then %s end, case when %%s in ('delivered', 'read') then %s end, "
                  "case when %%s = 'read' then %s end, case when %%s = 'failed' then %s end) returning id"
                  % (t, t, t, t), (conv, ident, status, status, status, status, status))[0][0]
        sql(db, "insert into linbat.reminder (campaign_id, investor_id, period, offset_days, deadline, channel, "
            "message_id, created_at) values (%s, %s, '2026-Q2', -7, '2026-07-15', %s, %s, '2026-07-08 09:00+08')",
            (camp, inv, channel, msg))
    st = get(daemon, toks["mira"], "/api/v1/campaigns/%d/stats" % camp)
    assert "stats" in st
    funnel = {f["channel"]: f for f in st["funnel"]}
    assert {k: funnel["whatsapp"][k] for k in ("planned", "sent", "delivered", "read", "failed")} == \
        {"planned": 3, "sent": 2, "delivered": 2, "read": 1, "failed": 1}
    assert funnel["sms"]["planned"] == 1 and funnel["sms"]["sent"] == 1
    tl = st["timeline"]
    assert tl["bucket"] == "hour"
    pts = [(p["at"], p["channel"], p["sent"], p["failed"]) for p in tl["points"]]
    assert pts == [("2026-07-08T09:00:00+08:00", "whatsapp", 2, 0), ("2026-07-08T10:00:00+08:00", "sms", 1, 0),
                   ("2026-07-08T10:00:00+08:00", "whatsapp", 0, 1)]
    day = get(daemon, toks["mira"], "/api/v1/campaigns/%d/stats?bucket=day" % camp)["timeline"]
    assert day["bucket"] == "day" and [p["at"] for p in day["points"]] == ["2026-07-08T00:00:00+08:00"] * 2
    assert send(daemon, toks["mira"], "GET", "/api/v1/campaigns/%d/stats?bucket=week" % camp).status == 400
    assert send(daemon, toks["mira"], "GET", "/api/v1/campaigns/999999/stats").status == 404
    get(daemon, toks["ani"], "/api/v1/campaigns/%d/stats" % camp, 403)
    # the funnel as a report, JSON and CSV
    rep = get(daemon, toks["mira"], "/api/v1/reports/campaign-funnel?campaign=%d" % camp)
    assert rep["rows"] == st["funnel"]
    table = csv_rows(send(daemon, toks["mira"], "GET", "/api/v1/reports/campaign-funnel.csv?campaign=%d" % camp))
    assert table[0] == ["channel", "planned", "sent", "delivered", "read", "failed", "replied", "filed_after"]
    assert table[1][:3] == ["sms", "1", "1"]
    assert send(daemon, toks["mira"], "GET", "/api/v1/reports/campaign-funnel").status == 400
    assert send(daemon, toks["mira"], "GET", "/api/v1/reports/campaign-funnel?campaign=999999").status == 404


def test_rbac_matrix_of_the_new_routes(daemon, db):
    """Every new route, every role and anonymous: 401 without credentials,
    403 below the route's role, never 401/403/5xx at or above it."""
    oids = {r: inbox.add_operator(db, "%s@x.id" % r, role=r, capacity=20, online=True) for r in ROLES}
    toks = {r: inbox.token(db, "%s@x.id" % r) for r in ROLES}
    bad = []
    for n, role in enumerate(ROLES):
        conv = inbox.ingest(db, "+62812400000%d" % n, "m-%d" % n)
        sql(db, "update linbat.conversation set assigned_operator = %s where id = %s", (oids[role], conv))
        qr = sql(db, "insert into linbat.quick_reply (shortcut, title, body) values (%s, 't', 'b') returning id",
                 ("q%d" % n,))[0][0]
        msg = sql(db, "select max(id) from linbat.message where conversation_id = %s", (conv,))[0][0]
        media = attach(db, msg, "image/png", "a.png", PNG)
        for method, path, body, least in [
                ("POST", "/api/v1/conversations/%d/read" % conv, None, "operator"),
                ("GET", "/api/v1/media/%d" % media, None, "operator"),
                ("GET", "/api/v1/quick-replies", None, "operator"),
                ("POST", "/api/v1/quick-replies", {"shortcut": "n%d" % n, "title": "t", "body": "b"}, "manager"),
                ("PATCH", "/api/v1/quick-replies/%d" % qr, {"title": "u"}, "manager"),
                ("DELETE", "/api/v1/quick-replies/%d" % qr, None, "manager"),
                ("GET", "/api/v1/operators/load", None, "manager"),
                ("GET", "/api/v1/reports/response-times", None, "manager"),
                ("GET", "/api/v1/reports/response-times.csv", None, "manager"),
                ("GET", "/api/v1/reports/unfiled", None, "manager"),
                ("GET", "/api/v1/reports/unfiled.csv", None, "manager"),
                ("GET", "/api/v1/reports/satisfaction", None, "manager"),
                ("GET", "/api/v1/reports/satisfaction.csv", None, "manager"),
                ("GET", "/api/v1/reports/campaign-funnel?campaign=1", None, "manager"),
                ("GET", "/api/v1/reports/campaign-funnel.csv?campaign=1", None, "manager")]:
            anon = call(daemon, method, path, body, {"Content-Type": "application/json"}).status
            got = call(daemon, method, path, body, inbox.bearer(toks[role])).status
            allowed = ROLES.index(role) >= ROLES.index(least)
            if anon != 401:
                bad.append("anonymous %s %s: %d" % (method, path, anon))
            if allowed and (got in (401, 403) or got >= 500):
                bad.append("%s %s %s: %d, but the role may" % (role, method, path, got))
            if not allowed and got != 403:
                bad.append("%s %s %s: %d, not 403" % (role, method, path, got))
    assert not bad, "\n".join(bad)
