"""Sign APKs the way Android's reference signer (apksig ``ApkSigner``) does.

:func:`sign_apk` reproduces ``apksigner sign`` byte for byte (with deterministic
RSA PKCS#1 v1.5 signatures the reference's golden outputs are matched exactly):

1. the ZIP is rewritten entry by entry in local-header order; existing JAR signature
   files, directory entries, ``pinlist.meta`` and ``stamp-cert-sha256`` are dropped and
   stored entries are re-aligned (:mod:`provenance.apk.zipalign`);
2. v1: MANIFEST.MF, ``<NAME>.SF`` and a PKCS#7 block per signer (:mod:`sign_v1`);
3. v2, v3 and v3.1: an APK Signing Block before the central directory, 4 KiB
   aligned (:mod:`sign_block`); rotation follows ``DefaultApkSignerEngine``;
4. v4: ``<out>.idsig`` over the final file.

Which signer signs which scheme (rotation, SDK-targeted signers, v3.1) is decided
exactly as ``DefaultApkSignerEngine.Builder`` decides it, so the error cases match
too. The output is written to a temporary file beside the target, fsynced and
renamed: a failure at any point leaves the input and any previous output as they
were. Entries are streamed from a memory map and hashed in parallel, so memory
stays bounded by the central directory, not the APK.
"""

from __future__ import annotations

import contextlib
import hashlib
import mmap
import os
import struct
import tempfile
import zlib
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal

from provenance.apk import certs, sign_v1
from provenance.apk import lineage as lin
from provenance.apk import manifest as mf
from provenance.apk.algorithms import SDK_MAX, SDK_P, ContentDigest
from provenance.apk.parallel import executor
from provenance.apk.sign_block import (
    DEV_RELEASE,
    PROD_RELEASE,
    V2_BLOCK_ID,
    V3_BLOCK_ID,
    V31_BLOCK_ID,
    BlockSigner,
    SignerKey,
    UnsupportedKeyError,
    best_digest_for_v4,
    compute_content_digests,
    content_digest_algorithms,
    signing_block,
    suggested_algorithms,
    v2_block,
    v3_block,
    v4_signature,
)
from provenance.apk.sign_stamp import StampSigner, stamp_block, stamp_cert_digest
from provenance.apk.signing_block import (
    SOURCE_STAMP_V2_BLOCK_ID,
    Malformed,
    Reader,
    SignatureNotFound,
    find_signing_block,
)
from provenance.apk.stamp import (
    SHA256_DIGEST_ID,
    STAMP_CERT_ENTRY,
    VERSION_APK_SIGNATURE_SCHEME_V2,
    VERSION_APK_SIGNATURE_SCHEME_V3,
    VERSION_JAR_SIGNATURE_SCHEME,
)
from provenance.apk.zip import (
    MAX_IN_MEMORY_ENTRY,
    ApkFile,
    CdRecord,
    ZipFormatError,
    inflate_exact,
    iter_central_directory,
)
from provenance.apk.zipalign import (
    DEFAULT_DOS_DATE,
    FILE_ALIGNMENT,
    LIBRARY_PAGE_ALIGNMENT,
    PIN_HINT_ASSET,
    PIN_LIST_ENTRY,
    cd_record_at,
    encode_pin_ranges,
    eocd_padded,
    eocd_with_cd,
    eocd_with_cd_offset,
    new_entry,
    parse_pin_patterns,
    plan_record,
    read_local_record,
)
from provenance.errors import ApkFormatError, InputError, ProvenanceError, SignatureError

__all__ = [
    "DEFAULT_ROTATION_MIN_SDK",
    "LIBRARY_PAGE_ALIGNMENT",
    "SignResult",
    "Signer",
    "SignerKey",
    "StampSigner",
    "lineage_from_apk",
    "read_lineage",
    "sign_apk",
    "v4_only",
    "write_file_atomic",
]

#: apksig ``V3SchemeConstants.DEFAULT_ROTATION_MIN_SDK_VERSION``: rotation goes to v3.1.
DEFAULT_ROTATION_MIN_SDK = 33
MIN_SDK_WITH_V31 = 33
MANIFEST_ENTRY = "AndroidManifest.xml"
_COPY_CHUNK = 8 << 20
_DIGEST_CHUNK = 1 << 20
_INT_MAX = 0x7FFFFFFF
_KERNEL_COPY_MIN = 64 << 10

V4Mode = bool | Literal["only"] | None


@dataclass
class Signer:
    """A key plus apksigner's per-signer options.

    ``name`` is the v1 signature file base name (``--v1-signer-name``); ``min_sdk``
    and ``lineage`` make an SDK-targeted signer (``--signer-for-min-sdk-version``,
    ``--signer-lineage``), used for v3/v3.1 from that API level on.
    """

    key: SignerKey
    name: str | None = None
    min_sdk: int = 0
    lineage: lin.Lineage | None = None


@dataclass
class SignResult:
    """What :func:`sign_apk` wrote."""

    input: Path
    output: Path
    idsig: Path | None
    min_sdk: int
    schemes: list[str]
    v1_signer_names: list[str] = field(default_factory=list)
    signer_certs: list[certs.Certificate] = field(default_factory=list, repr=False)
    lineage: lin.Lineage | None = field(default=None, repr=False)
    size: int = 0
    stamp_cert: certs.Certificate | None = field(default=None, repr=False)

    def to_json(self) -> dict[str, Any]:
        """JSON object printed by ``apkprov sign --json``."""
        out: dict[str, Any] = {
            "input": str(self.input),
            "output": str(self.output),
            "idsig": str(self.idsig) if self.idsig else None,
            "size": self.size,
            "min_sdk": self.min_sdk,
            "schemes": self.schemes,
            "v1_signer_names": self.v1_signer_names,
            "signers": [{"cert_sha256": c.sha256, "subject": c.subject} for c in self.signer_certs],
            "lineage": self.lineage.to_json() if self.lineage is not None else None,
        }
        if self.stamp_cert is not None:
            out["source_stamp"] = {
                "cert_sha256": self.stamp_cert.sha256,
                "subject": self.stamp_cert.subject,
            }
        return out


# -- signer configuration (DefaultApkSignerEngine.Builder) --------------------------------


@dataclass
class _Cfg:
    key: SignerKey
    chain: list[certs.Certificate]
    name: str
    min_sdk: int = 0
    lineage: lin.Lineage | None = None
    dev_release: bool = False

    @property
    def cert(self) -> certs.Certificate:
        return self.chain[0]


def _chain(key: SignerKey) -> list[certs.Certificate]:
    if not key.certificates:
        raise InputError("No certificates configured for signer")
    try:
        return [certs.load_certificate(bytes(c)) for c in key.certificates]
    except certs.CertificateError as e:
        raise InputError(f"Malformed signer certificate: {e}") from None


def _targeted_min_sdk(min_sdk: int, lineage: lin.Lineage | None, cert: certs.Certificate) -> int:
    """apksig ``SignerConfig.Builder.setLineageForMinSdkVersion``."""
    if min_sdk < SDK_P:
        raise InputError(
            "SDK targeted signing config is only supported with the V3 signature scheme on "
            f"Android P (SDK version {SDK_P}) and later"
        )
    if lineage is not None and not lineage.contains(cert):
        raise InputError(
            f"The provided lineage does not contain the signing certificate, {cert.subject}, "
            "for this SignerConfig"
        )
    return SDK_P if min_sdk < MIN_SDK_WITH_V31 else min_sdk


def _sub_lineage(lineage: lin.Lineage, cert: certs.Certificate, what: str) -> lin.Lineage:
    try:
        return lineage.sub_lineage(cert)
    except lin.NotInLineage:
        raise InputError(f"{what}: certificate not found in SigningCertificateLineage") from None


@dataclass
class _Plan:
    """Which signer signs what: the outcome of apksig's engine builder."""

    untargeted: list[_Cfg]
    targeted: list[_Cfg]
    lineage: lin.Lineage | None
    min_sdk: int
    v1: bool
    v2: bool
    v3: bool
    verity: bool

    # -- v1 ---------------------------------------------------------------------------
    def _oldest(self, scheme: str) -> _Cfg:
        oldest = self.untargeted[0] if self.untargeted else self.targeted[0]
        if self.lineage is not None:
            sub = _sub_lineage(self.lineage, oldest.cert, f"{scheme} signing")
            if len(sub) != 1:
                raise InputError(
                    f"{scheme} signing enabled but the oldest signer in the "
                    "SigningCertificateLineage is missing.  Please provide the oldest signer "
                    f"to enable {scheme} signing"
                )
        return oldest

    def v1_signers(self) -> tuple[list[sign_v1.V1Signer], str]:
        cfgs = [self._oldest("v1")] if self.v3 else list(self.untargeted)
        out: list[sign_v1.V1Signer] = []
        names: dict[str, int] = {}
        content = "sha1"
        for i, c in enumerate(cfgs):
            name = sign_v1.safe_signer_name(c.name)
            if name in names:
                raise InputError(
                    f"Signers #{names[name] + 1} and #{i + 1} have the same name: {name}. "
                    "v1 signer names must be unique"
                )
            names[name] = i
            alg = sign_v1.signature_digest(c.cert.key_algorithm, self.min_sdk)
            if alg == "sha256":
                content = "sha256"
            out.append(sign_v1.V1Signer(name, c.key, c.chain, alg))
        return out, content

    def v1_entry_names(self) -> set[str]:
        if not self.v1:
            return set()
        signers, _ = self.v1_signers()
        return sign_v1.output_entry_names([(s.name, s.chain[0].key_algorithm) for s in signers])

    # -- v2/v3/v4 signer configs ------------------------------------------------------
    def _block_signer(self, c: _Cfg, scheme: int) -> BlockSigner:
        if scheme == 2:
            algs: list[Any] | None = suggested_algorithms(c.cert, verity=self.verity)
        else:
            try:
                algs = suggested_algorithms(c.cert, verity=self.verity if scheme == 3 else False)
            except UnsupportedKeyError:
                algs = None
        return BlockSigner(
            c.key,
            c.chain,
            algs,
            min_sdk=c.min_sdk,
            targets_dev_release=c.dev_release,
            lineage_obj=c.lineage,
        )

    def _all(self, scheme: int) -> list[BlockSigner]:
        cfgs = self.untargeted + (self.targeted if scheme >= 3 else [])
        return [self._block_signer(c, scheme) for c in cfgs]

    def v2_signers(self) -> list[BlockSigner]:
        if self.v3:
            return [self._block_signer(self._oldest("v2"), 2)]
        return self._all(2)

    def _process_v3(self, raw: list[BlockSigner]) -> list[BlockSigner]:
        """apksig ``processV3Configs``: give each signer its SDK range, newest first."""
        required = max(SDK_P, self.min_sdk)
        if not self.untargeted and self.targeted[0].min_sdk > required:
            raise InputError(
                "The provided targeted signer configs do not cover the SDK range for V3 "
                "support; either provide the original signer or ensure a signer targets SDK "
                f"version {required}"
            )
        out: list[BlockSigner] = []
        current = SDK_MAX
        for i in range(len(raw) - 1, -1, -1):
            s = raw[i]
            if s.algorithms is None:
                raise UnsupportedKeyError(
                    f"Unsupported key algorithm {s.cert.key_algorithm} is not supported for "
                    "APK Signature Scheme v3 signing"
                )
            if i == len(raw) - 1:
                s.max_sdk = SDK_MAX
            else:
                prev = out[-1]
                s.max_sdk = prev.min_sdk if prev.targets_dev_release else current - 1
            if s.min_sdk == DEV_RELEASE:
                s.min_sdk = PROD_RELEASE
                s.targets_dev_release = True
            elif s.min_sdk == 0:
                s.min_sdk = self._min_sdk_of(s)
            lineage = s.lineage_obj
            if isinstance(lineage, lin.Lineage):
                if not lin.is_latest(lineage, s.cert):
                    lineage = _sub_lineage(lineage, s.cert, "v3 signing")
                    s.lineage_obj = lineage
                s.lineage = lin.encode_nodes(lineage.nodes)
            out.append(s)
            current = s.min_sdk
            if (current < required) if s.targets_dev_release else (current <= required):
                break
        if current > SDK_P and current > self.min_sdk:
            raise UnsupportedKeyError(
                "Provided key algorithms not supported on all desired Android SDK versions"
            )
        return out

    def _min_sdk_of(self, s: BlockSigner) -> int:
        low = SDK_MAX
        for a in s.algorithms or ():
            if a.min_sdk < low:
                if a.min_sdk <= self.min_sdk or a.min_sdk <= SDK_P:
                    return a.min_sdk
                low = a.min_sdk
        return low

    @staticmethod
    def _split_v31(v3: list[BlockSigner]) -> tuple[list[BlockSigner], list[BlockSigner] | None]:
        """apksig ``processV31SignerConfigs``: signers for 33+ go to the v3.1 block."""
        if len(v3) == 1:
            return v3, None
        low = min(s.min_sdk for s in v3)
        keep: list[BlockSigner] = []
        v31: list[BlockSigner] = []
        for s in v3:
            if s.min_sdk >= MIN_SDK_WITH_V31 and (
                s.min_sdk > low or (s.min_sdk >= low and s.targets_dev_release)
            ):
                v31.append(s)
            else:
                keep.append(s)
        return keep, v31

    def v3_signers(self) -> tuple[list[BlockSigner], list[BlockSigner] | None]:
        return self._split_v31(self._process_v3(self._all(3)))

    def v4_signers(self) -> tuple[BlockSigner, BlockSigner | None]:
        raw = self._all(4)
        if len(raw) != 1:
            raw = self._process_v3(raw)
        v4, v41 = self._split_v31(raw)
        if len(v4) != 1:
            raise UnsupportedKeyError("Only accepting one signer config for V4 Signature.")
        if v41 is not None and len(v41) != 1:
            raise UnsupportedKeyError("Only accepting one signer config for V4.1 Signature.")
        return v4[0], (v41[0] if v41 else None)


def _plan(
    signers: Sequence[Signer | SignerKey],
    *,
    min_sdk: int,
    v1: bool,
    v2: bool,
    v3: bool | None,
    lineage: lin.Lineage | None,
    rotation_min_sdk: int | None,
    rotation_targets_dev_release: bool,
    verity: bool,
    v1_signer_names: Sequence[str] | None,
) -> _Plan:
    if not signers:
        raise InputError("At least one signer must be specified")
    cfgs: list[_Cfg] = []
    for i, s in enumerate(signers):
        sig = s if isinstance(s, Signer) else Signer(s)
        chain = _chain(sig.key)
        name = sig.name
        if v1_signer_names is not None and i < len(v1_signer_names):
            name = v1_signer_names[i]
        if not name:
            name = getattr(sig.key, "v1_signer_name", None) or (
                "CERT" if len(signers) == 1 else f"CERT{i + 1}"
            )
        c = _Cfg(sig.key, chain, name)
        if sig.min_sdk > 0:
            c.min_sdk = _targeted_min_sdk(sig.min_sdk, sig.lineage, chain[0])
            c.lineage = sig.lineage
        cfgs.append(c)
    # ApkSigner.Builder: v3 off by default with several signers, on with a lineage.
    if v3 is None:
        v3 = len(cfgs) == 1 or lineage is not None
    rot = DEFAULT_ROTATION_MIN_SDK if rotation_min_sdk is None else rotation_min_sdk
    rot = SDK_P if rot < MIN_SDK_WITH_V31 else rot

    cfgs.sort(key=lambda c: c.min_sdk)  # stable, like List.sort
    untargeted = [c for c in cfgs if c.min_sdk == 0]
    targeted = [c for c in cfgs if c.min_sdk > 0]
    if lineage is not None:
        if targeted and rot >= targeted[0].min_sdk:
            raise InputError(
                f"The rotation-min-sdk-version, {rot}, must be less than the first targeted SDK "
                f"version, {targeted[0].min_sdk}"
            )
        ordered: list[_Cfg] = []
        for node in lineage.nodes:
            for c in untargeted:
                if c.cert == node.cert:
                    ordered.append(c)
                    break
        if len(ordered) != len(untargeted) or not ordered:
            raise InputError(
                "Provided signer configs do not match the provided SigningCertificateLineage"
            )
        untargeted = ordered
        last = untargeted.pop()
        if rotation_targets_dev_release and rot < MIN_SDK_WITH_V31:
            raise InputError(
                "Rotation can only target a development release for signers targeting "
                f"{MIN_SDK_WITH_V31} or later"
            )
        rotated = _Cfg(
            last.key,
            last.chain,
            last.name,
            _targeted_min_sdk(rot, lineage, last.cert),
            lineage,
            rotation_targets_dev_release,
        )
        targeted.insert(0, rotated)
    merged: lin.Lineage | None = None
    prev = 0
    for c in targeted:
        sdk = SDK_P if c.min_sdk < MIN_SDK_WITH_V31 else c.min_sdk
        one = c.lineage if c.lineage is not None else lin.create(c.cert)
        if sdk == prev:
            raise InputError(f"Multiple SignerConfigs were found targeting SDK version {sdk}")
        if merged is None:
            merged = one
        else:
            try:
                merged = merged.merge(one)
            except lin.NotInLineage:
                raise InputError(
                    f"The provided lineage targeting SDK {sdk} is not in the signing history "
                    "of the other targeted signing configs"
                ) from None
        prev = sdk
    if merged is not None:
        if not v3 and len(untargeted) > 1:
            raise InputError(
                "Provided multiple signers which are part of the SigningCertificateLineage, "
                "but not signing with APK Signature Scheme v3"
            )
    elif v3 and len(untargeted) > 1:
        raise InputError(
            "Multiple signing certificates provided for use with APK Signature Scheme v3 "
            "without an accompanying SigningCertificateLineage"
        )
    plan = _Plan(untargeted, targeted, merged, min_sdk, v1, v2, v3, verity)
    if v1:
        plan.v1_signers()  # validate names and key types up front, as the engine does
    return plan


# -- reading entries ------------------------------------------------------------------


def _entry_bytes(apk: ApkFile, cd: CdRecord, section_end: int, limit: int) -> bytes:
    """An entry's uncompressed data, read whole (manifests, hints; never big ones)."""
    if cd.uncompressed_size > limit:
        raise ApkFormatError(f"{cd.name} too large: {cd.uncompressed_size}")
    rec = read_local_record(apk.data, cd, section_end)
    raw = apk.data[rec.data_offset : rec.data_offset + rec.data_size]
    if not rec.compressed:
        return bytes(raw)
    return _inflate_java(raw, cd.uncompressed_size, cd.name)


def _inflate_java(raw: memoryview | bytes, expected: int, name: str) -> bytes:
    """Inflate like apksig's sink: stop at the end of the stream, then check the size."""
    d = zlib.decompressobj(-15)
    try:
        out = d.decompress(raw, expected + 1)
    except zlib.error as e:
        raise ZipFormatError(f"Data of entry {name} malformed: {e}") from None
    if len(out) != expected:
        return inflate_exact(raw, expected, name)  # raises with the reference's message
    return out


def _digest_entry(view: memoryview, compressed: bool, expected: int, name: str, alg: str) -> bytes:
    """Digest of an entry's uncompressed data, streamed in bounded chunks."""
    h = hashlib.new(alg)
    if not compressed:
        h.update(view)
        return h.digest()
    d = zlib.decompressobj(-15)
    produced = 0
    try:
        for i in range(0, len(view), _DIGEST_CHUNK):
            piece: memoryview | bytes = view[i : i + _DIGEST_CHUNK]
            while piece:
                out = d.decompress(piece, _DIGEST_CHUNK)
                produced += len(out)
                if produced > expected:
                    raise ZipFormatError(
                        f"Unexpected size of uncompressed data of {name}. Expected: {expected} "
                        "bytes, actual: more"
                    )
                h.update(out)
                piece = d.unconsumed_tail
            if d.eof:
                break
        while not d.eof:
            out = d.decompress(b"", _DIGEST_CHUNK)
            if not out:
                break
            produced += len(out)
            if produced > expected:
                raise ZipFormatError(
                    f"Unexpected size of uncompressed data of {name}. Expected: {expected} "
                    "bytes, actual: more"
                )
            h.update(out)
    except zlib.error as e:
        raise ZipFormatError(f"Data of entry {name} malformed: {e}") from None
    if produced != expected:
        raise ZipFormatError(
            f"Unexpected size of uncompressed data of {name}. Expected: {expected} bytes, "
            f"actual: {produced} bytes"
        )
    return h.digest()


# -- atomic output --------------------------------------------------------------------


class _Atomic:
    """A temporary file beside ``target``, renamed over it only on :meth:`commit`."""

    def __init__(self, target: Path) -> None:
        self.target = target
        parent = target.parent
        try:
            fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{target.name}.", suffix=".tmp")
        except FileNotFoundError:
            raise InputError(f"{parent}: no such directory") from None
        except OSError as e:
            raise InputError(f"{parent}: cannot create a file there: {e.strerror}") from None
        self.path = Path(tmp)
        self.file: BinaryIO = os.fdopen(fd, "w+b", buffering=1 << 20)
        self.done = False

    def flush(self) -> None:
        self.file.flush()

    def sync(self) -> None:
        self.file.flush()
        os.fsync(self.file.fileno())

    def commit(self) -> None:
        self.sync()
        self.file.close()
        if self.target.is_dir():
            raise InputError(f"{self.target}: is a directory")
        try:
            os.chmod(self.path, 0o666 & ~_umask())
            os.replace(self.path, self.target)
        except OSError as e:
            raise InputError(f"{self.target}: cannot write: {e.strerror}") from None
        self.done = True
        _fsync_dir(self.target.parent)

    def abort(self) -> None:
        if not self.done:
            with contextlib.suppress(OSError):
                self.file.close()
            with contextlib.suppress(OSError):
                self.path.unlink()


def write_file_atomic(path: str | os.PathLike[str], content: bytes) -> None:
    """Write a small file atomically (temporary file, fsync, rename)."""
    f = _Atomic(Path(path))
    try:
        f.file.write(content)
        f.commit()
    except BaseException:
        f.abort()
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def _open_fd(path: Path) -> Iterator[int | None]:
    """A read-only descriptor of the input for kernel-side copies (None if unavailable)."""
    try:
        fd: int | None = os.open(path, os.O_RDONLY)
    except OSError:
        fd = None
    try:
        yield fd
    finally:
        if fd is not None:
            os.close(fd)


@contextlib.contextmanager
def _mapped(f: BinaryIO, size: int) -> Iterator[memoryview]:
    """A read-only view of the first ``size`` bytes of an open file."""
    if size == 0:
        yield memoryview(b"")
        return
    m = mmap.mmap(f.fileno(), size, access=mmap.ACCESS_READ)
    view = memoryview(m)
    try:
        yield view
    finally:
        view.release()
        with contextlib.suppress(BufferError):
            m.close()


# -- the signer -----------------------------------------------------------------------


def _as_lineage(value: lin.Lineage | str | os.PathLike[str] | None) -> lin.Lineage | None:
    if value is None or isinstance(value, lin.Lineage):
        return value
    return read_lineage(value)


def read_lineage(path: str | os.PathLike[str]) -> lin.Lineage:
    """A lineage from a lineage file or from a signed APK (as ``--lineage`` accepts)."""
    p = Path(path)
    try:
        with p.open("rb") as f:
            head = f.read(4)
    except FileNotFoundError:
        raise InputError(f"{p}: no such file") from None
    except OSError as e:
        raise InputError(f"{p}: cannot read: {e.strerror}") from None
    if len(head) < 4:
        raise InputError("The input file is not a valid lineage file.")
    (magic,) = struct.unpack("<I", head)
    try:
        if magic == lin.FILE_MAGIC:
            if p.stat().st_size > 64 << 20:
                raise InputError(f"{p}: lineage file too large")
            return lin.from_file_bytes(p.read_bytes())
        if magic == 0x04034B50:
            return lineage_from_apk(p)
    except (lin.LineageFormatError, lin.LineageVerifyError) as e:
        raise InputError(f"{p}: {e}") from None
    raise InputError("The input file is not a valid lineage file.")


def lineage_from_apk(path: str | os.PathLike[str]) -> lin.Lineage:
    """The lineage in a signed APK's v3.1 and v3 blocks (apksig ``readFromApkFile``)."""
    with ApkFile(path) as apk:
        try:
            apk.sections  # noqa: B018
        except ZipFormatError as e:
            raise ApkFormatError(str(e)) from None
        values: list[bytes | memoryview] = []
        for block_id in (V31_BLOCK_ID, V3_BLOCK_ID):
            with contextlib.suppress(SignatureNotFound):
                values.append(bytes(find_signing_block(apk).find(block_id)))
        if not values:
            raise InputError(
                "The provided APK does not contain a valid V3 nor V3.1 signature block."
            )
        try:
            return lin.from_signing_block_values(values)
        except (lin.LineageFormatError, lin.LineageVerifyError, lin.NotInLineage) as e:
            raise InputError(f"{path}: {e}") from None


def sign_apk(
    input: str | os.PathLike[str],
    output: str | os.PathLike[str] | None,
    signers: Sequence[Signer | SignerKey],
    *,
    v1: bool = True,
    v2: bool = True,
    v3: bool | None = None,
    v4: V4Mode = None,
    v4_output: str | os.PathLike[str] | None = None,
    min_sdk: int | None = None,
    max_sdk: int | None = None,
    lineage: lin.Lineage | str | os.PathLike[str] | None = None,
    rotation_min_sdk: int | None = None,
    rotation_targets_dev_release: bool = False,
    alignment_preserved: bool = False,
    lib_page_alignment: int = LIBRARY_PAGE_ALIGNMENT,
    v1_signer_names: Sequence[str] | None = None,
    verity: bool = False,
    align_file_size: bool = False,
    debuggable_apk_permitted: bool = True,
    created_by: str = sign_v1.DEFAULT_CREATED_BY,
    stamp: StampSigner | SignerKey | None = None,
    force_stamp_overwrite: bool = False,
) -> SignResult:
    """Sign ``input`` into ``output`` (``None``: in place) with apksigner's rules.

    Defaults are ``apksigner sign``'s: v1, v2 and v3 on (v3 off when several signers
    are given without a lineage, unless ``v3=True``), minSdkVersion from the
    manifest, v4 on writing ``<output>.idsig`` with failures ignored (``v4=True``
    reports them, ``v4="only"`` writes just the ``.idsig`` of an already v2/v3-signed
    APK), rotation to the newest lineage signer on API 33+ through v3.1
    (``rotation_min_sdk`` below 33 puts it in the v3 block for API 28+).

    ``stamp`` adds a source stamp (``--stamp-signer``, :mod:`sign_stamp`): the
    ``stamp-cert-sha256`` entry, covered by v1, and a V2 source stamp block signing
    the v1/v2/v3 digests. An input ``stamp-cert-sha256`` naming another certificate
    is refused unless ``force_stamp_overwrite``.

    Raises :class:`ApkFormatError` for a malformed APK, :class:`InputError` for
    unusable options or keys, :class:`SignatureError` when a key does not match its
    certificate; nothing is written then.
    """
    src = Path(input)
    dst = Path(output) if output is not None else src
    if min_sdk is not None and max_sdk is not None and min_sdk > max_sdk:
        raise InputError(f"Min API Level ({min_sdk}) > max API Level ({max_sdk})")
    if lib_page_alignment < 1 or lib_page_alignment > 0xFFFF:
        raise InputError(f"Invalid --lib-page-alignment: {lib_page_alignment}")
    the_lineage = _as_lineage(lineage)
    if v4 == "only":
        return v4_only(src, signers, v4_output=v4_output, min_sdk=min_sdk, lineage=the_lineage,
                       rotation_min_sdk=rotation_min_sdk,
                       rotation_targets_dev_release=rotation_targets_dev_release)  # fmt: skip
    v3_explicit = v3
    v4_on = v4 is None or v4 is True
    v4_report = v4 is True
    v3_eff = v3 if v3 is not None else (len(signers) == 1 or the_lineage is not None)
    if v4_on and not v2 and not v3_eff:
        if v4_report:
            raise InputError(
                "APK Signature Scheme v4 signing requires at least v2 or v3 signing to be enabled"
            )
        v4_on = False
    idsig = Path(v4_output) if v4_output is not None else Path(f"{dst}.idsig")
    with ApkFile(src) as apk, _open_fd(src) as src_fd:
        out = _Atomic(dst)
        sig_out: _Atomic | None = None
        try:
            result, plan = _sign(
                apk,
                src_fd,
                out,
                signers,
                v1=v1,
                v2=v2,
                v3=v3_explicit,
                min_sdk=min_sdk,
                lineage=the_lineage,
                rotation_min_sdk=rotation_min_sdk,
                rotation_targets_dev_release=rotation_targets_dev_release,
                alignment_preserved=alignment_preserved,
                lib_page_alignment=lib_page_alignment,
                v1_signer_names=v1_signer_names,
                verity=verity,
                align_file_size=align_file_size,
                debuggable_apk_permitted=debuggable_apk_permitted,
                created_by=created_by,
                stamp=stamp
                if stamp is None or isinstance(stamp, StampSigner)
                else StampSigner(stamp),
                force_stamp_overwrite=force_stamp_overwrite,
            )
            out.flush()
            if v4_on:
                try:
                    idsig_bytes = _v4_file(out, plan, result)
                except ProvenanceError:
                    if v4_report:
                        raise
                    idsig_bytes = None
                if idsig_bytes is not None:
                    sig_out = _Atomic(idsig)
                    sig_out.file.write(idsig_bytes)
                    sig_out.sync()
            out.commit()
        except BaseException:
            out.abort()
            if sig_out is not None:
                sig_out.abort()
            raise
    result.input = src
    result.output = dst
    result.size = dst.stat().st_size
    if sig_out is not None:
        sig_out.commit()
        result.idsig = idsig
        result.schemes.append("v4")
    elif v4_on:
        # apksigner deletes a stale .idsig before signing; one that failed stays absent.
        with contextlib.suppress(FileNotFoundError):
            idsig.unlink()
    return result


@dataclass
class _Stamp:
    """A source stamp being written: signer, certificate, timestamp, v1 digest."""

    signer: StampSigner
    cert: certs.Certificate
    timestamp: int | None
    v1_manifest_digest: bytes | None = None


@dataclass
class _Blocks:
    """What the APK Signing Block generation produced (for v4)."""

    v2: list[BlockSigner] | None = None
    v3: list[BlockSigner] | None = None
    v31: list[BlockSigner] | None = None
    digests: dict[Any, bytes] = field(default_factory=dict)


def _sign(
    apk: ApkFile,
    src_fd: int | None,
    out: _Atomic,
    signers: Sequence[Signer | SignerKey],
    *,
    v1: bool,
    v2: bool,
    v3: bool | None,
    min_sdk: int | None,
    lineage: lin.Lineage | None,
    rotation_min_sdk: int | None,
    rotation_targets_dev_release: bool,
    alignment_preserved: bool,
    lib_page_alignment: int,
    v1_signer_names: Sequence[str] | None,
    verity: bool,
    align_file_size: bool,
    debuggable_apk_permitted: bool,
    created_by: str,
    stamp: StampSigner | None = None,
    force_stamp_overwrite: bool = False,
) -> tuple[SignResult, tuple[_Plan, _Blocks]]:
    data = apk.data
    # Step 1: the ZIP sections and any APK Signing Block of the input.
    try:
        sections = apk.sections
    except ZipFormatError as e:
        raise ApkFormatError(f"Malformed APK: not a ZIP archive: {e}") from None
    try:
        lfh_end = find_signing_block(apk).offset
    except SignatureNotFound:
        lfh_end = sections.cd_offset
    # Step 2: the central directory, every record (directories too).
    if sections.cd_size > _INT_MAX:
        raise ApkFormatError(f"ZIP Central Directory too large: {sections.cd_size}")
    records = list(iter_central_directory(data, sections))
    end = records[-1].record_offset + records[-1].record_size if records else sections.cd_offset
    if end != sections.cd_offset + sections.cd_size:
        raise ApkFormatError(
            f"Unused space at the end of ZIP Central Directory: "
            f"{sections.cd_offset + sections.cd_size - end} bytes starting at file offset {end}"
        )
    by_name: dict[str, CdRecord] = {}
    for r in records:
        if r.name in by_name:
            raise ApkFormatError(f"Multiple ZIP entries with the same name: {r.name}")
        by_name[r.name] = r

    def entry(name: str, what: str, limit: int = MAX_IN_MEMORY_ENTRY) -> bytes | None:
        r = by_name.get(name)
        if r is None:
            return None
        try:
            return _entry_bytes(apk, r, lfh_end, limit)
        except ZipFormatError as e:
            raise ApkFormatError(f"{what}: {e}") from None

    pin_blob = entry(PIN_HINT_ASSET, f"Bad {PIN_HINT_ASSET}")
    pins = parse_pin_patterns(pin_blob) if pin_blob is not None else None
    # Step 3: minSdkVersion and the signer plan.
    if min_sdk is None:
        try:
            manifest = entry(MANIFEST_ENTRY, "Failed to read AndroidManifest.xml")
            if manifest is None:
                raise ApkFormatError(f"Missing {MANIFEST_ENTRY}")
            min_sdk = mf.min_sdk_version(manifest)
        except ProvenanceError as e:
            raise InputError(
                "Failed to determine APK's minimum supported platform version. Use "
                f"--min-sdk-version to override: {e}"
            ) from None
    plan = _plan(
        signers,
        min_sdk=min_sdk,
        v1=v1,
        v2=v2,
        v3=v3,
        lineage=lineage,
        rotation_min_sdk=rotation_min_sdk,
        rotation_targets_dev_release=rotation_targets_dev_release,
        verity=verity,
        v1_signer_names=v1_signer_names,
    )
    v1_names = plan.v1_entry_names()
    v1_signers, v1_alg = plan.v1_signers() if v1 else ([], "sha256")
    # apksig isEligibleForSourceStamp: a stamp signer and at least one scheme.
    stamp_job: _Stamp | None = None
    if stamp is not None and (v1 or v2 or plan.v3):
        stamp_cert, _ = stamp.check()
        stamp_job = _Stamp(stamp, stamp_cert, stamp.resolved_timestamp())
    input_stamp: bytes | None = None

    # Step 5: copy entries in local-header order.
    f = out.file
    in_off = 0
    out_off = 0
    cd_out: dict[str, bytes] = {}
    last_dt: tuple[int, int] | None = None
    jobs: dict[str, Future[bytes]] = {}
    pool = executor()
    input_manifest: bytes | None = None
    output_android_manifest: CdRecord | None = None
    pin_ranges: list[tuple[int, int]] = []

    def copy(start: int, stop: int) -> None:
        done = _copy_range(src_fd, f, start, stop - start) if src_fd is not None else 0
        for pos in range(start + done, stop, _COPY_CHUNK):
            f.write(data[pos : min(stop, pos + _COPY_CHUNK)])

    for cd in sorted(records, key=lambda r: r.lfh_offset):
        name = cd.name
        if name == PIN_LIST_ENTRY:
            continue
        if name == STAMP_CERT_ENTRY:
            input_stamp = entry(name, "Bad source stamp entry")
            continue
        if name in v1_names:
            policy = "engine"
        elif sign_v1.is_digest_needed(name):
            policy = "output"
        else:
            policy = "skip"
        if cd.lfh_offset > in_off:
            copy(in_off, cd.lfh_offset)
            out_off += cd.lfh_offset - in_off
            in_off = cd.lfh_offset
        try:
            rec = read_local_record(data, cd, lfh_end)
        except ZipFormatError as e:
            raise ApkFormatError(f"Malformed ZIP entry: {name}: {e}") from None
        in_off += rec.size
        if policy == "engine" and name == sign_v1.MANIFEST_ENTRY:
            if rec.uncompressed_size > MAX_IN_MEMORY_ENTRY:
                raise ApkFormatError(f"{name} too large: {rec.uncompressed_size}")
            raw = data[rec.data_offset : rec.data_offset + rec.data_size]
            try:
                input_manifest = (
                    _inflate_java(raw, rec.uncompressed_size, name)
                    if rec.compressed
                    else bytes(raw)
                )
            except ZipFormatError as e:
                raise ApkFormatError(f"Malformed ZIP entry: {name}: {e}") from None
        if policy != "output":
            continue
        dt = (cd.mod_date, cd.mod_time)
        if last_dt is None or dt > last_dt:
            last_dt = dt
        if v1:
            jobs[name] = pool.submit(
                _digest_entry,
                data[rec.data_offset : rec.data_offset + rec.data_size],
                rec.compressed,
                rec.uncompressed_size,
                name,
                v1_alg,
            )
        if name == MANIFEST_ENTRY:
            output_android_manifest = cd
        lfh_out = out_off
        p = plan_record(
            data,
            rec,
            out_off,
            alignment_preserved=alignment_preserved,
            lib_page_alignment=lib_page_alignment,
        )
        if p.header is None:
            copy(rec.start, rec.start + rec.size)
        else:
            f.write(p.header)
            copy(rec.start + rec.data_start, rec.start + rec.size)
        out_off += p.size
        if pins is not None:
            pinned = False
            for pat in pins:
                if pat.pattern.fullmatch(name):
                    span = pat.clamp(lfh_out + p.data_start, out_off)
                    if span is not None:
                        pinned = True
                        pin_ranges.append(span)
            if pinned:
                pin_ranges.append((lfh_out, lfh_out + p.data_start))
        cd_out[name] = (
            cd_record_at(data, cd, lfh_out)
            if lfh_out != rec.start
            else bytes(data[cd.record_offset : cd.record_offset + cd.record_size])
        )
    if in_off < lfh_end:
        copy(in_off, lfh_end)
        out_off += lfh_end - in_off
        in_off = lfh_end

    # Step 6: output central directory order follows the input's.
    cd_parts = [cd_out[r.name] for r in records if r.name in cd_out]
    mod_date, mod_time = last_dt if last_dt is not None else (DEFAULT_DOS_DATE, 0)

    def add_entry(name: str, content: bytes) -> None:
        nonlocal out_off
        local, cdr = new_entry(name, content, out_off, mod_time, mod_date)
        f.write(local)
        out_off += len(local)
        cd_parts.append(cdr)

    digests: dict[str, bytes] = {}
    try:
        for name, job in jobs.items():
            digests[name] = job.result()
    except ZipFormatError as e:
        raise ApkFormatError(f"Malformed ZIP entry: {e}") from None
    finally:
        for job in jobs.values():
            job.cancel()

    if not debuggable_apk_permitted and (v1 or v2 or plan.v3):
        _check_not_debuggable(apk, output_android_manifest, lfh_end)

    # Step 7: the source stamp certificate digest, covered by the v1 signature.
    if stamp_job is not None:
        stamp_digest = stamp_cert_digest(stamp_job.cert)
        if not (force_stamp_overwrite or input_stamp is None or input_stamp == stamp_digest):
            raise ApkFormatError(
                f"Cannot generate SourceStamp. APK contains an existing entry with the name: "
                f"{STAMP_CERT_ENTRY}, and it is different than the provided source stamp "
                "certificate"
            )
        if v1:
            digests[STAMP_CERT_ENTRY] = hashlib.new(v1_alg, stamp_digest).digest()
        add_entry(STAMP_CERT_ENTRY, stamp_digest)

    # Step 7.5: pinlist.meta, itself covered by the v1 signature.
    if pins is not None:
        pin_ranges.append((out_off, (1 << 63) - 1))
        blob = encode_pin_ranges(pin_ranges)
        if v1:
            digests[PIN_LIST_ENTRY] = hashlib.new(v1_alg, blob).digest()
        add_entry(PIN_LIST_ENTRY, blob)

    # Step 8: the v1 signature.
    schemes: list[str] = []
    if v1:
        scheme_ids = ([2] if v2 else []) + ([3] if plan.v3 else [])
        entries, jar_manifest = sign_v1.sign_v1(
            v1_signers, v1_alg, digests, scheme_ids, input_manifest, created_by
        )
        if stamp_job is not None:
            stamp_job.v1_manifest_digest = hashlib.sha256(jar_manifest.contents).digest()
        for name, content in entries:
            add_entry(name, content)
        schemes.append("v1")

    # Steps 9-12: central directory, APK Signing Block, EOCD.
    cd_bytes = b"".join(cd_parts)
    if len(cd_bytes) > _INT_MAX:
        raise ApkFormatError(f"Output ZIP Central Directory too large: {len(cd_bytes)} bytes")
    eocd = eocd_with_cd(bytes(apk.eocd), len(cd_parts), len(cd_bytes), out_off)
    blocks = _Blocks()
    if v2 or plan.v3 or stamp_job is not None:
        pad = (-out_off) % FILE_ALIGNMENT
        f.write(bytes(pad))
        out.flush()
        before = out_off + pad
        with _mapped(f, before) as entries_view:
            block = _signing_block(plan, blocks, entries_view, cd_bytes, eocd, before, stamp_job)
            if align_file_size:
                size = before + len(block) + len(cd_bytes) + len(eocd)
                if size % FILE_ALIGNMENT:
                    eocd = eocd_padded(eocd, FILE_ALIGNMENT - size % FILE_ALIGNMENT)
                    blocks = _Blocks()
                    block = _signing_block(
                        plan, blocks, entries_view, cd_bytes, eocd, before, stamp_job
                    )
        f.seek(before)
        f.write(block)
        eocd = eocd_with_cd_offset(eocd, before + len(block))
        schemes += [s for s, b in (("v2", blocks.v2), ("v3", blocks.v3), ("v3.1", blocks.v31)) if b]
    f.write(cd_bytes)
    f.write(eocd)
    f.truncate()
    signer_certs = [c.cert for c in plan.untargeted + plan.targeted]
    result = SignResult(
        Path(), Path(), None, min_sdk, schemes, [s.name for s in v1_signers], signer_certs,
        plan.lineage,
    )  # fmt: skip
    if stamp_job is not None:
        result.stamp_cert = stamp_job.cert
        result.schemes.append("source-stamp")
    return result, (plan, blocks)


def _copy_range(src_fd: int, f: BinaryIO, offset: int, size: int) -> int:
    """Copy ``size`` bytes of the input at ``offset`` to the output's position in the
    kernel (copy_file_range, else sendfile); returns how many bytes it managed, so the
    caller can finish with plain writes. Saves a user-space copy of every entry."""
    if size < _KERNEL_COPY_MIN:
        return 0
    f.flush()
    out_fd = f.fileno()
    pos = f.tell()
    done = 0
    for copier in ("copy_file_range", "sendfile"):
        try:
            while done < size:
                if copier == "copy_file_range":
                    n = os.copy_file_range(src_fd, out_fd, size - done, offset + done, pos + done)
                else:
                    os.lseek(out_fd, pos + done, os.SEEK_SET)
                    n = os.sendfile(out_fd, src_fd, offset + done, size - done)
                if n <= 0:
                    break
                done += n
        except (OSError, AttributeError):
            continue
        if done == size:
            break
    f.seek(pos + done)
    return done


def _check_not_debuggable(apk: ApkFile, cd: CdRecord | None, lfh_end: int) -> None:
    if cd is None:
        raise SignatureError(
            f"Cannot determine debuggable status of output APK because {MANIFEST_ENTRY} entry "
            "contents have not yet been requested"
        )
    try:
        manifest = _entry_bytes(apk, cd, lfh_end, MAX_IN_MEMORY_ENTRY)
        debuggable = mf.debuggable(manifest)
    except ProvenanceError as e:
        raise SignatureError(f"Failed to determine whether the APK is debuggable: {e}") from None
    if debuggable:
        raise SignatureError(
            "APK is debuggable (see android:debuggable attribute) and this engine is "
            "configured to refuse to sign debuggable APKs"
        )


def _signing_block(
    plan: _Plan,
    blocks: _Blocks,
    entries: memoryview,
    cd: bytes,
    eocd: bytes,
    before: int,
    stamp: _Stamp | None = None,
) -> bytes:
    """Generate v2, v3.1, v3 and source stamp blocks (in that order) and wrap them in the
    signing block."""
    sections = [entries, memoryview(cd), memoryview(eocd_with_cd_offset(eocd, before))]
    pairs: list[tuple[int, bytes]] = []
    v2s = plan.v2_signers() if plan.v2 else None
    v3s, v31s = plan.v3_signers() if plan.v3 else (None, None)
    need = content_digest_algorithms([*(v2s or []), *(v3s or []), *(v31s or [])])
    digests = compute_content_digests(sections, need)
    blocks.digests = dict(digests)
    if v2s is not None:
        pairs.append((V2_BLOCK_ID, v2_block(v2s, digests, v3_enabled=plan.v3)))
        blocks.v2 = v2s
    if v3s is not None:
        v31_min: int | None = None
        if v31s:
            pairs.append((V31_BLOCK_ID, v3_block(v31s, digests, block_id=V31_BLOCK_ID)))
            blocks.v31 = v31s
            v31_min = min(s.min_sdk for s in v31s)
        pairs.append((V3_BLOCK_ID, v3_block(v3s, digests, v31_min_sdk=v31_min)))
        blocks.v3 = v3s
    if stamp is not None:
        # DefaultApkSignerEngine: each scheme's own digests (v3: the v3.0 block's).
        scheme_digests: dict[int, dict[ContentDigest, bytes] | dict[int, bytes]] = {}
        if v3s is not None:
            scheme_digests[VERSION_APK_SIGNATURE_SCHEME_V3] = _subset(digests, v3s)
        if v2s is not None:
            scheme_digests[VERSION_APK_SIGNATURE_SCHEME_V2] = _subset(digests, v2s)
        if stamp.v1_manifest_digest is not None:
            scheme_digests[VERSION_JAR_SIGNATURE_SCHEME] = {
                SHA256_DIGEST_ID: stamp.v1_manifest_digest
            }
        value = stamp_block(stamp.signer, scheme_digests, timestamp=stamp.timestamp)
        pairs.append((SOURCE_STAMP_V2_BLOCK_ID, value))
    return signing_block(pairs)


def _subset(
    digests: dict[ContentDigest, bytes], signers: Sequence[BlockSigner]
) -> dict[ContentDigest, bytes]:
    need = content_digest_algorithms(signers)
    return {k: v for k, v in digests.items() if k in need}


def _v4_file(out: _Atomic, plan_blocks: tuple[_Plan, _Blocks], result: SignResult) -> bytes:
    """The .idsig of the just-written APK (apksig ``V4SchemeSigner``)."""
    plan, blocks = plan_blocks
    digests: dict[int, bytes] = {}
    for version, signers in ((31, blocks.v31), (3, blocks.v3), (2, blocks.v2)):
        if signers is not None and len(signers) == 1:
            digests[version] = best_digest_for_v4(signers[0], blocks.digests)
    if not digests:
        raise SignatureError("V4 signing failed: Failed to obtain v2/v3 digest")
    v4s, v41s = plan.v4_signers()
    apk_digest = digests.get(3, digests.get(2))
    if apk_digest is None:
        raise SignatureError("V4 signing failed: no v2/v3 digest")
    v41: tuple[BlockSigner, bytes] | None = None
    if v41s is not None:
        if 31 not in digests:
            raise SignatureError("V4.1 cannot be signed without a V3.1 content digest")
        v41 = (v41s, digests[31])
    size = out.file.seek(0, os.SEEK_END)
    with _mapped(out.file, size) as view:
        return v4_signature(view, v4s, apk_digest, v41)


# -- v4 only --------------------------------------------------------------------------


def _block_signers(value: bytes) -> list[tuple[list[bytes], list[tuple[int, bytes]]]]:
    """(certificates, digests) of each signer of a v2/v3 block value."""
    out = []
    try:
        signers = Reader(value).prefixed()
        while signers.has_remaining():
            signed = signers.prefixed().prefixed()
            digs = signed.prefixed()
            pairs: list[tuple[int, bytes]] = []
            while digs.has_remaining():
                d = digs.prefixed()
                pairs.append((d.u32(), d.prefixed_bytes()))
            certs_r = signed.prefixed()
            chain: list[bytes] = []
            while certs_r.has_remaining():
                chain.append(certs_r.prefixed_bytes())
            out.append((chain, pairs))
    except Malformed as e:
        raise ApkFormatError(f"Malformed APK Signing Block: {e}") from None
    return out


def v4_only(
    apk_path: str | os.PathLike[str],
    signers: Sequence[Signer | SignerKey],
    *,
    v4_output: str | os.PathLike[str] | None = None,
    min_sdk: int | None = None,
    lineage: lin.Lineage | None = None,
    rotation_min_sdk: int | None = None,
    rotation_targets_dev_release: bool = False,
) -> SignResult:
    """Write only ``<apk>.idsig`` for an APK already signed with v2/v3 by these signers.

    The APK is not modified. Fails when it has no v2/v3 signature, or when that
    signature's signer is not the v4 signer these keys make.
    """
    from provenance.apk.algorithms import find_by_id

    src = Path(apk_path)
    idsig = Path(v4_output) if v4_output is not None else Path(f"{src}.idsig")
    with ApkFile(src) as apk:
        try:
            block = find_signing_block(apk)
        except (SignatureNotFound, ZipFormatError):
            raise InputError(
                f"{src}: --v4-signing-enabled only needs an APK signed with v2 or v3"
            ) from None
        found: dict[int, tuple[list[bytes], list[tuple[int, bytes]]]] = {}
        for version, block_id in ((31, V31_BLOCK_ID), (3, V3_BLOCK_ID), (2, V2_BLOCK_ID)):
            try:
                signer_list = _block_signers(bytes(block.find(block_id)))
            except SignatureNotFound:
                continue
            if len(signer_list) == 1:
                found[version] = signer_list[0]
        if 3 not in found and 2 not in found:
            raise InputError(f"{src}: no v2 or v3 signature with a single signer to extend")
        plan = _plan(
            signers,
            min_sdk=min_sdk if min_sdk is not None else SDK_P,
            v1=False,
            v2=2 in found,
            v3=3 in found,
            lineage=lineage,
            rotation_min_sdk=rotation_min_sdk,
            rotation_targets_dev_release=rotation_targets_dev_release,
            verity=False,
            v1_signer_names=None,
        )
        v4s, v41s = plan.v4_signers()

        def best(pairs: list[tuple[int, bytes]]) -> bytes:
            order = {1: 0, 3: 1, 2: 2}
            ranked = [
                (order[a.digest.ident], v) for i, v in pairs if (a := find_by_id(i)) is not None
            ]
            if not ranked:
                raise InputError(f"{src}: Failed to find a supported digest in the source APK")
            return max(ranked, key=lambda t: t[0])[1]

        version = 3 if 3 in found else 2
        chain, pairs = found[version]
        if not chain or chain[0] != v4s.cert.encoded:
            raise InputError(
                f"{src}: the APK's v{version} signer is not the key given for v4 signing"
            )
        v41: tuple[BlockSigner, bytes] | None = None
        if v41s is not None:
            if 31 not in found:
                raise InputError("V4.1 cannot be signed without a V3.1 content digest")
            v41 = (v41s, best(found[31][1]))
        content = v4_signature(apk.data, v4s, best(pairs), v41)
    write_file_atomic(idsig, content)
    return SignResult(src, src, idsig, plan.min_sdk, ["v4"], [], [v4s.cert], plan.lineage,
                      src.stat().st_size)  # fmt: skip
