"""DSSE: PAE and signatures against the spec's vectors, round trips, tampering, limits."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from provenance.errors import CheckFailed, InputError, SignatureError
from provenance.statements import (
    Envelope,
    EnvelopeSignatureError,
    KeySigner,
    Signature,
    StatementFormatError,
    StatementTooLarge,
    key_id,
    pae,
    sign_envelope,
    verify_envelope,
)

# --- secure-systems-lab/dsse protocol.md, "Test Vectors" ---------------------------
SPEC_TYPE = "http://example.com/HelloWorld"
SPEC_BODY = b"hello world"
SPEC_PAE = b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
SPEC_D = 97358161215184420915383655311931858321456579547487070936769975997791359926199
SPEC_X = 46950820868899156662930047687818585632848591499744589407958293238635476079160
SPEC_Y = 5640078356564379163099075877009565129882514886557779369047442380624545832820
SPEC_ENVELOPE = {
    "payload": "aGVsbG8gd29ybGQ=",
    "payloadType": "http://example.com/HelloWorld",
    "signatures": [
        {
            "sig": "A3JqsQGtVsJ2O2xqrI5IcnXip5GToJ3F+FnZ+O88SjtR6rDAajabZKciJTfUiHqJPcIA"
            "riEGAHTVeCUjW2JIZA=="
        }
    ],
}

# --- secure-systems-lab/dsse testvectors/vectors.json (Ed25519 keys of RFC 8032 §7.1) --
SEED_A = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
SEED_B = bytes.fromhex("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb")
INTOTO = "application/vnd.in-toto+json"
STMT_B64 = "eyJfdHlwZSI6Imh0dHBzOi8vaW4tdG90by5pby9TdGF0ZW1lbnQvdjEifQ=="
SIG_A = "2WAfaHm5jluo0w+0rk8uVkluELJYWjSmU9x7EUzx+AyteDGJ4/nqyJXfmAUVFIAoQafWm7AxBZNw5M9ixNHiCA=="
SIG_B = "c1+67/aT0yqEpwx8PsVY3MLHsj9D0CZ014/Fv/QlG59P+9CobUZ7xECJ/V3USG0Ob9CiE5LjReEZUzNF2l7eBw=="
STMT_PAE = (
    "445353457631203238206170706c69636174696f6e2f766e642e696e2d746f746f2b6a736f6e20343320"
    "7b225f74797065223a2268747470733a2f2f696e2d746f746f2e696f2f53746174656d656e742f7631227d"
)
VECTORS: list[dict[str, Any]] = [
    {
        "id": "single-signature",
        "type": INTOTO,
        "payload": STMT_B64,
        "sigs": [(SIG_A, "A")],
        "pae": STMT_PAE,
        "threshold": 1,
        "accept": True,
    },
    {
        "id": "url-safe-base64",
        "type": INTOTO,
        "payload": "-_-_Pj8=",
        "sigs": [
            (
                "P-_KHICeR7tI6S_YyejJTRtrXhcQyQ2LYPaL8h90KjC9qN8HU_svOQ6TuDOT1HIrsGW886DbWNWcCmX5twLrAw==",
                "A",
            )
        ],
        "pae": "445353457631203238206170706c69636174696f6e2f766e642e696e2d746f746f2b6a736f6e"
        "203520fbffbf3e3f",
        "threshold": 1,
        "accept": True,
    },
    {
        "id": "payload-type-swapped",
        "type": "application/vnd.example.other+json",
        "payload": STMT_B64,
        "sigs": [(SIG_A, "A")],
        "pae": None,
        "threshold": 1,
        "accept": False,
    },
    {
        "id": "non-ascii-payload-type",
        "type": "application/vnd.exämple+json",
        "payload": STMT_B64,
        "sigs": [
            (
                "xmSk/ug66ysT7ayhkCIjhAq42zgZXSsEWuzUaNL7w2eGAdF/NU6/fRXPtmfN+5DNSAs5/i2lUnHjbbjPsu0tAw==",
                "A",
            )
        ],
        "pae": "445353457631203239206170706c69636174696f6e2f766e642e6578c3a46d706c652b6a736f"
        "6e203433207b225f74797065223a2268747470733a2f2f696e2d746f746f2e696f2f53746174656d65"
        "6e742f7631227d",
        "threshold": 1,
        "accept": True,
    },
    {
        "id": "empty-payload",
        "type": INTOTO,
        "payload": "",
        "sigs": [
            (
                "gSggCAaTLTYyRH6FIDBem6meyIynsYy8RTHVzwx9tnTb7Bg/1jMWnuVgI/gffqmbsC2VX5/jHfkkDqsj7CDbDg==",
                "A",
            )
        ],
        "pae": "445353457631203238206170706c69636174696f6e2f766e642e696e2d746f746f2b6a736f6e203020",
        "threshold": 1,
        "accept": True,
    },
    {
        "id": "threshold-two-distinct-keys",
        "type": INTOTO,
        "payload": STMT_B64,
        "sigs": [(SIG_A, "A"), (SIG_B, "B")],
        "pae": STMT_PAE,
        "threshold": 2,
        "accept": True,
    },
    {
        "id": "threshold-two-one-key-twice",
        "type": INTOTO,
        "payload": STMT_B64,
        "sigs": [(SIG_A, "A"), (SIG_A, "A")],
        "pae": STMT_PAE,
        "threshold": 2,
        "accept": False,
    },
    {
        "id": "threshold-two-without-keyids",
        "type": INTOTO,
        "payload": STMT_B64,
        "sigs": [(SIG_A, ""), (SIG_B, "")],
        "pae": STMT_PAE,
        "threshold": 2,
        "accept": True,
    },
]


def _vector_keys() -> dict[str, Any]:
    return {
        "A": Ed25519PrivateKey.from_private_bytes(SEED_A).public_key(),
        "B": Ed25519PrivateKey.from_private_bytes(SEED_B).public_key(),
    }


def test_pae_spec_example() -> None:
    assert pae(SPEC_TYPE, SPEC_BODY) == SPEC_PAE
    assert pae("", b"") == b"DSSEv1 0  0 "


def test_spec_ecdsa_signature_is_reproduced_byte_for_byte() -> None:
    """protocol.md signs with deterministic ECDSA (RFC 6979) and raw r||s."""
    numbers = ec.EllipticCurvePrivateNumbers(
        SPEC_D, ec.EllipticCurvePublicNumbers(SPEC_X, SPEC_Y, ec.SECP256R1())
    )
    key = numbers.private_key()
    env = Envelope.from_json(json.dumps(SPEC_ENVELOPE).encode())
    assert env.payload == SPEC_BODY and env.payload_type == SPEC_TYPE and env.pae() == SPEC_PAE
    raw = env.signatures[0].sig
    der = key.sign(SPEC_PAE, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
    r, s = decode_dss_signature(der)
    assert r.to_bytes(32, "big") + s.to_bytes(32, "big") == raw
    # This project's envelopes carry DER ECDSA; the same (r, s) verifies in that form.
    as_der = Envelope(env.payload, env.payload_type, (Signature(der, "spec"),))
    assert verify_envelope(as_der, {"spec": key.public_key()}) == ("spec",)
    r2 = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    assert r2 == der


@pytest.mark.parametrize("v", VECTORS, ids=[v["id"] for v in VECTORS])
def test_dsse_vectors(v: dict[str, Any]) -> None:
    obj = {
        "payload": v["payload"],
        "payloadType": v["type"],
        "signatures": [{"sig": s, **({"keyid": k} if k else {})} for s, k in v["sigs"]],
    }
    env = Envelope.from_json(json.dumps(obj, ensure_ascii=False).encode())
    if v["pae"] is not None:
        assert env.pae().hex() == v["pae"]
    keys = _vector_keys()
    supported = {INTOTO, "application/vnd.exämple+json"}
    if v["accept"]:
        assert len(verify_envelope(env, keys, threshold=v["threshold"])) == v["threshold"]
        assert env.payload_type in supported
    else:
        with pytest.raises(EnvelopeSignatureError):
            verify_envelope(env, keys, threshold=v["threshold"])
    # Ed25519 is deterministic: re-signing the PAE gives the vector's signature bytes.
    seeds = {"A": SEED_A, "B": SEED_B}
    for _sig, kid in v["sigs"]:
        if kid and v["accept"]:
            again = Ed25519PrivateKey.from_private_bytes(seeds[kid]).sign(env.pae())
            assert again in (s.sig for s in env.signatures)


def test_empty_payload_type_is_refused() -> None:
    obj = {"payload": STMT_B64, "payloadType": "", "signatures": [{"sig": SIG_A}]}
    with pytest.raises(StatementFormatError, match="payloadType"):
        Envelope.from_json(json.dumps(obj).encode())


@pytest.mark.parametrize("alg", ["ed25519", "ecdsa-p256-sha256"])
def test_round_trip_and_canonical_form(alg: str) -> None:
    signer = KeySigner.generate(alg)
    env = sign_envelope(b'{"x":1}', INTOTO, [signer])
    assert env.signatures[0].keyid == signer.key_id == key_id(signer.public_key)
    data = env.to_json()
    again = Envelope.from_json(data)
    assert again == env and again.to_json() == data
    assert verify_envelope(again, {signer.key_id: signer.public_key}) == (signer.key_id,)
    # Non-canonical encodings (whitespace, URL-safe base64, no padding) parse to the same.
    loose = {
        "signatures": [
            {
                "keyid": signer.key_id,
                "sig": base64.urlsafe_b64encode(env.signatures[0].sig).decode().rstrip("="),
            }
        ],
        "payloadType": INTOTO,
        "payload": base64.urlsafe_b64encode(env.payload).decode().rstrip("="),
    }
    assert Envelope.from_json(json.dumps(loose, indent=2).encode()).to_json() == data


def _tampered(env: Envelope, what: str, other: KeySigner) -> Envelope:
    s = env.signatures[0]
    if what == "payload":
        return Envelope(env.payload + b" ", env.payload_type, env.signatures)
    if what == "payload-type":
        return Envelope(env.payload, "application/json", env.signatures)
    if what == "signature":
        flipped = bytearray(s.sig)
        flipped[len(flipped) // 2] ^= 1
        return Envelope(env.payload, env.payload_type, (Signature(bytes(flipped), s.keyid),))
    if what == "keyid":
        return Envelope(env.payload, env.payload_type, (Signature(s.sig, other.key_id),))
    if what == "other-key":
        return sign_envelope(env.payload, env.payload_type, [other])
    raise AssertionError(what)


@pytest.mark.parametrize("alg", ["ed25519", "ecdsa-p256-sha256"])
@pytest.mark.parametrize("what", ["payload", "payload-type", "signature", "keyid", "other-key"])
def test_tampering_is_detected(alg: str, what: str) -> None:
    signer, other = KeySigner.generate(alg), KeySigner.generate(alg)
    env = sign_envelope(b"statement bytes", INTOTO, [signer])
    keys = {signer.key_id: signer.public_key, other.key_id: other.public_key}
    bad = _tampered(env, what, other)
    if what == "other-key":
        keys = {signer.key_id: signer.public_key}
    with pytest.raises(EnvelopeSignatureError) as e:
        verify_envelope(bad, keys)
    assert isinstance(e.value, SignatureError) and isinstance(e.value, CheckFailed)


MALFORMED: list[tuple[str, bytes, str]] = [
    ("not-json", b"{", "not valid JSON"),
    ("array", b"[]", "must be a JSON object"),
    (
        "unknown-field",
        b'{"payload":"","payloadType":"t","signatures":[{"sig":"AA=="}],"x":1}',
        "unknown",
    ),
    ("no-signatures", b'{"payload":"","payloadType":"t","signatures":[]}', "non-empty list"),
    ("no-payload", b'{"payloadType":"t","signatures":[{"sig":"AA=="}]}', "no payload"),
    (
        "bad-base64",
        b'{"payload":"@@","payloadType":"t","signatures":[{"sig":"AA=="}]}',
        "not base64",
    ),
    (
        "mixed-alphabets",
        b'{"payload":"a-b+","payloadType":"t","signatures":[{"sig":"AA=="}]}',
        "not base64",
    ),
    (
        "bad-padding",
        b'{"payload":"AAA==","payloadType":"t","signatures":[{"sig":"AA=="}]}',
        "base64",
    ),
    ("empty-sig", b'{"payload":"","payloadType":"t","signatures":[{"sig":""}]}', "empty"),
    (
        "sig-extra",
        b'{"payload":"","payloadType":"t","signatures":[{"sig":"AA==","x":1}]}',
        "sig and optional keyid",
    ),
    (
        "keyid-type",
        b'{"payload":"","payloadType":"t","signatures":[{"sig":"AA==","keyid":1}]}',
        "keyid",
    ),
    (
        "dup-key",
        b'{"payload":"","payload":"","payloadType":"t","signatures":[{"sig":"AA=="}]}',
        "duplicate",
    ),
    (
        "float",
        b'{"payload":"","payloadType":"t","signatures":[{"sig":"AA=="}],"n":1.5}',
        "floating",
    ),
    ("bom", b'\xef\xbb\xbf{"payload":""}', "byte-order"),
    ("not-utf8", b'{"payload":"\xff"}', "UTF-8"),
]


@pytest.mark.parametrize("data,match", [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_malformed_envelopes(data: bytes, match: str) -> None:
    with pytest.raises(StatementFormatError, match=match) as e:
        Envelope.from_json(data)
    assert isinstance(e.value, InputError)


def test_size_limits_before_parsing() -> None:
    with pytest.raises(StatementTooLarge):
        Envelope.from_json(b" " * 2000, max_size=1000)
    many = {"payload": "", "payloadType": "t", "signatures": [{"sig": "AA=="}] * 9}
    with pytest.raises(StatementTooLarge, match="9 signatures"):
        Envelope.from_json(json.dumps(many).encode())
    huge_sig = {"payload": "", "payloadType": "t", "signatures": [{"sig": "A" * 4000}]}
    with pytest.raises(StatementTooLarge):
        Envelope.from_json(json.dumps(huge_sig).encode())
    deep = b'{"payload":' + b"[" * 100 + b"]" * 100 + b"}"
    with pytest.raises(StatementFormatError, match="nests"):
        Envelope.from_json(deep)
