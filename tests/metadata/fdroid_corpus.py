"""Paths into the shared F-Droid corpus, and keys for signing test index JARs."""

from __future__ import annotations

import hashlib
import zipfile
from functools import cache
from pathlib import Path

from corpus import require, shared_dir
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from provenance.apk.sign import sign_apk
from provenance.keystore.loader import SignerKeySpec, load_signer

FDROID = shared_dir() / "corpus" / "fdroid"
APKS = FDROID / "apks"
INDEX = FDROID / "index"
JARS = FDROID / "jars"
APKSIG = shared_dir() / "corpus" / "apksig"
#: Guardian Project's repository key, which signs the corpus' guardianproject*.jar.
GUARDIAN_FINGERPRINT = "b7c2eefd8dac7806af67dfcd92eb18126bc08312a7f2d6f3862e46013c7a6135"


def corpus(*parts: str) -> Path:
    """A corpus path (the test is skipped when the corpus is absent)."""
    return require(FDROID.joinpath(*parts))


def key_fingerprint(name: str) -> str:
    """SHA-256 of an apksig corpus key's certificate (the pin a client would hold)."""
    pem = require(APKSIG / f"{name}.x509.pem").read_bytes()
    der = x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
    return hashlib.sha256(der).hexdigest()


def sign_jar(members: dict[str, bytes], out: Path, key: str = "rsa-2048") -> Path:
    """A JAR holding ``members``, v1-signed by an apksig corpus key with the project signer."""
    unsigned = out.with_suffix(".unsigned.jar")
    with zipfile.ZipFile(unsigned, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    signer = load_signer(
        SignerKeySpec(key=str(APKSIG / f"{key}.pk8"), cert=str(APKSIG / f"{key}.x509.pem"))
    )
    sign_apk(unsigned, out, [signer], v1=True, v2=False, v3=False, v4=False, min_sdk=24)
    return out


def rezip(src: Path, out: Path, replace: dict[str, bytes]) -> Path:
    """A copy of the ZIP ``src`` with some members' contents replaced (signature untouched)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info, replace.get(info.filename, zin.read(info)))
    return out


@cache
def sha256_of(path: Path) -> str:
    """SHA-256 of a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()
