"""Signed index JARs (F-Droid ``entry.jar``, ``index-v1.jar``) checked against a pin.

An F-Droid repository signs its index as a JAR (a v1 signature over one JSON entry)
and clients pin the repository certificate's SHA-256 (the repo "fingerprint"). The
JAR is verified with the project's v1 verifier, which already enforces that every
entry is digested in the manifest and covered by every signature file; on top of it
an index must have exactly one signer, and that signer must be the pinned one.

API levels only matter to Android's package manager, not to the client's JAR check:
:data:`JAR_MIN_SDK` is the lowest level at which the v1 verifier accepts every
digest and signature algorithm a JAR signer writes (SHA-256 with RSA, DSA and EC).
"""

from __future__ import annotations

import os

from provenance.apk.algorithms import SDK_MAX
from provenance.apk.v1 import verify_v1
from provenance.apk.zip import ApkFile
from provenance.errors import ApkFormatError
from provenance.metadata.errors import IndexSignatureError, ListingError
from provenance.metadata.listing import normalize_sha256

JAR_MIN_SDK = 24


def read_signed_entry(
    path: str | os.PathLike[str], entry_name: str, fingerprint: str, limit: int
) -> bytes:
    """The bytes of ``entry_name`` in the JAR at ``path``, once its signature checks out.

    ``fingerprint`` is the pinned signer certificate SHA-256 (hex, any case, colons
    allowed). Raises :class:`IndexSignatureError` when the JAR is unsigned, does not
    verify, has several signers or another signer than the pinned one, and
    :class:`ListingError` when the JAR is unreadable or lacks the entry.
    """
    pin = normalize_sha256(fingerprint, "repository fingerprint")
    with ApkFile(path) as jar:
        try:
            result = verify_v1(jar, JAR_MIN_SDK, SDK_MAX, {}, frozenset())
        except ApkFormatError as e:
            raise ListingError(f"{path}: not a readable JAR: {e}") from None
        if not result.verified:
            problems = "; ".join(str(i) for i in result.all_errors()) or "unknown error"
            raise IndexSignatureError(f"{path}: JAR signature does not verify: {problems}")
        signers = [s.cert.sha256 for s in result.signers if s.cert is not None]
        if len(signers) != 1:
            raise IndexSignatureError(
                f"{path}: signed by {len(signers)} signers; an index has exactly one"
            )
        if signers[0] != pin:
            raise IndexSignatureError(
                f"{path}: signed by certificate SHA-256 {signers[0]}, "
                f"not by the pinned repository key {pin}"
            )
        record = jar.find(entry_name)
        if record is None:
            raise ListingError(f"{path}: signed JAR has no {entry_name}")
        try:
            return jar.read_entry(record, limit=limit)
        except ApkFormatError as e:
            raise ListingError(f"{path}: cannot read {entry_name}: {e}") from None
