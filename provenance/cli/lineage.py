"""``apkprov lineage`` and ``apkprov rotate``: signing-certificate lineages, as apksigner.

``rotate`` creates a lineage (or extends one given with ``--in``) in which the old
signer vouches for the new one; ``lineage`` prints a lineage file or the lineage in
a signed APK and changes the capabilities of its signers. Lineage files are written
atomically, byte-compatible with ``apksigner rotate``. Exit codes: 0 done, 2 usage
or input error.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from provenance.cli.sign import (
    CapabilityOption,
    KeyLoader,
    NewSigner,
    OptionalBool,
    add_key_options,
)
from provenance.errors import InputError, KeystoreError, ProvenanceError

if TYPE_CHECKING:
    from provenance.apk import certs
    from provenance.apk import lineage as lin

#: --set-xxx options and their capability bits (apksig ``SignerCapabilities``).
CAPABILITIES = {
    "--set-installed-data": ("installed_data", 1),
    "--set-shared-uid": ("shared_uid", 2),
    "--set-permission": ("permission", 4),
    "--set-rollback": ("rollback", 8),
    "--set-auth": ("auth", 16),
}
DEFAULT_FLAGS = 1 | 2 | 4 | 16


def _add_signer_options(p: argparse.ArgumentParser) -> None:
    add_key_options(p)
    for flag, (dest, _bit) in CAPABILITIES.items():
        p.add_argument(
            flag,
            dest=f"cap_{dest}",
            action=CapabilityOption,
            default=argparse.SUPPRESS,
            help=f"{dest.replace('_', ' ')} capability of this signer (default true)",
        )


def register(sub: Any) -> None:
    """Add the ``lineage`` and ``rotate`` commands."""
    p = sub.add_parser(
        "lineage",
        help="show a signing-certificate lineage or change its signers' capabilities",
        description="Print the lineage in a lineage file or signed APK; with --signer, "
        "change that signer's capabilities (then --out is required).",
    )
    p.set_defaults(func=run_lineage, _implicit_signer=False, extra_positionals=None)
    p.add_argument("file", nargs="?", metavar="FILE", help="lineage file or APK (or --in)")
    p.add_argument("--in", dest="input", metavar="FILE", help="lineage file or signed APK")
    p.add_argument("--out", metavar="FILE", help="where to write a modified lineage")
    p.add_argument(
        "--print-certs",
        action=OptionalBool,
        default=False,
        help="print each certificate and its capabilities",
    )
    p.add_argument(
        "--print-certs-pem",
        action=OptionalBool,
        default=False,
        help="also print each certificate in PEM",
    )
    p.add_argument("-v", "--verbose", action=OptionalBool, default=False, help="more detail")
    p.add_argument("--json", action="store_true", help="print the lineage as JSON")
    p.add_argument("--signer", action=NewSigner, slot="list", help="a signer to modify")
    _add_signer_options(p)

    r = sub.add_parser(
        "rotate",
        help="create or extend a signing-certificate lineage (key rotation)",
        description="Create a lineage in which --old-signer vouches for --new-signer, or "
        "extend the lineage given with --in.",
    )
    r.set_defaults(func=run_rotate, _implicit_signer=False, extra_positionals=None)
    r.add_argument("--out", metavar="FILE", help="lineage file to write")
    r.add_argument("--in", dest="input", metavar="FILE", help="lineage to extend")
    r.add_argument("--old-signer", action=NewSigner, slot="old", help="the current signer")
    r.add_argument("--new-signer", action=NewSigner, slot="new", help="the signer to rotate to")
    r.add_argument(
        "--min-sdk-version",
        type=int,
        default=0,
        metavar="N",
        help="lowest API level of the lineage (28 at least)",
    )
    r.add_argument("-v", "--verbose", action=OptionalBool, default=False, help="more detail")
    r.add_argument("--json", action="store_true", help="print the new lineage as JSON")
    _add_signer_options(r)


# -- helpers -------------------------------------------------------------------------------


def _caps(group: dict[str, Any]) -> tuple[int, int]:
    """(flags, mask): the builder's defaults with the options given applied."""
    flags = DEFAULT_FLAGS
    mask = 0
    for dest, bit in CAPABILITIES.values():
        value = group.get(f"cap_{dest}")
        if value is None:
            continue
        mask |= bit
        flags = flags | bit if value else flags & ~bit
    return flags, mask


def _load_cert(loader: KeyLoader, group: dict[str, Any], name: str) -> tuple[Any, Any]:
    from provenance.apk import certs

    try:
        key = loader.load(group, name)
    except KeystoreError as e:
        raise InputError(f'Failed to load signer "{name}": {e}') from None
    return key, certs.load_certificate(bytes(key.certificates[0]))


def _read(args: argparse.Namespace) -> lin.Lineage:
    from provenance.apk.sign import read_lineage

    extra = [
        *([args.file] if getattr(args, "file", None) else []),
        *(getattr(args, "extra_positionals", None) or []),
    ]
    if len(extra) > 1 or (extra and args.input is not None):
        raise InputError(f"Unexpected parameter(s): {extra[-1]}")
    path = args.input or (extra[0] if extra else None)
    if path is None:
        raise InputError("Input lineage file parameter not present")
    return read_lineage(path)


def _write(lineage: lin.Lineage, out: str) -> None:
    from provenance.apk import lineage as lin
    from provenance.apk.sign import write_file_atomic

    write_file_atomic(Path(out), lin.to_file_bytes(lineage))


def java_dn(cert: certs.Certificate) -> str:
    """The subject as Java's ``getSubjectDN()`` prints it (``CN=a, O=b``)."""
    try:
        return ", ".join(rdn.rfc4514_string() for rdn in reversed(cert.cert.subject.rdns))
    except ValueError:
        return cert.subject


def print_certificate(cert: certs.Certificate, name: str, verbose: bool, pem: bool) -> None:
    """apksigner's ``printCertificate`` lines."""
    enc = cert.encoded
    print(f"{name} certificate DN: {java_dn(cert)}")
    print(f"{name} certificate SHA-256 digest: {hashlib.sha256(enc).hexdigest()}")
    print(f"{name} certificate SHA-1 digest: {hashlib.sha1(enc).hexdigest()}")
    print(f"{name} certificate MD5 digest: {hashlib.md5(enc).hexdigest()}")
    if verbose:
        print(f"{name} key algorithm: {cert.key_algorithm}")
        print(f"{name} key size (bits): {cert.key_size or 'n/a'}")
        spki = cert.spki
        print(f"{name} public key SHA-256 digest: {hashlib.sha256(spki).hexdigest()}")
        print(f"{name} public key SHA-1 digest: {hashlib.sha1(spki).hexdigest()}")
        print(f"{name} public key MD5 digest: {hashlib.md5(spki).hexdigest()}")
    if pem:
        text = base64.b64encode(enc).decode()
        print("-----BEGIN CERTIFICATE-----")
        for i in range(0, len(text), 64):
            print(text[i : i + 64])
        print("-----END CERTIFICATE-----")


def print_capabilities(flags: int) -> None:
    """apksigner's ``printCapabilities`` lines."""
    labels = ("installed data", "shared UID", "permission", "rollback", "auth")
    for (_flag, (_dest, bit)), label in zip(CAPABILITIES.items(), labels, strict=True):
        print(
            f"Has {label} capability{' ' * (max(map(len, labels)) - len(label))}: "
            f"{str(bool(flags & bit)).lower()}"
        )


# -- commands ------------------------------------------------------------------------------


def run_lineage(args: argparse.Namespace) -> int:
    """Print and/or modify a lineage."""
    try:
        return _run_lineage(args)
    except ProvenanceError as e:
        print(f"apkprov lineage: {e}", file=sys.stderr)
        return 2


def _run_lineage(args: argparse.Namespace) -> int:
    from provenance.apk import lineage as lin

    lineage = _read(args)
    groups = [g for g in getattr(args, "signer_groups", None) or [] if g]
    updated = False
    loader = KeyLoader()
    try:
        for i, g in enumerate(groups, 1):
            name = f"signer #{i}"
            _key, cert = _load_cert(loader, g, name)
            flags, mask = _caps(g)
            try:
                before = lin.flags_of(lineage, cert)
                lineage = lin.with_capabilities(lineage, cert, flags, mask)
            except lin.NotInLineage:
                raise InputError(
                    f"The signer {name} was not found in the specified lineage."
                ) from None
            if lin.flags_of(lineage, cert) != before:
                updated = True
                if args.verbose and not args.json:
                    print(f"Updated signer capabilities for {name}.")
            elif args.verbose and not args.json:
                print(f"The provided signer capabilities for {name} are unchanged.")
    finally:
        loader.close()
    if updated and args.out is None:
        raise InputError(
            "The lineage was modified but an output file for the lineage was not specified"
        )
    if args.json:
        print(
            json.dumps(
                {
                    "certificates": lineage.to_json(),
                    "updated": updated,
                    "output": args.out if updated else None,
                },
                separators=(",", ":"),
            )
        )
    elif args.print_certs or args.print_certs_pem or not groups:
        for i, node in enumerate(lineage.nodes, 1):
            print_certificate(
                node.cert, f"Signer #{i} in lineage", args.verbose, bool(args.print_certs_pem)
            )
            print_capabilities(node.flags)
    if updated:
        _write(lineage, args.out)
        if args.verbose and not args.json:
            print(f"Updated lineage saved to {args.out}.")
    return 0


def run_rotate(args: argparse.Namespace) -> int:
    """Create or extend a lineage."""
    try:
        return _run_rotate(args)
    except ProvenanceError as e:
        print(f"apkprov rotate: {e}", file=sys.stderr)
        return 2


def _run_rotate(args: argparse.Namespace) -> int:
    from provenance.apk import lineage as lin
    from provenance.apk.sign_block import suggested_algorithms

    groups = getattr(args, "signer_groups", None) or []
    old = next((g for g in reversed(groups) if g.get("_slot") == "old"), None)
    new = next((g for g in reversed(groups) if g.get("_slot") == "new"), None)
    if old is None or len(old) <= 1:
        raise InputError("Signer parameters for old signer not present")
    if new is None or len(new) <= 1:
        raise InputError("Signer parameters for new signer not present")
    if args.out is None:
        raise InputError("Output lineage file parameter not present")
    loader = KeyLoader()
    try:
        old_key, old_cert = _load_cert(loader, old, "old signer")
        _new_key, new_cert = _load_cert(loader, new, "new signer")
    finally:
        loader.close()
    old_flags, old_mask = _caps(old)
    new_flags, _ = _caps(new)
    try:
        if args.input is not None:
            lineage = _read(args)
            lineage = lin.with_capabilities(lineage, old_cert, old_flags, old_mask)
        else:
            lineage = lin.create(old_cert, old_flags, args.min_sdk_version)
        alg = suggested_algorithms(old_cert, verity=False)[0]
        lineage = lin.spawn_descendant(lineage, old_cert, alg, old_key.sign, new_cert, new_flags)
    except (lin.NotInLineage, lin.LineageVerifyError) as e:
        raise InputError(str(e)) from None
    _write(lineage, args.out)
    if args.json:
        print(
            json.dumps(
                {"output": args.out, "certificates": lineage.to_json()}, separators=(",", ":")
            )
        )
    elif args.verbose:
        print("Rotation entry generated.")
    return 0
