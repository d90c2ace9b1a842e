"""PKCS#11 tokens (HSMs, smart cards, SoftHSM2) via python-pkcs11 (the ``pkcs11`` extra).

The private key stays on the token: the message is hashed here and the token signs
the digest with a raw mechanism (``CKM_RSA_PKCS`` over a DigestInfo,
``CKM_RSA_PKCS_PSS``, ``CKM_ECDSA``, ``CKM_DSA``), which every token that can sign at
all supports, whatever hash the APK scheme wants.

A token and key are named three ways:

* an RFC 7512 URI as ``--ks`` (``pkcs11:token=apkprov;object=release?module-path=...``);
* apksigner's ``--ks NONE --ks-type PKCS11 --provider-arg token.cfg`` where the
  argument is a SunPKCS11 config file (its ``library``, ``slot``, ``slotListIndex``),
  an inline ``--library=...`` config, a module path or a URI, and ``--ks-key-alias``
  is the key's label;
* :class:`Pkcs11Spec` directly.

The module is, first found: the URI's ``module-path``/``module-name``, the config,
``$APKPROV_PKCS11_MODULE``, SoftHSM2's usual install paths. The PIN comes from
``--ks-pass``; exactly one PIN is tried, since every wrong one uses up a retry.
"""

from __future__ import annotations

import contextlib
import os
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from provenance.apk import der
from provenance.errors import KeystoreError
from provenance.keystore.keys import SignerKey, hash_algorithm

ENV_MODULE = "APKPROV_PKCS11_MODULE"
SOFTHSM2_MODULES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
    "/opt/homebrew/lib/softhsm/libsofthsm2.so",
)
_MODULE_DIRS = (
    "/usr/lib/x86_64-linux-gnu/pkcs11",
    "/usr/lib/aarch64-linux-gnu/pkcs11",
    "/usr/lib/pkcs11",
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib/softhsm",
    "/usr/lib",
    "/usr/local/lib",
)

# DER DigestInfo prefixes (RFC 8017 section 9.2 note 1): CKM_RSA_PKCS signs these + digest.
_DIGEST_INFO = {
    "md5": bytes.fromhex("3020300c06082a864886f70d020505000410"),
    "sha1": bytes.fromhex("3021300906052b0e03021a05000414"),
    "sha224": bytes.fromhex("302d300d06096086480165030402040500041c"),
    "sha256": bytes.fromhex("3031300d060960864801650304020105000420"),
    "sha384": bytes.fromhex("3041300d060960864801650304020205000430"),
    "sha512": bytes.fromhex("3051300d060960864801650304020305000440"),
}

_URI_PATH_ATTRS = {
    "token",
    "manufacturer",
    "serial",
    "model",
    "object",
    "type",
    "id",
    "slot-id",
    "slot-description",
    "slot-manufacturer",
    "library-manufacturer",
    "library-description",
    "library-version",
}
_URI_QUERY_ATTRS = {"pin-value", "pin-source", "module-name", "module-path"}


@dataclass(frozen=True)
class Pkcs11Spec:
    """Which module, token and key to use; unset fields match anything."""

    module: str | None = None
    token_label: str | None = None
    token_serial: str | None = None
    token_manufacturer: str | None = None
    token_model: str | None = None
    slot_id: int | None = None
    slot_index: int | None = None  # SunPKCS11 slotListIndex: position among present slots
    key_label: str | None = None
    key_id: bytes | None = None
    #: A password spec for the PIN from the URI (pin-value / pin-source); never shown.
    pin_spec: str | None = field(default=None, repr=False)

    def describe(self) -> str:
        """Token and key selection for messages (never the PIN)."""
        parts = []
        if self.token_label is not None:
            parts.append(f"token {self.token_label!r}")
        if self.token_serial is not None:
            parts.append(f"serial {self.token_serial!r}")
        if self.slot_id is not None:
            parts.append(f"slot {self.slot_id}")
        if self.slot_index is not None:
            parts.append(f"slot index {self.slot_index}")
        if self.key_label is not None:
            parts.append(f"key {self.key_label!r}")
        if self.key_id is not None:
            parts.append(f"id {self.key_id.hex()}")
        return ", ".join(parts) or "the only key on the only token"


def is_pkcs11_uri(text: str) -> bool:
    """True for an RFC 7512 ``pkcs11:`` URI."""
    return text[:7].lower() == "pkcs11:"


def parse_pkcs11_uri(uri: str) -> Pkcs11Spec:
    """Parse an RFC 7512 URI into a :class:`Pkcs11Spec`.

    Unknown standard attributes are rejected (the URI would otherwise select more than
    its author meant); vendor attributes (``x-...``) are ignored.
    """
    if not is_pkcs11_uri(uri):
        raise KeystoreError("not a PKCS#11 URI: it must start with 'pkcs11:'")
    body = uri[7:]
    path, _, query = body.partition("?")
    values: dict[str, bytes] = {}
    for part, seps, allowed in ((path, ";", _URI_PATH_ATTRS), (query, "&", _URI_QUERY_ATTRS)):
        for item in part.split(seps):
            if not item:
                continue
            name, eq, raw = item.partition("=")
            name = name.lower()
            if not eq:
                raise KeystoreError(
                    f"malformed PKCS#11 URI attribute {name!r}: expected name=value"
                )
            if name.startswith("x-"):
                continue
            if name not in allowed:
                raise KeystoreError(f"unsupported PKCS#11 URI attribute {name!r}")
            if name in values:
                raise KeystoreError(f"PKCS#11 URI attribute {name!r} given twice")
            values[name] = urllib.parse.unquote_to_bytes(raw)

    def text(name: str) -> str | None:
        v = values.get(name)
        return None if v is None else v.decode("utf-8", "replace")

    kind = text("type")
    if kind not in (None, "private", "cert"):
        raise KeystoreError(f"PKCS#11 URI type={kind} does not name a signing key")
    slot_id = text("slot-id")
    if slot_id is not None and not slot_id.isdigit():
        raise KeystoreError("PKCS#11 URI slot-id must be a decimal number")
    pin_value, pin_source = text("pin-value"), text("pin-source")
    if pin_value is not None and pin_source is not None:
        raise KeystoreError("PKCS#11 URI gives both pin-value and pin-source")
    pin_spec = None
    if pin_value is not None:
        pin_spec = "pass:" + pin_value
    elif pin_source is not None:
        src = pin_source[5:] if pin_source.startswith("file:") else pin_source
        pin_spec = "file:" + src
    module = text("module-path")
    if module is None and text("module-name") is not None:
        module = _find_module_by_name(text("module-name") or "")
    return Pkcs11Spec(
        module=module,
        token_label=text("token"),
        token_serial=text("serial"),
        token_manufacturer=text("manufacturer"),
        token_model=text("model"),
        slot_id=int(slot_id) if slot_id is not None else None,
        key_label=text("object"),
        key_id=values.get("id"),
        pin_spec=pin_spec,
    )


def parse_provider_arg(arg: str) -> Pkcs11Spec:
    """Map apksigner's ``--provider-arg`` for SunPKCS11 onto a :class:`Pkcs11Spec`.

    Accepts a SunPKCS11 config file, an inline ``--name=..`` config (JDK 9+), a
    ``pkcs11:`` URI or a module path.
    """
    if is_pkcs11_uri(arg):
        return parse_pkcs11_uri(arg)
    if arg.startswith("--"):
        return parse_sunpkcs11_config(arg[2:].replace("\\n", "\n"), "inline --provider-arg")
    if _is_shared_library(arg):
        return Pkcs11Spec(module=arg)
    try:
        with open(arg, encoding="utf-8", errors="replace") as f:
            text = f.read(1 << 20)
    except OSError as e:
        raise KeystoreError(
            f"cannot read PKCS#11 provider config {arg}: {e.strerror or e}"
        ) from None
    return parse_sunpkcs11_config(text, arg)


def parse_sunpkcs11_config(text: str, name: str) -> Pkcs11Spec:
    """The ``library``, ``slot`` and ``slotListIndex`` of a SunPKCS11 config."""
    found: dict[str, str] = {}
    depth = 0
    for raw_line in text.splitlines():
        line = raw_line.split("#", 1)[0].strip()
        if not line:
            continue
        if depth or line.endswith("{"):  # attributes(...) = { ... } blocks
            depth += line.count("{") - line.count("}")
            continue
        key, eq, value = line.partition("=")
        if not eq:
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        found[key.strip()] = value
    library = found.get("library")
    if library is None:
        raise KeystoreError(f"PKCS#11 provider config {name} has no 'library' line")
    slot = found.get("slot")
    index = found.get("slotListIndex")
    for label, v in (("slot", slot), ("slotListIndex", index)):
        if v is not None and not v.isdigit():
            raise KeystoreError(f"PKCS#11 provider config {name}: {label} must be a number")
    return Pkcs11Spec(
        module=library,
        slot_id=int(slot) if slot is not None else None,
        slot_index=int(index) if index is not None else None,
    )


def _is_shared_library(path: str) -> bool:
    if path.endswith((".so", ".dylib", ".dll")) or ".so." in os.path.basename(path):
        return True
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def _find_module_by_name(name: str) -> str:
    if "/" in name:
        raise KeystoreError("PKCS#11 URI module-name must be a name, not a path")
    for d in _MODULE_DIRS:
        for cand in (f"{name}.so", f"lib{name}.so", f"{name}"):
            p = os.path.join(d, cand)
            if os.path.isfile(p):
                return p
    raise KeystoreError(
        f"PKCS#11 module {name!r} not found in {', '.join(_MODULE_DIRS)}: use module-path"
    )


def resolve_module(module: str | None) -> str:
    """The PKCS#11 module to load: explicit, ``$APKPROV_PKCS11_MODULE``, then SoftHSM2."""
    if module:
        return module
    env = os.environ.get(ENV_MODULE)
    if env:
        return env
    for cand in SOFTHSM2_MODULES:
        if os.path.exists(cand):
            return cand
    raise KeystoreError(
        "no PKCS#11 module given and SoftHSM2 is not installed: give the module with "
        f"--provider-arg, a pkcs11: URI's module-path, or ${ENV_MODULE}"
    )


_LIBS: dict[str, Any] = {}
_LIBS_LOCK = threading.Lock()
# PKCS#11 login state is per token and process, and closing a logged-in session logs
# every session out: signers on one token share one session, closed with the last.
_SESSIONS: dict[tuple[str, int], list[Any]] = {}  # (module, slot) -> [session, users]
# One operation at a time per session; sessions are shared, so one lock for all.
_SIGN_LOCK = threading.Lock()


def _pkcs11() -> Any:
    try:
        import pkcs11
    except ImportError:
        raise KeystoreError(
            "PKCS#11 signing needs python-pkcs11: pip install 'apk-provenance[pkcs11]'"
        ) from None
    return pkcs11


def _load_lib(path: str) -> Any:
    """One loaded (and C_Initialize'd) module per path for the whole process."""
    pkcs11 = _pkcs11()
    with _LIBS_LOCK:
        lib = _LIBS.get(path)
        if lib is None:
            if not os.path.exists(path):
                raise KeystoreError(f"PKCS#11 module {path} does not exist")
            try:
                lib = pkcs11.lib(path)
            except Exception as e:
                raise KeystoreError(f"cannot load PKCS#11 module {path}: {e}") from None
            _LIBS[path] = lib
        return lib


def _token_desc(token: Any) -> str:
    return f"{token.label!r} (slot {token.slot.slot_id})"


def _select_token(lib: Any, spec: Pkcs11Spec, module: str) -> Any:
    pkcs11 = _pkcs11()
    try:
        slots = lib.get_slots(token_present=True)
    except pkcs11.PKCS11Error as e:
        raise KeystoreError(f"PKCS#11 module {module}: cannot list slots: {e!r}") from None
    tokens = []
    for i, slot in enumerate(slots):
        try:
            token = slot.get_token()
        except pkcs11.PKCS11Error:
            continue
        if not token.flags & pkcs11.TokenFlag.TOKEN_INITIALIZED:
            continue
        if spec.slot_id is not None and slot.slot_id != spec.slot_id:
            continue
        if spec.slot_index is not None and i != spec.slot_index:
            continue
        if spec.token_label is not None and token.label != spec.token_label:
            continue
        if spec.token_serial is not None and _serial(token) != spec.token_serial:
            continue
        if spec.token_manufacturer is not None and token.manufacturer_id != spec.token_manufacturer:
            continue
        if spec.token_model is not None and token.model != spec.token_model:
            continue
        tokens.append(token)
    if len(tokens) == 1:
        return tokens[0]
    every = []
    for slot in slots:
        try:
            every.append(_token_desc(slot.get_token()))
        except pkcs11.PKCS11Error:
            continue
    listing = ", ".join(every) or "none"
    if not tokens:
        raise KeystoreError(
            f"PKCS#11 token not found ({spec.describe()}) in module {module}; "
            f"tokens present: {listing}"
        )
    raise KeystoreError(
        f"several PKCS#11 tokens match in module {module} ({listing}): "
        "name one with the URI's token= or the config's slot"
    )


def _serial(token: Any) -> str:
    s = token.serial
    return s.decode("ascii", "replace").strip() if isinstance(s, bytes) else str(s).strip()


def _attr(obj: Any, attr: Any) -> Any:
    try:
        return obj[attr]
    except Exception:  # attribute absent or sensitive
        return None


def _key_desc(label: Any, key_id: Any) -> str:
    out = repr(label) if label else "(no label)"
    return out + (f" id {bytes(key_id).hex()}" if key_id else "")


def _select_key(session: Any, spec: Pkcs11Spec, alias: str | None, where: str) -> Any:
    pkcs11 = _pkcs11()
    A = pkcs11.Attribute
    keys = list(session.get_objects({A.CLASS: pkcs11.ObjectClass.PRIVATE_KEY}))
    label = spec.key_label if spec.key_label is not None else alias
    matches = [
        k
        for k in keys
        if (label is None or _attr(k, A.LABEL) == label)
        and (spec.key_id is None or _attr(k, A.ID) == spec.key_id)
    ]
    if not matches and label is not None and spec.key_id is None:
        # SunPKCS11 aliases are often the certificate's label: follow it to its ID.
        certs = session.get_objects({A.CLASS: pkcs11.ObjectClass.CERTIFICATE, A.LABEL: label})
        ids = {_attr(c, A.ID) for c in certs} - {None, b""}
        matches = [k for k in keys if _attr(k, A.ID) in ids]
    if len(matches) == 1:
        return matches[0]
    listing = ", ".join(_key_desc(_attr(k, A.LABEL), _attr(k, A.ID)) for k in keys) or "none"
    if not matches:
        raise KeystoreError(
            f"private key not found on {where} "
            f"({spec.describe() if label is None else repr(label)}); "
            f"private keys on the token: {listing}"
        )
    raise KeystoreError(
        f"{where} holds several private keys ({listing}): choose one with "
        "--ks-key-alias <label> or the URI's object=/id="
    )


class Pkcs11SignerKey(SignerKey):
    """A signer whose private key stays on a PKCS#11 token; ``sign`` runs on the token."""

    def __init__(
        self,
        session: Any,
        key: Any,
        certificates: list[bytes],
        v1_signer_name: str,
        source: str,
        pin: str | None,
    ) -> None:
        super().__init__(certificates, v1_signer_name, source)
        self._session = session
        self._key = key
        self._lock = threading.Lock()
        pkcs11 = _pkcs11()
        # Only keys marked CKA_ALWAYS_AUTHENTICATE need the PIN again at each signature.
        always = _attr(key, pkcs11.Attribute.ALWAYS_AUTHENTICATE)
        self._pin = pin if always else None
        self._check_matches_certificate()

    def __repr__(self) -> str:
        return f"<Pkcs11SignerKey {self.key_type}-{self.key_size} source={self.source!r}>"

    def close(self) -> None:
        """Release the token session (logged out and closed with its last user)."""
        with self._lock:
            if self._session is not None:
                _release_session(self._session)
                self._session = None

    def _check_matches_certificate(self) -> None:
        pkcs11 = _pkcs11()
        A = pkcs11.Attribute
        pub = self._public_key
        if isinstance(pub, rsa.RSAPublicKey):
            modulus = _attr(self._key, A.MODULUS)
            if modulus is not None and int.from_bytes(modulus, "big") != pub.public_numbers().n:
                raise KeystoreError(f"{self.source}: the certificate does not match the token key")
            return
        key_id = _attr(self._key, A.ID)
        if not key_id:
            return
        pubs = list(
            self._session.get_objects({A.CLASS: pkcs11.ObjectClass.PUBLIC_KEY, A.ID: key_id})
        )
        if len(pubs) != 1:
            return  # no public object to compare with; the token signs, a verifier will tell
        if isinstance(pub, ec.EllipticCurvePublicKey):
            point = _attr(pubs[0], A.EC_POINT)
            if point is None:
                return
            raw = pub.public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
            )
            # CKA_EC_POINT is a DER OCTET STRING around the point; some tokens omit it.
            if bytes(point) not in (raw, der.encode_tlv(b"\x04", raw)):
                raise KeystoreError(f"{self.source}: the certificate does not match the token key")
        elif isinstance(pub, dsa.DSAPublicKey):
            y = _attr(pubs[0], A.VALUE)
            if y is not None and int.from_bytes(y, "big") != pub.public_numbers().y:
                raise KeystoreError(f"{self.source}: the certificate does not match the token key")

    def _sign(self, data: bytes, hash_name: str, padding: str, deterministic: bool) -> bytes:
        pkcs11 = _pkcs11()
        M = pkcs11.Mechanism
        if deterministic:
            raise KeystoreError(
                f"{self.source}: deterministic DSA needs the private key in software; "
                "a PKCS#11 token picks its own nonce"
            )
        algo = hash_algorithm(hash_name)
        h = hashes.Hash(algo)
        h.update(data)
        digest = h.finalize()
        kwargs: dict[str, Any] = {}
        if self._pin is not None:
            kwargs["pin"] = self._pin
        pub = self._public_key
        if isinstance(pub, rsa.RSAPublicKey):
            if padding == "pss":
                mech = {
                    "sha1": (M.SHA_1, pkcs11.MGF.SHA1),
                    "sha224": (M.SHA224, pkcs11.MGF.SHA224),
                    "sha256": (M.SHA256, pkcs11.MGF.SHA256),
                    "sha384": (M.SHA384, pkcs11.MGF.SHA384),
                    "sha512": (M.SHA512, pkcs11.MGF.SHA512),
                }.get(hash_name)
                if mech is None:
                    raise KeystoreError(f"{self.source}: RSA-PSS with {hash_name} is not supported")
                kwargs.update(
                    mechanism=M.RSA_PKCS_PSS, mechanism_param=(mech[0], mech[1], len(digest))
                )
                return self._token_sign(digest, kwargs)
            kwargs["mechanism"] = M.RSA_PKCS
            return self._token_sign(_DIGEST_INFO[hash_name] + digest, kwargs)
        if isinstance(pub, ec.EllipticCurvePublicKey):
            n = (pub.curve.key_size + 7) // 8
            kwargs["mechanism"] = M.ECDSA
            raw = self._token_sign(digest[:n] if len(digest) > n else digest, kwargs)
        else:
            assert isinstance(pub, dsa.DSAPublicKey)
            q = pub.parameters().parameter_numbers().q
            n = (q.bit_length() + 7) // 8
            kwargs["mechanism"] = M.DSA
            raw = self._token_sign(digest[:n] if len(digest) > n else digest, kwargs)
        if len(raw) % 2:
            raise KeystoreError(f"{self.source}: the token returned a malformed signature")
        half = len(raw) // 2
        return encode_dss_signature(
            int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big")
        )

    def _token_sign(self, payload: bytes, kwargs: dict[str, Any]) -> bytes:
        pkcs11 = _pkcs11()
        with self._lock, _SIGN_LOCK:
            if self._session is None:
                raise KeystoreError(f"{self.source}: the token session is closed")
            try:
                return bytes(self._key.sign(payload, **kwargs))
            except pkcs11.PKCS11Error as e:
                raise KeystoreError(
                    f"{self.source}: the token refused to sign ({type(e).__name__})"
                ) from None


def open_pkcs11(
    spec: Pkcs11Spec,
    *,
    alias: str | None,
    get_pin: Callable[[str], str],
    cert_chain: list[bytes] | None,
    v1_signer_name: str | None,
) -> Pkcs11SignerKey:
    """Open a session on the token, log in and find the key and its certificate."""
    pkcs11 = _pkcs11()
    A = pkcs11.Attribute
    module = resolve_module(spec.module)
    lib = _load_lib(module)
    token = _select_token(lib, spec, module)
    where = f"PKCS#11 token {token.label!r}"
    pin: str | None = None
    if token.flags & pkcs11.TokenFlag.LOGIN_REQUIRED:
        # Read even when a session is shared, so file:/stdin lines stay in step.
        pin = get_pin(f"PIN for {where}")
    session = _acquire_session(module, token, pin, where)
    try:
        key = _select_key(session, spec, alias, where)
        label = _attr(key, A.LABEL)
        key_id = _attr(key, A.ID)
        source = f"{where}, key {_key_desc(label, key_id)}"
        if cert_chain is None:
            cert_chain = _token_chain(session, key_id, label, source)
        name = v1_signer_name or alias or label or (bytes(key_id).hex() if key_id else "pkcs11")
        return Pkcs11SignerKey(session, key, cert_chain, name, source, pin)
    except BaseException:
        _release_session(session)
        raise


def _acquire_session(module: str, token: Any, pin: str | None, where: str) -> Any:
    pkcs11 = _pkcs11()
    slot = (module, int(token.slot.slot_id))
    with _LIBS_LOCK:
        entry = _SESSIONS.get(slot)
        if entry is not None:
            entry[1] += 1
            return entry[0]
    try:
        session = token.open(user_pin=pin)
    except pkcs11.PinIncorrect:
        raise KeystoreError(f"wrong PIN for {where}") from None
    except pkcs11.PinLocked:
        raise KeystoreError(f"the PIN of {where} is locked: too many wrong PINs") from None
    except (pkcs11.PinLenRange, pkcs11.PinInvalid):
        raise KeystoreError(f"the PIN given for {where} has an invalid length or form") from None
    except pkcs11.PKCS11Error as e:
        raise KeystoreError(f"cannot log in to {where}: {type(e).__name__}") from None
    with _LIBS_LOCK:
        _SESSIONS[slot] = [session, 1]
    return session


def _release_session(session: Any) -> None:
    with _LIBS_LOCK:
        for slot, entry in list(_SESSIONS.items()):
            if entry[0] is session:
                entry[1] -= 1
                if entry[1] > 0:
                    return
                del _SESSIONS[slot]
                break
    with contextlib.suppress(Exception):  # already closed, token removed
        session.close()


def _token_chain(session: Any, key_id: Any, label: Any, source: str) -> list[bytes]:
    """The key's certificate (same CKA_ID, else same label) and its issuers on the token."""
    pkcs11 = _pkcs11()
    A = pkcs11.Attribute
    everything = []
    for obj in session.get_objects({A.CLASS: pkcs11.ObjectClass.CERTIFICATE}):
        value = _attr(obj, A.VALUE)
        if value:
            everything.append((_attr(obj, A.ID), _attr(obj, A.LABEL), bytes(value)))
    own = [v for i, _, v in everything if key_id and i == key_id]
    if not own:
        own = [v for _, lb, v in everything if label and lb == label]
    if not own:
        raise KeystoreError(
            f"{source}: no certificate with the key's ID on the token; give one with --cert"
        )
    chain = [own[0]]
    parsed = []
    for _, _, v in everything:
        try:
            parsed.append((x509.load_der_x509_certificate(v), v))
        except ValueError:
            continue
    try:
        cur = x509.load_der_x509_certificate(own[0])
    except ValueError as e:
        raise KeystoreError(f"{source}: the token's certificate is malformed: {e}") from None
    while cur.issuer != cur.subject and len(chain) <= len(parsed):
        nxt = next((p for p in parsed if p[0].subject == cur.issuer and p[1] not in chain), None)
        if nxt is None:
            break
        chain.append(nxt[1])
        cur = nxt[0]
    return chain
