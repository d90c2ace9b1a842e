"""The signer against the reference: golden outputs byte for byte, every key type,
several signers, rotation, v4, and atomic output.

Every APK signed here is verified twice: by :func:`provenance.apk.verify.verify_apk`
and by Debian's ``apksigner`` (``tests/reference.py``; skipped when absent). Keys are
loaded straight from the corpus ``.pk8``/``.x509.pem`` files with ``cryptography``, so
these tests do not depend on the keystore module.
"""

from __future__ import annotations

import csv
import hashlib
import os
import shlex
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import reference
from corpus import apksig_dir, require
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa
from cryptography.hazmat.primitives.asymmetric import padding as pad

from provenance.apk import lineage as lin
from provenance.apk import sign as sign_mod
from provenance.apk.sign import sign_apk, v4_only
from provenance.apk.verify import verify_apk
from provenance.cli import main as cli_main
from provenance.errors import ApkFormatError, InputError, ProvenanceError, SignatureError

C = apksig_dir()

#: Golden rows this signer knowingly does not reproduce, with the reason (none today).
KNOWN_DIVERGENCES: dict[str, str] = {}

_HASHES: dict[str, Any] = {"sha1": hashes.SHA1, "sha256": hashes.SHA256, "sha512": hashes.SHA512}


@dataclass
class FileKey:
    """A corpus key (PKCS#8 DER + PEM certificate) in the SignerKey shape."""

    private: Any
    certificates: list[bytes]
    v1_signer_name: str

    @property
    def key_type(self) -> str:
        if isinstance(self.private, rsa.RSAPrivateKey):
            return "RSA"
        return "EC" if isinstance(self.private, ec.EllipticCurvePrivateKey) else "DSA"

    @property
    def key_size(self) -> int:
        if isinstance(self.private, ec.EllipticCurvePrivateKey):
            return int(self.private.curve.key_size)
        return int(self.private.key_size)

    @property
    def public_key_spki(self) -> bytes:
        return bytes(
            self.private.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )

    def sign(self, data: bytes, hash_name: str, padding: str) -> bytes:
        h = _HASHES[hash_name]()
        k = self.private
        if isinstance(k, rsa.RSAPrivateKey):
            p: Any = pad.PKCS1v15() if padding == "pkcs1" else pad.PSS(pad.MGF1(h), h.digest_size)
            return bytes(k.sign(data, p, h))
        if isinstance(k, ec.EllipticCurvePrivateKey):
            return bytes(k.sign(data, ec.ECDSA(h)))
        assert isinstance(k, dsa.DSAPrivateKey)
        return bytes(k.sign(data, h))


def key(name: str) -> FileKey:
    base = require(C) / name
    priv = serialization.load_der_private_key((base.parent / f"{name}.pk8").read_bytes(), None)
    cert = x509.load_pem_x509_certificate((base.parent / f"{name}.x509.pem").read_bytes())
    return FileKey(priv, [cert.public_bytes(serialization.Encoding.DER)], name)


def check(
    apk: Path,
    *,
    idsig: Path | None = None,
    min_sdk: int | None = None,
    schemes: list[str] | None = None,
    reference_schemes: list[str] | None = None,
) -> None:
    """Verified by this project's verifier and by Debian's apksigner."""
    res = verify_apk(apk, min_sdk=min_sdk, v4_signature_file=idsig)
    assert res.verified, [str(i) for i in res.all_errors()]
    assert not res.all_warnings(), [str(i) for i in res.all_warnings()]
    if schemes is not None:
        assert res.verified_schemes == schemes
    if not reference.available():
        return
    ref = reference.verify(apk, min_sdk=min_sdk, v4_signature_file=idsig)
    assert ref.ok, ref.summary() + "\n" + ref.stderr
    if reference_schemes is not None:
        assert ref.schemes == reference_schemes


def no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


# -- golden outputs -------------------------------------------------------------------------


def golden_rows() -> list[dict[str, str]]:
    path = C / "golden_signing.tsv"
    if not path.is_file():
        return []
    with path.open(encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def _golden_param(row: dict[str, str]) -> Any:
    out = row["golden_output"]
    reason = KNOWN_DIVERGENCES.get(out)
    marks = [pytest.mark.xfail(reason=reason, strict=True)] if reason else []
    return pytest.param(row, id=out, marks=marks)


def _cli_args(command: str, out: Path) -> list[str]:
    """``apksigner sign ...`` from the TSV as ``apkprov sign`` arguments in the corpus."""
    words = shlex.split(command)
    assert words[:2] == ["apksigner", "sign"]
    args: list[str] = []
    for i, w in enumerate(words[2:]):
        prev = words[2 + i - 1] if i else ""
        if prev == "--out":
            args.append(str(out))
        elif prev in ("--key", "--cert", "--lineage") or (
            not w.startswith("-") and w.endswith(".apk")
        ):
            args.append(str(C / w))
        else:
            args.append(w)
    return args


@pytest.mark.parametrize("row", [_golden_param(r) for r in golden_rows()])
def test_golden(row: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / row["golden_output"]
    rc = cli_main(["sign", *_cli_args(row["cli_command_main"], out)])
    assert rc == 0
    assert out.read_bytes() == (C / row["golden_output"]).read_bytes()
    cmd = row["cli_command_main"]
    min_sdk = None
    if "--v1-signing-enabled false" in cmd:
        min_sdk = 28 if "--v2-signing-enabled false" in cmd else 24
    check(out, min_sdk=min_sdk)


def test_golden_rows_present() -> None:
    assert len(golden_rows()) >= 38 or not C.exists()


# -- key types ------------------------------------------------------------------------------

RSA_KEYS = ["rsa-1024", "rsa-2048", "rsa-3072", "rsa-4096", "rsa-8192"]
EC_KEYS = ["ec-p256", "ec-p384", "ec-p521"]
DSA_KEYS = ["dsa-1024", "dsa-2048", "dsa-3072"]


@pytest.mark.parametrize(
    "name",
    [*RSA_KEYS, *EC_KEYS, *DSA_KEYS, pytest.param("rsa-16384", marks=pytest.mark.slow)],
)
def test_key_types(name: str, tmp_path: Path) -> None:
    out = tmp_path / "signed.apk"
    if name == "rsa-16384":
        # Its certificate, key and signature exceed the 7 KiB v4 signing-info limit: apksig
        # skips v4 by default (and fails when v4 is asked for explicitly); so does this one.
        res = sign_apk(C / "original.apk", out, [key(name)])
        assert res.schemes == ["v1", "v2", "v3"] and res.idsig is None
        check(out, schemes=["v1", "v2", "v3"])
        return
    res = sign_apk(C / "original.apk", out, [key(name)])
    assert res.schemes == ["v1", "v2", "v3", "v4"]
    assert res.idsig == tmp_path / "signed.apk.idsig"
    check(out, idsig=res.idsig, schemes=["v1", "v2", "v3", "v4"])
    if reference.available() and name.startswith("rsa"):
        # RSA PKCS#1 v1.5 is deterministic: Debian's apksigner must write the same bytes
        # (it predates the 16 KiB library alignment; same alignment rules otherwise).
        ours = tmp_path / "ours.apk"
        sign_apk(
            C / "original.apk", ours, [key(name)], alignment_preserved=True, lib_page_alignment=4096
        )
        ref = tmp_path / "ref.apk"
        reference.sign(C / "original.apk", ref, key=C / f"{name}.pk8", cert=C / f"{name}.x509.pem")
        assert ours.read_bytes() == ref.read_bytes()
        assert (tmp_path / "ours.apk.idsig").read_bytes() == (
            tmp_path / "ref.apk.idsig"
        ).read_bytes()


@pytest.mark.parametrize("name", ["rsa-2048", "dsa-1024", "dsa-2048"])
def test_sha1_for_old_platforms(name: str, tmp_path: Path) -> None:
    out = tmp_path / "signed.apk"
    sign_apk(C / "original.apk", out, [key(name)], min_sdk=1, v4=False)
    check(out, min_sdk=1)
    import zipfile

    with zipfile.ZipFile(out) as z:
        sf = z.read(f"META-INF/{name.upper()}.SF").decode()
    assert "SHA1-Digest-Manifest" in sf


def test_ec_needs_api_18_for_v1(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="minSdkVersion 18"):
        sign_apk(C / "original.apk", tmp_path / "x.apk", [key("ec-p256")], min_sdk=1)
    assert not (tmp_path / "x.apk").exists()
    assert no_temp_files(tmp_path)


# -- several signers ------------------------------------------------------------------------


def test_two_signers_without_v3(tmp_path: Path) -> None:
    out = tmp_path / "signed.apk"
    signers = [key("rsa-2048"), key("ec-p256")]
    res = sign_apk(C / "original.apk", out, signers, v3=False)
    assert res.schemes == ["v1", "v2", "v4"] or res.schemes == ["v1", "v2"]
    check(out, schemes=["v1", "v2"])
    assert len(verify_apk(out).signer_certs) == 2


def test_three_rsa_signers_match_reference(tmp_path: Path) -> None:
    names = ["rsa-2048", "rsa-3072", "rsa-4096"]
    out = tmp_path / "ours.apk"
    sign_apk(
        C / "original.apk",
        out,
        [key(n) for n in names],
        v3=False,
        v4=False,
        alignment_preserved=True,
        lib_page_alignment=4096,
    )
    check(out, schemes=["v1", "v2"])
    if reference.available():
        ref = tmp_path / "ref.apk"
        reference.sign(
            C / "original.apk",
            ref,
            key=C / "rsa-2048.pk8",
            cert=C / "rsa-2048.x509.pem",
            v3=False,
            v4=False,
            next_signers=[reference.Signer(C / f"{n}.pk8", C / f"{n}.x509.pem") for n in names[1:]],
        )
        assert out.read_bytes() == ref.read_bytes()


def test_several_signers_need_a_lineage_for_v3(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="without an accompanying SigningCertificateLineage"):
        sign_apk(C / "original.apk", tmp_path / "x.apk", [key("rsa-2048"), key("ec-p256")], v3=True)
    # Without an explicit v3, the library turns v3 off like ApkSigner.Builder.
    res = sign_apk(C / "original.apk", tmp_path / "y.apk", [key("rsa-2048"), key("ec-p256")])
    assert "v3" not in res.schemes


def test_v1_signer_names(tmp_path: Path) -> None:
    out = tmp_path / "signed.apk"
    sign_apk(
        C / "original.apk",
        out,
        [key("rsa-2048"), key("rsa-2048_2")],
        v3=False,
        v1_signer_names=["release key", "second"],
        v4=False,
    )
    import zipfile

    names = zipfile.ZipFile(out).namelist()
    assert "META-INF/RELEASE_.SF" in names and "META-INF/SECOND.RSA" in names
    check(out)
    with pytest.raises(InputError, match="same name"):
        sign_apk(
            C / "original.apk",
            tmp_path / "z.apk",
            [key("rsa-2048"), key("rsa-2048_2")],
            v3=False,
            v1_signer_names=["same", "same"],
        )


# -- rotation -------------------------------------------------------------------------------


def test_rotation_v31_by_default(tmp_path: Path) -> None:
    out = tmp_path / "signed.apk"
    res = sign_apk(
        C / "original.apk",
        out,
        [key("rsa-2048"), key("rsa-2048_2")],
        lineage=C / "rsa-2048-lineage-2-signers",
    )
    assert res.schemes == ["v1", "v2", "v3", "v3.1", "v4"]
    check(out, idsig=res.idsig, schemes=["v1", "v2", "v3", "v3.1", "v4"])
    v = verify_apk(out)
    assert v.signer_certs[0].subject == "CN=rsa-2048_2"
    assert v.lineage is not None and len(v.lineage) == 2
    old = verify_apk(out, max_sdk=32)
    assert old.signer_certs[0].subject == "CN=rsa-2048"


@pytest.mark.parametrize(
    ("lineage_file", "names"),
    [
        ("rsa-2048-lineage-2-signers", ["rsa-2048", "rsa-2048_2"]),
        ("rsa-2048-lineage-3-signers", ["rsa-2048", "rsa-2048_2", "rsa-2048_3"]),
        ("rsa-2048-lineage-3-signers", ["rsa-2048", "rsa-2048_3"]),
        ("ec-p256-lineage-2-signers", ["ec-p256", "ec-p256_2"]),
    ],
)
def test_rotation_v3(lineage_file: str, names: list[str], tmp_path: Path) -> None:
    out = tmp_path / "signed.apk"
    res = sign_apk(
        C / "original.apk",
        out,
        [key(n) for n in names],
        lineage=C / lineage_file,
        rotation_min_sdk=28,
    )
    assert res.schemes == ["v1", "v2", "v3", "v4"]
    check(out, idsig=res.idsig, reference_schemes=["v1", "v2", "v3", "v4"])
    v = verify_apk(out)
    assert v.signer_certs[0].subject == f"CN={names[-1]}"
    assert v.lineage is not None
    assert v.lineage.nodes[-1].cert.subject == f"CN={names[-1]}"


def test_rotation_three_certificates_v31_dev_release(tmp_path: Path) -> None:
    # API 34 is apksig's "development release": the v3.1 signer targets 33 with the
    # dev-release attribute, and the original signer covers up to 33 in v3.
    out = tmp_path / "signed.apk"
    res = sign_apk(
        C / "original.apk",
        out,
        [key("rsa-2048"), key("rsa-2048_3")],
        lineage=C / "rsa-2048-lineage-3-signers",
        rotation_min_sdk=34,
    )
    assert res.schemes == ["v1", "v2", "v3", "v3.1", "v4"]
    check(out, idsig=res.idsig)
    v31 = verify_apk(out).schemes["v3.1"].signers[0]
    assert (v31.min_sdk, v31.max_sdk) == (33, 0x7FFFFFFF)
    v3 = verify_apk(out).schemes["v3"].signers[0]
    assert (v3.min_sdk, v3.max_sdk) == (24, 33)


def test_rotation_with_lineage_from_apk(tmp_path: Path) -> None:
    first = tmp_path / "first.apk"
    sign_apk(
        C / "original.apk",
        first,
        [key("rsa-2048"), key("rsa-2048_2")],
        lineage=C / "rsa-2048-lineage-2-signers",
        rotation_min_sdk=28,
        v4=False,
    )
    again = tmp_path / "again.apk"
    sign_apk(
        C / "original.apk",
        again,
        [key("rsa-2048"), key("rsa-2048_2")],
        lineage=first,
        rotation_min_sdk=28,
        v4=False,
    )
    assert again.read_bytes() == first.read_bytes()


def test_rotation_with_created_lineage(tmp_path: Path) -> None:
    lineage = lin.create(lin.certs.load_certificate(key("ec-p256").certificates[0]))
    old = lin.certs.load_certificate(key("ec-p256").certificates[0])
    new = lin.certs.load_certificate(key("rsa-2048").certificates[0])
    from provenance.apk.sign_block import suggested_algorithms

    lineage = lin.spawn_descendant(
        lineage, old, suggested_algorithms(old, verity=False)[0], key("ec-p256").sign, new
    )
    out = tmp_path / "signed.apk"
    sign_apk(
        C / "original.apk",
        out,
        [key("ec-p256"), key("rsa-2048")],
        lineage=lineage,
        rotation_min_sdk=28,
    )
    check(out, idsig=tmp_path / "signed.apk.idsig")


def test_rotation_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="do not match the provided SigningCertificateLineage"):
        sign_apk(
            C / "original.apk",
            tmp_path / "x.apk",
            [key("rsa-2048"), key("ec-p256")],
            lineage=C / "rsa-2048-lineage-2-signers",
        )
    with pytest.raises(InputError, match="oldest signer"):
        sign_apk(
            C / "original.apk",
            tmp_path / "x.apk",
            [key("rsa-2048_2")],
            lineage=C / "rsa-2048-lineage-2-signers",
            rotation_min_sdk=28,
        )
    with pytest.raises(InputError, match=r"not a valid lineage|MAGIC"):
        sign_apk(
            C / "original.apk",
            tmp_path / "x.apk",
            [key("rsa-2048")],
            lineage=C / "rsa-2048-lineage-invalid-magic",
        )
    assert no_temp_files(tmp_path) and not (tmp_path / "x.apk").exists()


# -- v4 and other options -------------------------------------------------------------------


def test_v4_only(tmp_path: Path) -> None:
    out = tmp_path / "signed.apk"
    sign_apk(C / "original.apk", out, [key("ec-p384")], v4=False)
    before = out.read_bytes()
    res = v4_only(out, [key("ec-p384")])
    assert out.read_bytes() == before
    assert res.idsig is not None and res.idsig.is_file()
    check(out, idsig=res.idsig, schemes=["v1", "v2", "v3", "v4"])
    with pytest.raises(InputError, match="not the key"):
        sign_apk(out, None, [key("rsa-2048")], v4="only")


def test_v4_requires_v2_or_v3(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="v4 signing requires"):
        sign_apk(
            C / "original.apk", tmp_path / "x.apk", [key("rsa-2048")], v2=False, v3=False, v4=True
        )
    res = sign_apk(C / "original.apk", tmp_path / "y.apk", [key("rsa-2048")], v2=False, v3=False)
    assert res.schemes == ["v1"] and res.idsig is None
    check(tmp_path / "y.apk", schemes=["v1"])


def test_in_place(tmp_path: Path) -> None:
    apk = tmp_path / "app.apk"
    shutil.copy(C / "golden-aligned-in.apk", apk)
    res = sign_apk(apk, None, [key("rsa-2048")], alignment_preserved=True)
    assert res.output == apk
    check(apk, idsig=res.idsig)
    assert no_temp_files(tmp_path)


def test_debuggable_refused(tmp_path: Path) -> None:
    with pytest.raises(SignatureError, match="debuggable"):
        sign_apk(
            C / "debuggable-boolean.apk",
            tmp_path / "x.apk",
            [key("rsa-2048")],
            debuggable_apk_permitted=False,
        )
    out = tmp_path / "ok.apk"
    sign_apk(C / "debuggable-boolean.apk", out, [key("rsa-2048")])
    check(out)


@pytest.mark.parametrize(
    "name",
    [
        "v1-only-with-cr-in-entry-name.apk",
        "targetSandboxVersion-2.apk",
        "two-signers.apk",
        "v2-only-with-stamp.apk",
        "v1v2v3-with-rsa-2048-lineage-3-signers.apk",
    ],
)
def test_resign_signed_or_odd_apks(name: str, tmp_path: Path) -> None:
    out = tmp_path / "out.apk"
    try:
        sign_apk(C / name, out, [key("rsa-2048")])
    except ApkFormatError:
        assert not out.exists()
        return
    check(out, idsig=tmp_path / "out.apk.idsig")


# -- atomic output and hostile input --------------------------------------------------------


@pytest.fixture
def existing_output(tmp_path: Path) -> Iterator[Path]:
    out = tmp_path / "out.apk"
    out.write_bytes(b"previous output")
    (tmp_path / "out.apk.idsig").write_bytes(b"previous idsig")
    yield out


def _untouched(out: Path) -> None:
    assert out.read_bytes() == b"previous output"
    assert (out.parent / "out.apk.idsig").read_bytes() == b"previous idsig"
    assert no_temp_files(out.parent)


def test_atomic_malformed_input(existing_output: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.apk"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ApkFormatError):
        sign_apk(bad, existing_output, [key("rsa-2048")])
    _untouched(existing_output)


def test_atomic_key_does_not_match_certificate(existing_output: Path) -> None:
    wrong = key("rsa-2048")
    wrong.certificates = key("rsa-2048_2").certificates
    with pytest.raises(SignatureError):
        sign_apk(C / "original.apk", existing_output, [wrong])
    _untouched(existing_output)


def test_atomic_failure_while_writing(
    existing_output: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*_a: object, **_k: object) -> bytes:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(sign_mod, "signing_block", boom)
    with pytest.raises(OSError):
        sign_apk(C / "original.apk", existing_output, [key("rsa-2048")])
    _untouched(existing_output)


def test_atomic_v4_failure(existing_output: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_a: object, **_k: object) -> bytes:
        raise SignatureError("v4 failed")

    monkeypatch.setattr(sign_mod, "v4_signature", boom)
    with pytest.raises(SignatureError):
        sign_apk(C / "original.apk", existing_output, [key("rsa-2048")], v4=True)
    _untouched(existing_output)
    # With v4 left at its default, a v4 failure is ignored like apksigner does, and the
    # stale .idsig of the previous output is removed rather than left mismatching.
    res = sign_apk(C / "original.apk", existing_output, [key("rsa-2048")])
    assert res.idsig is None and not (existing_output.parent / "out.apk.idsig").exists()


def test_missing_input_and_output_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError):
        sign_apk(tmp_path / "nope.apk", tmp_path / "out.apk", [key("rsa-2048")])
    with pytest.raises(InputError):
        sign_apk(C / "original.apk", tmp_path / "no" / "dir.apk", [key("rsa-2048")])


def _mutations(data: bytes) -> Iterator[tuple[str, bytes]]:
    eocd = data.rfind(b"PK\x05\x06")
    cd = int.from_bytes(data[eocd + 16 : eocd + 20], "little")
    yield "truncated", data[: len(data) // 2]
    yield (
        "cd-offset-past-eocd",
        data[: eocd + 16] + (eocd + 10).to_bytes(4, "little") + data[eocd + 20 :],
    )
    yield "cd-count-high", data[: eocd + 10] + b"\xff\xff" + data[eocd + 12 :]
    yield "lfh-offset-garbage", data[: cd + 42] + b"\xff\xff\xff\x7f" + data[cd + 46 :]
    yield "lfh-signature", data[:0] + b"XX" + data[2:]
    flipped = bytearray(data)
    for i in range(40, min(len(data), cd), 97):
        flipped[i] ^= 0x5A
    yield "entries-corrupted", bytes(flipped)
    yield "name-length", data[: cd + 28] + b"\xff\xff" + data[cd + 30 :]


@pytest.mark.parametrize("what", [m for m, _ in _mutations(b"PK\x05\x06" + bytes(30))])
def test_hostile_input(what: str, tmp_path: Path) -> None:
    data = dict(_mutations((C / "golden-unaligned-in.apk").read_bytes()))[what]
    bad = tmp_path / "bad.apk"
    bad.write_bytes(data)
    out = tmp_path / "out.apk"
    try:
        sign_apk(bad, out, [key("rsa-2048")], min_sdk=24)
    except ProvenanceError:
        assert not out.exists()
    else:
        check(out, idsig=tmp_path / "out.apk.idsig", min_sdk=24)
    assert no_temp_files(tmp_path)


# -- CLI --------------------------------------------------------------------------------------


def test_cli_json_and_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "s.apk"
    k = ["--key", str(C / "rsa-2048.pk8"), "--cert", str(C / "rsa-2048.x509.pem")]
    assert cli_main(["sign", "--json", *k, "--out", str(out), str(C / "original.apk")]) == 0
    import json

    doc = json.loads(capsys.readouterr().out)
    assert doc["schemes"] == ["v1", "v2", "v3", "v4"] and doc["output"] == str(out)
    assert (
        doc["signers"][0]["cert_sha256"]
        == hashlib.sha256(key("rsa-2048").certificates[0]).hexdigest()
    )
    check(out, idsig=Path(doc["idsig"]))
    assert cli_main(["sign", *k, "--out", str(tmp_path / "x.apk"), str(tmp_path / "no.apk")]) == 2
    assert cli_main(["sign", "--out", str(tmp_path / "x.apk"), str(C / "original.apk")]) == 2
    assert (
        cli_main(
            [
                "sign",
                *k,
                "--alignment-preserved",
                str(C / "original.apk"),
                "--out",
                str(tmp_path / "y.apk"),
            ]
        )
        == 0
    )
    assert cli_main(["sign", *k, "--v4-signing-enabled", "maybe", str(C / "original.apk")]) == 2
    assert not list(tmp_path.glob("*.tmp"))


def test_cli_v4_only(tmp_path: Path) -> None:
    apk = tmp_path / "s.apk"
    k = ["--key", str(C / "dsa-2048.pk8"), "--cert", str(C / "dsa-2048.x509.pem")]
    assert (
        cli_main(
            [
                "sign",
                *k,
                "--v4-signing-enabled",
                "false",
                "--out",
                str(apk),
                str(C / "original.apk"),
            ]
        )
        == 0
    )
    assert not (tmp_path / "s.apk.idsig").exists()
    assert cli_main(["sign", *k, "--v4-signing-enabled", "only", "--in", str(apk)]) == 0
    check(apk, idsig=tmp_path / "s.apk.idsig", schemes=["v1", "v2", "v3", "v4"])


def test_cli_signer_for_min_sdk_version(tmp_path: Path) -> None:
    out = tmp_path / "t.apk"
    args = [
        "sign",
        "--key",
        str(C / "rsa-2048.pk8"),
        "--cert",
        str(C / "rsa-2048.x509.pem"),
        "--signer-for-min-sdk-version",
        "33",
        "--key",
        str(C / "rsa-2048_2.pk8"),
        "--cert",
        str(C / "rsa-2048_2.x509.pem"),
        "--signer-lineage",
        str(C / "rsa-2048-lineage-2-signers"),
        "--out",
        str(out),
        str(C / "original.apk"),
    ]
    assert cli_main(args) == 0
    check(out, idsig=tmp_path / "t.apk.idsig", schemes=["v1", "v2", "v3", "v3.1", "v4"])


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_output_folder(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(InputError):
            sign_apk(C / "original.apk", ro / "x.apk", [key("rsa-2048")])
    finally:
        ro.chmod(0o700)


def test_cli_deterministic_dsa(tmp_path: Path) -> None:
    k = ["--key", str(C / "dsa-2048.pk8"), "--cert", str(C / "dsa-2048.x509.pem")]
    outs = []
    for i in range(2):
        out = tmp_path / f"d{i}.apk"
        args = ["sign", *k, "--deterministic-dsa-signing", "--out", str(out)]
        rc = cli_main([*args, str(C / "original.apk")])
        if rc != 0:
            pytest.skip("deterministic DSA needs provenance.keystore")
        outs.append(out)
    assert outs[0].read_bytes() == outs[1].read_bytes()
    assert (tmp_path / "d0.apk.idsig").read_bytes() == (tmp_path / "d1.apk.idsig").read_bytes()
    check(outs[0], idsig=tmp_path / "d0.apk.idsig")
