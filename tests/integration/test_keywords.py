"""Keywords through linbatd: an inbound message that is a keyword (any case,
Indonesian or English) changes what it says and its answer leaves on the
same way back (a test channel of kind sms); SUDAH and NIB wait for an
operator, who confirms the NIB claim through the API."""

import json
import os

import psycopg2
import pytest

import linbat

# (what the investor writes, the start of the answer, SQL that must then be true)
CASES = [
    ("berhenti", "Baik, Anda tidak akan menerima pengingat LKPM lagi.",
     "select bool_and(opted_out_at is not null) from linbat.identity"),
    ("STOP", "Baik, Anda tidak akan menerima pengingat LKPM lagi.",
     "select bool_and(opted_out_at is not null) from linbat.identity"),
    ("Mulai", "Pengingat LKPM aktif kembali.", "select bool_and(opted_out_at is null) from linbat.identity"),
    ("kanal email", "Pengingat akan dikirim melalui email setelah kami mencatat alamat email Anda",
     "select preferred_channel = 'email' from linbat.investor where nib = '6000000000001'"),
    ("KANAL SMS", "Pengingat LKPM selanjutnya akan dikirim melalui SMS.",
     "select preferred_channel = 'sms' from linbat.investor where nib = '6000000000001'"),
    ("kanal fax", "Tulis KANAL WA, KANAL SMS atau KANAL EMAIL.", "select true"),
    ("bantuan", "Kata kunci: BERHENTI", "select true"),
    ("HELP", "Kata kunci: BERHENTI", "select true"),
    ("sudah", "Terima kasih, laporan LKPM periode ",
     "select status = 'claimed' from linbat.lkpm_filing"),
    ("NIB 12345", "NIB terdiri dari 13 angka", "select true"),
]


def read_records(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.endswith("\n") and line.strip()]


def query(dsn, sql, params=None):
    with psycopg2.connect(dsn) as c, c.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall() if cur.description else []


def ingest(dsn, address, provider_id, body):
    return query(dsn, "select conversation_id from linbat.ingest_inbound('t1', 'sms', %s, %s, %s, "
                 "'text', '{}', now(), null)", (address, provider_id, body))[0][0]


@pytest.fixture(scope="module")
def daemon(pg, tmp_path_factory):
    """One linbatd for the module, with a known investor on SMS."""
    tmp = tmp_path_factory.mktemp("kw")
    dsn = pg.dsn(pg.create_database())
    d = linbat.Linbatd(dsn, str(tmp), extra={"channel t1": {"type": "test", "record": str(tmp / "t1.jsonl")}})
    d.start()
    query(dsn, "insert into linbat.investor (nib, company_name, scale) values ('6000000000001', 'PT Enam', 'besar')")
    query(dsn, "insert into linbat.identity (investor_id, kind, address) "
          "select id, 'sms', '+6281260000001' from linbat.investor")
    d.dsn_ = dsn
    d.record = str(tmp / "t1.jsonl")
    yield d
    d.close()


@pytest.mark.parametrize("n,case", list(enumerate(CASES)))
def test_keyword_is_applied_and_answered(daemon, n, case):
    text, answer, check = case
    before = len(read_records(daemon.record))
    ingest(daemon.dsn_, "+6281260000001", "kw-%d" % n, text)
    # an acknowledgement (SUDAH and NIB wait for an operator) may come too

    def answered():
        return [r for r in read_records(daemon.record)[before:] if r["body"].startswith(answer)]
    assert linbat.wait_for(answered, 20), read_records(daemon.record)[before:]
    got = answered()[0]
    assert got["to"] == "+6281260000001"
    assert got["body"].startswith(answer), got["body"]
    assert "\n" in got["body"], "Indonesian first, then English"
    assert query(daemon.dsn_, check)[0][0] is True


def test_not_a_keyword_goes_to_the_operator(daemon):
    conv = ingest(daemon.dsn_, "+6281260000002", "kw-plain", "stop mengirim pesan ini")
    assert query(daemon.dsn_, "select count(*) from linbat.message where conversation_id = %s "
                 "and meta ? 'keyword'", (conv,)) == [(0,)]
    assert query(daemon.dsn_, "select status from linbat.conversation where id = %s", (conv,)) == [("open",)]


def test_nib_claim_is_confirmed_by_an_operator(daemon):
    ingest(daemon.dsn_, "+6281260000003", "kw-nib", "nib 6000000000001")
    assert query(daemon.dsn_, "select nib, status from linbat.nib_claim") == [("6000000000001", "pending")]
    r = linbat.run([linbat.LINBATCTL, "-d", daemon.dsn_, "operator", "add", "--email", "op@example.go.id",
                    "--name", "Op"], input="rahasia-sekali\n")
    assert r.returncode == 0, r.stderr
    r = linbat.run([linbat.LINBATCTL, "-d", daemon.dsn_, "token", "create", "--email", "op@example.go.id"])
    headers = {"Authorization": "Bearer " + r.stdout.strip(), "Content-Type": "application/json"}
    claim = query(daemon.dsn_, "select id from linbat.nib_claim")[0][0]
    r = daemon.request("POST", "/api/v1/nib-claims/%d/confirm" % claim, body=b"{}", headers=headers)
    assert r.status == 200, r.body
    assert r.json()["status"] == "confirmed"
    assert query(daemon.dsn_, "select i.nib from linbat.identity d join linbat.investor i on i.id = d.investor_id "
                 "where d.address = '+6281260000003'") == [("6000000000001",)]
    r = daemon.request("POST", "/api/v1/nib-claims/%d/confirm" % claim, body=b"{}", headers=headers)
    assert r.status == 404
