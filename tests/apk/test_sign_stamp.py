"""Source stamp signing (``--stamp-signer``): the ``stamp-cert-sha256`` entry and the
V2 source stamp block, checked by this project's verifier and Debian's apksigner.

apksig signs stamps with RSA_PKCS1_V1_5_WITH_SHA256 only (Debian's apksigner fails on
an EC stamp key with "Failed to sign using SHA256withRSA"), so the stamp key here is
RSA (``rsa-1024``) and an EC stamp key must be refused.

Debian's apksigner (31.0.2) predates the stamp timestamp attribute: it neither writes
it nor knows it, and reports it as "Unknown stamp attribute" -- a warning that fails
its stamp verdict, where current apksig (and this project's verifier) records an info
message. So the reference comparisons sign without the timestamp, and a timestamped
stamp is only checked to get no other complaint from it.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest
import reference
from corpus import apksig_dir, require

from provenance.apk import lineage as lin
from provenance.apk import sign as sign_mod
from provenance.apk.sign import StampSigner, sign_apk
from provenance.apk.sign_block import UnsupportedKeyError
from provenance.apk.signing_block import SOURCE_STAMP_V2_BLOCK_ID, find_scheme_block
from provenance.apk.stamp import STAMP_CERT_ENTRY, STAMP_TIME_ATTR_ID, SourceStampResult
from provenance.apk.verify import verify_apk
from provenance.apk.zip import ApkFile
from provenance.cli import main as cli_main
from provenance.errors import ApkFormatError
from tests.apk.test_sign import key

C = apksig_dir()
IN_APK = C / "golden-aligned-in.apk"
STAMP = "rsa-1024"
TS = 1_700_000_000


def stamp_sha256() -> str:
    return hashlib.sha256(bytes(key(STAMP).certificates[0])).hexdigest()


def stamp_value(apk: Path) -> bytes:
    with ApkFile(apk) as f:
        _, block = find_scheme_block(f, SOURCE_STAMP_V2_BLOCK_ID)
        return bytes(block)


def ref_check(apk: Path, *, timestamped: bool, min_sdk: int | None = None) -> None:
    """Debian's apksigner verifies the APK and, but for the timestamp, the stamp."""
    if not reference.available():
        return
    ref = reference.verify(apk, min_sdk=min_sdk)
    assert ref.ok, ref.summary() + "\n" + ref.stdout + ref.stderr
    stamp_warnings = [w.message for w in ref.warnings if w.where == "SourceStamp"]
    if timestamped:
        assert stamp_warnings == [f"Unknown stamp attribute: ID {STAMP_TIME_ATTR_ID:#x}"], (
            ref.stdout
        )
    else:
        assert not stamp_warnings, ref.stdout
        assert ref.source_stamp_verified is True, ref.stdout


def sign(out: Path, **kw: object) -> Path:
    require(IN_APK)
    stamp = kw.pop("stamp", StampSigner(key(STAMP), timestamp=TS))
    sign_apk(IN_APK, out, [key("rsa-2048")], v4=False, stamp=stamp, **kw)  # type: ignore[arg-type]
    return out


def test_v1_v2_v3_stamp_verifies(tmp_path: Path) -> None:
    out = sign(tmp_path / "stamped.apk")
    with zipfile.ZipFile(out) as z:
        assert z.read(STAMP_CERT_ENTRY) == bytes.fromhex(stamp_sha256())
        # The entry is added before v1 signing, so the JAR manifest covers it.
        assert f"Name: {STAMP_CERT_ENTRY}" in z.read("META-INF/MANIFEST.MF").decode()
    res = verify_apk(out)
    assert res.verified, [str(i) for i in res.all_errors()]
    assert res.verified_schemes == ["v1", "v2", "v3"]
    assert res.source_stamp is not None
    assert res.source_stamp.status == "verified", res.source_stamp.to_json()
    assert res.source_stamp.cert is not None
    assert res.source_stamp.cert.sha256 == stamp_sha256()
    assert res.source_stamp.timestamp == TS
    ref_check(out, timestamped=True)
    # Without the timestamp attribute, Debian's apksigner verifies the stamp itself.
    plain = sign(tmp_path / "no-ts.apk", stamp=StampSigner(key(STAMP), timestamp_enabled=False))
    res = verify_apk(plain)
    assert res.verified and res.source_stamp is not None
    assert res.source_stamp.status == "verified" and res.source_stamp.timestamp is None
    ref_check(plain, timestamped=False)


@pytest.mark.parametrize(
    ("v1", "v2", "v3"),
    [(True, False, False), (False, True, False), (False, False, True), (True, True, False)],
)
def test_scheme_subsets(tmp_path: Path, v1: bool, v2: bool, v3: bool) -> None:
    stamp = StampSigner(key(STAMP), timestamp_enabled=False)
    out = sign(tmp_path / "stamped.apk", v1=v1, v2=v2, v3=v3, stamp=stamp)
    min_sdk = None if v1 else 24
    res = verify_apk(out, min_sdk=min_sdk)
    assert res.verified, [str(i) for i in res.all_errors()]
    assert res.source_stamp is not None and res.source_stamp.status == "verified"
    ref_check(out, timestamped=False, min_sdk=min_sdk)


@pytest.mark.skipif(not reference.available(), reason="Debian apksigner not available")
def test_same_bytes_as_apksigner(tmp_path: Path) -> None:
    """RSA PKCS#1 v1.5 is deterministic: with apksigner's timestamp, the same file."""
    require(IN_APK)
    theirs = tmp_path / "theirs.apk"
    reference.sign(
        IN_APK,
        theirs,
        key=C / "rsa-2048.pk8",
        cert=C / "rsa-2048.x509.pem",
        v4=False,
        extra_args=["--stamp-signer", "--key", str(C / f"{STAMP}.pk8"), "--cert",
                    str(C / f"{STAMP}.x509.pem")],
    )  # fmt: skip
    ours = tmp_path / "ours.apk"
    sign_apk(
        IN_APK,
        ours,
        [key("rsa-2048")],
        v4=False,
        alignment_preserved=True,
        lib_page_alignment=4096,
        stamp=StampSigner(key(STAMP), timestamp_enabled=False),
    )
    assert stamp_value(ours) == stamp_value(theirs)
    assert ours.read_bytes() == theirs.read_bytes()


def test_tampered_stamp_block(tmp_path: Path) -> None:
    out = sign(tmp_path / "stamped.apk")
    data = bytearray(out.read_bytes())
    value = stamp_value(out)
    at = bytes(data).index(value) + len(value) - 1  # last byte of the attributes signature
    data[at] ^= 1
    out.write_bytes(bytes(data))
    res = verify_apk(out)
    # apksig: the stamp never changes the APK's verdict; it only fails itself.
    assert res.verified, [str(i) for i in res.all_errors()]
    assert res.source_stamp is not None and res.source_stamp.status == "failed"
    assert [w.name for w in res.source_stamp.warnings] == ["SOURCE_STAMP_DID_NOT_VERIFY"]
    if reference.available():
        ref = reference.verify(out)
        assert ref.ok, ref.summary()
        assert ref.source_stamp_verified is False, ref.stdout


def test_tampered_stamp_cert_entry(tmp_path: Path) -> None:
    out = sign(tmp_path / "stamped.apk")
    data = bytearray(out.read_bytes())
    digest = bytes.fromhex(stamp_sha256())
    at = bytes(data).index(digest)
    data[at] ^= 1
    out.write_bytes(bytes(data))
    res = verify_apk(out)
    # The entry is covered by v1 and by the v2/v3 content digests: the APK fails, and
    # apksig does not go on to the stamp of an APK that failed.
    assert not res.verified
    assert res.source_stamp is None or res.source_stamp.status != "verified"
    if reference.available():
        ref = reference.verify(out)
        assert not ref.verified, ref.stdout
        assert ref.source_stamp_verified is not True, ref.stdout


def test_stamp_cert_entry_mismatch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An entry naming another certificate, validly signed: only the stamp fails."""
    monkeypatch.setattr(sign_mod, "stamp_cert_digest", lambda cert: bytes(32))
    out = sign(tmp_path / "stamped.apk", stamp=StampSigner(key(STAMP), timestamp_enabled=False))
    res = verify_apk(out)
    assert res.verified, [str(i) for i in res.all_errors()]
    assert res.source_stamp is not None and res.source_stamp.status == "failed"
    assert [w.name for w in res.source_stamp.warnings] == [
        "SOURCE_STAMP_CERTIFICATE_MISMATCH_BETWEEN_SIGNATURE_BLOCK_AND_APK"
    ]
    if reference.available():
        ref = reference.verify(out)
        assert ref.ok, ref.summary()
        assert ref.source_stamp_verified is False, ref.stdout


def test_no_stamp_signer_no_stamp(tmp_path: Path) -> None:
    plain = tmp_path / "plain.apk"
    sign(plain, stamp=None)
    with zipfile.ZipFile(plain) as z:
        assert STAMP_CERT_ENTRY not in z.namelist()
    res = verify_apk(plain)
    assert res.verified and res.source_stamp is None


def test_ec_stamp_key_refused(tmp_path: Path) -> None:
    out = tmp_path / "x.apk"
    with pytest.raises(UnsupportedKeyError, match="SHA256withRSA"):
        sign(out, stamp=StampSigner(key("ec-p256")))
    assert not out.exists()


def test_existing_different_stamp_entry(tmp_path: Path) -> None:
    first = sign(tmp_path / "first.apk", stamp=StampSigner(key("rsa-2048_2"), timestamp=TS))
    with pytest.raises(ApkFormatError, match="Cannot generate SourceStamp"):
        sign_apk(first, tmp_path / "second.apk", [key("rsa-2048")], v4=False,
                 stamp=StampSigner(key(STAMP)))  # fmt: skip
    second = tmp_path / "second.apk"
    sign_apk(first, second, [key("rsa-2048")], v4=False, stamp=StampSigner(key(STAMP)),
             force_stamp_overwrite=True)  # fmt: skip
    res = verify_apk(second)
    assert res.source_stamp is not None and res.source_stamp.status == "verified"
    assert res.source_stamp.cert is not None and res.source_stamp.cert.sha256 == stamp_sha256()
    # Re-stamping with the same key is fine without forcing.
    third = tmp_path / "third.apk"
    sign_apk(second, third, [key("rsa-2048")], v4=False, stamp=StampSigner(key(STAMP)))
    assert verify_apk(third).source_stamp.status == "verified"  # type: ignore[union-attr]


def test_stamp_lineage(tmp_path: Path) -> None:
    """The stamp key's lineage goes into the proof-of-rotation attribute."""
    lineage_file = require(C / "rsa-2048-lineage-2-signers")
    lineage = lin.from_file_bytes(lineage_file.read_bytes())
    newest = key("rsa-2048_2")
    stamp = StampSigner(newest, lineage, timestamp_enabled=False)
    out = sign(tmp_path / "stamped.apk", stamp=stamp)
    res = verify_apk(out)
    got = res.source_stamp
    assert isinstance(got, SourceStampResult) and got.status == "verified", got
    assert [c.sha256 for c in got.lineage_certs] == [n.cert.sha256 for n in lineage.nodes]
    ref_check(out, timestamped=False)


def test_cli_stamp_signer(tmp_path: Path) -> None:
    out = tmp_path / "cli.apk"
    rc = cli_main(
        [
            "sign",
            "--key", str(C / "rsa-2048.pk8"), "--cert", str(C / "rsa-2048.x509.pem"),
            "--stamp-signer",
            "--key", str(C / f"{STAMP}.pk8"), "--cert", str(C / f"{STAMP}.x509.pem"),
            "--v4-signing-enabled", "false",
            "--out", str(out), str(require(IN_APK)),
        ]
    )  # fmt: skip
    assert rc == 0
    res = verify_apk(out)
    assert res.verified
    assert res.source_stamp is not None and res.source_stamp.status == "verified"
    assert res.source_stamp.cert is not None and res.source_stamp.cert.sha256 == stamp_sha256()
    # Without --stamp-signer, byte for byte what signing without a stamp gives.
    plain_cli = tmp_path / "plain-cli.apk"
    rc = cli_main(
        [
            "sign",
            "--key", str(C / "rsa-2048.pk8"), "--cert", str(C / "rsa-2048.x509.pem"),
            "--v4-signing-enabled", "false",
            "--out", str(plain_cli), str(IN_APK),
        ]
    )  # fmt: skip
    assert rc == 0
    plain_api = tmp_path / "plain-api.apk"
    sign(plain_api, stamp=None)
    assert plain_cli.read_bytes() == plain_api.read_bytes()
