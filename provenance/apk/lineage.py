"""Proof-of-rotation: the signing-certificate lineage of APK Signature Scheme v3.

A lineage is a chain of certificates, each node signed by the key of the previous
one, with per-node capability flags. It appears as a v3 signer attribute and as a
standalone file (``apksigner rotate``). Reading it verifies every link, exactly as
apksig's ``V3SigningCertificateLineage.readSigningCertificateLineage`` does; any
broken link raises :class:`LineageVerifyError`.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, replace

from provenance.apk import algorithms, certs
from provenance.apk.signing_block import Malformed, Reader

FILE_MAGIC = 0x3EFF39D1
VERSION = 1

# Capability flags of a node.
CAP_INSTALLED_DATA = 1
CAP_SHARED_UID = 2
CAP_PERMISSION = 4
CAP_ROLLBACK = 8
CAP_AUTH = 16
DEFAULT_CAPS = CAP_INSTALLED_DATA | CAP_SHARED_UID | CAP_PERMISSION | CAP_AUTH


class LineageFormatError(Exception):
    """The lineage bytes are malformed (reported as *_MALFORMED_LINEAGE)."""


class LineageVerifyError(Exception):
    """A lineage link does not verify (reported as *_POR_DID_NOT_VERIFY)."""


class NotInLineage(ValueError):
    """A certificate is not part of the lineage (apksig's IllegalArgumentException)."""


@dataclass(frozen=True, eq=False)
class LineageNode:
    """One certificate in the lineage."""

    cert: certs.Certificate
    parent_sig_alg_id: int  # algorithm the previous key used to sign this node
    sig_alg_id: int  # algorithm this node's key uses to sign the next node
    signature: bytes
    flags: int

    @property
    def capabilities(self) -> dict[str, bool]:
        """Named capability flags."""
        return {
            "installed_data": bool(self.flags & CAP_INSTALLED_DATA),
            "shared_uid": bool(self.flags & CAP_SHARED_UID),
            "permission": bool(self.flags & CAP_PERMISSION),
            "rollback": bool(self.flags & CAP_ROLLBACK),
            "auth": bool(self.flags & CAP_AUTH),
        }


@dataclass(frozen=True, eq=False)
class Lineage:
    """An ordered chain of certificates, oldest first."""

    nodes: tuple[LineageNode, ...]
    min_sdk: int = algorithms.SDK_P

    def __len__(self) -> int:
        return len(self.nodes)

    @property
    def certificates(self) -> list[certs.Certificate]:
        """Certificates in order, oldest first."""
        return [n.cert for n in self.nodes]

    def contains(self, cert: certs.Certificate) -> bool:
        """True when ``cert`` is one of the lineage's certificates."""
        return any(n.cert == cert for n in self.nodes)

    def sub_lineage(self, cert: certs.Certificate) -> Lineage:
        """The lineage up to and including ``cert`` (raises NotInLineage)."""
        for i, n in enumerate(self.nodes):
            if n.cert == cert:
                return Lineage(self.nodes[: i + 1], self.min_sdk)
        raise NotInLineage("Certificate not found in SigningCertificateLineage")

    def merge(self, other: Lineage) -> Lineage:
        """Merge with a lineage that is an ancestor or descendant of this one."""
        if other.contains(self.nodes[0].cert):
            desc, anc = self, other
        else:
            desc, anc = other, self
        ai = 0
        di = 0
        dnode = desc.nodes[di]
        di += 1
        merged: list[LineageNode] = []
        while ai < len(anc.nodes):
            anode = anc.nodes[ai]
            ai += 1
            if anode.cert == dnode.cert:
                break
            merged.append(anode)
        if ai == len(merged):
            raise NotInLineage("The provided lineage is not a descendant or an ancestor")
        merged.append(dnode)
        while ai < len(anc.nodes) and di < len(desc.nodes):
            anode = anc.nodes[ai]
            dnode = desc.nodes[di]
            ai += 1
            di += 1
            if anode.cert != dnode.cert:
                raise NotInLineage("The provided lineage diverges from this lineage")
            merged.append(dnode)
        merged.extend(anc.nodes[ai:])
        merged.extend(desc.nodes[di:])
        return Lineage(tuple(merged), min(self.min_sdk, other.min_sdk))

    def to_json(self) -> list[dict[str, object]]:
        """JSON form: one object per certificate."""
        return [
            {
                "cert_sha256": n.cert.sha256,
                "subject": n.cert.subject,
                "capabilities": n.capabilities,
            }
            for n in self.nodes
        ]


def consolidate(lineages: list[Lineage]) -> Lineage | None:
    """Merge the lineages of several v3 signers into one (raises NotInLineage)."""
    if not lineages:
        return None
    out = lineages[0]
    for other in lineages[1:]:
        out = out.merge(other)
    return out


def _min_sdk(nodes: list[LineageNode]) -> int:
    m = algorithms.SDK_P
    for n in nodes:
        alg = algorithms.find_by_id(n.parent_sig_alg_id)
        if alg is not None and alg.min_sdk > m:
            m = alg.min_sdk
    return m


def read_nodes(value: bytes | memoryview) -> list[LineageNode]:
    """Parse and verify the node list (``version(u32) | nodes``) of a v3 attribute."""
    r = Reader(bytes(value))
    nodes: list[LineageNode] = []
    if not r.has_remaining():
        raise LineageFormatError("empty lineage")
    last_cert: certs.Certificate | None = None
    last_alg_id = 0
    seen: set[bytes] = set()
    count = 0
    try:
        version = r.u32()
        if version != VERSION:
            raise LineageFormatError(
                "Encoded SigningCertificateLineage has a version different than any of which "
                "we are aware"
            )
        while r.has_remaining():
            count += 1
            node = r.prefixed()
            signed = node.prefixed()
            flags = node.i32()
            sig_alg_id = node.u32()
            signature = node.prefixed_bytes()
            if last_cert is not None:
                alg = algorithms.find_by_id(last_alg_id)
                if alg is None:
                    raise LineageFormatError(f"unknown signature algorithm {last_alg_id:#x}")
                try:
                    key = last_cert.public_key
                    ok = certs.verify(
                        key, alg.key_type, alg.hash_name, alg.padding, signed.whole(), signature
                    )
                except (certs.PublicKeyError, certs.VerifyException) as e:
                    raise LineageVerifyError(
                        f"Failed to verify signature over signed data for certificate #{count}: {e}"
                    ) from None
                if not ok:
                    raise LineageVerifyError(
                        f"Unable to verify signature of certificate #{count} when verifying "
                        "V3SigningCertificateLineage object"
                    )
            encoded = signed.prefixed_bytes()
            signed_alg = signed.u32()
            if last_cert is not None and last_alg_id != signed_alg:
                raise LineageVerifyError(f"Signing algorithm ID mismatch for certificate #{count}")
            try:
                cert = certs.load_certificate(encoded)
            except certs.CertificateError as e:
                raise LineageVerifyError(f"Failed to decode certificate #{count}: {e}") from None
            if cert.encoded in seen:
                raise LineageVerifyError(
                    f"Encountered duplicate entries in SigningCertificateLineage at certificate "
                    f"#{count}. All signing certificates should be unique"
                )
            seen.add(cert.encoded)
            nodes.append(LineageNode(cert, signed_alg, sig_alg_id, signature, flags))
            last_cert = cert
            last_alg_id = sig_alg_id
    except Malformed as e:
        raise LineageFormatError(
            f"Failed to parse V3SigningCertificateLineage object: {e}"
        ) from None
    return nodes


def from_v3_attribute(value: bytes | memoryview) -> Lineage:
    """The lineage carried in a v3 signer's proof-of-rotation attribute."""
    nodes = read_nodes(value)
    return Lineage(tuple(nodes), _min_sdk(nodes))


def from_file_bytes(data: bytes) -> Lineage:
    """A lineage file as written by ``apksigner rotate`` (magic, version, nodes)."""
    if len(data) < 8:
        raise LineageFormatError(
            "Improper SigningCertificateLineage format: insufficient data for header."
        )
    magic, version = struct.unpack_from("<II", data, 0)
    if magic != FILE_MAGIC:
        raise LineageFormatError(
            "Improper SigningCertificateLineage format: MAGIC header mismatch."
        )
    if version != VERSION:
        raise LineageFormatError("Improper SigningCertificateLineage format: unrecognized version.")
    try:
        inner = Reader(data, 8).prefixed_bytes()
    except Malformed as e:
        raise LineageFormatError(f"Unable to read list of signing certificate nodes: {e}") from None
    nodes = read_nodes(inner)
    return Lineage(tuple(nodes), _min_sdk(nodes))


# -- writing and creating lineages (the signer side) -------------------------------------
#
# apksig ``SigningCertificateLineage``: the same node encoding is the v3 proof-of-rotation
# attribute value and, behind a magic and a version, the file ``apksigner rotate`` writes.
# Lineages stay immutable here: each operation returns a new one.


def encode_nodes(nodes: tuple[LineageNode, ...] | list[LineageNode]) -> bytes:
    """``version | lp(node)...``: the v3 proof-of-rotation attribute value."""
    out = bytearray(struct.pack("<I", VERSION))
    for n in nodes:
        signed = n.cert.encoded
        signed_data = (
            struct.pack("<I", len(signed)) + signed + struct.pack("<I", n.parent_sig_alg_id)
        )
        node = (
            struct.pack("<I", len(signed_data))
            + signed_data
            + struct.pack("<iI", n.flags, n.sig_alg_id)
            + struct.pack("<I", len(n.signature))
            + n.signature
        )
        out += struct.pack("<I", len(node)) + node
    return bytes(out)


def to_file_bytes(lineage: Lineage) -> bytes:
    """The lineage file (``apksigner rotate --out``): magic, version, length-prefixed nodes."""
    nodes = encode_nodes(lineage.nodes)
    return struct.pack("<III", FILE_MAGIC, VERSION, len(nodes)) + nodes


def create(cert: certs.Certificate, flags: int = DEFAULT_CAPS, min_sdk: int = 0) -> Lineage:
    """A lineage holding only its first (original) certificate."""
    node = LineageNode(cert, 0, 0, b"", flags)
    return Lineage((node,), max(min_sdk, algorithms.SDK_P))


def spawn_descendant(
    lineage: Lineage,
    parent: certs.Certificate,
    alg: algorithms.SignatureAlgorithm,
    sign: Callable[[bytes, str, str], bytes],
    child: certs.Certificate,
    child_flags: int = DEFAULT_CAPS,
) -> Lineage:
    """Append ``child``, signed by ``parent`` (the newest certificate) with ``alg``.

    ``sign(data, hash_name, padding)`` is the parent's private key. The signature is
    checked against the parent certificate before the lineage is returned.
    """
    if not lineage.nodes:
        raise NotInLineage("Cannot spawn descendant signing certificate on an empty lineage")
    last = lineage.nodes[-1]
    if last.cert != parent:
        raise NotInLineage(
            "SignerConfig Certificate containing private key to sign the new "
            "SigningCertificateLineage record does not match the existing most recent record"
        )
    signed = struct.pack("<I", len(child.encoded)) + child.encoded + struct.pack("<I", alg.id)
    signature = sign(signed, alg.hash_name, alg.padding)
    try:
        ok = certs.verify(
            parent.public_key, alg.key_type, alg.hash_name, alg.padding, signed, signature
        )
    except (certs.VerifyException, certs.PublicKeyError) as e:
        raise LineageVerifyError(f"Failed to verify the new lineage signature: {e}") from None
    if not ok:
        raise LineageVerifyError(
            "The new lineage signature does not verify with the parent certificate "
            "(does the key match the certificate?)"
        )
    nodes = [*lineage.nodes[:-1], replace(last, sig_alg_id=alg.id)]
    nodes.append(LineageNode(child, alg.id, 0, signature, child_flags))
    return Lineage(tuple(nodes), lineage.min_sdk)


def with_capabilities(lineage: Lineage, cert: certs.Certificate, flags: int, mask: int) -> Lineage:
    """Set the capability bits in ``mask`` of ``cert``'s node to those in ``flags``."""
    for i, n in enumerate(lineage.nodes):
        if n.cert == cert:
            new = replace(n, flags=(n.flags & ~mask) | (flags & mask))
            return Lineage((*lineage.nodes[:i], new, *lineage.nodes[i + 1 :]), lineage.min_sdk)
    raise NotInLineage(f"Certificate ({cert.subject}) not found in the SigningCertificateLineage")


def flags_of(lineage: Lineage, cert: certs.Certificate) -> int:
    """Capability flags of ``cert``'s node (raises NotInLineage)."""
    for n in lineage.nodes:
        if n.cert == cert:
            return n.flags
    raise NotInLineage(f"Certificate ({cert.subject}) not found in the SigningCertificateLineage")


def is_latest(lineage: Lineage, cert: certs.Certificate) -> bool:
    """True when ``cert`` is the newest certificate of the lineage."""
    return bool(lineage.nodes) and lineage.nodes[-1].cert == cert


def _lineages_in_signed_data(signed: Reader) -> list[Lineage]:
    signed.prefixed()  # digests
    signed.prefixed()  # certificates
    signed.i32()
    signed.i32()
    attrs = signed.prefixed()
    out: list[Lineage] = []
    while attrs.has_remaining():
        attr = attrs.prefixed()
        if attr.u32() == V3_PROOF_OF_ROTATION_ATTR_ID:
            out.append(from_v3_attribute(attr.rest()))
    return out


V3_PROOF_OF_ROTATION_ATTR_ID = 0x3BA06F8C


def from_signing_block_values(values: list[bytes | memoryview]) -> Lineage:
    """The lineage of an APK from its v3.1 and v3 block values (apksig
    ``readFromApkDataSource``): every signer's lineage, consolidated."""
    found: list[Lineage] = []
    try:
        for value in values:
            signers = Reader(bytes(value)).prefixed()
            while signers.has_remaining():
                signer = signers.prefixed()
                found.extend(_lineages_in_signed_data(signer.prefixed()))
    except Malformed as e:
        raise LineageFormatError(f"Malformed APK Signature Scheme v3 block: {e}") from None
    if not found:
        raise LineageFormatError("The provided APK does not contain a valid lineage.")
    merged = consolidate(found)
    assert merged is not None
    return merged
