"""linbatctl investor import and filing import: a header in any column order,
a BOM, CRLF, quoted fields; every bad row reported as "line N: column:
reason"; all or nothing by default, exactly the good rows with --skip-bad;
upsert by NIB with the identities; quiet when stderr is not a terminal."""

import itertools
import os

import psycopg2
import pytest

import linbat

MIGRATIONS = os.path.join(linbat.TOP_SRCDIR, "migrations")
COPIES = itertools.count(1)

GOOD = (
    '\ufeffcompany_name,nib,scale,kbli,district,phone,whatsapp,email,preferred_channel,language\r\n'
    '"PT Porang Balangan, Tbk",1111111111111,besar,"01111;46206",Paringin,0812-1111-1111,'
    '+62 812 1111 1112,Info@Porang.CO.ID,whatsapp,id\r\n'
    '"CV ""Sungai"" Jaya",2222222222222,Kecil,47111,Juai,,6281222222222,,sms,en\r\n'
    'UD Mikro,3333333333333,mikro,,Awayan,,,,,\r\n'
)

# line 3: NIB too short; line 4: scale and email; line 5: KBLI; line 7: NIB
# twice; line 8: too few fields. Lines 2 and 6 are good.
BAD = (
    'nib,company_name,scale,kbli,phone,whatsapp,email\n'
    '4444444444441,PT Baik Satu,besar,01111,081244444441,,\n'
    '444444444442,PT Pendek,besar,,,,\n'
    '4444444444443,PT Salah,raksasa,,,,bukan-email\n'
    '4444444444444,PT KBLI,kecil,0111,,,\n'
    '4444444444445,"PT Baik\nDua",menengah,,,,dua@example.com\n'
    '4444444444441,PT Kembar,besar,,,,\n'
    '4444444444446,PT Pendek Sekali\n'
)

BAD_REPORT = [
    "line 3: nib: must be 13 digits",
    "line 4: scale: must be mikro, kecil, menengah or besar",
    "line 4: email: is not an email address",
    "line 5: kbli: must be 5-digit KBLI codes separated by semicolons, each once",
    "line 8: nib: is also on line 2",
    "line 9: row: has 2 fields, the header has 7",
]


@pytest.fixture(scope="module")
def template(pg):
    """One migrated database, copied for each test (migrating takes seconds)."""
    name = pg.create_database()
    r = linbat.linbatctl("-d", pg.dsn(name), "-m", MIGRATIONS, "migrate")
    assert r.returncode == 0, r.stderr
    return name


@pytest.fixture
def dsn(pg, template):
    name = "%s_%d" % (template, next(COPIES))
    pg.query('create database "%s" template "%s"' % (name, template))
    return pg.dsn(name)


def query(dsn, sql, params=None):
    with psycopg2.connect(dsn) as c, c.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall() if cur.description else []


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return str(path)


def test_good_file(dsn, tmp_path):
    path = write(tmp_path, "good.csv", GOOD)
    r = linbat.linbatctl("-d", dsn, "investor", "import", path)
    assert (r.returncode, r.stderr) == (0, ""), r.stderr
    assert r.stdout == "imported 3 investors, rejected 0 rows.\n"
    assert query(dsn, "select nib, company_name, scale, kbli::text, district, preferred_channel, language "
                 "from linbat.investor order by nib") == [
        ("1111111111111", "PT Porang Balangan, Tbk", "besar", "{01111,46206}", "Paringin", "whatsapp", "id"),
        ("2222222222222", 'CV "Sungai" Jaya', "kecil", "{47111}", "Juai", "sms", "en"),
        ("3333333333333", "UD Mikro", "mikro", "{}", "Awayan", None, "id"),
    ]
    assert query(dsn, "select i.nib, d.kind, d.address from linbat.identity d "
                 "join linbat.investor i on i.id = d.investor_id order by 1, 2") == [
        ("1111111111111", "email", "info@porang.co.id"),
        ("1111111111111", "sms", "+6281211111111"),
        ("1111111111111", "whatsapp", "+6281211111112"),
        ("2222222222222", "whatsapp", "+6281222222222"),
    ]


def test_reimport_updates_by_nib(dsn, tmp_path):
    path = write(tmp_path, "good.csv", GOOD)
    assert linbat.linbatctl("-d", dsn, "investor", "import", path).returncode == 0
    path = write(tmp_path, "again.csv", "nib,company_name,scale\n1111111111111,PT Porang Baru,menengah\n")
    r = linbat.linbatctl("-d", dsn, "investor", "import", path)
    assert r.returncode == 0, r.stderr
    assert query(dsn, "select count(*), max(company_name) filter (where nib = '1111111111111') "
                 "from linbat.investor") == [(3, "PT Porang Baru")]


def test_bad_rows_import_nothing_and_are_all_reported(dsn, tmp_path):
    path = write(tmp_path, "bad.csv", BAD)
    r = linbat.linbatctl("-d", dsn, "investor", "import", path)
    assert r.returncode == 1
    lines = r.stderr.splitlines()
    assert lines[:-1] == BAD_REPORT
    assert "5 of 7 rows rejected; nothing was imported" in lines[-1]
    assert query(dsn, "select count(*) from linbat.investor") == [(0,)]


def test_skip_bad_imports_exactly_the_good_rows(dsn, tmp_path):
    path = write(tmp_path, "bad.csv", BAD)
    r = linbat.linbatctl("-d", dsn, "investor", "import", path, "--skip-bad")
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines() == BAD_REPORT
    assert r.stdout == "imported 2 investors, rejected 5 rows.\n"
    assert query(dsn, "select nib, company_name from linbat.investor order by nib") == [
        ("4444444444441", "PT Baik Satu"), ("4444444444445", "PT Baik\nDua")]


def test_address_of_another_investor_is_a_bad_row(dsn, tmp_path):
    path = write(tmp_path, "good.csv", GOOD)
    assert linbat.linbatctl("-d", dsn, "investor", "import", path).returncode == 0
    path = write(tmp_path, "steal.csv", "nib,company_name,scale,email\n5555555555555,PT Lain,besar,info@porang.co.id\n")
    r = linbat.linbatctl("-d", dsn, "investor", "import", path)
    assert r.returncode == 1
    assert r.stderr.splitlines()[0] == \
        "line 2: email: info@porang.co.id belongs to the investor with NIB 1111111111111"
    assert query(dsn, "select count(*) from linbat.investor where nib = '5555555555555'") == [(0,)]


@pytest.mark.parametrize("header,message", [
    ("nib,company_name\n", "line 1: scale: is missing from the header"),
    ("nib,company_name,scale,nib\n", "line 1: nib: appears twice in the header"),
    ("nib,company_name,scale,fax\n", "line 1: header: has a column linbat does not know"),
    ("", "line 1: header: is missing: the file is empty"),
])
def test_bad_header(dsn, tmp_path, header, message):
    r = linbat.linbatctl("-d", dsn, "investor", "import", write(tmp_path, "h.csv", header))
    assert r.returncode == 1
    assert message in r.stderr.splitlines()


def test_filing_import(dsn, tmp_path):
    assert linbat.linbatctl("-d", dsn, "investor", "import", write(tmp_path, "g.csv", GOOD)).returncode == 0
    path = write(tmp_path, "filings.csv", "nib,period,status,date\n"
                 "1111111111111,2026-q1,Disetujui,2026-04-10\n"
                 "2222222222222,2025-S2,Perlu Perbaikan,\n"
                 "9999999999999,2026-Q1,Terkirim,2026-04-11\n"
                 "1111111111111,2026-Q5,Terkirim,2026-04-11\n")
    r = linbat.linbatctl("-d", dsn, "filing", "import", path)
    assert r.returncode == 1
    assert r.stderr.splitlines()[:2] == ["line 4: nib: no investor has NIB 9999999999999",
                                         "line 5: period: must be a period such as 2026-Q1 or 2026-S1"]
    r = linbat.linbatctl("-d", dsn, "filing", "import", path, "--skip-bad")
    assert (r.returncode, r.stdout) == (0, "imported 2 filings, rejected 2 rows.\n"), r.stderr
    assert query(dsn, "select i.nib, f.period, f.status, f.source from linbat.lkpm_filing f "
                 "join linbat.investor i on i.id = f.investor_id order by 1") == [
        ("1111111111111", "2026-Q1", "disetujui", "oss_import"),
        ("2222222222222", "2025-S2", "perlu_perbaikan", "oss_import")]


def test_usage(dsn):
    r = linbat.linbatctl("-d", dsn, "investor", "import")
    assert r.returncode == 2 and "usage: linbatctl investor import FILE.csv [--skip-bad]" in r.stderr
    r = linbat.linbatctl("-d", dsn, "investor", "import", "/nonexistent.csv")
    assert r.returncode == 1 and "cannot open /nonexistent.csv" in r.stderr
