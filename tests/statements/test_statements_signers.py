"""Signer URIs: key files, note keys, PKCS#11 on SoftHSM2, the KMS extension point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pkcs11_util
import pytest
from corpus import REPO
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID
from stmt_helpers import NOW, POLICY, T0, statement

from provenance.log.note import Ed25519Signer
from provenance.statements import (
    INSPECTION,
    Actor,
    ActorKey,
    ActorRegistry,
    KeySigner,
    SignerUnavailable,
    StatementFormatError,
    accept,
    key_id,
    load_public_key,
    open_signer,
    register_signer_scheme,
    sign_envelope,
    sign_statement,
    verify_envelope,
)
from provenance.statements.signers import KMS_SCHEMES

DEV_KEYS = REPO / "keys" / "statements-dev"


def _roundtrip(uri: str, public: object = None) -> str:
    signer = open_signer(uri)
    env = sign_envelope(b"payload", "application/vnd.in-toto+json", [signer])
    keys = {signer.key_id: signer.public_key}
    assert verify_envelope(env, keys) == (signer.key_id,)
    if public is not None:
        assert key_id(public) == signer.key_id  # type: ignore[arg-type]
    return signer.key_id


@pytest.mark.parametrize("kind", ["ed25519", "p256"])
def test_pkcs8_files(tmp_path: Path, kind: str) -> None:
    key = (
        Ed25519PrivateKey.generate()
        if kind == "ed25519"
        else ec.generate_private_key(ec.SECP256R1())
    )
    pem = tmp_path / "k.pem"
    pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    der = tmp_path / "k.pk8"
    der.write_bytes(
        key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    kid = _roundtrip(f"file:{pem}", key.public_key())
    assert _roundtrip(f"file://{der}") == kid
    assert _roundtrip(str(pem)) == kid  # a bare path is a file
    assert _roundtrip(f"file://localhost{pem}") == kid


def test_encrypted_key_with_password_spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "enc.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"s3cret"),
        )
    )
    monkeypatch.setenv("ACTOR_KEY_PASS", "s3cret")
    _roundtrip(f"file:{path}?pass=env:ACTOR_KEY_PASS", key.public_key())
    _roundtrip(f"file:{path}?pass=pass:s3cret")
    with pytest.raises(SignerUnavailable, match=r"encrypted: add \?pass="):
        open_signer(f"file:{path}")
    with pytest.raises(SignerUnavailable, match="wrong password") as e:
        open_signer(f"file:{path}?pass=pass:nope")
    assert "nope" not in str(e.value)


def test_note_key_files(tmp_path: Path) -> None:
    note = Ed25519Signer.generate("actor.example")
    (tmp_path / "a.skey").write_text(note.skey + "\n")
    kid = _roundtrip(f"file:{tmp_path / 'a.skey'}")
    assert key_id(load_public_key(note.vkey)) == kid
    (tmp_path / "bad.skey").write_text("PRIVATE+KEY+x+00000000+AQ==\n")
    with pytest.raises(SignerUnavailable, match="actor key"):
        open_signer(f"file:{tmp_path / 'bad.skey'}")


def test_file_signer_refusals(tmp_path: Path) -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    p = tmp_path / "rsa.pem"
    p.write_bytes(
        rsa_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(SignerUnavailable, match="not an Ed25519 or EC P-256"):
        open_signer(f"file:{p}")
    p384 = ec.generate_private_key(ec.SECP384R1())
    p.write_bytes(
        p384.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(SignerUnavailable, match="P-256"):
        open_signer(f"file:{p}")
    with pytest.raises(SignerUnavailable, match="cannot read"):
        open_signer(f"file:{tmp_path / 'absent.pem'}")
    with pytest.raises(SignerUnavailable, match="remote host"):
        open_signer("file://example.com/etc/key.pem")
    with pytest.raises(SignerUnavailable, match="unknown file: signer parameters"):
        open_signer(f"file:{p}?pin=1")


@pytest.mark.parametrize("scheme", KMS_SCHEMES)
def test_kms_schemes_are_an_extension_point(scheme: str) -> None:
    with pytest.raises(SignerUnavailable, match="not configured") as e:
        open_signer(f"{scheme}://projects/p/keys/k")
    assert "register_signer_scheme" in str(e.value)


def test_registering_a_scheme() -> None:
    held = KeySigner.generate()
    calls: list[str] = []

    def factory(uri: str) -> KeySigner:
        calls.append(uri)
        return held

    register_signer_scheme("gcpkms", factory)
    try:
        assert open_signer("gcpkms://projects/p/keys/k").key_id == held.key_id
        assert calls == ["gcpkms://projects/p/keys/k"]
        with pytest.raises(ValueError, match="already registered"):
            register_signer_scheme("gcpkms", factory)
        with pytest.raises(ValueError, match="already registered"):
            register_signer_scheme("file", factory)
        with pytest.raises(ValueError, match="invalid URI scheme"):
            register_signer_scheme("no spaces", factory)
    finally:
        from provenance.statements import signers

        register_signer_scheme("gcpkms", signers._PLACEHOLDERS["gcpkms"], replace=True)
    with pytest.raises(SignerUnavailable, match="unknown signer URI scheme 'vault'"):
        open_signer("vault://x")


def test_public_key_formats() -> None:
    s = KeySigner.generate("ecdsa-p256-sha256")
    pub = s.public_key
    pem = pub.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    der = pub.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    import base64

    for form in (pem, pem.decode(), der, base64.b64encode(der).decode()):
        assert key_id(load_public_key(form)) == s.key_id
    for bad in ("", "garbage", "a+b+c", "x" * 5000):
        with pytest.raises(StatementFormatError):
            load_public_key(bad)
    cosigner_vkey = "w+00000000+BAAA"
    with pytest.raises(StatementFormatError):
        load_public_key(cosigner_vkey)


def test_dev_keys_are_marked_and_usable() -> None:
    readme = (DEV_KEYS / "README.md").read_text()
    assert "DEVELOPMENT / DEMO KEYS ONLY" in readme
    assert "development and demo keys only" in (REPO / "keys" / "README.md").read_text()
    for name in ("registry-root", "platform", "developer", "sdk-provider", "inspector"):
        kid = _roundtrip(f"file:{DEV_KEYS / (name + '.key.pem')}")
        assert key_id(load_public_key((DEV_KEYS / f"{name}.pub.pem").read_bytes())) == kid
        assert kid in readme
    kid = _roundtrip(f"file:{DEV_KEYS / 'regulator.skey'}")
    assert key_id(load_public_key((DEV_KEYS / "regulator.vkey").read_text())) == kid
    assert kid in readme


# ---------------------------------------------------------------- PKCS#11 (SoftHSM2)

PIN = "4321"
_CHILD = textwrap.dedent(
    """
    import json, sys
    from datetime import datetime, UTC
    from provenance.statements import INSPECTION, make_statement, open_signer, sign_statement
    uri, predicate = sys.argv[1], json.loads(sys.argv[2])
    with open_signer(uri) as signer:
        st = make_statement(INSPECTION, predicate, issued_at=datetime.fromisoformat(sys.argv[3]))
        envs = [sign_statement(st, [signer]).to_json().decode() for _ in range(2)]
    print(json.dumps({"key_id": signer.key_id, "envelopes": envs}))
    """
)


def _self_signed(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, cn: str) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(datetime(2025, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2035, 1, 1, tzinfo=UTC))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


@pytest.fixture(scope="module")
def token(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A SoftHSM2 token 'actors' with a P-256 key (with certificate) and an RSA key."""
    reason = pkcs11_util.missing_reason()
    if reason:
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("softhsm-actors")
    ec_key = ec.generate_private_key(ec.SECP256R1())
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    keys = []
    entries: list[tuple[str, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, bytes]] = [
        ("lab", ec_key, b"\x21"),
        ("rsa", rsa_key, b"\x22"),
    ]
    for label, key, kid in entries:
        cert = _self_signed(key, label)
        pk8 = root / f"{label}.pk8"
        pk8.write_bytes(
            key.private_bytes(
                serialization.Encoding.DER,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        keys.append(pkcs11_util.KeyObject(pk8, label, kid, cert))
    conf = pkcs11_util.create_store(root, [pkcs11_util.Token("actors", PIN, keys)])
    return {"conf": conf, "module": pkcs11_util.softhsm_module(), "public": ec_key.public_key()}


def _in_child(token: dict[str, object], uri: str) -> subprocess.CompletedProcess[str]:
    """SoftHSM reads its configuration once per process: sign in a fresh one."""
    env = dict(os.environ, SOFTHSM2_CONF=str(token["conf"]), PYTHONPATH=str(REPO))
    p = statement(INSPECTION).predicate
    p = {k: v for k, v in p.items() if k not in ("statement_id",)}
    return subprocess.run(
        [sys.executable, "-c", _CHILD, uri, json.dumps(p), NOW.isoformat()],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_pkcs11_actor_key_signs_statements(token: dict[str, object]) -> None:
    uri = f"pkcs11:token=actors;object=lab?module-path={token['module']}&pin-value={PIN}"
    run = _in_child(token, uri)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    public = token["public"]
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert out["key_id"] == key_id(public)
    registry = ActorRegistry([ActorKey(KeySigner.generate().public_key, T0)])
    registry.register(Actor("lab", "Lab", frozenset({"inspector"}), (ActorKey(public, T0),)), T0)
    first, second = out["envelopes"]
    acc = accept(first.encode(), registry, set(), policy=POLICY, now=NOW + timedelta(seconds=1))
    assert acc.signer.id == "lab"
    assert first != second  # ECDSA on the token draws a fresh nonce; both verify
    assert accept(second.encode(), registry, set(), policy=POLICY, now=NOW).signer.id == "lab"


def test_pkcs11_errors_are_clean(token: dict[str, object]) -> None:
    base = f"pkcs11:token=actors;object=%s?module-path={token['module']}&pin-value=%s"
    run = _in_child(token, base % ("rsa", PIN))
    assert run.returncode != 0 and "must be EC P-256" in run.stderr
    run = _in_child(token, base % ("lab", "0000"))
    assert run.returncode != 0 and "wrong PIN" in run.stderr and "0000" not in run.stderr
    run = _in_child(token, base % ("absent", PIN))
    assert "private key not found" in run.stderr


def test_sign_statement_with_several_signers() -> None:
    a, b = KeySigner.generate(), KeySigner.generate("ecdsa-p256-sha256")
    env = sign_statement(statement(INSPECTION), [a, b])
    keys = {a.key_id: a.public_key, b.key_id: b.public_key}
    assert set(verify_envelope(env, keys, threshold=2)) == set(keys)
    with pytest.raises(StatementFormatError, match="at least one signer"):
        sign_envelope(b"x", "t", [])
