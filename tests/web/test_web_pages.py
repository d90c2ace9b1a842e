"""The web view over HTTP (no browser): served by ``apkprov serve`` under /ui, strict
headers, escaped statements, verification status of every entry, a lying index
shown as not verified, input errors, the log status page, colour contrast."""

from __future__ import annotations

import html as std_html
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from svc_world import PACKAGE, T0, running_world
from td_world import build_chain
from web_world import PAYLOADS, Site, served_site

from provenance.log.checkpoint import Checkpoint
from provenance.log.note import CosignatureV1Signer, Ed25519Signer, sign_note
from provenance.log.policy import parse_policy
from provenance.statements import ActorKey, KeySigner
from provenance.trace.verify import TraceResult, Trust
from provenance.web.html import Html, escape, html
from provenance.web.layout import CSP
from provenance.web.status import LogFacts, render_status
from provenance.web.style import CSS, CSS_HASH


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with served_site(tmp_path_factory.mktemp("site")) as s:
        yield s


def _get(site: Site, path: str, **params: str) -> httpx.Response:
    return httpx.get(site.url + path, params=params, timeout=30)


def _text(page: str) -> str:
    """The page's text, roughly as a reader gets it."""
    body = re.sub(r"<style>.*?</style>", "", page, flags=re.S)
    return " ".join(std_html.unescape(re.sub(r"<[^>]+>", " ", body)).split())


# ------------------------------------------------------------------ serving


def test_mounted_under_ui_with_strict_headers(site: Site) -> None:
    resp = _get(site, "/ui/")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/html")
    csp = resp.headers["content-security-policy"]
    assert csp == CSP
    assert "default-src 'none'" in csp and "script-src" not in csp and "unsafe" not in csp
    assert f"style-src '{CSS_HASH}'" in csp
    assert resp.headers["x-content-type-options"] == "nosniff"
    assert resp.headers["x-frame-options"] == "DENY"
    assert resp.headers["referrer-policy"] == "no-referrer"
    # the stylesheet on the page is exactly the one the CSP hash admits
    assert f"<style>{CSS}</style>" in resp.text
    # nothing external, nothing scripted
    assert "<script" not in resp.text and "http://" not in resp.text.split("<main", 1)[0]
    redirect = httpx.get(site.url + "/ui", follow_redirects=False)
    assert redirect.status_code == 308 and redirect.headers["location"] == "/ui/"
    missing = _get(site, "/ui/nothing-here")
    assert missing.status_code == 404 and "Not found" in missing.text
    assert missing.headers["content-security-policy"] == CSP
    # the API is untouched
    assert _get(site, "/v1/status").json()["tree_size"] > site.takedown
    assert "/ui" not in _get(site, "/openapi.json").text


def test_landmarks_and_labels(site: Site) -> None:
    page = _get(site, "/ui/").text
    assert '<html lang="en">' in page
    for needle in (
        '<a class="skip" href="#main">',
        "<header",
        '<nav aria-label="Main">',
        '<main id="main" tabindex="-1">',
        "<footer",
        '<form class="search" role="search"',
        '<label for="kind">Search by</label>',
        '<label for="q">Value</label>',
        '<meta name="viewport"',
    ):
        assert needle in page, needle
    assert page.count("<h1>") == 1


# -------------------------------------------------------------------- chain


def test_chain_page(site: Site) -> None:
    resp = _get(site, "/ui/", kind="package", q=PACKAGE)
    assert resp.status_code == 200
    page = resp.text
    text = _text(page)
    assert f"Chain of package {PACKAGE}" in text
    # version 2 was never shelved nor inspected, but the package has every step
    assert "Complete and verified" in text
    assert "signed by the log key log.example.test/provenance+" in text
    assert "registry root key(s)" in text
    # each step of the checklist, verified
    for step in ("Developer registration", "Release", "Shelving", "Inspection"):
        assert re.search(rf"{step}\s+✔ Verified", text), step
    # every statement shown carries its verification status
    # registration, two releases, shelving, inspection, takedown
    assert page.count("✔</span> Verified</span><br>") == 6
    # the takedown: authority, reason, standing, version taken down, evidence
    assert f"#{site.takedown}" in text
    assert "✘ Stands" in text and "✘ Taken down" in text and "isp" in text
    assert f"#{site.entries['inspection-v1']}" in text
    assert "PERM-UNDECLARED" in text and "medium" in text
    assert "apkprov takedown prepare" in text


def test_statements_are_escaped(site: Site) -> None:
    page = _get(site, "/ui/", kind="package", q=PACKAGE).text
    main = page.split('<main id="main" tabindex="-1">', 1)[1]
    for payload in PAYLOADS:
        assert payload not in main, payload  # never raw
        assert str(escape(payload)) in main, payload  # always as text
    for tag in ("<script", "<img", "<svg", "<iframe", '<a href="javascript'):
        assert tag not in main, tag
    text = _text(page)
    assert all(p in text for p in PAYLOADS)


def test_search_by_digest_and_cert(site: Site) -> None:
    page = _get(site, "/ui/", kind="sha256", q=site.sha2.upper()).text
    text = _text(page)
    assert f"Chain of APK {site.sha2}" in text
    # version 2 was never shelved nor inspected
    assert "Verified, incomplete" in text and "shelving, inspection" in text
    page = _get(site, "/ui/", kind="cert", q=site.cert).text
    assert f"Chain of signer certificate {site.cert}" in _text(page)
    assert f"App {PACKAGE}" in _text(page)


def test_bad_queries(site: Site) -> None:
    for kind, q in (
        ("sha256", "abc"),
        ("package", "<script>alert(1)</script>"),
        ("cert", "zz" * 32),
        ("nonsense", PACKAGE),
        ("package", "a." * 200),
    ):
        resp = _get(site, "/ui/", kind=kind, q=q)
        assert resp.status_code == 400, (kind, q)
        assert 'aria-invalid="true"' in resp.text and 'id="q-error"' in resp.text
        assert "<script>alert" not in resp.text
    unknown = _get(site, "/ui/", kind="package", q="org.example.none")
    assert unknown.status_code == 200
    assert "No verified statements about package org.example.none" in _text(unknown.text)


def test_log_status_page(site: Site) -> None:
    resp = _get(site, "/ui/log")
    assert resp.status_code == 200
    text = _text(resp.text)
    status = _get(site, "/v1/status").json()
    assert "Log status" in text
    assert f"Tree size (checkpoint) {status['tree_size']}" in text
    assert status["vkey"] in text
    assert "✔ Signed by the log key" in text
    assert "Verified with the log key" in text
    assert "No witness policy is configured" in text
    assert "Registry verified from the root key(s)" in text
    assert re.search(r"isp\s+Example Access Provider Ltd\s+access_provider", text)


# --------------------------------------------------------- a lying index


def test_tampered_index_is_shown_not_verified(tmp_path: Path) -> None:
    """Entries the index returns but that fail verification are never shown as
    part of the chain; the page says what failed."""
    with running_world("sqlite", tmp_path) as w:
        build_chain(w)
        w.wait_integrated()
        index = w.entries["inspection-v1"][0]
        entry = w.service.index.get({index})[index].entry
        forged = entry.replace(b'"sig":"', b'"sig":"AAAA', 1)
        with w.service.db.transaction() as tx:
            tx.execute("UPDATE trace_entries SET entry = ? WHERE idx = ?", (forged, index))
        resp = w.http.get("/ui/", params={"kind": "package", "q": PACKAGE})
    assert resp.status_code == 200
    text = _text(resp.text)
    assert "✘ Not verified" in text
    assert re.search(r"Inspection\s+✘ Not verified", text)
    assert "Entries given but not verified" in text
    assert f"entry {index}" in text
    assert re.search(r"✘ Failed\s+Inclusion proofs", text)


# ------------------------------------------------------------ the helpers


def test_html_helpers_escape_everything() -> None:
    assert escape("<a href='x'>&\"") == "&lt;a href=&#x27;x&#x27;&gt;&amp;&quot;"
    assert html("<p>{}</p>", "<b>") == "<p>&lt;b&gt;</p>"
    assert html("<p>{}</p>", Html("<b>ok</b>")) == "<p><b>ok</b></p>"
    assert html('<a title="{t}">', t='" onmouseover="x') == '<a title="&quot; onmouseover=&quot;x">'


def _luminance(hex_colour: str) -> float:
    channels = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def _contrast(a: str, b: str) -> float:
    hi, lo = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_colour_contrast() -> None:
    """Every rule that sets both a text colour and a background meets WCAG AA."""
    pairs: list[tuple[str, str]] = []
    for rule in re.findall(r"\{([^{}]*)\}", CSS):
        bg = re.search(r"background:\s*(#[0-9a-f]{6})", rule)
        fg = re.search(r"(?<![-\w])color:\s*(#[0-9a-f]{6})", rule)
        if bg and fg:
            pairs.append((fg.group(1), bg.group(1)))
    assert len(pairs) >= 8
    for text, back in pairs:
        assert _contrast(text, back) >= 4.5, (text, back, _contrast(text, back))
    # text colours on the white page
    for colour in ("#1b1b1b", "#0b4cb3", "#4a5568", "#a4161a"):
        assert _contrast(colour, "#ffffff") >= 4.5, colour


def test_status_with_witnesses() -> None:
    """A service cosigning with a witness policy: the page checks the quorum."""
    log = Ed25519Signer.generate("log.example.test/witnessed")
    wit = CosignatureV1Signer.generate("witness.example.test/w1")
    policy = parse_policy(f"log {log.vkey}\nwitness w1 {wit.vkey}\nquorum w1\n")
    text = Checkpoint(log.name, 3, bytes(32)).text()
    trust = Trust(log.verifier(), [ActorKey(KeySigner.generate().public_key, T0)], policy)

    def render(note: bytes) -> str:
        facts = LogFacts(log.name, log.vkey, 3, 3, 3, 0, note.decode())
        return _text(render_status(facts, trust, TraceResult([])))

    page = render(sign_note(text, [log, wit]))
    assert "Signed by the log; witness quorum 'w1' met" in page
    assert "Verified with the log key" in page
    assert "witness w1 ✔ Verified cosignature" in page
    assert re.search(r"quorum w1 ?\): w1\.", page)
    page = render(sign_note(text, [log]))
    assert "✘ Does not verify" in page and "quorum 'w1' not met" in page
