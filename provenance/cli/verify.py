"""``apkprov verify``: check APK signatures like ``apksigner verify``."""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from typing import Any

from provenance.apk.verify import ApkVerificationResult, verify_apk
from provenance.errors import ProvenanceError

_SCHEME_LABELS = [
    ("v1", "v1 scheme (JAR signing)"),
    ("v2", "v2 scheme (APK Signature Scheme v2)"),
    ("v3", "v3 scheme (APK Signature Scheme v3)"),
    ("v3.1", "v3.1 scheme (APK Signature Scheme v3.1)"),
    ("v4", "v4 scheme (APK Signature Scheme v4)"),
]


def register(sub: Any) -> None:
    """Add the ``verify`` command."""
    p = sub.add_parser("verify", help="verify APK signatures (v1, v2, v3, v3.1, v4)")
    p.add_argument("apks", nargs="+", metavar="APK")
    p.add_argument(
        "--min-sdk-version",
        type=int,
        metavar="N",
        help="lowest API level to verify for (default: the manifest's minSdkVersion)",
    )
    p.add_argument(
        "--max-sdk-version",
        type=int,
        metavar="N",
        help="highest API level to verify for (default: no limit)",
    )
    p.add_argument(
        "--v4-signature-file",
        metavar="FILE",
        help="APK Signature Scheme v4 file (.idsig) to verify with the APK",
    )
    p.add_argument("--print-certs", action="store_true", help="print the signer certificates")
    p.add_argument(
        "-v", "--verbose", action="store_true", help="print which schemes verified and all warnings"
    )
    p.add_argument("--json", action="store_true", help="one JSON object per APK per line")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Verify each APK in turn; exit 0 if all verify, 1 if one does not, 2 on input errors."""
    if args.v4_signature_file and len(args.apks) > 1:
        print("apkprov: --v4-signature-file takes a single APK", file=sys.stderr)
        return 2
    worst = 0
    for path in args.apks:
        try:
            res = verify_apk(
                path,
                min_sdk=args.min_sdk_version,
                max_sdk=args.max_sdk_version,
                v4_signature_file=args.v4_signature_file,
            )
        except ProvenanceError as e:
            if args.json:
                print(json.dumps({"file": path, "verified": False, "input_error": str(e)}))
            msg = str(e) if str(e).startswith(path) else f"{path}: {e}"
            print(f"apkprov: {msg}", file=sys.stderr)
            worst = max(worst, e.exit_code)
            continue
        if args.json:
            print(json.dumps(res.to_json(), separators=(",", ":")))
        else:
            _print_text(res, args, multiple=len(args.apks) > 1)
        if not res.verified:
            worst = max(worst, 1)
    return worst


def _print_text(res: ApkVerificationResult, args: argparse.Namespace, multiple: bool) -> None:
    out = sys.stdout
    prefix = f"{res.path}: " if multiple else ""
    if res.verified:
        if args.verbose or multiple:
            print(f"{prefix}Verifies", file=out)
        if args.verbose:
            for key, label in _SCHEME_LABELS:
                print(f"Verified using {label}: {str(res.verified_using(key)).lower()}", file=out)
            print(f"Number of signers: {len(res.signer_certs)}", file=out)
    else:
        print(f"{prefix}DOES NOT VERIFY", file=out)
    for issue in res.all_errors():
        print(f"{prefix}ERROR: {issue.name}: {issue.message}", file=sys.stderr)
    if args.verbose or not res.verified:
        for issue in res.all_warnings():
            print(f"{prefix}WARNING: {issue.name}: {issue.message}", file=sys.stderr)
    if res.source_stamp is not None and (args.verbose or args.print_certs):
        st = res.source_stamp
        print(f"Source stamp: {st.status}", file=out)
        if st.cert is not None:
            print(f"Source Stamp Signer certificate SHA-256 digest: {st.cert.sha256}", file=out)
        for issue in st.errors + st.warnings:
            print(f"WARNING: source stamp: {issue.name}: {issue.message}", file=sys.stderr)
    lineage = res.lineage
    if lineage is not None and (args.verbose or args.print_certs):
        print(f"Signing certificate lineage: {len(lineage)} certificates", file=out)
        for i, node in enumerate(lineage.nodes, 1):
            caps = ",".join(k for k, v in node.capabilities.items() if v) or "none"
            print(
                f"  #{i} {node.cert.subject} SHA-256 {node.cert.sha256} capabilities {caps}",
                file=out,
            )
    if args.print_certs:
        for i, c in enumerate(res.signer_certs, 1):
            print(f"Signer #{i} certificate DN: {c.subject}", file=out)
            print(f"Signer #{i} certificate SHA-256 digest: {c.sha256}", file=out)
            print(
                f"Signer #{i} certificate SHA-1 digest: {hashlib.sha1(c.encoded).hexdigest()}",
                file=out,
            )
            print(
                f"Signer #{i} certificate MD5 digest: {hashlib.md5(c.encoded).hexdigest()}",
                file=out,
            )
            print(f"Signer #{i} key algorithm: {c.key_algorithm}", file=out)
            if c.key_size:
                print(f"Signer #{i} key size (bits): {c.key_size}", file=out)
