"""Signature and content-digest algorithms of the APK Signing Block schemes.

The IDs, the content digest each signature covers, and the API levels at which
Android accepts them are the reference's (apksig ``SignatureAlgorithm`` and
``ContentDigestAlgorithm``). Choosing which of a signer's signatures to verify
for a range of API levels follows ``getSignaturesToVerify``: per minimum API
level the strongest digest wins, and the range must be fully covered.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TypeVar

# API levels with a name in the rules.
SDK_N = 24
SDK_O = 26
SDK_P = 28
SDK_R = 30
SDK_T = 33
SDK_U = 34
#: Stand-in for "no upper bound" (the reference uses Integer.MAX_VALUE).
SDK_MAX = 0x7FFFFFFF


class ContentDigest(enum.Enum):
    """How the APK contents are digested for a signature."""

    CHUNKED_SHA256 = (1, "sha256", 32)
    CHUNKED_SHA512 = (2, "sha512", 64)
    VERITY_CHUNKED_SHA256 = (3, "sha256", 32)

    def __init__(self, ident: int, hash_name: str, size: int) -> None:
        self.ident = ident
        self.hash_name = hash_name
        self.size = size

    def __str__(self) -> str:
        return self.name

    @property
    def strength(self) -> int:
        """Ordering used to pick the best signature: SHA-256 < VERITY < SHA-512."""
        return {"CHUNKED_SHA256": 0, "VERITY_CHUNKED_SHA256": 1, "CHUNKED_SHA512": 2}[self.name]


@dataclass(frozen=True, slots=True)
class SignatureAlgorithm:
    """One APK Signing Block signature algorithm."""

    name: str
    id: int
    digest: ContentDigest
    key_type: str  # "RSA", "EC" or "DSA"
    hash_name: str  # hash used by the signature itself
    padding: str  # "pkcs1", "pss" or "" for EC/DSA
    min_sdk: int
    jca_min_sdk: int

    def __str__(self) -> str:
        return self.name


_ALGS = [
    SignatureAlgorithm(
        "RSA_PSS_WITH_SHA256",
        0x0101,
        ContentDigest.CHUNKED_SHA256,
        "RSA",
        "sha256",
        "pss",
        SDK_N,
        23,
    ),
    SignatureAlgorithm(
        "RSA_PSS_WITH_SHA512",
        0x0102,
        ContentDigest.CHUNKED_SHA512,
        "RSA",
        "sha512",
        "pss",
        SDK_N,
        23,
    ),
    SignatureAlgorithm(
        "RSA_PKCS1_V1_5_WITH_SHA256",
        0x0103,
        ContentDigest.CHUNKED_SHA256,
        "RSA",
        "sha256",
        "pkcs1",
        SDK_N,
        1,
    ),
    SignatureAlgorithm(
        "RSA_PKCS1_V1_5_WITH_SHA512",
        0x0104,
        ContentDigest.CHUNKED_SHA512,
        "RSA",
        "sha512",
        "pkcs1",
        SDK_N,
        1,
    ),
    SignatureAlgorithm(
        "ECDSA_WITH_SHA256", 0x0201, ContentDigest.CHUNKED_SHA256, "EC", "sha256", "", SDK_N, 11
    ),
    SignatureAlgorithm(
        "ECDSA_WITH_SHA512", 0x0202, ContentDigest.CHUNKED_SHA512, "EC", "sha512", "", SDK_N, 11
    ),
    SignatureAlgorithm(
        "DSA_WITH_SHA256", 0x0301, ContentDigest.CHUNKED_SHA256, "DSA", "sha256", "", SDK_N, 1
    ),
    SignatureAlgorithm(
        "VERITY_RSA_PKCS1_V1_5_WITH_SHA256",
        0x0421,
        ContentDigest.VERITY_CHUNKED_SHA256,
        "RSA",
        "sha256",
        "pkcs1",
        SDK_P,
        1,
    ),
    SignatureAlgorithm(
        "VERITY_ECDSA_WITH_SHA256",
        0x0423,
        ContentDigest.VERITY_CHUNKED_SHA256,
        "EC",
        "sha256",
        "",
        SDK_P,
        11,
    ),
    SignatureAlgorithm(
        "VERITY_DSA_WITH_SHA256",
        0x0425,
        ContentDigest.VERITY_CHUNKED_SHA256,
        "DSA",
        "sha256",
        "",
        SDK_P,
        1,
    ),
]
BY_ID: dict[int, SignatureAlgorithm] = {a.id: a for a in _ALGS}


def find_by_id(alg_id: int) -> SignatureAlgorithm | None:
    """The algorithm with this ID, or None when the reference does not know it."""
    return BY_ID.get(alg_id)


class NoSupportedSignatures(Exception):
    """No signature of a signer covers the requested API range."""


T = TypeVar("T")


def signatures_to_verify(
    sigs: list[tuple[SignatureAlgorithm, T]],
    min_sdk: int,
    max_sdk: int,
    *,
    only_jca: bool = False,
) -> list[tuple[SignatureAlgorithm, T]]:
    """The signatures Android would check somewhere in ``min_sdk..max_sdk``.

    Raises :class:`NoSupportedSignatures` when no signature applies, or when the
    oldest applicable one starts above ``min_sdk`` (older platforms would reject).
    """
    best: dict[int, tuple[SignatureAlgorithm, T]] = {}
    min_provided = SDK_MAX + 1
    for alg, payload in sigs:
        alg_min = alg.jca_min_sdk if only_jca else alg.min_sdk
        if alg_min > max_sdk:
            continue
        min_provided = min(min_provided, alg_min)
        cur = best.get(alg_min)
        if cur is None or alg.digest.strength > cur[0].digest.strength:
            best[alg_min] = (alg, payload)
    if min_sdk < min_provided:
        raise NoSupportedSignatures(
            f"Minimum provided signature version {min_provided} > minSdkVersion {min_sdk}"
        )
    if not best:
        raise NoSupportedSignatures("No supported signature")
    return sorted(best.values(), key=lambda p: p[0].id)
