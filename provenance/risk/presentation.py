"""Two facts the risk engine needs that ``ApkFacts`` (facts_version 1) does not carry.

* the **app label** users see (``<application android:label>``, resolved through
  ``resources.arsc`` in the default configuration): counterfeits copy it;
* **data before the first ZIP entry**: Android 5.0-8.0 run a DEX placed there while
  a v1-only signature still verifies (Janus, CVE-2017-13156).

Both are read with the project's public readers (ZIP container, manifest, resource
table). They belong in the inspector's facts; once ``ApkFacts`` has them, this
module reduces to reading them from there.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from provenance.apk.axml import ValueType
from provenance.apk.manifest import MANIFEST_ENTRY_NAME, parse_manifest
from provenance.apk.zip import ApkFile
from provenance.errors import ProvenanceError
from provenance.inspect.resources import ResourceTable

ATTR_LABEL = 0x01010001
RESOURCES_ENTRY = "resources.arsc"
_MAX_ENTRY = 64 * 1024 * 1024
_DEX_MAGIC = b"dex\n"


@dataclass(frozen=True)
class Presentation:
    """The label (None when absent or unresolvable) and the ZIP prefix, if any."""

    label: str | None = None
    prefix_size: int = 0
    prefix_kind: str | None = None  # "dex" or "data"


def read_presentation(path: str | os.PathLike[str]) -> Presentation:
    """Label and ZIP prefix of the APK at ``path`` (best effort: unreadable parts → None)."""
    with ApkFile(path) as apk:
        try:
            records = apk.cd_records()
        except ProvenanceError:
            return Presentation()
        first = min((r.lfh_offset for r in records), default=0)
        kind = None
        if first > 0:
            kind = "dex" if bytes(apk.data[: len(_DEX_MAGIC)]) == _DEX_MAGIC else "data"
        return Presentation(_label(apk), first, kind)


def _label(apk: ApkFile) -> str | None:
    try:
        rec = apk.find(MANIFEST_ENTRY_NAME)
        if rec is None:
            return None
        app = next(
            parse_manifest(apk.read_entry(rec, _MAX_ENTRY)).root.children_named("application"), None
        )
        attr = app.attribute("label", ATTR_LABEL) if app is not None else None
        if attr is None:
            return None
        if attr.value_type == ValueType.STRING:
            return attr.string
        if attr.value_type != ValueType.REFERENCE:
            return None
        arsc = apk.find(RESOURCES_ENTRY)
        if arsc is None:
            return None
        value = ResourceTable(apk.read_entry(arsc, _MAX_ENTRY)).resolve(attr.data)
        return value.string if value is not None else None
    except ProvenanceError:
        return None
