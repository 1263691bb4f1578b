"""Campaigns end to end: linbatctl creates, previews and activates a
campaign; linbatd's scheduler plans today's reminders once (several rounds,
two daemons) and the dispatcher sends them through a test channel; the API
lists, shows stats and marks a period filed. Today is made a deadline with an
override, so the test runs on any date."""

import json
import os

import psycopg2
import pytest

import linbat

CAMPAIGN = {
    "name": "Uji hari ini",
    "audience": {"scales": ["besar"]},
    "offsets": [0],
    "window": {"start": "00:00", "end": "24:00"},
    "texts": {"sms": {"id": "Yth. {{company_name}} ({{nib}}), LKPM {{period}} paling lambat {{deadline}}."}},
}

INVESTORS = (
    "nib,company_name,scale,phone\n"
    "7000000000001,PT Satu,besar,081270000001\n"
    "7000000000002,PT Dua,besar,081270000002\n"
    "7000000000003,UD Tiga,mikro,081270000003\n"
)


def query(dsn, sql, params=None):
    with psycopg2.connect(dsn) as c, c.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall() if cur.description else []


def read_records(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.endswith("\n") and line.strip()]


def add_manager(dsn):
    r = linbat.run([linbat.LINBATCTL, "-d", dsn, "operator", "add", "--email", "mgr@example.go.id",
                    "--name", "Manajer", "--role", "manager"], input="rahasia-sekali\n")
    assert r.returncode == 0, r.stderr
    r = linbat.run([linbat.LINBATCTL, "-d", dsn, "token", "create", "--email", "mgr@example.go.id"])
    assert r.returncode == 0, r.stderr
    return {"Authorization": "Bearer " + r.stdout.strip(), "Content-Type": "application/json"}


@pytest.fixture
def setup(start_linbatd, tmp_path, db):
    record = str(tmp_path / "t1.jsonl")
    extra = {"channel t1": {"type": "test", "record": record}, "scheduler": {"interval": "1s"}}
    return start_linbatd(extra=extra), record, extra


def test_campaign_plans_once_and_sends(setup, db, tmp_path, start_linbatd):
    d, record, extra = setup
    dsn = db
    # today (WITA) is the deadline of the current quarter
    query(dsn, "insert into linbat.lkpm_deadline_override (period, deadline, source) "
          "select linbat.lkpm_current_period('besar', d), d, 'test' "
          "from (select (now() at time zone 'Asia/Makassar')::date as d) x")
    period = query(dsn, "select linbat.lkpm_current_period('besar', (now() at time zone 'Asia/Makassar')::date)")[0][0]
    csv = tmp_path / "inv.csv"
    csv.write_text(INVESTORS)
    assert linbat.linbatctl("-d", dsn, "investor", "import", str(csv)).returncode == 0
    spec = tmp_path / "c.json"
    spec.write_text(json.dumps(CAMPAIGN))
    r = linbat.linbatctl("-d", dsn, "campaign", "create", str(spec))
    assert (r.returncode, r.stdout) == (0, 'created campaign 1 "Uji hari ini" (draft; activate it to start).\n'), r.stderr

    r = linbat.linbatctl("-d", dsn, "campaign", "preview", "1", "--days", "1")
    assert r.returncode == 0, r.stderr
    rows = [line.split("\t") for line in r.stdout.splitlines()[1:]]
    assert [(x[1], x[3], x[4], x[5], x[6], x[8]) for x in rows] == [
        ("7000000000001", period, "0", "sms", "+6281270000001", "due"),
        ("7000000000002", period, "0", "sms", "+6281270000002", "due")]
    assert rows[0][7].startswith("Yth. PT Satu (7000000000001), LKPM %s paling lambat " % period)
    assert read_records(record) == [], "a draft sends nothing"

    # a second daemon on the same database: the advisory lock makes them plan once
    start_linbatd(extra=extra, name="linbatd-2")
    r = linbat.linbatctl("-d", dsn, "campaign", "activate", "1")
    assert (r.returncode, r.stdout) == (0, "campaign 1 is active.\n"), r.stderr
    assert linbat.wait_for(lambda: len(read_records(record)) >= 2, 30)
    sent = sorted(read_records(record), key=lambda x: x["to"])
    assert [x["to"] for x in sent] == ["+6281270000001", "+6281270000002"]
    assert sent[0]["body"].startswith("Yth. PT Satu (7000000000001), LKPM %s paling lambat " % period)
    # later scheduler rounds plan nothing twice: an investor imported after
    # the first plan is planned by a later round (two in turn, so several
    # rounds), and the first two are not planned again
    for n, nib in ((3, "7000000000004"), (4, "7000000000005")):
        csv.write_text("nib,company_name,scale,phone\n%s,PT Baru %d,besar,08127000000%d\n" % (nib, n, n + 1))
        assert linbat.linbatctl("-d", dsn, "investor", "import", str(csv)).returncode == 0
        assert linbat.wait_for(lambda: query(dsn, "select count(*) from linbat.reminder")[0][0] >= n, 30)
        assert query(dsn, "select count(*) from linbat.reminder")[0][0] == n
    assert linbat.wait_for(lambda: len(read_records(record)) >= 4, 30)
    assert sorted(x["to"] for x in read_records(record)) == [
        "+6281270000001", "+6281270000002", "+6281270000004", "+6281270000005"]
    assert query(dsn, "select count(*) from (select 1 from linbat.reminder group by investor_id "
                 "having count(*) > 1) d")[0][0] == 0

    headers = add_manager(dsn)
    r = d.request("GET", "/api/v1/campaigns", headers=headers)
    assert r.status == 200 and [c["status"] for c in r.json()["campaigns"]] == ["active"]
    assert linbat.wait_for(lambda: d.request("GET", "/api/v1/campaigns/1/stats", headers=headers)
                           .json()["stats"][0]["sent"] == 4, 15)
    inv = query(dsn, "select id from linbat.investor where nib = '7000000000001'")[0][0]
    r = d.request("POST", "/api/v1/investors/%d/filings" % inv,
                  body=json.dumps({"period": period, "status": "disetujui"}).encode(), headers=headers)
    assert r.status == 200, r.body
    assert r.json()["status"] == "disetujui"
    stats = d.request("GET", "/api/v1/campaigns/1/stats", headers=headers).json()["stats"][0]
    assert (stats["planned"], stats["channel"], stats["filed_after_reminder"]) == (4, "sms", 1)

    r = d.request("POST", "/api/v1/campaigns/1/pause", body=b"{}", headers=headers)
    assert r.status == 200 and r.json()["status"] == "paused"
    r = d.request("POST", "/api/v1/campaigns/1/pause", body=b"{}", headers=headers)
    assert r.status == 400
    r = d.request("GET", "/api/v1/campaigns/9/stats", headers=headers)
    assert r.status == 404


def test_default_campaign_loads(db, linbatd):
    dsn = db
    r = linbat.linbatctl("-d", dsn, "campaign", "create", os.path.join(linbat.TOP_SRCDIR, "etc",
                                                                          "campaign-default.json"))
    assert r.returncode == 0, r.stderr
    r = linbat.linbatctl("-d", dsn, "campaign", "list")
    assert r.stdout.splitlines()[1] == "1\tdraft\tPengingat LKPM\t-14,-7,-3,-1,0,3\t09:00-16:00 WITA\t0"
    texts = query(dsn, "select texts from linbat.campaign")[0][0]
    for channel in ("default", "sms", "email"):
        assert texts[channel]["id"] and texts[channel]["en"]
    r = linbat.linbatctl("-d", dsn, "campaign", "resume", "1")
    assert r.returncode == 1 and "cannot resume campaign 1: it is draft" in r.stderr
