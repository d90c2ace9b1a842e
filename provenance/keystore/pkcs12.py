"""PKCS#12 keystores (``.p12``, ``.pfx`` and the JDK's default ``.jks`` since Java 9).

``cryptography`` verifies the MAC and decrypts the certificate bags, but returns only
one private key; a keystore can hold several, chosen with ``--ks-key-alias``. So the
key bags (the JDK and OpenSSL store them in unencrypted ``data`` content, each key
shrouded on its own) are enumerated here with their ``friendlyName`` (the alias) and
decrypted one by one, and each key's chain is rebuilt from the certificates by public
key and issuer, the way the JDK's ``PKCS12KeyStore`` does.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs12

from provenance.apk import der
from provenance.errors import DerError, KeystoreError

OID_DATA = "1.2.840.113549.1.7.1"
OID_ENCRYPTED_DATA = "1.2.840.113549.1.7.6"
OID_KEY_BAG = "1.2.840.113549.1.12.10.1.1"
OID_SHROUDED_KEY_BAG = "1.2.840.113549.1.12.10.1.2"
OID_CERT_BAG = "1.2.840.113549.1.12.10.1.3"
OID_SAFE_CONTENTS_BAG = "1.2.840.113549.1.12.10.1.6"
OID_FRIENDLY_NAME = "1.2.840.113549.1.9.20"
OID_LOCAL_KEY_ID = "1.2.840.113549.1.9.21"

MAX_BAG_DEPTH = 4


@dataclass(frozen=True)
class KeyBag:
    """One private-key entry: its alias and (possibly encrypted) PKCS#8 bytes."""

    alias: str
    data: bytes
    encrypted: bool
    local_key_id: bytes | None


@dataclass(frozen=True)
class Pkcs12Store:
    """A PKCS#12 file opened with its store password (certificates decrypted)."""

    name: str
    keys: list[KeyBag]
    certificates: list[x509.Certificate]
    fallback_key: PrivateKeyTypes | None  # what cryptography picked

    @property
    def aliases(self) -> list[str]:
        """Aliases of the key entries, in file order."""
        return [k.alias for k in self.keys]


def looks_like_pkcs12(data: bytes) -> bool:
    """True when the bytes start like a PFX: SEQUENCE { INTEGER 3, ContentInfo, ... }."""
    try:
        pfx = der.parse(data, allow_trailing=True)
        if not pfx.is_(der.SEQUENCE) or not pfx.constructed:
            return False
        version = der.parse(data[pfx.content_start : pfx.content_end], allow_trailing=True)
        return version.is_(der.INTEGER) and der.read_integer(version) == 3
    except DerError:
        return False


def open_pkcs12(data: bytes, name: str, passwords: list[str]) -> tuple[Pkcs12Store, str]:
    """Open the store with the first password candidate that works; return it too."""
    key_bags = _key_bags(data, name)
    for password in passwords:
        try:
            loaded = pkcs12.load_pkcs12(data, password.encode("utf-8"))
        except ValueError:
            continue
        except Exception as e:  # cryptography raises various errors on odd input
            raise KeystoreError(f"cannot read PKCS#12 keystore {name}: {e}") from None
        certs: list[x509.Certificate] = []
        if loaded.cert is not None:
            certs.append(loaded.cert.certificate)
        certs.extend(c.certificate for c in loaded.additional_certs)
        if not key_bags and loaded.key is not None:
            alias = (
                loaded.cert.friendly_name.decode("utf-8", "replace")
                if loaded.cert is not None and loaded.cert.friendly_name
                else "1"
            )
            key_bags = [KeyBag(alias, b"", False, None)]
        return Pkcs12Store(name, key_bags, certs, loaded.key), password
    raise KeystoreError(
        f"cannot open PKCS#12 keystore {name}: wrong password "
        "(or the keystore is damaged or uses an unsupported integrity mode)"
    )


def decrypt_key(store: Pkcs12Store, bag: KeyBag, passwords: list[str]) -> PrivateKeyTypes | None:
    """The entry's private key, or None when no password candidate decrypts it."""
    if not bag.data:
        return store.fallback_key
    if not bag.encrypted:
        try:
            return serialization.load_der_private_key(bag.data, None)
        except (ValueError, TypeError) as e:
            raise KeystoreError(
                f"{store.name} entry {bag.alias!r}: malformed private key: {e}"
            ) from None
    for password in passwords:
        try:
            return serialization.load_der_private_key(bag.data, password.encode("utf-8"))
        except ValueError as e:
            if "password" in str(e).lower() or "decrypt" in str(e).lower():
                continue
            raise KeystoreError(
                f"{store.name} entry {bag.alias!r}: cannot read private key: {e}"
            ) from None
        except Exception as e:  # unsupported cipher and the like
            raise KeystoreError(
                f"{store.name} entry {bag.alias!r}: cannot read private key: {e}"
            ) from None
    return None


def build_chain(key: PrivateKeyTypes, certs: list[x509.Certificate]) -> list[x509.Certificate]:
    """The certificate of ``key`` followed by its issuers found among ``certs``."""
    fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    want = key.public_key().public_bytes(*fmt)
    leaf = next((c for c in certs if _spki(c) == want), None)
    if leaf is None:
        return []
    chain = [leaf]
    while len(chain) <= len(certs):
        cur = chain[-1]
        if cur.issuer == cur.subject:
            break
        issuer = next((c for c in certs if c.subject == cur.issuer and c not in chain), None)
        if issuer is None:
            break
        chain.append(issuer)
    return chain


def _spki(cert: x509.Certificate) -> bytes | None:
    try:
        return cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    except Exception:  # unsupported algorithm in an unrelated certificate
        return None


def _key_bags(data: bytes, name: str) -> list[KeyBag]:
    """Key bags found in the unencrypted parts of the AuthenticatedSafe."""
    try:
        pfx = der.parse(data, allow_trailing=True).expect(der.SEQUENCE)
        parts = pfx.children()
        if len(parts) < 2 or der.read_integer(parts[0]) != 3:
            raise DerError("not a version 3 PFX")
        auth_safe = parts[1].expect(der.SEQUENCE).children()
        if der.read_oid(auth_safe[0]) != OID_DATA:
            raise KeystoreError(
                f"PKCS#12 keystore {name} uses public-key integrity mode, which is not supported"
            )
        content = _explicit0(auth_safe[1])
        infos = der.parse(der.read_octets(content)).expect(der.SEQUENCE).children()
        bags: list[KeyBag] = []
        for info in infos:
            fields = info.expect(der.SEQUENCE).children()
            if der.read_oid(fields[0]) == OID_DATA and len(fields) > 1:
                safe = der.parse(der.read_octets(_explicit0(fields[1])))
                _collect(safe, bags, 0)
        return bags
    except (DerError, IndexError) as e:
        raise KeystoreError(f"{name} is not a readable PKCS#12 keystore: {e}") from None


def _collect(safe_contents: der.Element, out: list[KeyBag], depth: int) -> None:
    if depth > MAX_BAG_DEPTH:
        raise DerError("PKCS#12 bags nested too deep")
    for bag in safe_contents.expect(der.SEQUENCE).children():
        fields = bag.expect(der.SEQUENCE).children()
        bag_id = der.read_oid(fields[0])
        value = _explicit0(fields[1])
        if bag_id == OID_SAFE_CONTENTS_BAG:
            _collect(value, out, depth + 1)
            continue
        if bag_id not in (OID_KEY_BAG, OID_SHROUDED_KEY_BAG):
            continue
        alias: str | None = None
        local_id: bytes | None = None
        if len(fields) > 2:
            for attr in fields[2].expect(der.SET).children():
                a = attr.expect(der.SEQUENCE).children()
                oid = der.read_oid(a[0])
                values = a[1].expect(der.SET).children()
                if not values:
                    continue
                if oid == OID_FRIENDLY_NAME and values[0].is_(der.BMP_STRING):
                    alias = values[0].content.decode("utf-16-be", "replace")
                elif oid == OID_LOCAL_KEY_ID and values[0].is_(der.OCTET_STRING):
                    local_id = der.read_octets(values[0])
        if alias is None:
            alias = local_id.hex() if local_id else str(len(out) + 1)
        out.append(KeyBag(alias, der.to_der(value), bag_id == OID_SHROUDED_KEY_BAG, local_id))


def _explicit0(el: der.Element) -> der.Element:
    """The single value inside a ``[0] EXPLICIT`` wrapper."""
    el.expect(0, der.CLASS_CONTEXT)
    kids = el.children()
    if len(kids) != 1:
        raise DerError("malformed [0] EXPLICIT value")
    return kids[0]
