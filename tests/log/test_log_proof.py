"""tlog-proof@v1 bundles: build, encode, parse and verify offline."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tlog_vectors import SIGSTORE_BUNDLES, TLOG, require, trusted_log_verifiers

from provenance.errors import InputError, NoteError, ProofError, ProvenanceError, SignatureError
from provenance.log.checkpoint import Checkpoint, sign_checkpoint
from provenance.log.merkle import MemoryTree, leaf_hash
from provenance.log.note import CosignatureV1Signer, Ed25519Signer
from provenance.log.proof import (
    HEADER,
    TlogProof,
    build_tlog_proof,
    format_tlog_proof,
    parse_tlog_proof,
    verify_tlog_proof,
)

ORIGIN = "example.com/fancylog"
SIZE = 1000


@pytest.fixture(scope="module")
def log() -> tuple[MemoryTree, Ed25519Signer, list[CosignatureV1Signer], bytes]:
    tree = MemoryTree(leaf_hash(b"entry %d" % i) for i in range(SIZE))
    signer = Ed25519Signer.generate(ORIGIN)
    witnesses = [CosignatureV1Signer.generate(f"witness{i}.example") for i in range(3)]
    cp = Checkpoint(ORIGIN, SIZE, tree.root())
    signed = sign_checkpoint(cp, [signer, *witnesses[:2]])
    return tree, signer, witnesses, signed


def test_build_encode_parse_verify(
    log: tuple[MemoryTree, Ed25519Signer, list[CosignatureV1Signer], bytes],
) -> None:
    tree, signer, witnesses, signed = log
    proof = build_tlog_proof(737, signed, tree, extra=b"app v1.2.1")
    encoded = proof.encode()
    text = encoded.decode()
    assert text.startswith(f"{HEADER}\nextra {base64.b64encode(b'app v1.2.1').decode()}\n")
    assert "\nindex 737\n" in text and text.endswith(signed.decode())
    parsed = parse_tlog_proof(encoded)
    assert parsed == proof
    assert format_tlog_proof(parsed) == encoded

    wits = [w.verifier() for w in witnesses]
    result = verify_tlog_proof(
        encoded, leaf_hash(b"entry 737"), [signer.verifier()], wits, quorum=2, origin=ORIGIN
    )
    assert result.index == 737 and result.extra == b"app v1.2.1"
    assert result.checkpoint.size == SIZE
    assert {name for name, _ in result.signed_checkpoint.cosigners} == {
        "witness0.example",
        "witness1.example",
    }


def test_verification_failures(
    log: tuple[MemoryTree, Ed25519Signer, list[CosignatureV1Signer], bytes],
) -> None:
    tree, signer, witnesses, signed = log
    proof = build_tlog_proof(5, signed, tree)
    logv = [signer.verifier()]
    wits = [w.verifier() for w in witnesses]
    leaf = leaf_hash(b"entry 5")
    verify_tlog_proof(proof, leaf, logv)
    with pytest.raises(ProofError):
        verify_tlog_proof(proof, leaf_hash(b"entry 6"), logv)
    with pytest.raises(SignatureError, match="policy requires 3"):
        verify_tlog_proof(proof, leaf, logv, wits, quorum=3)
    with pytest.raises(SignatureError):
        verify_tlog_proof(proof, leaf, [Ed25519Signer.generate(ORIGIN).verifier()])
    with pytest.raises(SignatureError, match="origin"):
        verify_tlog_proof(proof, leaf, logv, origin="example.com/other")
    moved = TlogProof(6, proof.proof, proof.checkpoint)
    with pytest.raises(ProofError):
        verify_tlog_proof(moved, leaf, logv)
    other = build_tlog_proof(6, signed, tree)
    with pytest.raises(ProofError):
        verify_tlog_proof(TlogProof(5, other.proof, proof.checkpoint), leaf, logv)


def test_build_checks_reader_against_checkpoint(
    log: tuple[MemoryTree, Ed25519Signer, list[CosignatureV1Signer], bytes],
) -> None:
    _, signer, _, _ = log
    other_tree = MemoryTree(leaf_hash(b"other %d" % i) for i in range(SIZE))
    cp = Checkpoint(ORIGIN, SIZE, MemoryTree(leaf_hash(b"x") for _ in range(SIZE)).root())
    with pytest.raises(ProofError):
        build_tlog_proof(3, sign_checkpoint(cp, [signer]), other_tree)
    with pytest.raises(InputError):
        build_tlog_proof(SIZE, sign_checkpoint(cp, [signer]), other_tree)


def test_no_extra_and_empty_proof() -> None:
    tree = MemoryTree([leaf_hash(b"only")])
    signer = Ed25519Signer.generate("example.com/tiny")
    signed = sign_checkpoint(Checkpoint("example.com/tiny", 1, tree.root()), [signer])
    proof = build_tlog_proof(0, signed, tree)
    assert proof.proof == () and proof.extra is None
    encoded = proof.encode()
    assert encoded.startswith(f"{HEADER}\nindex 0\n\n".encode())
    verify_tlog_proof(encoded, leaf_hash(b"only"), [signer.verifier()])
    empty_extra = TlogProof(0, (), signed.decode(), b"")
    assert parse_tlog_proof(empty_extra.encode()) == empty_extra


H = base64.b64encode(b"\x00" * 32).decode()


@pytest.mark.parametrize(
    "head",
    [
        "",
        "c2sp.org/tlog-proof@v2\nindex 0\n",
        f"{HEADER}\n",
        f"{HEADER}\nindex\n",
        f"{HEADER}\nindex 01\n",
        f"{HEADER}\nindex -1\n",
        f"{HEADER}\nindex 9223372036854775808\n",
        f"{HEADER}\nindex 1 \n",
        f"{HEADER}\nextra !!\nindex 1\n",
        f"{HEADER}\nextra AA\nindex 1\n",
        f"{HEADER}\nindex 1\nextra AAAA\n",
        f"{HEADER}\nindex 1\n{H[:-2]}\n",
        f"{HEADER}\nindex 1\n{H}=\n",
        f"{HEADER}\nindex 1\nAAAA\n",
        f"{HEADER}\nindex 1\n" + f"{H}\n" * 64,
        f"{HEADER}\r\nindex 1\n",
    ],
)
def test_malformed_proofs(
    head: str, log: tuple[MemoryTree, Ed25519Signer, list[CosignatureV1Signer], bytes]
) -> None:
    signed = log[3].decode()
    with pytest.raises(NoteError):
        parse_tlog_proof(head + "\n" + signed)


def test_malformed_embedded_checkpoint() -> None:
    signer = Ed25519Signer.generate("example.com/log")
    for checkpoint in ["no signatures\n", "o\n1\nAAAA\n\n\u2014 x AAAAAAA=\n"]:
        with pytest.raises(NoteError):
            parse_tlog_proof(f"{HEADER}\nindex 0\n\n{checkpoint}")
    with pytest.raises(NoteError):
        parse_tlog_proof(f"{HEADER}\nindex 0\n".encode())
    with pytest.raises(NoteError):
        parse_tlog_proof(b"\xff" + HEADER.encode())
    with pytest.raises(NoteError):
        parse_tlog_proof(b"x" * (2 << 20))
    assert signer.name  # keys are never needed to reject malformed input


@settings(max_examples=500)
@given(st.binary(max_size=400) | st.text(max_size=300))
def test_parser_only_raises_note_errors(data: bytes | str) -> None:
    try:
        parse_tlog_proof(data)
    except ProvenanceError as e:
        assert isinstance(e, NoteError)


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_every_index_roundtrips(
    log: tuple[MemoryTree, Ed25519Signer, list[CosignatureV1Signer], bytes],
    data: st.DataObject,
) -> None:
    tree, signer, _, signed = log
    index = data.draw(st.integers(0, SIZE - 1))
    extra = data.draw(st.none() | st.binary(max_size=50))
    encoded = build_tlog_proof(index, signed, tree, extra=extra).encode()
    result = verify_tlog_proof(encoded, leaf_hash(b"entry %d" % index), [signer.verifier()])
    assert result.index == index and result.extra == extra


@pytest.mark.parametrize("bundle", SIGSTORE_BUNDLES)
def test_rekor_entries_as_tlog_proofs(bundle: str) -> None:
    """A real Rekor inclusion proof, re-expressed as a tlog-proof, verifies offline."""
    data = json.loads(require(TLOG / "sigstore" / bundle).read_text())
    (entry,) = data["verificationMaterial"]["tlogEntries"]
    incl = entry["inclusionProof"]
    proof = TlogProof(
        int(incl["logIndex"]),
        tuple(base64.b64decode(h) for h in incl["hashes"]),
        incl["checkpoint"]["envelope"],
    )
    encoded = proof.encode()
    assert parse_tlog_proof(encoded) == proof
    leaf = leaf_hash(base64.b64decode(entry["canonicalizedBody"]))
    result = verify_tlog_proof(encoded, leaf, trusted_log_verifiers())
    assert result.checkpoint.size == int(incl["treeSize"])


def test_proof_encoding_limits(
    log: tuple[MemoryTree, Ed25519Signer, list[CosignatureV1Signer], bytes],
) -> None:
    signed = log[3].decode()
    with pytest.raises(InputError):
        TlogProof(0, (b"short",), signed).encode()
    with pytest.raises(InputError):
        TlogProof(0, (), signed, b"x" * (64 * 1024 + 1)).encode()
    big_extra = base64.b64encode(b"x" * (64 * 1024 + 3)).decode()
    with pytest.raises(NoteError, match="extra data"):
        parse_tlog_proof(f"{HEADER}\nextra {big_extra}\nindex 0\n\n{signed}")
    noncanonical = H[:-2] + "B="
    with pytest.raises(NoteError, match="canonical"):
        parse_tlog_proof(f"{HEADER}\nindex 0\n{noncanonical}\n\n{signed}")
    with pytest.raises(NoteError):
        build_tlog_proof(0, b"\xff\xfe", log[0])
