"""A served log whose statements carry markup: a chain with hostile text in the
fields a web page shows, an access provider's takedown, and ``apkprov serve``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from svc_world import APK_V1, APK_V2, PACKAGE, World, running_world
from td_world import (
    Files,
    add_access_provider,
    serve_process,
    sha_of,
    wait_integrated,
    write_files,
)

from provenance.cli import main
from provenance.statements import DEVELOPER_REGISTRATION, INSPECTION, RELEASE, SHELVING

XSS_APP_NAME = '<script>window.__xss = 1; alert("app name")</script>'
XSS_SUMMARY = '"><img src=x onerror="window.__xss = 2; alert(2)">'
XSS_EVIDENCE = "<a href=\"javascript:alert(4)\">click</a> & 'quotes'"
XSS_REASON = "</td></tr></table><svg onload=alert(3)><b>bold?</b>"
XSS_LEGAL = "<iframe src=//evil.example></iframe>"
PAYLOADS = (XSS_APP_NAME, XSS_SUMMARY, XSS_EVIDENCE, XSS_REASON, XSS_LEGAL)


@dataclass
class Site:
    """The served log and what was put in it."""

    url: str
    files: Files
    sha1: str
    sha2: str
    cert: str
    entries: dict[str, int]
    takedown: int
    vkey: str


def _chain(w: World) -> None:
    w.register_actors()
    add_access_provider(w)
    w.submit("developer-registration", DEVELOPER_REGISTRATION, w.developer_registration(), "store")
    w.submit("release-v1", RELEASE, w.release(APK_V1), "acme")
    w.submit("release-v2", RELEASE, w.release(APK_V2), "acme")
    shelving = w.shelving("store", "release-v1")
    shelving["metadata"]["app_name"] = XSS_APP_NAME
    w.submit("shelving-v1", SHELVING, shelving, "store")
    inspection = w.inspection("shelving-v1")
    inspection["findings"][0]["summary"] = XSS_SUMMARY
    inspection["findings"][0]["evidence"] = [XSS_EVIDENCE]
    w.submit("inspection-v1", INSPECTION, inspection, "lab")


@contextmanager
def served_site(tmp: Path) -> Iterator[Site]:
    """Build the chain in-process, then serve it with ``apkprov serve`` and have the
    access provider take version 1 down through the CLI."""
    with running_world("sqlite", tmp) as w:
        _chain(w)
        w.wait_integrated()
        files = write_files(w, tmp / "files")
        token = w.tokens["isp"]
        entries = {name: index for name, (index, _) in w.entries.items()}
        sha1, sha2 = sha_of(w, "release-v1"), sha_of(w, "release-v2")
        cert = w._predicate(w.entries["release-v1"][1])["signer_certificates"][0]
        vkey, directory = w.vkey, w.directory
    with serve_process(directory, files.root) as url:
        token_file = tmp / "isp.token"
        token_file.write_text(token)
        args = [
            "takedown", "issue", "--sha256", sha1, "--scope", "version",
            "--reason", "privacy", "--text", XSS_REASON, "--legal-basis", XSS_LEGAL,
            "--key", f"file:{files.keys['isp']}", "--token", f"file:{token_file}",
            "--url", url, "--vkey", str(files.vkey), "--root-key", str(files.root),
        ]  # fmt: skip
        assert main(args) == 0
        takedown = max(entries.values()) + 1
        wait_integrated(url, takedown)
        yield Site(url, files, sha1, sha2, cert, entries, takedown, vkey)


__all__ = ["PACKAGE", "PAYLOADS", "Site", "served_site"]
