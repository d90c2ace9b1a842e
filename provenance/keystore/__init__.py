"""Signing keys for ``apkprov sign``, given the way apksigner takes them.

Sources: a PKCS#8 key with its certificates (``--key``/``--cert``), a PKCS#12, JKS or
JCEKS keystore (``--ks``), or a PKCS#11 token (``--ks pkcs11:...`` or apksigner's
``--ks NONE --ks-type PKCS11 --provider-arg cfg``). Passwords use apksigner's specs.
:func:`load_signer` returns a :class:`SignerKey`, the only thing the APK signer needs.
See ``docs/keys.md``.
"""

from __future__ import annotations

from provenance.errors import KeystoreError
from provenance.keystore.keys import (
    HASH_NAMES,
    PADDINGS,
    KeyType,
    SignerKey,
    SoftwareSignerKey,
    deterministic_dsa_sign,
)
from provenance.keystore.loader import SignerKeySpec, load_signer
from provenance.keystore.passwords import (
    SPEC_STDIN,
    PasswordRetriever,
    parse_password_spec,
    password_candidates,
)
from provenance.keystore.pkcs11 import (
    ENV_MODULE,
    Pkcs11SignerKey,
    Pkcs11Spec,
    parse_pkcs11_uri,
    parse_provider_arg,
)

__all__ = [
    "ENV_MODULE",
    "HASH_NAMES",
    "PADDINGS",
    "SPEC_STDIN",
    "KeyType",
    "KeystoreError",
    "PasswordRetriever",
    "Pkcs11SignerKey",
    "Pkcs11Spec",
    "SignerKey",
    "SignerKeySpec",
    "SoftwareSignerKey",
    "deterministic_dsa_sign",
    "load_signer",
    "parse_password_spec",
    "parse_pkcs11_uri",
    "parse_provider_arg",
    "password_candidates",
]
