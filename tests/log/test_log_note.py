"""Signed notes and note keys against the Go and C2SP vectors."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st
from tlog_vectors import load

from provenance.errors import NoteError, ProvenanceError, SignatureError
from provenance.log.note import (
    ALG_COSIGNATURE_V1,
    ALG_ED25519,
    CosignatureV1Signer,
    CosignatureV1Verifier,
    ECDSAVerifier,
    Ed25519Signer,
    Ed25519Verifier,
    InvalidSignatureError,
    Note,
    Signature,
    UnverifiedNoteError,
    cosignature_timestamp,
    format_vkey,
    generate_key,
    key_id,
    open_note,
    parse_note,
    parse_signer_key,
    parse_verifier_key,
    sign_note,
)

PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"


@pytest.fixture(scope="module")
def vectors() -> dict[str, list[dict[str, object]]]:
    data: dict[str, list[dict[str, object]]] = load("signed-note/signed_notes.json")
    return data


def _str(value: object) -> str:
    assert isinstance(value, str)
    return value


# ----------------------------------------------------------------------- vectors


def test_valid_notes(vectors: dict[str, list[dict[str, object]]]) -> None:
    notes = vectors["notes"]
    assert len(notes) == 3
    for case in notes:
        assert case["expect"] == "valid"
        verifier = parse_verifier_key(_str(case["vkey"]))
        assert verifier.vkey == case["vkey"]
        msg = _str(case["note"])
        note = open_note(msg.encode(), [verifier])
        assert [(s.name, s.key_id) for s in note.signatures] == [(verifier.name, verifier.key_id)]
        assert msg.startswith(note.text) and msg[len(note.text)] == "\n"
        # Re-encoding with the same signatures reproduces the note byte for byte.
        assert sign_note(note, []) == msg.encode()
        extra = case.get("extra_vkeys_known")
        if isinstance(extra, list):
            assert len(note.unverified) == len(extra)
            known = [verifier, *(parse_verifier_key(_str(k)) for k in extra)]
            both = open_note(msg, known)
            assert len(both.signatures) == 1 + len(extra) and not both.unverified


def test_go_private_key_resigns_byte_for_byte(
    vectors: dict[str, list[dict[str, object]]],
) -> None:
    cases = [c for c in vectors["notes"] if "skey" in c]
    assert cases
    for case in cases:
        signer = parse_signer_key(_str(case["skey"]))
        assert signer.skey == case["skey"]
        assert signer.vkey == case["vkey"]
        assert case["deterministic_resign"] is True
        msg = _str(case["note"])
        text = msg[: msg.rindex("\n\n") + 1]
        assert sign_note(text, [signer]) == msg.encode()
        assert sign_note(Note(text), [signer]).decode() == msg


def test_malformed_notes(vectors: dict[str, list[dict[str, object]]]) -> None:
    (group,) = vectors["malformed_notes"]
    verifier = parse_verifier_key(_str(group["vkey"]))
    cases = group["cases"]
    assert isinstance(cases, list) and len(cases) == 6
    good = _str(vectors["notes"][1]["note"])
    for msg in [*cases, "\xff".encode("latin-1") + good.encode()]:
        with pytest.raises(NoteError):
            open_note(msg.encode() if isinstance(msg, str) else msg, [verifier])


def test_bad_vkeys(vectors: dict[str, list[dict[str, object]]]) -> None:
    bad = vectors["bad_vkeys"]
    assert len(bad) == 2
    for case in bad:
        with pytest.raises(NoteError):
            parse_verifier_key(_str(case["vkey"]))


def test_c2sp_example_vkey_key_id() -> None:
    v = parse_verifier_key("example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k")
    assert v.key_id == 0x530D903A
    assert key_id("example.com/foo", bytes([ALG_ED25519]) + v.public_key) == 0x530D903A


# ------------------------------------------------ Go's mangling tests (note_test.go)


def _manglings(key: str) -> list[str]:
    out = [key[i:j] for i in range(len(key) + 1) for j in range(i + 1, len(key) + 1)]
    out.remove(key)
    out += [key[:i] + chr(ord(key[i]) + 1) + key[i + 1 :] for i in range(len(key))]
    return out


def test_mangled_vkeys_are_rejected() -> None:
    parse_verifier_key(PETER_VKEY)
    for mangled in _manglings(PETER_VKEY):
        with pytest.raises(NoteError):
            parse_verifier_key(mangled)
    for bad in [
        "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",
        "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+0xc74f20+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW==",
    ]:
        with pytest.raises(NoteError):
            parse_verifier_key(bad)


def test_mangled_skeys_are_rejected() -> None:
    parse_signer_key(PETER_SKEY)
    for mangled in _manglings(PETER_SKEY):
        with pytest.raises(NoteError):
            parse_signer_key(mangled)


def test_uppercase_key_id_is_accepted_like_go() -> None:
    assert parse_verifier_key(PETER_VKEY.replace("c74f20a3", "C74F20A3")).key_id == 0xC74F20A3


# ------------------------------------------------------------ signing and opening


def test_generate_key_roundtrip() -> None:
    for alg in (ALG_ED25519, ALG_COSIGNATURE_V1):
        skey, vkey = generate_key("example.com/log", alg)
        signer = parse_signer_key(skey)
        verifier = parse_verifier_key(vkey)
        assert (signer.name, signer.key_id) == (verifier.name, verifier.key_id)
        sig = signer.sign(b"hi\n")
        assert verifier.verify(b"hi\n", sig)
        assert not verifier.verify(b"hj\n", sig)
        assert not verifier.verify(b"hi\n", bytes([sig[0] ^ 1]) + sig[1:])
        assert "PRIVATE" not in repr(signer)
    with pytest.raises(NoteError):
        generate_key("x", 0x05)


def test_signer_key_id_is_checked() -> None:
    signer = parse_signer_key(PETER_SKEY)
    wrong = PETER_SKEY.replace("c74f20a3", f"{signer.key_id ^ 1:08x}")
    with pytest.raises(NoteError, match="key ID"):
        parse_signer_key(wrong)


def test_open_rules() -> None:
    peter = parse_signer_key(PETER_SKEY)
    assert isinstance(peter, Ed25519Signer)
    other = Ed25519Signer.generate("PeterNeumann")  # same name, different key ID
    text = "hello\n"
    signed = sign_note(text, [peter, other])
    # Unknown keys are ignored, even with a known name.
    note = open_note(signed, [peter.verifier()])
    assert [s.name for s in note.signatures] == ["PeterNeumann"]
    assert [s.key_id for s in note.unverified] == [other.key_id]
    # A known key whose signature fails rejects the whole note.
    forged = signed.replace(b"hello", b"jello")
    with pytest.raises(InvalidSignatureError):
        open_note(forged, [peter.verifier()])
    # No known key: rejected, but the parsed note is available for diagnostics.
    with pytest.raises(UnverifiedNoteError) as info:
        open_note(signed, [])
    assert len(info.value.note.unverified) == 2
    # Duplicate identical lines count once.
    line = signed.split(b"\n\n", 1)[1].split(b"\n")[0] + b"\n"
    assert len(open_note(signed + line, [peter.verifier()]).signatures) == 1
    # Two different verifiers for one (name, key ID) are ambiguous.
    with pytest.raises(NoteError, match="ambiguous"):
        open_note(signed, [peter.verifier(), peter.verifier()])


def test_resigning_replaces_existing_signature() -> None:
    a = Ed25519Signer.generate("a.example")
    b = Ed25519Signer.generate("b.example")
    first = open_note(sign_note("text\n", [a, b]), [a.verifier(), b.verifier()])
    again = sign_note(first, [a])
    names = [line.split(" ")[1] for line in again.decode().split("\n\n")[1].splitlines()]
    assert names == ["b.example", "a.example"]  # existing first, new last, as Go does


def test_sign_note_rejects_bad_text_and_signers() -> None:
    signer = Ed25519Signer.generate("example.com")
    for text in ["", "no newline", "tab\there\n", "nul\x00\n", "\ud800\n"]:
        with pytest.raises(NoteError):
            sign_note(text, [signer])
    with pytest.raises(NoteError):
        sign_note("ok\n", [])
    with pytest.raises(NoteError):
        Ed25519Signer.generate("bad name")
    with pytest.raises(NoteError):
        Ed25519Signer.generate("bad+name")
    with pytest.raises(NoteError):
        Ed25519Signer("x", b"short")


def test_signature_limits() -> None:
    signer = Ed25519Signer.generate("example.com/log")
    many = [Ed25519Signer.generate(f"w{i}.example") for i in range(16)]
    msg = sign_note("body\n", [signer, *many])
    assert len(open_note(msg, [signer.verifier()]).unverified) == 16  # at least 16 accepted
    lines = "".join(f"\u2014 w{i} AAAAAAA=\n" for i in range(101))
    with pytest.raises(NoteError, match="more than 100"):
        open_note("body\n\n" + lines, [signer.verifier()])
    with pytest.raises(NoteError, match="larger than"):
        open_note(b"x" * (1 << 20) + b"\n\n", [signer.verifier()])
    with pytest.raises(NoteError, match="larger than"):
        open_note(msg, [signer.verifier()], max_size=100)


@pytest.mark.parametrize(
    "sigs",
    [
        "\u2014 name\n",  # no signature
        "\u2014 name \n",
        "\u2014  AAAAAAA=\n",  # empty name
        "\u2014 na+me AAAAAAA=\n",
        "\u2014 name AAAA\n",  # fewer than 5 bytes
        "\u2014 name AAAAAAA\n",  # bad padding
        "\u2014 name AAAAAAA==\n",  # excess padding (Go rejects it)
        "\u2014 name AAAAAAA= \n",
        "- name AAAAAAA=\n",
        "\u2014 name AAAAAAA=",
        "\u2014 name AAAAAAA=\n\n",
        "\u2014 name\u00a0x AAAAAAA=\n",  # Unicode space in name
        "\u2014 name AAAAAAA=\r\n",
    ],
)
def test_malformed_signature_lines(sigs: str) -> None:
    with pytest.raises(NoteError):
        open_note("text\n\n" + sigs, [])


@settings(max_examples=500)
@given(st.binary(max_size=300) | st.text(max_size=200).map(lambda s: s.encode("utf-8", "replace")))
def test_open_note_only_raises_note_errors(msg: bytes) -> None:
    v = parse_verifier_key(PETER_VKEY)
    try:
        open_note(msg, [v])
    except ProvenanceError as e:
        assert isinstance(e, NoteError | SignatureError)


@settings(max_examples=200)
@given(
    st.text(
        alphabet=st.characters(codec="utf-8", exclude_categories=["Cc", "Cs"]) | st.just("\n"),
        max_size=100,
    )
)
def test_any_valid_text_roundtrips(text: str) -> None:
    signer = parse_signer_key(PETER_SKEY)
    text += "\n"
    note = open_note(sign_note(text, [signer]), [signer.verifier()])
    assert note.text == text
    assert parse_note(sign_note(text, [signer])).text == text


# ------------------------------------------------------------------- cosignatures


def test_cosignature_v1() -> None:
    clock = 1679315147
    seed = hashlib.sha256(b"witness w1").digest()
    cosigner = CosignatureV1Signer("witness.example.com/w1", seed, lambda: clock)
    verifier = cosigner.verifier()
    assert isinstance(verifier, CosignatureV1Verifier)
    assert parse_verifier_key(verifier.vkey).key_id == verifier.key_id
    assert verifier.key_id == key_id(
        "witness.example.com/w1", bytes([ALG_COSIGNATURE_V1]) + verifier.public_key
    )
    # A plain Ed25519 key with the same name and public key has a different key ID.
    assert Ed25519Verifier(verifier.name, verifier.public_key).key_id != verifier.key_id

    body = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    log = Ed25519Signer.generate("example.com/behind-the-sofa")
    msg = sign_note(open_note(sign_note(body, [log]), [log.verifier()]), [cosigner])
    note = open_note(msg, [log.verifier(), verifier])
    cosig = next(s for s in note.signatures if s.name == cosigner.name)
    assert cosignature_timestamp(cosig) == clock
    assert len(cosig.signature) == 8 + 64
    # The signed message is the spec's cosignature/v1 layout.
    signed = b"cosignature/v1\ntime 1679315147\n" + body.encode()
    raw = cosig.signature[8:]
    Ed25519PublicKey.from_public_bytes(verifier.public_key).verify(raw, signed)
    # Timestamps above 2**63-1 are invalid even with a valid signature elsewhere.
    assert not verifier.verify(body.encode(), b"\xff" * 8 + raw)
    assert not verifier.verify(body.encode(), cosig.signature[:-1])
    with pytest.raises(NoteError):
        cosignature_timestamp(Signature("x", 0, b"\x00" * 64))


def test_format_vkey_matches_go_layout() -> None:
    v = parse_verifier_key(PETER_VKEY)
    assert format_vkey("PeterNeumann", ALG_ED25519, v.public_key) == PETER_VKEY
    h = hashlib.sha256(b"PeterNeumann\n\x01" + v.public_key).digest()[:4]
    assert int.from_bytes(h, "big") == 0xC74F20A3


def test_key_and_signer_edge_cases() -> None:
    with pytest.raises(NoteError):
        ECDSAVerifier("rekor.example", b"not DER")
    p384 = ec.generate_private_key(ec.SECP384R1()).public_key()
    der = p384.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(NoteError, match="P-256"):
        ECDSAVerifier("rekor.example", der)
    p256 = ec.generate_private_key(ec.SECP256R1())
    der = p256.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    verifier = ECDSAVerifier("rekor.example", der)
    assert verifier.key_id == int.from_bytes(hashlib.sha256(der).digest()[:4], "big")
    assert not verifier.verify(b"msg", b"not a DER signature")

    seed = bytes(32)
    with pytest.raises(NoteError, match="out of range"):
        CosignatureV1Signer("w.example", seed, lambda: -1).sign(b"x\n")
    with pytest.raises(NoteError):
        parse_verifier_key("a+" * 3000)

    class BadSigner:
        name = "bad.example"
        key_id = 1 << 32

        def sign(self, message: bytes) -> bytes:
            return b"sig"

    with pytest.raises(NoteError, match="uint32"):
        sign_note("x\n", [BadSigner()])
    with pytest.raises(NoteError, match="larger than"):
        parse_note("x" * 200 + "\n\n", max_size=100)
    with pytest.raises(NoteError, match="surrogate"):
        parse_note("x\ud800\n\n\u2014 a AAAAAAA=\n")
