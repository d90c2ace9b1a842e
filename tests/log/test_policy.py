"""tlog-policy: parsing to the letter of the spec, quorum evaluation, and checkpoint
and proof verification against a policy."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import pytest

from provenance.errors import InputError, PolicyError, SignatureError
from provenance.log.checkpoint import Checkpoint, sign_checkpoint
from provenance.log.merkle import MemoryTree, leaf_hash
from provenance.log.note import (
    ALG_COSIGNATURE_V1,
    ALG_ED25519,
    CosignatureV1Signer,
    Ed25519Signer,
    InvalidSignatureError,
    format_vkey,
    parse_note,
    sign_note,
)
from provenance.log.policy import (
    MAX_POLICY_SIZE,
    NONE,
    Policy,
    QuorumError,
    load_policy,
    parse_policy,
    verify_tlog_proof_with_policy,
)
from provenance.log.proof import build_tlog_proof

ORIGIN = "example.com/policed"
LOG = Ed25519Signer.generate(ORIGIN)
W = {
    n: CosignatureV1Signer.generate(f"{n.lower()}.witness.example")
    for n in ("X1", "X2", "X3", "Y1", "Y2", "Y3")
}


def spec_example() -> str:
    """The spec's example with real keys."""
    return f"""log {LOG.vkey}

witness X1 {W["X1"].vkey}
witness X2 {W["X2"].vkey}
witness X3 {W["X3"].vkey}
group X-witnesses 2 X1 X2 X3

witness Y1 {W["Y1"].vkey}
witness Y2 {W["Y2"].vkey}
witness Y3 {W["Y3"].vkey}
group Y-witnesses any Y1 Y2 Y3

group X-and-Y all X-witnesses Y-witnesses
quorum X-and-Y
"""


def ids(*names: str) -> set[tuple[str, int]]:
    return {(W[n].name, W[n].key_id) for n in names}


def fails(text: str | bytes, line: int | None, *words: str) -> None:
    with pytest.raises(PolicyError) as e:
        parse_policy(text)
    msg = str(e.value)
    if line is not None:
        assert msg.startswith(f"policy line {line}: "), msg
    for w in words:
        assert w in msg, msg


# ------------------------------------------------------------------ the example


def test_spec_example_structure() -> None:
    p = parse_policy(spec_example())
    assert [g.origin for g in p.logs] == [ORIGIN]
    assert [w.name for w in p.witnesses] == ["X1", "X2", "X3", "Y1", "Y2", "Y3"]
    assert [(g.name, g.threshold, g.members) for g in p.groups] == [
        ("X-witnesses", 2, ("X1", "X2", "X3")),
        ("Y-witnesses", 1, ("Y1", "Y2", "Y3")),
        ("X-and-Y", 2, ("X-witnesses", "Y-witnesses")),
    ]
    assert p.quorum == "X-and-Y"
    assert all(w.url is None for w in p.witnesses) and p.endpoints() == []


@pytest.mark.parametrize(
    ("cosigners", "met"),
    [
        ((), False),
        (("X1", "X2", "Y1"), True),
        (("X2", "X3", "Y3"), True),
        (("X1", "X2", "X3", "Y1", "Y2", "Y3"), True),
        (("X1", "Y1", "Y2", "Y3"), False),  # one X is not two
        (("X1", "X2", "X3"), False),  # no Y
        (("Y1", "Y2", "Y3"), False),
    ],
)
def test_spec_example_quorum(cosigners: tuple[str, ...], met: bool) -> None:
    p = parse_policy(spec_example())
    assert p.quorum_met(ids(*cosigners)) is met
    if met:
        p.check_quorum(ids(*cosigners))
    else:
        with pytest.raises(QuorumError):
            p.check_quorum(ids(*cosigners))


def test_quorum_error_says_what_is_missing() -> None:
    p = parse_policy(spec_example())
    with pytest.raises(QuorumError) as e:
        p.check_quorum(ids("X1", "Y2"))
    msg = str(e.value)
    assert "'X-and-Y'" in msg and "'X-witnesses' has 1 of the 2" in msg
    assert "Y-witnesses" not in msg  # that one is satisfied
    assert e.value.exit_code == 1
    assert isinstance(e.value, PolicyError) and isinstance(e.value, SignatureError)


def test_unknown_cosigners_do_not_count() -> None:
    p = parse_policy(spec_example())
    stranger = CosignatureV1Signer.generate(W["X1"].name)  # same name, other key
    assert not p.quorum_met({*ids("X2", "Y1"), (stranger.name, stranger.key_id)})


# --------------------------------------------------------------------- syntax


def test_quorum_none_and_single_witness() -> None:
    p = parse_policy("quorum none\n")
    assert p.logs == () and p.witnesses == () and p.quorum == NONE
    assert p.quorum_met(set())
    p.check_quorum(set())
    one = parse_policy(f"witness only {W['X1'].vkey}\nquorum only\n")
    assert not one.quorum_met(set()) and one.quorum_met(ids("X1"))


def test_whitespace_comments_and_urls() -> None:
    text = (
        "# a comment\n"
        "   # an indented comment\n"
        " \t \n"
        f"\tlog \t {LOG.vkey}   https://log.example/p  \n"
        f"witness  A\t{W['X1'].vkey} https://a.example/w\n"
        f"witness B {W['X2'].vkey}\n"
        "group G   any A\tB \n"
        "quorum G"  # no final newline
    )
    p = parse_policy(text)
    assert p.logs[0].url == "https://log.example/p"
    assert [(w.name, w.url) for w in p.witnesses] == [("A", "https://a.example/w"), ("B", None)]
    assert [(e.name, e.url) for e in p.endpoints()] == [("A", "https://a.example/w")]
    assert p.groups[0].threshold == 1


def test_k_of_n_thresholds() -> None:
    wl = "".join(f"witness {n} {W[n].vkey}\n" for n in ("X1", "X2", "X3"))
    for k, need in (("all", 3), ("any", 1), ("1", 1), ("2", 2), ("3", 3)):
        p = parse_policy(wl + f"group g {k} X1 X2 X3\nquorum g\n")
        assert p.groups[0].threshold == need
        assert p.quorum_met(ids(*["X1", "X2", "X3"][:need]))
        assert not p.quorum_met(ids(*["X1", "X2", "X3"][: need - 1]))
    fails(wl + "group g 0 X1 X2\nquorum g\n", 4, "threshold 0")
    fails(wl + "group g 3 X1 X2\nquorum g\n", 4, "threshold 3")
    for bad in ("two", "-1", "+1", "1.0", "0x1", "ALL", "9999999999"):
        fails(wl + f"group g {bad} X1 X2\nquorum g\n", 4, "threshold")


def test_nested_groups_and_opaque_names() -> None:
    kelvin = "\u212a"
    text = (
        f"witness K {W['X1'].vkey}\n"
        f"witness {kelvin} {W['X2'].vkey}\n"
        f"witness caf\u00e9 {W['X3'].vkey}\n"
        f"group inner all K {kelvin}\n"
        f"group outer any inner caf\u00e9\n"
        "quorum outer\n"
    )
    p = parse_policy(text.encode("utf-8"))
    assert [w.name for w in p.witnesses] == ["K", kelvin, "caf\u00e9"]
    assert p.quorum_met(ids("X3"))
    assert p.quorum_met(ids("X1", "X2"))
    assert not p.quorum_met(ids("X1"))
    # Octets that are not UTF-8 are still opaque, distinct names.
    raw = (
        f"witness \xff {W['X1'].vkey}\nwitness \xfe {W['X2'].vkey}\n"
        "group g all \xff \xfe\nquorum g\n"
    )
    p = parse_policy(raw.encode("latin-1"))
    assert len({w.name for w in p.witnesses}) == 2 and p.quorum_met(ids("X1", "X2"))


def test_character_set() -> None:
    base = f"witness A {W['X1'].vkey}\nquorum A\n"
    fails(base.replace("\n", "\r\n"), 1, "0x0d")
    fails("# ok\n" + base.replace("quorum A", "quorum A\x00"), 3, "0x00")
    fails(base + "# delete \x7f\n", 3, "0x7f")
    fails(base + "# form feed \x0c\n", 3, "0x0c")
    fails(base + "# vertical tab \x0b\n", 3, "0x0b")
    parse_policy(base + "# tab\there, high octets \xe2\x80\x94 fine\n")


def test_structural_errors() -> None:
    a, b = W["X1"].vkey, W["X2"].vkey
    fails("", None, "no quorum")
    fails("# only a comment\n", None, "no quorum")
    fails(f"witness A {a}\n", None, "no quorum")
    fails(f"witness A {a}\nquorum A\nquorum A\n", 3, "exactly one quorum")
    fails("quorum A\n", 1, "not defined")
    fails(f"quorum A\nwitness A {a}\n", 1, "not defined on an earlier line")
    fails(f"witness A {a}\nquorum A B\n", 2, "expected 'quorum <name>'")
    fails("quorum\n", 1, "expected 'quorum <name>'")
    fails(f"witness A {a}\nwitness A {b}\nquorum A\n", 2, "already defined")
    fails(f"witness A {a}\ngroup A any A\nquorum A\n", 2, "already defined")
    fails(f"witness none {a}\nquorum none\n", 1, "predefined")
    fails(f"witness A {a}\ngroup none any A\nquorum none\n", 2, "predefined")
    fails(f"witness A {a}\ngroup g any\nquorum g\n", 2, "expected 'group")
    fails(f"witness A {a}\ngroup g\nquorum g\n", 2, "expected 'group")
    fails(f"witness A {a}\ngroup g any A B\nquorum g\n", 2, "'B' is not defined")
    fails(f"witness A {a}\ngroup g any A none\nquorum g\n", 2, "'none' cannot be a group member")
    fails(f"witness A {a}\ngroup g all A A\nquorum g\n", 2, "listed twice")
    fails(f"group g any A\nwitness A {a}\nquorum g\n", 1, "not defined on an earlier line")
    fails(f"witness A {a}\ngroup g any g\nquorum g\n", 2, "'g' is not defined")  # no cycles
    fails("Log x\nquorum none\n", 1, "unknown keyword 'Log'")
    fails("witnesses A B\nquorum none\n", 1, "unknown keyword")
    fails("log\nquorum none\n", 1, "expected 'log <vkey> [<url>]'")
    fails(f"log {LOG.vkey} https://x extra\nquorum none\n", 1, "expected 'log")
    fails("witness A\nquorum none\n", 1, "expected 'witness")
    fails(f"witness A {a} https://x extra\nquorum none\n", 1, "expected 'witness")


def test_key_errors() -> None:
    fails("log not-a-vkey\nquorum none\n", 1, "malformed verifier key")
    fails(f"witness A {LOG.vkey}\nquorum A\n", 1, "cosignature key")
    # Duplicates are the same public key, whatever the name and key ID.
    twin_log = format_vkey("other.example/log", ALG_ED25519, LOG.public_key)
    fails(f"log {LOG.vkey}\nlog {twin_log}\nquorum none\n", 2, "duplicate log key")
    fails(f"log {LOG.vkey}\nlog {LOG.vkey}\nquorum none\n", 2, "duplicate log key")
    twin_w = format_vkey("renamed.example", ALG_COSIGNATURE_V1, W["X1"].public_key)
    fails(f"witness A {W['X1'].vkey}\nwitness B {twin_w}\nquorum A\n", 2, "duplicates")
    # The same key may serve as a log key and a witness key only with distinct IDs.
    as_witness = format_vkey(ORIGIN, ALG_COSIGNATURE_V1, LOG.public_key)
    parse_policy(f"log {LOG.vkey}\nwitness A {as_witness}\nquorum A\n")


def test_limits() -> None:
    logs = [Ed25519Signer.generate(f"log{i}.example") for i in range(32)]
    wits = [CosignatureV1Signer.generate(f"w{i}.example") for i in range(32)]
    lines = [f"log {s.vkey}" for s in logs] + [f"witness w{i} {s.vkey}" for i, s in enumerate(wits)]
    lines += [f"group g{i} any w{i}" for i in range(32)]
    lines += ["group top 16 " + " ".join(f"g{i}" for i in range(32)), "quorum top"]
    p = parse_policy("\n".join(lines))
    assert len(p.logs) == 32 and len(p.witnesses) == 32 and len(p.groups) == 33
    assert p.quorum_met({(w.name, w.key_id) for w in wits[:16]})
    assert not p.quorum_met({(w.name, w.key_id) for w in wits[:15]})
    fails(b"#" * (MAX_POLICY_SIZE + 1), None, "larger than")


def test_deep_nesting_is_linear() -> None:
    depth = 1000
    lines = [f"witness A {W['X1'].vkey}", "group g0 any A"]
    lines += [f"group g{i} all g{i - 1}" for i in range(1, depth)]
    lines.append(f"quorum g{depth - 1}")
    start = time.monotonic()
    p = parse_policy("\n".join(lines))
    assert p.quorum_met(ids("X1")) and not p.quorum_met(set())
    with pytest.raises(QuorumError):
        p.check_quorum(set())
    assert time.monotonic() - start < 2


def test_load_policy(tmp_path: Path) -> None:
    path = tmp_path / "witnesses.policy"
    path.write_text(spec_example())
    assert isinstance(load_policy(path), Policy)
    path.write_text("quorum nobody\n")
    with pytest.raises(PolicyError) as e:
        load_policy(path)
    assert str(path) in str(e.value) and "line 1" in str(e.value)
    with pytest.raises(InputError):
        load_policy(tmp_path / "missing.policy")


# --------------------------------------------------------------- verification


TREE = MemoryTree(leaf_hash(b"leaf %d" % i) for i in range(100))


def checkpoint(*cosigners: str, log: Ed25519Signer = LOG, origin: str = ORIGIN) -> bytes:
    return sign_checkpoint(Checkpoint(origin, 100, TREE.root()), [log, *(W[n] for n in cosigners)])


def test_verify_checkpoint() -> None:
    p = parse_policy(spec_example())
    signed = p.verify_checkpoint(checkpoint("X1", "X3", "Y2"))
    assert signed.checkpoint.size == 100 and len(signed.cosignatures) == 3
    p.verify_checkpoint(checkpoint("X1", "X3", "Y2"), origin=ORIGIN)
    with pytest.raises(QuorumError):
        p.verify_checkpoint(checkpoint("X1", "Y2"))
    # Another log's checkpoint, or a policy log whose key name is not the origin.
    other = Ed25519Signer.generate("example.com/other")
    with pytest.raises(SignatureError, match="no log with origin"):
        p.verify_checkpoint(checkpoint("X1", "X2", "Y1", log=other, origin=other.name))
    with pytest.raises(SignatureError):
        p.verify_checkpoint(checkpoint("X1", "X2", "Y1"), origin="example.com/other")
    # A bad cosignature from a known witness spoils the note.
    good = checkpoint("X1", "X2", "Y1").decode()
    text, sig = good.rsplit(" ", 1)
    raw = bytearray(base64.b64decode(sig))
    raw[-1] ^= 1  # the signature, not the key ID: still a known key
    bad = text + " " + base64.b64encode(bytes(raw)).decode() + "\n"
    with pytest.raises(InvalidSignatureError):
        p.verify_checkpoint(bad)
    # Cosignatures from witnesses the policy does not know are ignored.
    stranger = CosignatureV1Signer.generate("stranger.example")
    note = parse_note(checkpoint("X1", "X2", "Y1"))
    p.verify_checkpoint(sign_note(note, [stranger]))


def test_verify_tlog_proof_with_policy() -> None:
    p = parse_policy(spec_example())
    proof = build_tlog_proof(42, checkpoint("X1", "X2", "Y3"), TREE)
    result = verify_tlog_proof_with_policy(proof, leaf_hash(b"leaf 42"), p, origin=ORIGIN)
    assert result.index == 42
    weak = build_tlog_proof(42, checkpoint("X1", "Y3"), TREE)
    with pytest.raises(QuorumError):
        verify_tlog_proof_with_policy(weak.encode(), leaf_hash(b"leaf 42"), p, origin=ORIGIN)
    with pytest.raises(SignatureError, match="no log with origin"):
        verify_tlog_proof_with_policy(proof, leaf_hash(b"leaf 42"), p, origin="x.example")
