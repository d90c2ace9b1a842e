"""tlog-checkpoint bodies, signed checkpoints, and real Rekor checkpoints."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tlog_vectors import SIGSTORE_BUNDLES, TLOG, load, require, trusted_log_verifiers

from provenance.errors import NoteError, ProvenanceError, SignatureError
from provenance.log.checkpoint import (
    Checkpoint,
    format_checkpoint,
    open_checkpoint,
    parse_checkpoint,
    sign_checkpoint,
)
from provenance.log.merkle import leaf_hash, verify_inclusion
from provenance.log.note import (
    CosignatureV1Signer,
    Ed25519Signer,
    UnverifiedNoteError,
    cosignature_timestamp,
    sign_note,
)

ROOT = base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
SPEC_BODY = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"


def test_spec_example_roundtrip() -> None:
    cp = parse_checkpoint(SPEC_BODY)
    assert cp == Checkpoint("example.com/behind-the-sofa", 20852163, ROOT)
    assert format_checkpoint(cp) == cp.text() == SPEC_BODY
    assert parse_checkpoint(SPEC_BODY.encode()) == cp


def test_extension_lines_roundtrip() -> None:
    body = SPEC_BODY + "ext one\nExt-two: 2\n"
    cp = parse_checkpoint(body)
    assert cp.extensions == ("ext one", "Ext-two: 2")
    assert cp.text() == body


def test_sumdb_tree_note_is_a_checkpoint_body() -> None:
    (case,) = load("signed-note/signed_notes.json")["sumdb_tree_note_body"]
    cp = parse_checkpoint(case["text"])
    assert cp.origin == "go.sum database tree"
    assert cp.size == case["size"] == 123456789012
    assert cp.root_hash == leaf_hash(b"hello world")
    assert cp.text() == case["text"]


@pytest.mark.parametrize(
    "body",
    [
        "",
        "example.com\n",
        "example.com\n1\n",
        "example.com\n1\n" + "A" * 43 + "=",  # no final newline
        "\n1\n" + base64.b64encode(ROOT).decode() + "\n",  # empty origin
        "o\n01\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",  # leading zero
        "o\n-1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
        "o\n+1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
        "o\n1 \nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
        "o\n\u0661\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",  # Arabic-Indic digit
        "o\n9223372036854775808\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
        "o\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I\n",  # no padding
        "o\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2J=\n",  # non-canonical bits
        "o\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I==\n",
        "o\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jx\n",  # 29 bytes
        "o\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n",  # empty extension
        "o\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\next\n",
        "o\r\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
        "o\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\ntab\there\n",
    ],
)
def test_malformed_checkpoints(body: str) -> None:
    with pytest.raises(NoteError):
        parse_checkpoint(body)


def test_checkpoint_field_validation() -> None:
    for args in [
        ("", 1, ROOT),
        ("a\nb", 1, ROOT),
        ("o", -1, ROOT),
        ("o", 1 << 63, ROOT),
        ("o", 1, ROOT[:31]),
    ]:
        with pytest.raises(NoteError):
            Checkpoint(*args)
    with pytest.raises(NoteError):
        Checkpoint("o", 1, ROOT, ("",))
    with pytest.raises(NoteError):
        parse_checkpoint(b"o\n1\n\xff\n")
    with pytest.raises(NoteError):
        parse_checkpoint("o\n" * (1 << 20))


@settings(max_examples=500)
@given(st.text(max_size=120) | st.binary(max_size=120))
def test_parser_only_raises_note_errors(body: str | bytes) -> None:
    try:
        cp = parse_checkpoint(body)
    except ProvenanceError as e:
        assert isinstance(e, NoteError)
    else:
        assert cp.text() == (body.decode() if isinstance(body, bytes) else body)


@settings(max_examples=200)
@given(
    origin=st.text(
        alphabet=st.characters(codec="utf-8", exclude_categories=["Cc", "Cs"]), min_size=1
    ),
    size=st.integers(0, (1 << 63) - 1),
    root=st.binary(min_size=32, max_size=32),
)
def test_format_parse_roundtrip(origin: str, size: int, root: bytes) -> None:
    cp = Checkpoint(origin, size, root)
    assert parse_checkpoint(cp.text()) == cp


# ------------------------------------------------------------------ signed checkpoints


def test_open_checkpoint_requires_the_log() -> None:
    log = Ed25519Signer.generate("example.com/behind-the-sofa")
    witness = CosignatureV1Signer.generate("witness.example.com/w1")
    cp = parse_checkpoint(SPEC_BODY)
    signed = sign_checkpoint(cp, [log])
    cosigned = sign_checkpoint(cp, [log, witness])

    opened = open_checkpoint(cosigned, [log.verifier()], [witness.verifier()])
    assert opened.checkpoint == cp
    assert [s.name for s in opened.log_signatures] == [log.name]
    assert opened.cosigners == {(witness.name, witness.key_id)}

    only_log = open_checkpoint(cosigned, [log.verifier()])
    assert not only_log.cosignatures and len(only_log.note.unverified) == 1

    witness_only = sign_checkpoint(cp, [witness])
    with pytest.raises(UnverifiedNoteError, match="log key"):
        open_checkpoint(witness_only, [log.verifier()], [witness.verifier()])
    with pytest.raises(SignatureError, match="origin"):
        open_checkpoint(signed, [log.verifier()], origin="example.com/other")
    # Any change to the body breaks the log's signature.
    with pytest.raises(SignatureError):
        open_checkpoint(signed.replace(b"20852163", b"20852164"), [log.verifier()])


def test_open_checkpoint_rejects_malformed_signed_body() -> None:
    log = Ed25519Signer.generate("example.com/log")
    signed = sign_note("example.com/log\n01\n" + "A" * 43 + "=\n", [log])
    with pytest.raises(NoteError):
        open_checkpoint(signed, [log.verifier()])


# --------------------------------------------------------------- sigstore / Rekor


@pytest.mark.parametrize("bundle", SIGSTORE_BUNDLES)
def test_rekor_checkpoints_and_inclusion(bundle: str) -> None:
    data = json.loads(require(TLOG / "sigstore" / bundle).read_text())
    (entry,) = data["verificationMaterial"]["tlogEntries"]
    proof = entry["inclusionProof"]
    envelope = proof["checkpoint"]["envelope"]
    signed = open_checkpoint(envelope, trusted_log_verifiers())
    cp = signed.checkpoint
    assert cp.size == int(proof["treeSize"])
    assert cp.root_hash == base64.b64decode(proof["rootHash"])
    leaf = leaf_hash(base64.b64decode(entry["canonicalizedBody"]))
    hashes = [base64.b64decode(h) for h in proof["hashes"]]
    verify_inclusion(int(proof["logIndex"]), cp.size, leaf, hashes, cp.root_hash)
    # Witness cosignatures from keys we do not know are kept, unverified.
    for sig in signed.note.unverified:
        assert cosignature_timestamp(sig) > 1_700_000_000
    if bundle.startswith("a.dsse"):
        assert len(signed.note.unverified) == 3
    # Tampering with the checkpoint breaks the log signature.
    forged = envelope.replace(proof["treeSize"], str(int(proof["treeSize"]) + 1), 1)
    with pytest.raises(SignatureError):
        open_checkpoint(forged, trusted_log_verifiers())


def test_extension_line_limit() -> None:
    parse_checkpoint(SPEC_BODY + "e\n" * 64)
    with pytest.raises(NoteError, match="extension"):
        parse_checkpoint(SPEC_BODY + "e\n" * 65)
