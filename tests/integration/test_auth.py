"""Authentication and roles of the inbox API: the RBAC matrix over every
route, every role and anonymous; cookie sessions from /api/v1/login with
their CSRF token; login throttling per account and per address; session
expiry and logout; the audit log; linbatctl operator list and set."""

import json

import pytest

import inbox
import linbat
from inbox import call, sql

ROLES = ("operator", "manager", "admin")


@pytest.fixture
def daemon(start_linbatd, tmp_path):
    return start_linbatd(extra={"channel t1": {"type": "test", "record": str(tmp_path / "t1.jsonl")}})


def routes(conv, other_op, inv, inv_from, op_id, n):
    """Every API route as (method, path, body, least role), in an order where
    each call still finds what it needs (resolve before release)."""
    c = "/api/v1/conversations/%d" % conv
    return [
        ("GET", "/api/v1/me", None, "operator"),
        ("GET", "/api/v1/me/presence", None, "operator"),
        ("PUT", "/api/v1/me/presence", {"presence": "online"}, "operator"),
        ("GET", "/api/v1/conversations", None, "operator"),
        ("GET", c, None, "operator"),
        ("GET", c + "/messages", None, "operator"),
        ("POST", c + "/messages", {"body": "Baik, kami cek."}, "operator"),
        ("POST", c + "/notes", {"body": "catatan"}, "operator"),
        ("POST", c + "/take", None, "operator"),
        ("POST", c + "/transfer", {"operator": other_op}, "operator"),
        ("POST", c + "/resolve", None, "operator"),
        ("POST", c + "/release", None, "operator"),
        ("GET", "/api/v1/events", None, "operator"),
        ("GET", "/api/v1/operators", None, "operator"),
        ("POST", "/api/v1/operators", {"email": "baru%d@x.id" % n, "name": "Baru"}, "manager"),
        ("PATCH", "/api/v1/operators/%d" % op_id, {"capacity": 5}, "manager"),
        ("GET", "/api/v1/investors?q=62", None, "operator"),
        ("GET", "/api/v1/investors/%d" % inv, None, "operator"),
        ("PATCH", "/api/v1/investors/%d" % inv, {"district": "Kota Makassar"}, "operator"),
        ("POST", "/api/v1/investors/%d/merge" % inv, {"from": inv_from}, "manager"),
        ("POST", "/api/v1/logout", None, "operator"),
    ]


def status_of(daemon, method, path, body, headers):
    """The status of one call; an event stream is opened, its status read, and closed."""
    if path == "/api/v1/events":
        ev = inbox.Events(daemon, headers)
        ev.close()
        return ev.status
    return call(daemon, method, path, body, headers).status


def test_rbac_matrix_every_route_every_role_and_anonymous(daemon, db):
    ids = {r: inbox.add_operator(db, "%s@x.id" % r, role=r, capacity=20) for r in ROLES}
    toks = {r: inbox.token(db, "%s@x.id" % r) for r in ROLES}
    plain = inbox.add_operator(db, "plain@x.id", online=True)
    matrix = {}
    for n, role in enumerate(ROLES):
        # each role acts on a conversation of its own and merges its own pair
        sql(db, "select linbat.set_presence(%s, 'online')", (ids[role],))
        conv = inbox.ingest(db, "+62812000000%02d" % n, "rbac-%d" % n)
        sql(db, "update linbat.conversation set assigned_operator = null, queued_since = now() where id = %s; "
            "select linbat.take_conversation(%s, %s)", (conv, conv, ids[role]))
        inv = sql(db, "select investor_id from linbat.conversation where id = %s", (conv,))[0][0]
        other = inbox.ingest(db, "+62813000000%02d" % n, "rbac-o-%d" % n)
        inv_from = sql(db, "select investor_id from linbat.conversation where id = %s", (other,))[0][0]
        sql(db, "select linbat.set_presence(%s, 'offline')", (ids[role],))
        for method, path, body, least in routes(conv, ids[role], inv, inv_from, plain, n):
            anon = status_of(daemon, method, path, body, {"Content-Type": "application/json"})
            got = status_of(daemon, method, path, body, inbox.bearer(toks[role]))
            matrix[(method, path, role)] = (anon, got, least)
    bad = []
    for (method, path, role), (anon, got, least) in sorted(matrix.items()):
        allowed = ROLES.index(role) >= ROLES.index(least)
        if anon != 401:
            bad.append("anonymous %s %s: %d, not 401" % (method, path, anon))
        if allowed and got in (401, 403):
            bad.append("%s %s %s: %d, but the role may" % (role, method, path, got))
        if allowed and got >= 500:
            bad.append("%s %s %s: %d" % (role, method, path, got))
        if not allowed and got != 403:
            bad.append("%s %s %s: %d, not 403" % (role, method, path, got))
    assert not bad, "\n".join(bad)
    # the matrix covered every route the daemon registers, manager routes included
    assert len({(m, p.split("?")[0]) for m, p, _ in matrix}) >= 21


def test_login_gives_a_strict_httponly_cookie_and_csrf_guards_every_change(daemon, db):
    oid = inbox.add_operator(db, "ani@x.id", online=True)
    conv = inbox.ingest(db, "+6281234500001", "c-1")
    s = inbox.Session(daemon, "ANI@x.id")
    attrs = [a.strip() for a in s.set_cookie.split(";")]
    assert {"HttpOnly", "SameSite=Strict", "Path=/"} <= set(attrs)
    assert "Secure" not in attrs  # public_url is http here
    assert s.login.json()["operator"]["id"] == oid and len(s.csrf) == 64
    assert s.request("GET", "/api/v1/conversations", csrf=False).status == 200
    # a state change with the cookie and no token, or a wrong one: 403 csrf, nothing stored
    r = s.request("POST", "/api/v1/conversations/%d/notes" % conv, {"body": "x"}, csrf=False)
    assert r.status == 403 and r.json()["error"]["code"] == "csrf", r
    h = dict(s.headers(), **{"X-CSRF-Token": s.csrf[:-1] + ("0" if s.csrf[-1] != "0" else "1")})
    r = call(daemon, "PUT", "/api/v1/me/presence", {"presence": "away"}, h)
    assert r.status == 403 and r.json()["error"]["code"] == "csrf", r
    assert sql(db, "select count(*) from linbat.message where content_type = 'note'")[0][0] == 0
    assert sql(db, "select presence from linbat.operator where id = %s", (oid,))[0][0] == "online"
    # with the token it goes through; a bearer token needs none
    assert s.request("POST", "/api/v1/conversations/%d/notes" % conv, {"body": "x"}).status == 201
    tok = inbox.token(db, "ani@x.id")
    assert call(daemon, "PUT", "/api/v1/me/presence", {"presence": "away"}, inbox.bearer(tok)).status == 200


def test_wrong_passwords_and_unknown_accounts_get_401_and_are_audited(daemon, db):
    inbox.add_operator(db, "budi@x.id")
    for email, pw in (("budi@x.id", "salah-sekali"), ("nobody@x.id", inbox.PASSWORD)):
        r = call(daemon, "POST", "/api/v1/login", {"email": email, "password": pw})
        assert r.status == 401 and "set-cookie" not in r.headers, r
    for body in (b"{}", b'{"email": 1, "password": "x"}', b"nope"):
        assert call(daemon, "POST", "/api/v1/login", body).status == 400
    assert sql(db, "select count(*) from linbat.audit_log where action = 'login.failed'")[0][0] == 2


def test_login_is_throttled_per_account_then_per_address(daemon, db):
    inbox.add_operator(db, "citra@x.id")
    inbox.add_operator(db, "dewi@x.id")
    for _ in range(5):
        assert call(daemon, "POST", "/api/v1/login", {"email": "citra@x.id", "password": "tebakan1"}).status == 401
    # the sixth attempt is refused even with the right password
    r = call(daemon, "POST", "/api/v1/login", {"email": "citra@x.id", "password": inbox.PASSWORD})
    assert r.status == 429 and r.json()["error"]["code"] == "rate_limited", r
    # another account from the same address still logs in, until the address has 20 failures
    inbox.Session(daemon, "dewi@x.id")
    sql(db, "insert into linbat.login_failure (email, remote_addr) "
        "select 'guess' || g || '@x.id', '127.0.0.1' from generate_series(1, 15) g")
    r = call(daemon, "POST", "/api/v1/login", {"email": "dewi@x.id", "password": inbox.PASSWORD})
    assert r.status == 429, r
    # failures older than the window no longer count
    sql(db, "update linbat.login_failure set at = now() - interval '16 minutes'")
    inbox.Session(daemon, "citra@x.id")


def test_sessions_expire_and_logout_ends_them(start_linbatd, db):
    d = start_linbatd(extra={"auth": {"session_ttl": "3s"}, "daemon": {"public_url": "https://inbox.example.go.id"}})
    inbox.add_operator(db, "eka@x.id")
    s = inbox.Session(d, "eka@x.id")
    assert "Secure" in [a.strip() for a in s.set_cookie.split(";")]
    assert "Max-Age=3" in s.set_cookie
    assert s.request("GET", "/api/v1/me").status == 200
    assert linbat.wait_for(lambda: s.request("GET", "/api/v1/me").status == 401, 15)

    t = inbox.Session(d, "eka@x.id")
    assert t.request("POST", "/api/v1/logout", csrf=False).status == 403
    r = t.request("POST", "/api/v1/logout")
    assert r.status == 204 and "Max-Age=0" in r.headers["set-cookie"]
    assert t.request("GET", "/api/v1/me").status == 401
    acts = [a for (a,) in sql(db, "select action from linbat.audit_log order by id")]
    assert acts.count("login") == 2 and acts.count("logout") == 1 and "operator.create" in acts


def test_linbatctl_operator_list_and_set(db, daemon):
    oid = inbox.add_operator(db, "fajar@x.id", capacity=3)
    r = linbat.linbatctl("-d", db, "operator", "set", "--email", "FAJAR@x.id", "--role", "manager",
                         "--capacity", "7", "--name", "Fajar Nugroho")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["role"] == "manager"
    r = linbat.linbatctl("-d", db, "operator", "list")
    assert r.returncode == 0 and "fajar@x.id" in r.stdout and "manager" in r.stdout and " 7 " in r.stdout
    # a new password from stdin, then disable: the session and the login die
    r = linbat.run([linbat.LINBATCTL, "-d", db, "operator", "set", "--email", "fajar@x.id", "--password"],
                   input="kata-sandi-baru\n")
    assert r.returncode == 0, r.stderr
    s = inbox.Session(daemon, "fajar@x.id", "kata-sandi-baru")
    tok = inbox.token(db, "fajar@x.id")
    assert call(daemon, "GET", "/api/v1/me", None, inbox.bearer(tok)).status == 200
    assert linbat.linbatctl("-d", db, "operator", "set", "--email", "fajar@x.id", "--disable").returncode == 0
    assert s.request("GET", "/api/v1/me").status == 401
    assert call(daemon, "GET", "/api/v1/me", None, inbox.bearer(tok)).status == 401
    r = call(daemon, "POST", "/api/v1/login", {"email": "fajar@x.id", "password": "kata-sandi-baru"})
    assert r.status == 401
    assert "disabled" in linbat.linbatctl("-d", db, "operator", "list").stdout
    r = linbat.linbatctl("-d", db, "operator", "set", "--email", "nobody@x.id", "--capacity", "1")
    assert r.returncode == 1 and "no operator" in r.stderr
    updates = sql(db, "select count(*) from linbat.audit_log where action = 'operator.update' "
                  "and object_id = %s and actor = 'linbatctl'", (str(oid),))[0][0]
    assert updates == 3
