"""Reminder texts: the C renderer (src/template.c, through
tests/unit/template-render) and the planner's SQL (linbat.reminder_candidates,
through linbat.campaign_preview) give the same text for the same inputs, and
a campaign with an unknown placeholder is refused by name, nothing saved."""

import json
import os
import random

import psycopg2

import linbat

RENDER = os.path.join(linbat.TOP_BUILDDIR, "tests", "unit", "template-render")

TEXTS = [
    "Yth. {{company_name}} ({{nib}}), LKPM {{period}} paling lambat {{deadline}}, {{days_left}} hari lagi.",
    "{{{{nib}}}} {{x}} {{nib} {nib}} {{ nib }} {{company_name}}{{company_name}}",
    "{{deadline}}{{period}}{{days_left}}{{nib}}",
    "tanpa placeholder \u00e9\u4e2d",
]


def company(rng):
    alphabet = ["{", "}", "{{", "}}", "nib", "period", "\"", "\\", "PT ", "\u00e9", "'", " ", "{{nib}}",
                "{{company_name}}", "{{deadline}}", "%", "_"]
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 8)))


def query(dsn, sql, params=None):
    with psycopg2.connect(dsn) as c, c.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall() if cur.description else []


def test_c_and_sql_render_alike(db):
    dsn = db
    r = linbat.linbatctl("-d", dsn, "-m", os.path.join(linbat.TOP_SRCDIR, "migrations"), "migrate")
    assert r.returncode == 0, r.stderr
    rng = random.Random(7)
    names = ["PT Biasa", "", "PT \"Kutip\" \\ {{nib}}"] + [company(rng) for _ in range(40)]
    query(dsn, "select linbat.channel_register('sms1', 'sms')")
    for i, name in enumerate(names):
        query(dsn, "with v as (insert into linbat.investor (nib, company_name, scale, language) "
              "values (%s, %s, 'besar', %s) returning id) "
              "insert into linbat.identity (investor_id, kind, address) select id, 'sms', %s from v",
              ("91000000%05d" % i, name, "en" if i % 3 == 0 else "id", "+62812%08d" % i))
    checked = 0
    for t, text in enumerate(TEXTS):
        spec = {"name": "t%d" % t, "offsets": [-14], "texts": {"sms": {"id": text, "en": text}}}
        # the SQL refuses nothing; unknown placeholders are linbatctl's and the API's to refuse
        cid = query(dsn, "select (linbat.campaign_create(%s, null) ->> 'id')::bigint", (json.dumps(spec),))[0][0]
        rows = query(dsn, "select i.company_name, p.nib, p.period, p.deadline, p.offset_days, i.language, p.body "
                     "from linbat.campaign_preview(%s, '2026-04-01', 1) p "
                     "join linbat.investor i on i.nib = p.nib", (cid,))
        assert len(rows) == len(names)
        for name, nib, period, deadline, offset, language, body in rows:
            r = linbat.run([RENDER, text, name or "", nib, period, deadline.isoformat(), str(-offset), language])
            assert r.returncode == 0, r.stderr
            assert r.stdout == body, (text, name)
            checked += 1
    assert checked == len(TEXTS) * len(names)


def test_unknown_placeholder_refused(db, tmp_path, linbatd):
    dsn = db
    spec = {"name": "Salah ketik", "offsets": [-7],
            "texts": {"sms": {"id": "Batas {{deadlne}} untuk {{company_name}}"}}}
    path = tmp_path / "c.json"
    path.write_text(json.dumps(spec))
    r = linbat.linbatctl("-d", dsn, "campaign", "create", str(path))
    assert r.returncode == 1
    assert "texts.sms.id: unknown placeholder {{deadlne}}" in r.stderr, r.stderr
    assert query(dsn, "select count(*) from linbat.campaign")[0][0] == 0
    spec["texts"]["sms"]["id"] = "Batas {{deadline}}"
    spec["whatsapp_template"] = {"name": "lkpm", "params": ["{{nama}}"]}
    r = linbat.run([linbat.LINBATCTL, "-d", dsn, "operator", "add", "--email", "mgr@example.go.id",
                    "--name", "Manajer", "--role", "manager"], input="rahasia-sekali\n")
    assert r.returncode == 0, r.stderr
    token = linbat.run([linbat.LINBATCTL, "-d", dsn, "token", "create", "--email", "mgr@example.go.id"]).stdout.strip()
    r = linbatd.request("POST", "/api/v1/campaigns", body=json.dumps(spec).encode(),
                        headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
    assert r.status == 400, r.body
    assert b"whatsapp_template.params[0]: unknown placeholder {{nama}}" in r.body
    assert query(dsn, "select count(*) from linbat.campaign")[0][0] == 0
    spec["whatsapp_template"]["params"] = ["{{company_name}}"]
    r = linbatd.request("POST", "/api/v1/campaigns", body=json.dumps(spec).encode(),
                        headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
    assert r.status == 201, r.body
