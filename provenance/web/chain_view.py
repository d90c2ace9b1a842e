"""An app's verified chain as HTML: verdict, what was checked, checklist, life cycle.

Input is a :class:`~provenance.takedown.prepare.Prepared` -- the result of the same
trace client ``apkprov trace`` runs -- so the page shows nothing the client did not
verify, says which checkpoint and keys it verified against, and lists verbatim
every problem. Every value from a statement goes through :mod:`.html` escaping.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterable
from typing import Any

from provenance.statements import (
    DEVELOPER_REGISTRATION,
    INSPECTION,
    RELEASE,
    RESTORE,
    SHELVING,
    TAKEDOWN,
)
from provenance.takedown import MISSING, UNVERIFIED, Prepared, checks_of, lifted_by, trust_json
from provenance.takedown.state import affects
from provenance.trace.chain import AppChain, Version
from provenance.trace.verify import VerifiedStatement
from provenance.web.html import Html, html, join

__all__ = ["badge", "render_chain"]

_STEP_TITLES = {
    "actor-registration": "Actor registration",
    "developer-registration": "Developer registration",
    "sdk-registration": "SDK registration",
    "release": "Release",
    "shelving": "Shelving",
    "inspection": "Inspection",
    "takedown": "Takedown",
    "restore": "Restore",
}
_MAX_JSON = 16 * 1024


def badge(kind: str, text: str) -> Html:
    """A status in words, with a symbol (colour only repeats what the words say)."""
    symbol = {"ok": "✔", "bad": "✘", "warn": "⚠", "info": "•"}[kind]
    return html(
        '<span class="badge {}"><span aria-hidden="true">{}</span> {}</span>', kind, symbol, text
    )


def _facts(pairs: Iterable[tuple[str, Any]]) -> Html:
    rows = [html("<dt>{}</dt><dd>{}</dd>", k, v) for k, v in pairs if v not in (None, "", [])]
    return html('<dl class="facts">{}</dl>', join(rows))


def _code(value: str) -> Html:
    return html('<code class="hash">{}</code>', value)


def _codes(values: Iterable[str]) -> Html:
    return join((_code(v) for v in values), ", ")


def _refs(refs: Iterable[dict[str, Any]]) -> Html:
    return join((html("#{}", r["index"]) for r in refs), ", ")


def _details(s: VerifiedStatement) -> Html:
    p = s.predicate
    t = s.predicate_type
    if t == DEVELOPER_REGISTRATION:
        ident = p["identity"]
        return _facts(
            [
                ("Developer", p["developer"]),
                ("Legal name", ident["legal_name"]),
                ("Country", ident["country"]),
                ("Verified by", f"{ident['verification_method']} at {ident['verified_at']}"),
                ("Filing", (p.get("filing") or {}).get("number")),
                ("Certificates", _codes(c["sha256"] for c in p["signer_certificates"])),
            ]
        )
    if t == RELEASE:
        v = p["verification"]
        return _facts(
            [
                ("Version", f"{p['version_code']} ({p.get('version_name', '–')})"),
                ("APK SHA-256", _code(p["apk"]["sha256"])),
                ("Signer certificates", _codes(p["signer_certificates"])),
                ("Signature schemes", ", ".join(v["schemes"]) + f" ({v['verifier']})"),
            ]
        )
    if t == SHELVING:
        m = p["metadata"]
        return _facts(
            [
                ("Platform", p["platform"]),
                ("Listing", p["listing"]["id"]),
                ("Shelved at", p["listing"]["shelved_at"]),
                ("App name", m["app_name"]),
                ("Developer name", m["developer_name"]),
                ("Listing URL", p["listing"].get("url")),
                ("Declared SDKs", ", ".join(x["name"] for x in m["sdks"])),
            ]
        )
    if t == INSPECTION:
        return _facts(
            [
                ("Inspector", p["inspector"]),
                ("Verdict", p["verdict"]),
                ("Findings", len(p["findings"])),
                ("Target", _refs([p["target"]])),
                ("Tool", p["facts"]["tool"]),
            ]
        )
    if t in (TAKEDOWN, RESTORE):
        return _facts(
            [
                ("Scope", _scope(p["scope"])),
                ("Reason", f"{p['reason']['code']}: {p['reason']['text']}"),
                ("Legal basis", p["reason"].get("legal_basis")),
                ("Effective", p["effective_at"]),
                ("Lifts", _refs([p["takedown"]]) if t == RESTORE else None),
                ("Evidence", _refs(p["evidence"])),
            ]
        )
    return Html("")


def _scope(scope: dict[str, Any]) -> Html:
    kind = scope["kind"]
    if kind == "app":
        return html("whole app {}", scope["package"])
    if kind == "version":
        return html("version of {}: APK {}", scope["package"], _code(scope["apk_sha256"]))
    return html("SDK {} {}", scope["sdk_id"], scope.get("sdk_version", "(all versions)"))


def _verification(s: VerifiedStatement, size: int | None) -> Html:
    roles = ", ".join(s.signer_roles)
    where = f"included in the checkpoint of size {size}" if size is not None else ""
    notes = join(html('<br><span class="muted">note: {}</span>', n) for n in s.notes)
    return html(
        '{}<br><span class="muted">signed by {} ({}); {}</span>{}',
        badge("ok", "Verified"),
        s.signer,
        roles,
        where,
        notes,
    )


def _statement_json(s: VerifiedStatement) -> Html:
    text = json.dumps(s.statement.predicate, indent=1, ensure_ascii=False)
    if len(text) > _MAX_JSON:
        text = text[:_MAX_JSON] + "\n… (cut)"
    return html(
        "<details><summary>Statement #{} as signed</summary><pre>{}</pre></details>", s.index, text
    )


def _statements_table(caption: str, rows: list[VerifiedStatement], size: int | None) -> Html:
    body = join(
        html(
            "<tr>"
            '<th scope="row" data-label="Entry">#{index}</th>'
            '<td data-label="Step">{step}</td>'
            '<td data-label="Signed by">{signer}</td>'
            '<td data-label="Issued">{issued}</td>'
            '<td data-label="Details">{details}{raw}</td>'
            '<td data-label="Verification">{verification}</td>'
            "</tr>",
            index=s.index,
            step=_STEP_TITLES.get(s.step, s.step),
            signer=s.signer,
            issued=s.statement.issued_at,
            details=_details(s),
            raw=_statement_json(s),
            verification=_verification(s, size),
        )
        for s in sorted(rows, key=lambda s: s.index)
    )
    return html(
        '<table class="stack"><caption>{}</caption><thead><tr>'
        '<th scope="col">Entry</th><th scope="col">Step</th><th scope="col">Signed by</th>'
        '<th scope="col">Issued</th><th scope="col">Details</th>'
        '<th scope="col">Verification</th></tr></thead><tbody>{}</tbody></table>',
        caption,
        body,
    )


def _findings(inspections: list[VerifiedStatement]) -> Html:
    out = []
    for s in inspections:
        findings = s.predicate["findings"]
        if not findings:
            out.append(html("<p>Inspection #{} by {}: no findings.</p>", s.index, s.signer))
            continue
        rows = join(
            html(
                '<tr><td data-label="Rule">{}</td><td data-label="Severity">{}</td>'
                '<td data-label="Summary">{}</td><td data-label="Evidence">{}</td></tr>',
                f["id"],
                f["severity"],
                f["summary"],
                join(html("<div>{}</div>", e) for e in f.get("evidence", [])),
            )
            for f in findings
        )
        out.append(
            html(
                '<table class="stack"><caption>Findings of inspection #{} by {} '
                '(verdict {})</caption><thead><tr><th scope="col">Rule</th>'
                '<th scope="col">Severity</th><th scope="col">Summary</th>'
                '<th scope="col">Evidence</th></tr></thead><tbody>{}</tbody></table>',
                s.index,
                s.signer,
                s.predicate["verdict"],
                rows,
            )
        )
    return join(out)


def _version(chain: AppChain, v: Version, size: int | None, n: int) -> Html:
    name = f" ({v.version_name})" if v.version_name else ""
    code = v.version_code if v.version_code is not None else "?"
    standing = chain.standing(v)
    state = badge("bad", "Taken down") if standing == "taken down" else badge("ok", "Available")
    return html(
        '<section aria-labelledby="v-{n}"><h4 id="v-{n}">Version {code}{name}</h4>'
        "<p>APK SHA-256 {sha} · {state}</p>{table}{findings}</section>",
        n=n,
        code=code,
        name=name,
        sha=_code(v.apk_sha256),
        state=state,
        table=_statements_table(f"Statements about version {code}", v.steps(), size),
        findings=_findings(v.inspections),
    )


def _chain(chain: AppChain, size: int | None, n: int) -> Html:
    standing = chain.standing()
    state = badge("bad", "Taken down") if standing == "taken down" else badge("ok", "Available")
    parts = [
        html(
            '<h3 id="app-{}">App {} · {}</h3>',
            n,
            chain.package,
            state,
        )
    ]
    if chain.registrations:
        parts.append(_statements_table("Developer registration", chain.registrations, size))
    versions = sorted(chain.versions.values(), key=lambda v: min(s.index for s in v.steps()))
    parts += [_version(chain, v, size, n * 100 + i) for i, v in enumerate(versions)]
    if chain.app_actions:
        parts.append(_statements_table("Takedowns and restores of the whole app", chain.app_actions,
                                       size))  # fmt: skip
    return html('<section aria-labelledby="app-{}">{}</section>', n, join(parts))


def _actions(prepared: Prepared) -> Html:
    t = prepared.checklist.targets
    lifted = lifted_by(prepared.result)
    rows = []
    for s in prepared.result.statements:
        if s.predicate_type not in (TAKEDOWN, RESTORE):
            continue
        if not affects(s, t.packages, t.apks, prepared.subject.sdk):
            continue
        p = s.predicate
        if s.predicate_type == TAKEDOWN:
            by = lifted.get(s.index)
            status = (
                html("{} by restore #{}", badge("ok", "Lifted"), by.index)
                if by
                else badge("bad", "Stands")
            )
        else:
            status = html("lifts #{}", p["takedown"]["index"])
        rows.append(
            html(
                '<tr><th scope="row" data-label="Entry">#{}</th><td data-label="Action">{}</td>'
                '<td data-label="Scope">{}</td><td data-label="Authority">{}</td>'
                '<td data-label="Reason">{}</td><td data-label="Effective">{}</td>'
                '<td data-label="Evidence">{}</td><td data-label="Status">{}</td></tr>',
                s.index,
                _STEP_TITLES[s.step],
                _scope(p["scope"]),
                s.signer,
                html("<strong>{}</strong>: {}", p["reason"]["code"], p["reason"]["text"]),
                p["effective_at"],
                _refs(p["evidence"]) or "none",
                status,
            )
        )
    if not rows:
        return html("<p>No verified takedown or restore concerns this app.</p>")
    return html(
        '<table class="stack"><caption>Verified takedowns and restores in scope</caption>'
        "<thead><tr>"
        '<th scope="col">Entry</th><th scope="col">Action</th><th scope="col">Scope</th>'
        '<th scope="col">Authority</th><th scope="col">Reason</th>'
        '<th scope="col">Effective</th><th scope="col">Evidence</th>'
        '<th scope="col">Status</th></tr></thead><tbody>{}</tbody></table>',
        join(rows),
    )


_STATUS = {
    "verified": ("ok", "Verified"),
    UNVERIFIED: ("bad", "Not verified"),
    MISSING: ("warn", "Missing"),
}


def _checklist(prepared: Prepared) -> Html:
    rows = join(
        html(
            '<tr><th scope="row" data-label="Step">{}</th><td data-label="Status">{}</td>'
            '<td data-label="Entries">{}</td></tr>',
            s.title,
            badge(*_STATUS[s.status]),
            s.text,
        )
        for s in prepared.checklist.steps
    )
    return html(
        '<table class="stack"><caption>Steps of the chain</caption><thead><tr>'
        '<th scope="col">Step</th><th scope="col">Status</th><th scope="col">Entries</th>'
        "</tr></thead><tbody>{}</tbody></table>",
        rows,
    )


def _checks(prepared: Prepared) -> Html:
    items = join(
        html(
            "<li>{} <strong>{}</strong>: {}{}</li>",
            badge("ok", "Passed") if c.ok else badge("bad", "Failed"),
            c.title,
            c.text,
            join(html('<br><span class="error">{}</span>', p) for p in c.problems),
        )
        for c in checks_of(prepared.result, prepared.trust)
    )
    return html('<ul class="checks">{}</ul>', items)


def _command(prepared: Prepared, service_url: str, vkey: str) -> str:
    kind, value = prepared.subject.primary
    words = ["apkprov", "takedown", "prepare"]
    words += [value] if kind == "package" else [f"--{kind}", value]
    words += ["--url", service_url, "--vkey", vkey, "--root-key", "registry-root.pub.pem"]
    return " ".join(shlex.quote(w) for w in words)


def _unverified(prepared: Prepared) -> Html:
    bad = sorted({i for s in prepared.checklist.steps for i in s.unverified})
    if not bad:
        return Html("")
    rows = []
    for i in bad:
        why = [p for p in prepared.checklist.problems if re.search(rf"\bentry {i}\b", p)]
        step = next(s.title for s in prepared.checklist.steps if i in s.unverified)
        rows.append(
            html(
                '<tr><th scope="row" data-label="Entry">#{}</th><td data-label="Step">{}</td>'
                '<td data-label="Status">{}</td><td data-label="Why">{}</td></tr>',
                i,
                step,
                badge("bad", "Not verified"),
                join(html("<div>{}</div>", w) for w in why)
                or "not in a checkpoint yet, or cited by nothing that verified",
            )
        )
    return html(
        '<h3 id="unverified">Entries given but not verified</h3><p>The service returned '
        "these entries for this app, but they failed a check; nothing from them is shown "
        'as part of the chain.</p><table class="stack"><caption>Unverified entries</caption>'
        '<thead><tr><th scope="col">Entry</th><th scope="col">Step</th>'
        '<th scope="col">Status</th><th scope="col">Why</th></tr></thead>'
        "<tbody>{}</tbody></table>",
        join(rows),
    )


def render_chain(prepared: Prepared, *, service_url: str, vkey: str) -> Html:
    """The result section for one search."""
    c = prepared.checklist
    cp = c.checkpoint
    anchors = trust_json(prepared.trust)
    if not c.verified:
        verdict = html(
            '<div class="verdict bad"><strong>{}</strong><p>{} problem(s) were found; '
            "unverified entries are left out of the chain and listed below.</p></div>",
            badge("bad", "Not verified"),
            len(c.problems),
        )
    elif not c.complete:
        missing = ", ".join(s.title.lower() for s in c.steps if s.status != "verified")
        verdict = html(
            '<div class="verdict warn"><strong>{}</strong><p>Everything shown verified, '
            "but the chain lacks: {}.</p></div>",
            badge("warn", "Verified, incomplete"),
            missing,
        )
    else:
        verdict = html(
            '<div class="verdict ok"><strong>{}</strong><p>Every step of the chain is '
            "present and every entry verified.</p></div>",
            badge("ok", "Complete and verified"),
        )
    against = (
        html(
            "Checked against the checkpoint of <code>{}</code> at tree size {}, signed by the "
            "log key <code>{}</code>, with the actor registry rebuilt from the registry root "
            "key(s) {}.",
            cp.origin,
            cp.size,
            anchors["log_key"],
            _codes(anchors["registry_root_keys"]),
        )
        if cp
        else html("No checkpoint could be verified.")
    )
    size = cp.size if cp else None
    chains = [ch for ch in prepared.chains if ch.package in c.targets.packages] or prepared.chains
    life = join(_chain(ch, size, i + 1) for i, ch in enumerate(chains))
    if not chains:
        kind, value = prepared.subject.primary
        life = html("<p>No verified statements about {} {}.</p>", kind, value)
    problems = join(html("<li>{}</li>", p) for p in c.problems)
    warnings = join(html("<li>{}</li>", w) for w in c.warnings)
    return html(
        '<section aria-labelledby="result"><h2 id="result">Chain of {subject}</h2>'
        "{verdict}<p>{against}</p>"
        '<h3 id="checked">What was checked</h3>{checks}'
        "<p>Check it yourself (needs the registry root's public key):</p><pre>{command}</pre>"
        '<h3 id="checklist">Takedown checklist</h3>{checklist}'
        '<h3 id="takedowns">Takedowns and restores</h3>{actions}'
        "{unverified}"
        '<h3 id="problems">Problems</h3>{problems}'
        "{warnings}"
        '</section><section aria-labelledby="lifecycle"><h2 id="lifecycle">Life cycle</h2>'
        "{life}</section>",
        subject=prepared.subject.describe(),
        verdict=verdict,
        against=against,
        checks=_checks(prepared),
        command=_command(prepared, service_url, vkey),
        checklist=_checklist(prepared),
        actions=_actions(prepared),
        unverified=_unverified(prepared),
        problems=html("<ul>{}</ul>", problems) if c.problems else html("<p>None.</p>"),
        warnings=(
            html('<h3 id="warnings">Warnings</h3><ul>{}</ul>', warnings) if c.warnings else ""
        ),
        life=life,
    )
