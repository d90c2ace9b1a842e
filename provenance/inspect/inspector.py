"""``inspect_apk``: every fact of an APK from one pass over its entries.

The file is memory-mapped once. One worker thread hashes the whole file and verifies
the signatures (both are digest work that runs outside the GIL) while the main thread
walks the central directory once: each entry is decompressed exactly once, streamed
into its SHA-256 unless it must be parsed (manifest, resource table, DEX files).
Parsed DEX files are kept only until the code-loading analysis has run, so memory is
bounded by the APK's code size, not by its total size.

What cannot be read (a malformed DEX, resource table or manifest, an entry with bad
compression) becomes an ``issues`` line and the rest of the facts still stand; only a
file that is not a ZIP archive, or has no ``AndroidManifest.xml``, is rejected.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import zlib
from typing import Final

from provenance.apk.dex import DexError, DexFile, DexLimits, open_dex_container
from provenance.apk.manifest import MANIFEST_ENTRY_NAME, Manifest, parse_manifest
from provenance.apk.verify import verify_apkfile
from provenance.apk.zip import ApkFile, CdRecord, ZipFormatError
from provenance.errors import ApkFormatError, AxmlError, ProvenanceError
from provenance.inspect.code_loading import code_loading_facts
from provenance.inspect.dex_facts import DEX_NAME, class_fingerprint, dex_facts, dex_order_issue
from provenance.inspect.manifest_facts import manifest_facts
from provenance.inspect.model import (
    FACTS_VERSION,
    ApkFacts,
    DexFacts,
    FileFacts,
    ManifestFacts,
    NativeLib,
    ResourceFile,
    SigningFacts,
)
from provenance.inspect.native import native_lib_path
from provenance.inspect.resources import ResourceTable
from provenance.inspect.sdk import load_indicators, load_sdk_db

__all__ = ["inspect_apk", "inspect_apkfile"]

RESOURCES_ENTRY: Final = "resources.arsc"
_MAX_PARSED_ENTRY: Final = 256 * 1024 * 1024
_CHUNK: Final = 1 << 20
_DEX_LIMITS: Final = DexLimits(max_bytes=_MAX_PARSED_ENTRY)


def inspect_apk(path: str | os.PathLike[str], *, verify: bool = True) -> ApkFacts:
    """The facts of the APK at ``path``.

    Raises :class:`~provenance.errors.InputError` for a missing or unreadable file and
    :class:`~provenance.errors.ApkFormatError` for one that is not an APK at all (not
    a ZIP archive, no manifest). ``verify=False`` skips signature verification.
    """
    with ApkFile(path) as apk:
        return inspect_apkfile(apk, verify=verify)


def inspect_apkfile(apk: ApkFile, *, verify: bool = True) -> ApkFacts:
    """:func:`inspect_apk` over an opened :class:`ApkFile`."""
    try:
        records = apk.cd_records()
    except ZipFormatError as e:
        raise ApkFormatError(f"{apk.path}: not a ZIP archive: {e}") from None
    if not any(r.name == MANIFEST_ENTRY_NAME for r in records):
        raise ApkFormatError(f"{apk.path}: not an APK: no {MANIFEST_ENTRY_NAME}")
    # Verification first: its v1 entry digests are cached on the APK and the walk's
    # resource hashes reuse them, so each entry is inflated once.
    sha256, signing = _hash_and_verify(apk, verify)
    facts = _Walk(apk, records).run()
    return dataclasses.replace(
        facts,
        file=FileFacts(name=apk.path.name, size=apk.size, sha256=sha256),
        signing=signing,
    )


def _hash_and_verify(apk: ApkFile, verify: bool) -> tuple[str, SigningFacts]:
    digest = hashlib.sha256(apk.data).hexdigest()
    if not verify:
        return digest, SigningFacts(verified=False, errors=("NOT_CHECKED",))
    try:
        res = verify_apkfile(apk)
    except ProvenanceError as e:
        return digest, SigningFacts(verified=False, errors=(f"APK_FORMAT: {e}",))
    lineage = res.lineage
    return digest, SigningFacts(
        verified=res.verified,
        schemes=tuple(res.verified_schemes),
        signer_sha256=tuple(c.sha256 for c in res.signer_certs),
        signer_subjects=tuple(c.subject for c in res.signer_certs),
        lineage_sha256=tuple(c.sha256 for c in lineage.certificates) if lineage else (),
        errors=tuple(i.name for i in res.all_errors()),
    )


class _Walk:
    """One pass over the central directory, collecting every per-entry fact."""

    def __init__(self, apk: ApkFile, records: list[CdRecord]) -> None:
        self.apk = apk
        self.records = records
        self.issues: list[str] = []

    def _read(self, rec: CdRecord) -> bytes | None:
        try:
            return self.apk.read_entry(rec, limit=_MAX_PARSED_ENTRY)
        except ZipFormatError as e:
            self.issues.append(f"{rec.name}: {e}")
            return None

    def _hash(self, rec: CdRecord) -> str | None:
        """SHA-256 of an entry's uncompressed bytes (shared with v1 verification's digests)."""
        try:
            offset, size, compressed = self.apk.local_data_span(rec)
            if not compressed:  # straight from the map, no copy
                return hashlib.sha256(self.apk.data[offset : offset + size]).hexdigest()
            return self.apk.entry_digests(rec, ("sha256",))[0].hex()
        except (ZipFormatError, zlib.error) as e:
            self.issues.append(f"{rec.name}: {e}")
            return None

    def run(self) -> ApkFacts:
        """Everything but the file digest and the signers (filled in by the caller)."""
        first = min((r.lfh_offset for r in self.records), default=0)
        if first > 0:
            head = bytes(self.apk.data[:4])
            kind = " (a DEX file: the Janus pattern, CVE-2017-13156)" if head == b"dex\n" else ""
            self.issues.append(f"{first} bytes before the first ZIP entry{kind}")
        seen: set[str] = set()
        manifest_bytes: bytes | None = None
        arsc: bytes | None = None
        dex_entries: list[tuple[CdRecord, bytes, str]] = []
        native: list[NativeLib] = []
        resources: list[ResourceFile] = []
        for rec in self.records:
            name = rec.name
            if name in seen:
                self.issues.append(f"{name}: duplicate entry (only the first is used)")
                continue
            seen.add(name)
            if DEX_NAME.fullmatch(name):
                data = self._read(rec)
                if data is not None:
                    dex_entries.append((rec, data, hashlib.sha256(data).hexdigest()))
                continue
            if name.startswith("META-INF/"):
                continue
            if name in (MANIFEST_ENTRY_NAME, RESOURCES_ENTRY):
                data = self._read(rec)
                if data is None:
                    continue
                if name == MANIFEST_ENTRY_NAME:
                    manifest_bytes = data
                else:
                    arsc = data
                resources.append(ResourceFile(name, len(data), hashlib.sha256(data).hexdigest()))
                continue
            digest = self._hash(rec)
            if digest is None:
                continue
            resources.append(ResourceFile(name, rec.uncompressed_size, digest))
            lib = native_lib_path(name)
            if lib is not None:
                native.append(NativeLib(lib[0], lib[1], rec.uncompressed_size, digest))

        table = None
        if arsc is not None:
            try:
                table = ResourceTable(arsc)
            except AxmlError as e:
                self.issues.append(f"{RESOURCES_ENTRY}: {e}")
        manifest = self._manifest(manifest_bytes, table)

        dex_list: list[DexFacts] = []
        parsed: list[tuple[str, DexFile]] = []
        for rec, data, digest in dex_entries:
            try:
                files = open_dex_container(data, _DEX_LIMITS)
                for i, dex in enumerate(files):
                    label = rec.name if len(files) == 1 else f"{rec.name}#{i}"
                    dex_list.append(dex_facts(label, len(data), digest, dex))
                    parsed.append((label, dex))
            except DexError as e:
                self.issues.append(f"{rec.name}: {e}")
                dex_list.append(DexFacts(rec.name, len(data), digest, error=str(e)))
        order = dex_order_issue(rec.name for rec, _, _ in dex_entries)
        if order:
            self.issues.append(order)

        all_classes = sorted({c for d in dex_list for c in d.classes})
        supers: dict[str, str | None] = {}
        for _label, dex in parsed:
            for d in dex.class_defs():
                supers.setdefault(dex.type_name(d.class_idx), dex.superclass(d))
        db = load_sdk_db()
        lib_names = sorted({n.name for n in native})
        components = [c.name for c in manifest.components]
        sdks = db.match(all_classes, lib_names, components)
        try:
            loading = code_loading_facts(
                parsed,
                all_classes,
                supers,
                manifest,
                lib_names,
                seen,
                db,
                load_indicators(),
            )
        except DexError as e:
            self.issues.append(f"code loading: {e}")
            loading = code_loading_facts([], all_classes, {}, manifest, lib_names, seen, db, {})
        native.sort(key=lambda n: (n.abi, n.name))
        resources.sort(key=lambda r: r.name)
        return ApkFacts(
            facts_version=FACTS_VERSION,
            file=FileFacts(self.apk.path.name, self.apk.size, ""),
            manifest=manifest,
            signing=SigningFacts(verified=False),
            dex=tuple(dex_list),
            native_libs=tuple(native),
            abis=tuple(sorted({n.abi for n in native})),
            sdks=tuple(sdks),
            code_loading=loading,
            resources=tuple(resources),
            class_count=len(all_classes),
            class_fingerprint=class_fingerprint(all_classes),
            sdk_db_version=db.version,
            issues=tuple(self.issues),
        )

    def _manifest(self, data: bytes | None, table: ResourceTable | None) -> ManifestFacts:
        parsed: Manifest | None = None
        if data is not None:
            try:
                parsed = parse_manifest(data)
            except AxmlError as e:
                self.issues.append(f"{MANIFEST_ENTRY_NAME}: {e}")
        if parsed is None:
            return ManifestFacts(None, None, 0, None, None, 1, None)
        return manifest_facts(parsed, table)
