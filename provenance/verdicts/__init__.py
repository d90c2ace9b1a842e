"""Risk verdicts for terminals: signed answers to "may I trust this APK?".

A verdict (:mod:`.model`) answers a query by APK SHA-256 or by package + signer
certificate (+ versionCode) with one of ``trusted``, ``unknown``, ``counterfeit``,
``repackaged``, ``hot_swapped``, ``taken_down``, sentences a person understands, the
log entries behind it and a validity window; the service signs it (:mod:`.signing`,
DSSE, Ed25519). The :class:`VerdictIndex` (:mod:`.index`, SQLite) is built by
replaying the log; :mod:`.decide` turns its records (:mod:`.records`) into verdicts,
the same code the offline terminal runs on feed records. :func:`verdict_app` is the
ASGI app that serves ``GET /v1/verdict``. See ``docs/terminal.md``.
"""

from __future__ import annotations

from provenance.verdicts.app import verdict_app
from provenance.verdicts.decide import Decision, decide_apk, decide_package
from provenance.verdicts.index import DEFAULT_TTL, VerdictIndex
from provenance.verdicts.inspection import inspection_kind, inspection_predicate
from provenance.verdicts.model import (
    OTHER_CERT,
    Query,
    Verdict,
    VerdictFormatError,
    VerdictKind,
)
from provenance.verdicts.records import (
    ApkRecord,
    InspectionNote,
    PackageRecord,
    SignerNote,
    TakedownNote,
    Vouch,
)
from provenance.verdicts.signing import (
    VERDICT_PAYLOAD_TYPE,
    StaleVerdictError,
    VerdictSignatureError,
    sign_verdict,
    verify_verdict,
)

__all__ = [
    "DEFAULT_TTL",
    "OTHER_CERT",
    "VERDICT_PAYLOAD_TYPE",
    "ApkRecord",
    "Decision",
    "InspectionNote",
    "PackageRecord",
    "Query",
    "SignerNote",
    "StaleVerdictError",
    "TakedownNote",
    "Verdict",
    "VerdictFormatError",
    "VerdictIndex",
    "VerdictKind",
    "VerdictSignatureError",
    "Vouch",
    "decide_apk",
    "decide_package",
    "inspection_kind",
    "inspection_predicate",
    "sign_verdict",
    "verdict_app",
    "verify_verdict",
]
