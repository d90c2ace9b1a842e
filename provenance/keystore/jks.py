"""Legacy JKS and JCEKS keystores, read with pyjks (the ``jks`` extra).

Since Java 9 keytool writes PKCS#12 even into ``.jks`` files; these are the older
proprietary formats (magic ``FEEDFEED`` / ``CECECECE``). pyjks has no type hints, so it
is imported dynamically and everything it returns is checked here.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from provenance.errors import KeystoreError

MAGIC_JKS = b"\xfe\xed\xfe\xed"
MAGIC_JCEKS = b"\xce\xce\xce\xce"


@dataclass
class JksStore:
    """An opened JKS/JCEKS keystore: key entries by alias, still encrypted."""

    name: str
    kind: str  # "JKS" or "JCEKS"
    entries: dict[str, Any]  # alias -> jks.PrivateKeyEntry

    @property
    def aliases(self) -> list[str]:
        """Aliases of the key entries."""
        return list(self.entries)


def jks_kind(data: bytes) -> str | None:
    """The keystore kind ("JKS" or "JCEKS") from the magic number, else None."""
    if data.startswith(MAGIC_JKS):
        return "JKS"
    if data.startswith(MAGIC_JCEKS):
        return "JCEKS"
    return None


def _pyjks() -> ModuleType:
    try:
        return importlib.import_module("jks")
    except ImportError:
        raise KeystoreError(
            "reading legacy JKS/JCEKS keystores needs pyjks: "
            "pip install 'apk-provenance[jks]', or convert the keystore with "
            "keytool -importkeystore -deststoretype PKCS12"
        ) from None


def open_jks(data: bytes, name: str, passwords: list[str]) -> tuple[JksStore, str]:
    """Open and integrity-check the store with the first password candidate that works."""
    kind = jks_kind(data) or "JKS"
    jks = _pyjks()
    for password in passwords:
        try:
            ks = jks.KeyStore.loads(data, password, try_decrypt_keys=False)
        except jks.KeystoreSignatureException:
            continue
        except Exception as e:  # pyjks raises many unrelated types on bad input
            raise KeystoreError(f"{name} is not a readable {kind} keystore: {_what(e)}") from None
        entries = {str(a): e for a, e in ks.private_keys.items()}
        if ks.secret_keys and not entries:
            raise KeystoreError(f"{kind} keystore {name} holds only secret keys, no private key")
        return JksStore(name, kind, entries), password
    raise KeystoreError(f"cannot open {kind} keystore {name}: wrong password")


def decrypt_entry(store: JksStore, alias: str, passwords: list[str]) -> tuple[bytes, list[bytes]]:
    """(PKCS#8 DER, certificate chain DER) of an entry, or KeystoreError on bad password."""
    jks = _pyjks()
    entry = store.entries[alias]
    for password in passwords:
        try:
            entry.decrypt(password)
        except (jks.DecryptionFailureException, jks.BadPaddingException, jks.BadHashCheckException):
            continue
        except Exception as e:
            raise KeystoreError(
                f"{store.name} entry {alias!r}: cannot decrypt key: {_what(e)}"
            ) from None
        pkcs8 = entry.pkey_pkcs8
        chain = [bytes(c[1]) for c in entry.cert_chain if str(c[0]) == "X.509"]
        if not isinstance(pkcs8, bytes | bytearray):
            raise KeystoreError(f"{store.name} entry {alias!r}: unexpected key encoding")
        return bytes(pkcs8), chain
    raise KeystoreError(
        f"failed to obtain key with alias {alias!r} from {store.name}: wrong key password?"
    )


def _what(e: Exception) -> str:
    """A short description of a pyjks error (its messages never carry the password)."""
    msg = str(e).strip()
    return f"{type(e).__name__}: {msg}" if msg else type(e).__name__
