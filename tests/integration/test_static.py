"""Static files of web/ served by linbatd: content types, revalidation,
security headers on every answer, a strict Content-Security-Policy on the
pages, and no way out of the web directory.
"""

import os
import re
import socket

import pytest

import linbat

WEB = os.path.join(linbat.TOP_SRCDIR, "web")


def raw_get(port, target, headers=""):
    """Send GET target exactly as written (no client-side normalisation);
    return (status, headers dict, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%sConnection: close\r\n\r\n"
                   % (target, headers)).encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return status, hdrs, body


def csp_directives(value):
    """The CSP header as {directive: [sources]}."""
    out = {}
    for part in value.split(";"):
        words = part.split()
        if words:
            out[words[0]] = words[1:]
    return out


@pytest.fixture
def site(tmp_path, start_linbatd):
    """A linbatd serving a small web dir, with a secret beside (outside) it."""
    web = tmp_path / "web"
    (web / "js").mkdir(parents=True)
    (web / "index.html").write_text("<!doctype html><title>t</title>")
    (web / "js" / "app.js").write_text("export const x = 1;\n")
    (web / "style.css").write_text("body{}\n")
    (web / "icon.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    (web / ".env").write_text("hidden\n")
    (tmp_path / "secret.txt").write_text("SECRET-OUTSIDE\n")
    return start_linbatd(extra={"daemon": {"web_dir": str(web)}})


TYPES = [
    ("/", "text/html; charset=utf-8"),
    ("/index.html", "text/html; charset=utf-8"),
    ("/js/app.js", "text/javascript; charset=utf-8"),
    ("/style.css", "text/css; charset=utf-8"),
    ("/icon.svg", "image/svg+xml"),
]


def test_content_types_and_headers(site):
    for path, ctype in TYPES:
        r = site.get(path)
        assert r.status == 200, (path, r)
        assert r.headers["content-type"] == ctype, path
        assert r.headers["x-content-type-options"] == "nosniff", path
        assert r.headers["referrer-policy"] == "no-referrer", path
        assert r.headers["cache-control"] == "no-cache", path
        assert re.fullmatch(r'W/"[0-9a-f]+-[0-9a-f]+"', r.headers["etag"]), (path, r.headers)


def test_pages_have_a_strict_csp(site):
    r = site.get("/")
    csp = csp_directives(r.headers["content-security-policy"])
    assert csp["default-src"] == ["'self'"], csp
    assert csp["script-src"] == ["'self'"], csp   # no 'unsafe-inline', no 'unsafe-eval'
    assert csp["style-src"] == ["'self'"], csp
    assert csp["frame-ancestors"] == ["'none'"], csp
    assert csp["object-src"] == ["'none'"], csp
    assert csp["base-uri"] == ["'none'"], csp
    assert r.headers["x-frame-options"] == "DENY"


def test_api_answers_have_a_data_csp(site):
    r = site.get("/api/v1/conversations")
    assert r.status == 401
    csp = csp_directives(r.headers["content-security-policy"])
    assert csp["default-src"] == ["'none'"] and "sandbox" in csp, csp
    assert r.headers["x-content-type-options"] == "nosniff"


def test_unchanged_file_is_304(site):
    etag = site.get("/js/app.js").headers["etag"]
    status, hdrs, body = raw_get(site.port, "/js/app.js", "If-None-Match: %s\r\n" % etag)
    assert status == 304 and body == b"", (status, body)
    status, _, body = raw_get(site.port, "/js/app.js", 'If-None-Match: W/"0-0"\r\n')
    assert status == 200 and b"export" in body


ESCAPES = [
    "/../secret.txt",
    "/js/../../secret.txt",
    "/%2e%2e/secret.txt",
    "/..%2fsecret.txt",
    "/js/%2e%2e%2f%2e%2e%2fsecret.txt",
    "/%2E%2E/secret.txt",
    "/..%5csecret.txt",
    "/.env",
    "/js/%00/../../secret.txt",
    "//../secret.txt",
]


def test_no_way_out_of_the_web_dir(site):
    for target in ESCAPES:
        status, _, body = raw_get(site.port, target)
        assert status in (400, 404), (target, status, body[:200])
        assert b"SECRET-OUTSIDE" not in body and b"hidden" not in body, target


def test_directory_without_index_and_missing_file_are_404(site):
    assert site.get("/js/").status == 404
    assert site.get("/nope.html").status == 404


def test_post_to_a_static_file_is_refused(site):
    r = site.post("/index.html", b"x")
    assert r.status == 404, r


def test_source_web_dir_serves_the_inbox(linbatd):
    """The tests' default web_dir is the source tree's web/: its pages load."""
    r = linbatd.get("/")
    assert r.status == 200, r
    assert r.headers["content-type"].startswith("text/html")
    assert b'<script type="module"' in r.body
    assert b"<script>" not in r.body, "inline script would be refused by the CSP"
    for m in re.finditer(rb'(?:src|href)="(/[^"]+)"', r.body):
        sub = linbatd.get(m.group(1).decode())
        assert sub.status == 200, (m.group(1), sub)
