"""apksigner's per-signer key options and the loader that turns them into a SignerKey.

Behaviour follows apksigner's ``SignerParams``: ``--ks`` excludes ``--key``/``--cert``;
without ``--ks-key-alias`` a keystore must hold exactly one key entry; the key password
defaults to the keystore password and, failing that, is prompted for; an encrypted
``--key`` prompts unless ``--key-pass`` is given. Two deliberate differences: the
keystore format is read from the bytes (the JDK writes PKCS#12 into ``.jks`` files and
``--ks-type`` only matters for PKCS11), and a certificate that does not match its
private key is an error here instead of a broken APK later.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding, load_der_private_key

from provenance.errors import KeystoreError
from provenance.keystore import files, pkcs11, pkcs12
from provenance.keystore import jks as jks_mod
from provenance.keystore.keys import PrivateKey, SignerKey, SoftwareSignerKey
from provenance.keystore.passwords import SPEC_STDIN, PasswordRetriever

SUPPORTED_KS_TYPES = ("PKCS12", "JKS", "JCEKS", "CASEEXACTJKS", "PKCS11")


@dataclass(frozen=True)
class SignerKeySpec:
    """One signer's key options, named after apksigner's flags.

    Password fields hold *specs* (``pass:...``, ``env:NAME``, ``file:PATH``,
    ``stdin``), never bare passwords, and are left out of ``repr``.
    """

    #: Used in prompts and messages: "Keystore password for signer #1".
    name: str = "signer #1"
    #: --ks: keystore file, "NONE" (PKCS#11 via --provider-arg) or a pkcs11: URI.
    ks: str | None = None
    ks_key_alias: str | None = None
    ks_pass: str | None = field(default=None, repr=False)
    key_pass: str | None = field(default=None, repr=False)
    #: --pass-encoding: an extra charset to try for non-ASCII passwords.
    pass_encoding: str | None = None
    #: --ks-type: only "PKCS11" changes anything; file formats are detected.
    ks_type: str | None = None
    #: --ks-provider-name / --ks-provider-class: JCA names, accepted and ignored.
    ks_provider_name: str | None = None
    ks_provider_class: str | None = None
    #: --ks-provider-arg, else the global --provider-arg: SunPKCS11 config, module path
    #: or pkcs11: URI for PKCS11 keystores.
    ks_provider_arg: str | None = None
    provider_arg: str | None = None
    #: --key / --cert: PKCS#8 private key and X.509 certificate chain files.
    key: str | None = None
    cert: str | None = None
    v1_signer_name: str | None = None
    #: PKCS#11 selection given directly (instead of --ks pkcs11:... or --ks NONE).
    pkcs11: pkcs11.Pkcs11Spec | None = None

    def __repr__(self) -> str:
        shown = {
            k: getattr(self, k)
            for k in (
                "name",
                "ks",
                "ks_key_alias",
                "ks_type",
                "ks_provider_arg",
                "provider_arg",
                "key",
                "cert",
                "v1_signer_name",
                "pkcs11",
            )
            if getattr(self, k) is not None
        }
        if isinstance(shown.get("ks"), str) and pkcs11.is_pkcs11_uri(shown["ks"]):
            shown["ks"] = _redact_uri(shown["ks"])
        for k in ("ks_provider_arg", "provider_arg"):
            if isinstance(shown.get(k), str) and pkcs11.is_pkcs11_uri(shown[k]):
                shown[k] = _redact_uri(shown[k])
        inner = ", ".join(f"{k}={v!r}" for k, v in shown.items())
        return f"SignerKeySpec({inner})"

    def is_pkcs11(self) -> bool:
        """True when this signer's key is on a PKCS#11 token."""
        return (
            self.pkcs11 is not None
            or (self.ks is not None and pkcs11.is_pkcs11_uri(self.ks))
            or (self.ks_type or "").upper() == "PKCS11"
        )


def _redact_uri(uri: str) -> str:
    """A pkcs11: URI with its pin-value hidden."""
    path, sep, query = uri.partition("?")
    if not sep:
        return uri
    kept = ["pin-value=***" if q.lower().startswith("pin-value=") else q for q in query.split("&")]
    return path + "?" + "&".join(kept)


def load_signer(spec: SignerKeySpec, retriever: PasswordRetriever | None = None) -> SignerKey:
    """Load one signer's certificates and key as apksigner would.

    Pass one ``retriever`` for all signers of a command so that ``file:`` and ``stdin``
    specs hand out successive lines (keystore password before key password, signer by
    signer); without one, a private retriever is used and closed.
    """
    if retriever is None:
        with PasswordRetriever() as own:
            return load_signer(spec, own)
    extra = (spec.pass_encoding,) if spec.pass_encoding else ()
    if spec.is_pkcs11():
        return _load_pkcs11(spec, retriever, extra)
    if spec.ks is not None:
        if spec.key is not None:
            raise KeystoreError("--ks and --key may not be specified at the same time")
        if spec.cert is not None:
            raise KeystoreError("--ks and --cert may not be specified at the same time")
        return _load_keystore(spec, spec.ks, retriever, extra)
    if spec.key is not None:
        return _load_key_files(spec, spec.key, retriever, extra)
    if spec.cert is not None:
        raise KeystoreError("private key file (--key) must be specified with --cert")
    raise KeystoreError(
        f"no key for {spec.name}: give a KeyStore (--ks), a private key file (--key) "
        "with its certificate (--cert), or a PKCS#11 token (--ks pkcs11:...)"
    )


def _check_private_key(key: PrivateKeyTypes, where: str) -> PrivateKey:
    if isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | dsa.DSAPrivateKey):
        return key
    raise KeystoreError(f"{where}: not an RSA, EC, or DSA private key ({type(key).__name__})")


def _load_key_files(
    spec: SignerKeySpec, key_path: str, retriever: PasswordRetriever, extra: tuple[str, ...]
) -> SignerKey:
    if spec.cert is None:
        raise KeystoreError("certificate file (--cert) must be specified with --key")
    certs = files.load_certificates(files.read_file(spec.cert, "certificate file"), spec.cert)
    blob = files.read_file(key_path, "private key file")
    if files.is_encrypted_pkcs8(blob):
        passwords = retriever.get_passwords(
            spec.key_pass or SPEC_STDIN, f"Private key password for {spec.name}", extra
        )
        key = files.load_private_key(blob, key_path, passwords)
        if key is None:
            raise KeystoreError(f"cannot decrypt private key {key_path}: wrong password?")
    else:
        if spec.key_pass is not None:
            raise KeystoreError(
                f"private key {key_path} is not encrypted, but --key-pass was given"
            )
        key = files.load_private_key(blob, key_path, None)
        assert key is not None
    private_key = _check_private_key(key, f"private key {key_path}")
    base = os.path.basename(key_path)
    name = spec.v1_signer_name or base.split(".", 1)[0]
    return SoftwareSignerKey(private_key, certs, name, f"key file {key_path}")


def _pick_alias(aliases: list[str], wanted: str | None, ks: str) -> str:
    if wanted is None:
        if not aliases:
            raise KeystoreError(f"{ks} does not contain key entries")
        if len(aliases) > 1:
            raise KeystoreError(
                f"{ks} contains multiple key entries ({', '.join(aliases)}): "
                "use --ks-key-alias to choose one"
            )
        return aliases[0]
    if wanted in aliases:
        return wanted
    # The JDK's JKS and PKCS12 keystores compare aliases case-insensitively.
    folded = [a for a in aliases if a.casefold() == wanted.casefold()]
    if len(folded) == 1:
        return folded[0]
    listing = ", ".join(aliases) if aliases else "none"
    raise KeystoreError(f"{ks} has no key entry {wanted!r}; key entries: {listing}")


def _load_keystore(
    spec: SignerKeySpec,
    ks: str,
    retriever: PasswordRetriever,
    extra: tuple[str, ...],
) -> SignerKey:
    ks_type = (spec.ks_type or "").upper() or None
    if ks == "NONE":
        raise KeystoreError("--ks NONE is only meaningful with --ks-type PKCS11")
    if ks_type is not None and ks_type not in SUPPORTED_KS_TYPES:
        raise KeystoreError(
            f"unsupported keystore type {spec.ks_type}: supported are PKCS12, JKS, JCEKS "
            "and PKCS11; convert others with keytool -importkeystore -deststoretype PKCS12"
        )
    data = files.read_file(ks, "keystore")
    jks_kind = jks_mod.jks_kind(data)
    if jks_kind is None and not pkcs12.looks_like_pkcs12(data):
        raise KeystoreError(
            f"{ks} is not a PKCS#12, JKS or JCEKS keystore (unrecognised or damaged); "
            "other types are not supported"
        )
    store_passwords = retriever.get_passwords(
        spec.ks_pass or SPEC_STDIN, f"Keystore password for {spec.name}", extra
    )

    def key_passwords(alias: str) -> list[str]:
        return retriever.get_passwords(
            SPEC_STDIN if spec.key_pass is None else spec.key_pass,
            f'Key "{alias}" password for {spec.name}',
            extra,
        )

    if jks_kind is not None:
        store, _ = jks_mod.open_jks(data, ks, store_passwords)
        alias = _pick_alias(store.aliases, spec.ks_key_alias, ks)
        first = key_passwords(alias) if spec.key_pass is not None else store_passwords
        try:
            pkcs8, chain = jks_mod.decrypt_entry(store, alias, first)
        except KeystoreError:
            if spec.key_pass is not None:
                raise
            pkcs8, chain = jks_mod.decrypt_entry(store, alias, key_passwords(alias))
        try:
            loaded = load_der_private_key(pkcs8, None)
        except (ValueError, TypeError) as e:
            raise KeystoreError(f"{ks} entry {alias!r}: malformed private key: {e}") from None
        key = _check_private_key(loaded, f"{ks} entry {alias!r}")
        if not chain:
            raise KeystoreError(f"{ks} entry {alias!r} does not contain certificates")
        kind = store.kind
    else:
        p12, _ = pkcs12.open_pkcs12(data, ks, store_passwords)
        alias = _pick_alias(p12.aliases, spec.ks_key_alias, ks)
        bag = next(b for b in p12.keys if b.alias == alias)
        first = key_passwords(alias) if spec.key_pass is not None else store_passwords
        loaded_key = pkcs12.decrypt_key(p12, bag, first)
        if loaded_key is None and spec.key_pass is None:
            loaded_key = pkcs12.decrypt_key(p12, bag, key_passwords(alias))
        if loaded_key is None:
            raise KeystoreError(
                f"failed to obtain key with alias {alias!r} from {ks}: wrong key password?"
            )
        key = _check_private_key(loaded_key, f"{ks} entry {alias!r}")
        certs = pkcs12.build_chain(key, p12.certificates)
        if not certs:
            raise KeystoreError(
                f"{ks} entry {alias!r} does not contain a certificate for its private key"
            )
        chain = [c.public_bytes(Encoding.DER) for c in certs]
        kind = "PKCS#12"
    name = spec.v1_signer_name or alias
    return SoftwareSignerKey(key, chain, name, f"{kind} keystore {ks}, alias {alias!r}")


def _load_pkcs11(
    spec: SignerKeySpec, retriever: PasswordRetriever, extra: tuple[str, ...]
) -> SignerKey:
    if spec.key is not None:
        raise KeystoreError("a PKCS#11 key and --key may not be specified at the same time")
    if spec.pkcs11 is not None:
        p11 = spec.pkcs11
    elif spec.ks is not None and pkcs11.is_pkcs11_uri(spec.ks):
        p11 = pkcs11.parse_pkcs11_uri(spec.ks)
    elif spec.ks in (None, "NONE"):
        arg = spec.ks_provider_arg or spec.provider_arg
        p11 = pkcs11.parse_provider_arg(arg) if arg else pkcs11.Pkcs11Spec()
    else:
        raise KeystoreError(
            "--ks-type PKCS11 needs --ks NONE (with --provider-arg) or --ks pkcs11:<URI>"
        )
    if p11.module is None and spec.ks_provider_arg and spec.pkcs11 is None:
        p11 = replace(p11, module=pkcs11.parse_provider_arg(spec.ks_provider_arg).module)
    certs = None
    if spec.cert is not None:
        certs = files.load_certificates(files.read_file(spec.cert, "certificate file"), spec.cert)
    pin_spec = spec.ks_pass or p11.pin_spec or SPEC_STDIN

    def get_pin(description: str) -> str:
        # One candidate only: each wrong PIN costs one of the token's retries.
        return retriever.get_passwords(pin_spec, f"{description} ({spec.name})", extra)[0]

    return pkcs11.open_pkcs11(
        p11,
        alias=spec.ks_key_alias,
        get_pin=get_pin,
        cert_chain=certs,
        v1_signer_name=spec.v1_signer_name,
    )
