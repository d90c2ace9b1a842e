"""``apkprov sign``: sign an APK with ``apksigner sign``'s options and defaults.

Options keep apksigner's names and forms: ``--name value`` or ``--name=value``,
booleans that take an optional ``true``/``false``, per-signer key options separated
by ``--next-signer``, the input APK as ``--in`` or the last argument, in-place
signing without ``--out``. Heavy imports happen in :func:`run` so that other
commands start fast. Exit codes: 0 signed, 2 usage or input error (nothing written).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from provenance.errors import InputError, KeystoreError, ProvenanceError

if TYPE_CHECKING:
    from provenance.apk.sign_block import SignerKey

#: Per-signer key options: flag -> SignerKeySpec field.
KEY_OPTIONS = {
    "--ks": "ks",
    "--ks-key-alias": "ks_key_alias",
    "--ks-pass": "ks_pass",
    "--key-pass": "key_pass",
    "--pass-encoding": "pass_encoding",
    "--ks-type": "ks_type",
    "--ks-provider-name": "ks_provider_name",
    "--ks-provider-class": "ks_provider_class",
    "--ks-provider-arg": "ks_provider_arg",
    "--key": "key",
    "--cert": "cert",
}


# -- apksigner-style options on argparse -------------------------------------------------


def parse_bool(text: str, option: str) -> bool:
    """apksigner's boolean values: exactly ``true`` or ``false``."""
    if text == "true":
        return True
    if text == "false":
        return False
    raise InputError(f"Unsupported value for {option}: {text}. Only true or false supported.")


class OptionalBool(argparse.Action):
    """``--flag`` (true), ``--flag true|false``; any other following word is not ours.

    apksigner only consumes a following ``true``/``false``; a different word (the
    input APK, say) stays a positional argument, kept in ``ns.extra_positionals``.
    """

    def __init__(self, option_strings: Sequence[str], dest: str, **kw: Any) -> None:
        self.extra_values: tuple[str, ...] = tuple(kw.pop("extra_values", ()))
        kw.setdefault("nargs", "?")
        kw.setdefault("metavar", "true|false")
        super().__init__(option_strings, dest, **kw)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        ns: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        value: Any = True
        if isinstance(values, str):
            if values in ("true", "false"):
                value = values == "true"
            elif values in self.extra_values:
                value = values
            else:
                extra = getattr(ns, "extra_positionals", None) or []
                extra.append(values)
                ns.extra_positionals = extra
        target = _current(ns) if getattr(self, "per_signer", False) else None
        if target is not None:
            target[self.dest] = value
        else:
            setattr(ns, self.dest, value)


class SignerOption(argparse.Action):
    """A per-signer option: stored in the current signer's dict."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        ns: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        cur = _current(ns)
        if cur is None:
            raise InputError(f"{option_string} must follow a signer option such as --old-signer")
        cur[self.dest] = values


class CapabilityOption(OptionalBool):
    """``--set-installed-data [true|false]`` and friends (rotate and lineage)."""

    per_signer = True


class NewSigner(argparse.Action):
    """``--next-signer`` / ``--old-signer`` / ``--new-signer`` / ``--signer``: a new group."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kw: Any) -> None:
        self.slot: str = kw.pop("slot", "list")
        kw["nargs"] = 0
        super().__init__(option_strings, dest, **kw)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        ns: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        signers = _signers(ns)
        if self.slot == "list":
            if signers and not signers[-1]:
                return  # apksigner: an empty signer is not started twice
            new: dict[str, Any] = {}
            signers.append(new)
        else:
            new = {"_slot": self.slot}
            signers.append(new)
        ns._current = new


def _signers(ns: argparse.Namespace) -> list[dict[str, Any]]:
    signers: list[dict[str, Any]] | None = getattr(ns, "signer_groups", None)
    if signers is None:
        signers = []
        ns.signer_groups = signers
    return signers


def _current(ns: argparse.Namespace) -> dict[str, Any] | None:
    cur: dict[str, Any] | None = getattr(ns, "_current", None)
    if cur is None and getattr(ns, "_implicit_signer", False):
        cur = {}
        _signers(ns).append(cur)
        ns._current = cur
    return cur


def add_key_options(p: argparse.ArgumentParser) -> None:
    """The per-signer key and certificate options of apksigner."""
    helps = {
        "--ks": "KeyStore file (PKCS#12, JKS, JCEKS), NONE or pkcs11: URI",
        "--ks-key-alias": "alias of the key in the KeyStore",
        "--ks-pass": "KeyStore password: pass:<pw>, env:<name>, file:<path> or stdin",
        "--key-pass": "key password (same forms as --ks-pass)",
        "--pass-encoding": "extra character encoding to try for non-ASCII passwords",
        "--ks-type": "KeyStore type (PKCS11 for a token; file formats are detected)",
        "--ks-provider-name": "accepted for compatibility; ignored",
        "--ks-provider-class": "accepted for compatibility; ignored",
        "--ks-provider-arg": "PKCS#11 module or configuration",
        "--key": "PKCS#8 private key file (DER or PEM)",
        "--cert": "X.509 certificate (chain) file, PEM or DER",
    }
    for flag, dest in KEY_OPTIONS.items():
        p.add_argument(
            flag,
            dest=dest,
            action=SignerOption,
            default=argparse.SUPPRESS,
            metavar="VALUE",
            help=helps[flag],
        )


# -- loading keys ------------------------------------------------------------------------


@dataclass
class _FileKey:
    """Fallback PKCS#8 + certificate key, used only when provenance.keystore is absent."""

    certificates: list[bytes]
    key_type: str
    key_size: int
    public_key_spki: bytes
    v1_signer_name: str
    private: Any

    def sign(self, data: bytes, hash_name: str, padding: str) -> bytes:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa
        from cryptography.hazmat.primitives.asymmetric import padding as pad

        kinds: dict[str, Any] = {
            "sha1": hashes.SHA1,
            "sha256": hashes.SHA256,
            "sha512": hashes.SHA512,
        }
        h: Any = kinds[hash_name]()
        k = self.private
        if isinstance(k, rsa.RSAPrivateKey):
            p: Any = pad.PKCS1v15() if padding == "pkcs1" else pad.PSS(pad.MGF1(h), h.digest_size)
            return bytes(k.sign(data, p, h))
        if isinstance(k, ec.EllipticCurvePrivateKey):
            return bytes(k.sign(data, ec.ECDSA(h)))
        if isinstance(k, dsa.DSAPrivateKey):
            return bytes(k.sign(data, h))
        raise KeystoreError("unsupported private key type")


def _fallback_load(fields: dict[str, Any]) -> SignerKey:
    import os

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa

    key_path = fields.get("key")
    cert_path = fields.get("cert")
    if fields.get("ks") or not key_path or not cert_path:
        raise KeystoreError("this installation can only load --key with --cert (no keystore)")
    try:
        key_data = open(key_path, "rb").read()  # noqa: SIM115
        cert_data = open(cert_path, "rb").read()  # noqa: SIM115
    except OSError as e:
        raise KeystoreError(f"cannot read {e.filename}: {e.strerror}") from None
    password = None
    spec = fields.get("key_pass")
    if spec:
        if spec.startswith("pass:"):
            password = spec[5:].encode()
        elif spec.startswith("env:"):
            password = os.environ.get(spec[4:], "").encode()
        else:
            raise KeystoreError("only pass: and env: password specs are supported here")
    try:
        if key_data.startswith(b"-----"):
            priv: Any = serialization.load_pem_private_key(key_data, password)
        else:
            priv = serialization.load_der_private_key(key_data, password)
        if cert_data.lstrip().startswith(b"-----"):
            chain = [
                c.public_bytes(serialization.Encoding.DER)
                for c in x509.load_pem_x509_certificates(cert_data)
            ]
        else:
            chain = [cert_data]
    except (ValueError, TypeError) as e:
        raise KeystoreError(f"cannot load key or certificate: {e}") from None
    if isinstance(priv, rsa.RSAPrivateKey):
        kind, size = "RSA", priv.key_size
    elif isinstance(priv, ec.EllipticCurvePrivateKey):
        kind, size = "EC", priv.curve.key_size
    elif isinstance(priv, dsa.DSAPrivateKey):
        kind, size = "DSA", priv.key_size
    else:
        raise KeystoreError("unsupported private key type")
    spki = (
        x509.load_der_x509_certificate(chain[0])
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    name = fields.get("v1_signer_name") or os.path.basename(key_path).split(".", 1)[0]
    return _FileKey(chain, kind, size, spki, name, priv)


class KeyLoader:
    """Loads signers through ``provenance.keystore`` (one password retriever for all)."""

    def __init__(self) -> None:
        self._retriever: Any = None
        try:
            from provenance import keystore
        except ImportError:
            self._ks: Any = None
        else:
            self._ks = keystore
            self._retriever = keystore.PasswordRetriever()

    def load(self, fields: dict[str, Any], name: str) -> SignerKey:
        """One signer from its option dict."""
        known = {k: v for k, v in fields.items() if k in set(KEY_OPTIONS.values())}
        if "v1_signer_name" in fields:
            known["v1_signer_name"] = fields["v1_signer_name"]
        if not any(k in known for k in ("ks", "key", "cert")):
            raise InputError(f"{name}: no key given (--ks, or --key with --cert)")
        if self._ks is None:
            return _fallback_load(known)
        spec = self._ks.SignerKeySpec(name=name, **known)
        key: SignerKey = self._ks.load_signer(spec, self._retriever)
        return key

    def close(self) -> None:
        """Close password files."""
        if self._retriever is not None:
            self._retriever.close()


class _DeterministicDsa:
    """Wraps a key so that DSA signatures use RFC 6979 (``--deterministic-dsa-signing``)."""

    def __init__(self, key: SignerKey) -> None:
        self._key = key

    def __getattr__(self, name: str) -> Any:
        return getattr(self._key, name)

    def sign(self, data: bytes, hash_name: str, padding: str) -> bytes:
        if self._key.key_type != "DSA":
            return self._key.sign(data, hash_name, padding)
        try:
            out: bytes = self._key.sign(data, hash_name, padding, deterministic=True)  # type: ignore[call-arg]
        except TypeError:
            raise InputError(
                "--deterministic-dsa-signing needs keys loaded by provenance.keystore"
            ) from None
        return out


# -- the command -------------------------------------------------------------------------


def register(sub: Any) -> None:
    """Add the ``sign`` command."""
    p = sub.add_parser(
        "sign",
        help="sign an APK like apksigner (v1, v2, v3, v3.1, v4)",
        description="Sign an APK exactly as apksigner does; options are apksigner's.",
    )
    p.set_defaults(func=run, _implicit_signer=True, extra_positionals=None)
    p.add_argument("apk", nargs="?", metavar="APK", help="input APK (or --in)")
    p.add_argument("--in", dest="input", metavar="APK", help="input APK")
    p.add_argument("--out", metavar="APK", help="output APK (default: sign in place)")
    p.add_argument("-v", "--verbose", action=OptionalBool, default=False, help="say Signed")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    for scheme in ("v1", "v2", "v3"):
        p.add_argument(
            f"--{scheme}-signing-enabled",
            dest=scheme,
            action=OptionalBool,
            default=None,
            help=f"sign with {scheme} (default true)",
        )
    p.add_argument(
        "--v4-signing-enabled",
        dest="v4",
        action=OptionalBool,
        default=None,
        extra_values=("only",),
        metavar="true|false|only",
        help="write <out>.idsig (default true; 'only': just the .idsig)",
    )
    p.add_argument("--min-sdk-version", type=int, metavar="N", help="lowest API level")
    p.add_argument("--max-sdk-version", type=int, metavar="N", help="highest API level")
    p.add_argument("--lineage", metavar="FILE", help="lineage file or signed APK")
    p.add_argument(
        "--rotation-min-sdk-version",
        type=int,
        metavar="N",
        help="API level from which the rotated key signs (default 33, v3.1)",
    )
    p.add_argument(
        "--rotation-targets-dev-release",
        action=OptionalBool,
        default=False,
        help="rotation targets the platform under development",
    )
    p.add_argument(
        "--alignment-preserved",
        action=OptionalBool,
        default=False,
        help="keep the input's alignment (default false)",
    )
    p.add_argument(
        "--lib-page-alignment",
        type=int,
        metavar="BYTES",
        default=16384,
        help="alignment of stored native libraries (default 16384)",
    )
    p.add_argument(
        "--verity-enabled",
        action=OptionalBool,
        default=False,
        help="add VERITY signatures to v2/v3",
    )
    p.add_argument("--align-file-size", action="store_true", help="pad the file to 4 KiB")
    p.add_argument(
        "--debuggable-apk-permitted",
        action=OptionalBool,
        default=True,
        help="allow signing android:debuggable APKs (default true)",
    )
    p.add_argument(
        "--deterministic-dsa-signing",
        action=OptionalBool,
        default=False,
        help="RFC 6979 DSA signatures",
    )
    p.add_argument("--next-signer", action=NewSigner, help="start the next signer's options")
    p.add_argument(
        "--stamp-signer",
        action=NewSigner,
        slot="stamp",
        help="the following key options are the source stamp key (RSA)",
    )
    p.add_argument("--stamp-lineage", metavar="FILE", help="lineage of the source stamp key")
    p.add_argument(
        "--force-stamp-overwrite",
        action=OptionalBool,
        default=False,
        help="replace an input stamp-cert-sha256 naming another stamp certificate",
    )
    add_key_options(p)
    p.add_argument(
        "--v1-signer-name",
        dest="v1_signer_name",
        action=SignerOption,
        default=argparse.SUPPRESS,
        metavar="NAME",
        help="JAR signature file basename of this signer",
    )
    p.add_argument(
        "--signer-for-min-sdk-version",
        dest="signer_min_sdk",
        action=_TargetedSigner,
        metavar="N",
        help="this signer signs v3.1 from API level N on",
    )
    p.add_argument(
        "--signer-lineage",
        dest="signer_lineage",
        action=SignerOption,
        default=argparse.SUPPRESS,
        metavar="FILE",
        help="lineage of this SDK-targeted signer",
    )


class _TargetedSigner(argparse.Action):
    """``--signer-for-min-sdk-version N`` starts a new signer targeting API level N."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        ns: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        signers = _signers(ns)
        cur = getattr(ns, "_current", None)
        if cur or cur is None:
            cur = {}
            signers.append(cur)
        ns._current = cur
        try:
            cur["signer_min_sdk"] = int(values)
        except ValueError:
            raise InputError(f"{option_string} needs an integer, got {values!r}") from None


def _input_path(args: argparse.Namespace) -> str:
    extra = list(args.extra_positionals or [])
    positional = [a for a in ([args.apk] if args.apk else []) + extra]
    if args.input is not None:
        if positional:
            raise InputError(f"Unexpected parameter(s) after options: {positional[0]}")
        return str(args.input)
    if not positional:
        raise InputError("Missing input APK")
    if len(positional) > 1:
        raise InputError(f"Unexpected parameter(s) after input APK ({positional[1]})")
    return str(positional[0])


def run(args: argparse.Namespace) -> int:
    """Sign; print ``Signed`` with ``-v``, the result with ``--json``."""
    try:
        return _run(args)
    except ProvenanceError as e:
        print(f"apkprov sign: {e}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    from provenance.apk.sign import Signer, StampSigner, read_lineage, sign_apk

    all_groups = [g for g in _signers(args) if g]
    groups = [g for g in all_groups if g.get("_slot") != "stamp"]
    stamp_groups = [g for g in all_groups if g.get("_slot") == "stamp"]
    if len(stamp_groups) > 1:
        raise InputError("--stamp-signer may be given only once")
    if args.stamp_lineage is not None and not stamp_groups:
        raise InputError("--stamp-lineage needs --stamp-signer")
    if not groups:
        raise InputError("At least one signer must be specified")
    inp = _input_path(args)
    if (
        args.min_sdk_version is not None
        and args.max_sdk_version is not None
        and args.min_sdk_version > args.max_sdk_version
    ):
        raise InputError(
            f"Min API Level ({args.min_sdk_version}) > max API Level ({args.max_sdk_version})"
        )
    loader = KeyLoader()
    signers: list[Signer] = []
    try:
        for i, g in enumerate(groups, 1):
            key = loader.load(g, f"signer #{i}")
            if args.deterministic_dsa_signing:
                key = _DeterministicDsa(key)
            name = (
                g.get("v1_signer_name")
                or g.get("ks_key_alias")
                or getattr(key, "v1_signer_name", None)
            )
            lineage = read_lineage(g["signer_lineage"]) if "signer_lineage" in g else None
            signers.append(Signer(key, name, int(g.get("signer_min_sdk", 0)), lineage))
        stamp: StampSigner | None = None
        if stamp_groups:
            stamp_key = loader.load(stamp_groups[0], "stamp signer")
            stamp_lineage = (
                read_lineage(args.stamp_lineage) if args.stamp_lineage is not None else None
            )
            stamp = StampSigner(stamp_key, stamp_lineage)
    except KeystoreError as e:
        raise InputError(f"Failed to load signer: {e}") from None
    finally:
        loader.close()
    v4: Any = args.v4
    res = sign_apk(
        inp,
        args.out,
        signers,
        v1=args.v1 is not False,
        v2=args.v2 is not False,
        v3=args.v3 is not False,
        v4=v4,
        min_sdk=args.min_sdk_version,
        max_sdk=args.max_sdk_version,
        lineage=args.lineage,
        rotation_min_sdk=args.rotation_min_sdk_version,
        rotation_targets_dev_release=bool(args.rotation_targets_dev_release),
        alignment_preserved=bool(args.alignment_preserved),
        lib_page_alignment=args.lib_page_alignment,
        verity=bool(args.verity_enabled),
        align_file_size=bool(args.align_file_size),
        debuggable_apk_permitted=bool(args.debuggable_apk_permitted),
        stamp=stamp,
        force_stamp_overwrite=bool(args.force_stamp_overwrite),
    )
    if args.json:
        print(json.dumps(res.to_json(), separators=(",", ":")))
    elif args.verbose:
        print("Signed")
    return 0
