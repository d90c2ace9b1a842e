"""The web view in headless Chromium, driven by Playwright (as a driver only: the
browser is Debian's /usr/bin/chromium, never a downloaded one): search a package,
read the chain, its verification and the takedown, move by keyboard, hostile text
stays text, the page fits 320 px, and a screenshot looks like a page."""

from __future__ import annotations

import shutil
import struct
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from web_world import PACKAGE, PAYLOADS, Site, served_site

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WIDTH, HEIGHT = 1280, 800

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install playwright)"
)
if not Path(CHROMIUM).exists():
    pytest.skip(
        f"{CHROMIUM} is absent (apt-get install chromium); browser tests skipped",
        allow_module_level=True,
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with served_site(tmp_path_factory.mktemp("site")) as s:
        yield s


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    profile = tempfile.mkdtemp(prefix="apkprov-chromium-")
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            headless=True,
            args=ARGS,
            viewport={"width": WIDTH, "height": HEIGHT},
            java_script_enabled=True,  # for the test's own probes; the page has none
        )
        try:
            yield context
        finally:
            context.close()
            shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    tab = browser.new_page()
    dialogs: list[str] = []

    def on_dialog(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    tab.on("dialog", on_dialog)
    tab.dialogs = dialogs
    try:
        yield tab
    finally:
        tab.close()


def _focused(page: Any) -> str:
    """What has the keyboard focus: ``tag#id`` and its text."""
    desc: str = page.evaluate(
        "() => { const e = document.activeElement; "
        "return e.tagName.toLowerCase() + '#' + (e.id || '') + ' ' + "
        "(e.innerText || e.value || '').trim().slice(0, 40); }"
    )
    return desc


def test_search_page(site: Site, page: Any) -> None:
    page.goto(site.url + "/ui/")
    assert page.title() == "Search · apkprov"
    assert page.get_by_role("heading", level=1).inner_text() == "App provenance"
    assert page.get_by_role("banner").count() == 1
    assert page.get_by_role("navigation", name="Main").count() == 1
    assert page.get_by_role("main").count() == 1
    assert page.get_by_role("contentinfo").count() == 1
    assert page.get_by_role("search").count() == 1
    assert page.get_by_label("Search by").evaluate("e => e.tagName") == "SELECT"
    assert page.get_by_label("Value").evaluate("e => e.tagName") == "INPUT"
    assert page.get_by_role("button", name="Search").is_visible()
    assert page.evaluate("document.scripts.length") == 0


def test_search_a_package(site: Site, page: Any) -> None:
    page.goto(site.url + "/ui/")
    page.get_by_label("Value").fill(PACKAGE)
    page.get_by_role("button", name="Search").click()
    page.wait_for_url("**/ui/?kind=package&q=*")
    assert page.title() == f"Chain of package {PACKAGE} · apkprov"
    result = page.get_by_role("heading", level=2, name=f"Chain of package {PACKAGE}")
    assert result.is_visible()
    verdict = page.locator(".verdict")
    assert "Complete and verified" in verdict.inner_text()
    assert "Every step of the chain is present" in verdict.inner_text()
    checked = page.locator("main").inner_text()
    assert "Checked against the checkpoint of log.example.test/provenance" in checked
    assert "signed by the log key log.example.test/provenance+" in checked
    # the checklist: each step with its status in words
    steps = page.get_by_role("table", name="Steps of the chain")
    for step in ("Developer registration", "Release", "Shelving", "Inspection"):
        row = steps.get_by_role("row", name=step)
        assert "Verified" in row.inner_text(), step
    # the takedown, as the access provider issued it
    actions = page.get_by_role("table", name="Verified takedowns and restores in scope")
    row = actions.get_by_role("row").filter(has_text=f"#{site.takedown}")
    text = row.inner_text()
    assert "Takedown" in text and "isp" in text and "privacy" in text and "Stands" in text
    # the life cycle: version 1 taken down, version 2 available; every entry verified
    assert page.get_by_role("heading", name="Version 10 (1.0)").count() == 2
    versions = page.locator("section[aria-labelledby^='v-']")
    assert versions.count() == 2
    assert site.sha1 in versions.first.inner_text()
    assert versions.first.locator(".badge", has_text="Taken down").count() == 1
    assert versions.nth(1).locator(".badge", has_text="Taken down").count() == 0
    verification = page.locator('td[data-label="Verification"]')
    assert verification.count() == 6
    for i in range(verification.count()):
        assert verification.nth(i).inner_text().startswith("✔ Verified")
    findings = page.get_by_role(
        "table",
        name=f"Findings of inspection #{site.entries['inspection-v1']} by lab (verdict warn)",
    )
    assert "PERM-UNDECLARED" in findings.inner_text()


def test_keyboard_navigation(site: Site, page: Any) -> None:
    page.goto(site.url + "/ui/")
    page.keyboard.press("Tab")
    assert _focused(page) == "a# Skip to main content"
    assert page.locator(".skip").bounding_box()["x"] >= 0  # shown when focused
    page.keyboard.press("Enter")
    assert page.url.endswith("#main")
    assert _focused(page).startswith("main#main")
    page.keyboard.press("Tab")
    assert _focused(page).startswith("select#kind")
    page.keyboard.press("Tab")
    assert _focused(page).startswith("input#q")
    page.keyboard.type(PACKAGE)
    page.keyboard.press("Tab")
    assert _focused(page) == "button# Search"
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline == "solid"  # a visible focus indicator
    page.keyboard.press("Enter")
    page.wait_for_url("**q=*")
    assert page.get_by_role("heading", level=2, name=f"Chain of package {PACKAGE}").is_visible()
    # the statements' details open from the keyboard
    summary = page.locator("summary").first
    summary.focus()
    page.keyboard.press("Enter")
    assert page.locator("details").first.evaluate("d => d.open")


def test_xss_payloads_stay_text(site: Site, page: Any) -> None:
    page.goto(site.url + f"/ui/?kind=package&q={PACKAGE}")
    page.wait_for_load_state("load")
    main = page.locator("main")
    text = main.inner_text()
    for payload in PAYLOADS:
        assert payload in text, payload
    for selector in ("script", "img", "svg", "iframe", "a[href^='javascript']", "b"):
        assert main.locator(selector).count() == 0, selector
    assert page.evaluate("typeof window.__xss") == "undefined"
    assert page.dialogs == []
    # the statement as signed also shows the payload as text
    page.locator("summary", has_text="as signed").nth(2).click()
    assert "<script>" in main.inner_text()
    # a hostile query is echoed as text too
    page.goto(site.url + "/ui/?kind=package&q=%3Cimg%20src%3Dx%20onerror%3Dalert(9)%3E")
    assert page.locator("main img").count() == 0 and page.dialogs == []
    assert page.get_by_label("Value").input_value() == "<img src=x onerror=alert(9)>"


def test_works_at_320_px(site: Site, page: Any) -> None:
    page.set_viewport_size({"width": 320, "height": 640})
    for path in (f"/ui/?kind=package&q={PACKAGE}", "/ui/log", "/ui/"):
        page.goto(site.url + path)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 320, (path, width)
    # tables become labelled cards: the column name is shown with each value
    page.goto(site.url + f"/ui/?kind=package&q={PACKAGE}")
    label = page.locator('td[data-label="Status"]').first.evaluate(
        "e => getComputedStyle(e, '::before').content"
    )
    assert label == '"Status: "'


def test_log_status_page(site: Site, page: Any) -> None:
    page.goto(site.url + "/ui/")
    page.get_by_role("link", name="Log status").click()
    page.wait_for_url("**/ui/log")
    assert page.get_by_role("heading", level=1).inner_text() == "Log status"
    assert page.get_by_role("link", name="Log status").get_attribute("aria-current") == "page"
    text = page.locator("main").inner_text()
    assert "Signed by the log key" in text and "No witness policy is configured" in text
    signatures = page.get_by_role("table", name="Signatures on the checkpoint")
    assert "Verified with the log key" in signatures.inner_text()
    actors = page.get_by_role("table", name="Verified actor registry")
    assert "access_provider" in actors.get_by_role("row", name="isp").inner_text()


# --------------------------------------------------------------- screenshot


def _png(data: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and unfiltered rows of an 8-bit RGB/RGBA, non-interlaced PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    assert header is not None
    width, height, depth, colour, _, _, interlace = header
    assert depth == 8 and colour in (2, 6) and interlace == 0
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b = prev[x]
            c = prev[x - bpp] if x >= bpp else 0
            if f == 1:
                line[x] = (line[x] + a) & 255
            elif f == 2:
                line[x] = (line[x] + b) & 255
            elif f == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
                line[x] = (line[x] + pred) & 255
        rows.append(
            bytes(line) if bpp == 3 else bytes(line[i] for i in range(stride) if i % 4 != 3)
        )
        prev = line
    return width, height, rows


def test_screenshot(site: Site, page: Any, tmp_path: Path) -> None:
    page.set_viewport_size({"width": WIDTH, "height": HEIGHT})
    page.goto(site.url + f"/ui/?kind=package&q={PACKAGE}")
    shot = tmp_path / "chain.png"
    page.screenshot(path=str(shot))
    width, height, rows = _png(shot.read_bytes())
    assert (width, height) == (WIDTH, HEIGHT)
    pixels = [bytes(r[i : i + 3]) for r in rows[::4] for i in range(0, len(r), 12)]
    colours = set(pixels)
    white = sum(p == b"\xff\xff\xff" for p in pixels) / len(pixels)
    assert len(colours) > 20, "the screenshot is (nearly) blank"
    assert 0.3 < white < 0.97, f"{white:.0%} white"
    # the dark header band is at the top, across the page
    assert all(max(rows[5][i : i + 3]) < 0x40 for i in range(0, width * 3, 300))
    full = tmp_path / "chain-full.png"
    page.screenshot(path=str(full), full_page=True)
    fw, fh, _ = _png(full.read_bytes())
    assert fw == WIDTH and fh > HEIGHT
