"""The log status page: checkpoint, sizes, signatures and witnesses, actors.

The checkpoint is verified here against the log's own key and, when the service
cosigns with a witness policy, against the policy's witnesses and quorum; every
signature line is listed with what it was checked against. The actor registry is
verified by the same trace client as the chains (root keys -> registrations).
"""

from __future__ import annotations

from dataclasses import dataclass

from provenance.errors import ProvenanceError
from provenance.log.checkpoint import open_checkpoint, parse_checkpoint
from provenance.log.note import parse_note
from provenance.log.policy import Policy
from provenance.takedown import checks_of, trust_json
from provenance.trace.verify import TraceResult, Trust
from provenance.web.chain_view import badge
from provenance.web.html import Html, html, join

__all__ = ["LogFacts", "render_status"]


@dataclass(frozen=True)
class LogFacts:
    """What the service says about its log (sizes are the service's own counters)."""

    origin: str
    vkey: str
    tree_size: int
    sequenced: int
    indexed: int
    statements: int
    checkpoint: str


def _signatures(facts: LogFacts, trust: Trust) -> tuple[Html, Html]:
    """The signature table, and a verdict on the checkpoint."""
    policy: Policy | None = trust.witness_policy
    verdict: Html
    try:
        witnesses = policy.witness_verifiers() if policy else []
        signed = open_checkpoint(
            facts.checkpoint, [trust.log_verifier], witnesses, origin=trust.log_verifier.name
        )
        logs = {(s.name, s.key_id) for s in signed.log_signatures}
        cosigners = signed.cosigners
        if policy is not None:
            policy.check_quorum(cosigners)
            verdict = badge("ok", f"Signed by the log; witness quorum {policy.quorum!r} met")
        else:
            verdict = badge("ok", "Signed by the log key")
    except ProvenanceError as e:
        logs, cosigners = set(), frozenset()
        verdict = html("{} {}", badge("bad", "Does not verify"), str(e))
    rows = []
    try:
        lines = parse_note(facts.checkpoint).unverified
    except ProvenanceError:
        lines = ()
    names = {w.key: w.name for w in policy.witnesses} if policy else {}
    for sig in lines:
        key = (sig.name, sig.key_id)
        if key in logs:
            role, status = "log", badge("ok", "Verified with the log key")
        elif key in cosigners:
            role, status = f"witness {names.get(key, '')}", badge("ok", "Verified cosignature")
        else:
            role, status = "unknown", badge("info", "Not checked: no key for it here")
        rows.append(
            html(
                '<tr><th scope="row" data-label="Key name">{}</th>'
                '<td data-label="Key ID"><code>{}</code></td><td data-label="Signer">{}</td>'
                '<td data-label="Status">{}</td></tr>',
                sig.name,
                f"{sig.key_id:08x}",
                role,
                status,
            )
        )
    table = html(
        '<table class="stack"><caption>Signatures on the checkpoint</caption><thead><tr>'
        '<th scope="col">Key name</th><th scope="col">Key ID</th><th scope="col">Signer</th>'
        '<th scope="col">Status</th></tr></thead><tbody>{}</tbody></table>',
        join(rows),
    )
    return table, verdict


def _actors(result: TraceResult) -> Html:
    registry = result.registry
    if registry is None or not len(registry):
        return html("<p>No actors are registered yet.</p>")
    registered = {s.predicate["actor"]["id"]: s for s in result.actors}
    rows = join(
        html(
            '<tr><th scope="row" data-label="Actor">{}</th><td data-label="Name">{}</td>'
            '<td data-label="Roles">{}</td><td data-label="Registered">{}</td>'
            '<td data-label="Keys">{}</td></tr>',
            a.id,
            a.name,
            ", ".join(sorted(a.roles)),
            html("#{} by {}", registered[a.id].index, registered[a.id].signer)
            if a.id in registered
            else "registry root",
            len(a.keys),
        )
        for a in sorted(registry, key=lambda a: a.id)
    )
    return html(
        '<table class="stack"><caption>Verified actor registry</caption><thead><tr>'
        '<th scope="col">Actor</th><th scope="col">Name</th><th scope="col">Roles</th>'
        '<th scope="col">Registered</th><th scope="col">Keys</th></tr></thead>'
        "<tbody>{}</tbody></table>",
        rows,
    )


def render_status(facts: LogFacts, trust: Trust, actors: TraceResult) -> Html:
    """The page body of the log status page."""
    signatures, verdict = _signatures(facts, trust)
    try:
        cp = parse_checkpoint(parse_note(facts.checkpoint).text)
        root = cp.root_hash.hex()
    except ProvenanceError:
        root = "?"
    policy = trust.witness_policy
    if policy is not None:
        witnesses = html(
            "<p>This service cosigns its checkpoints with the witnesses of its witness "
            "policy (quorum <code>{}</code>): {}.</p>",
            policy.quorum,
            ", ".join(w.name for w in policy.witnesses) or "none",
        )
    else:
        witnesses = html(
            "<p>No witness policy is configured on this service: checkpoints are signed by "
            "the log only. Verify with <code>--policy</code> to require witnesses.</p>"
        )
    anchors = trust_json(trust)
    registry_checks = [c for c in checks_of(actors, trust) if c.name in ("checkpoint", "inclusion")]
    registry_ok = actors.ok and all(c.ok for c in registry_checks)
    problems = join(html("<li>{}</li>", p) for p in actors.problems)
    facts_list = html(
        '<dl class="facts"><dt>Origin</dt><dd><code>{}</code></dd>'
        "<dt>Log verifier key</dt><dd><code>{}</code></dd>"
        "<dt>Tree size (checkpoint)</dt><dd>{}</dd>"
        "<dt>Root hash</dt><dd><code>{}</code></dd>"
        "<dt>Sequenced entries</dt><dd>{}</dd>"
        "<dt>Indexed entries</dt><dd>{}</dd>"
        "<dt>Statements</dt><dd>{}</dd>"
        "<dt>Registry root key(s)</dt><dd>{}</dd></dl>",
        facts.origin,
        facts.vkey,
        facts.tree_size,
        root,
        facts.sequenced,
        facts.indexed,
        facts.statements,
        join((html("<code>{}</code>", k) for k in anchors["registry_root_keys"]), ", "),
    )
    return html(
        "<h1>Log status</h1>"
        '<section aria-labelledby="cp"><h2 id="cp">Checkpoint</h2>{facts}'
        "<p>{verdict}</p>{signatures}"
        "<details><summary>The signed checkpoint</summary><pre>{note}</pre></details>"
        '</section><section aria-labelledby="wit"><h2 id="wit">Witnesses</h2>{witnesses}'
        '</section><section aria-labelledby="act"><h2 id="act">Actors</h2>'
        "<p>{registry}</p>{problems}{actors}</section>",
        facts=facts_list,
        verdict=verdict,
        signatures=signatures,
        note=facts.checkpoint,
        witnesses=witnesses,
        registry=(
            badge("ok", "Registry verified from the root key(s)")
            if registry_ok
            else badge("bad", "Registry does not verify")
        ),
        problems=html("<ul>{}</ul>", problems) if actors.problems else "",
        actors=_actors(actors),
    )
