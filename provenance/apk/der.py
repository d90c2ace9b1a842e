"""A small, strict BER/DER reader for the ASN.1 inside APK signatures.

JAR signature blocks (PKCS#7 / CMS SignedData) and certificates are ASN.1. The
reference parses them with its own BER parser, so BER forms (indefinite lengths,
non-minimal lengths) are accepted on input; :func:`to_der` re-encodes such a
structure canonically when a stricter consumer (``cryptography``) needs DER.

Every length is checked against the bytes actually present before anything is
sliced, nesting depth and element counts are bounded, and all failures raise
:class:`~provenance.errors.DerError`. Parsing is linear in the input size.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from provenance.errors import DerError

MAX_DEPTH = 64
MAX_ELEMENTS = 100_000

# Universal tags used by callers.
BOOLEAN = 0x01
INTEGER = 0x02
BIT_STRING = 0x03
OCTET_STRING = 0x04
NULL = 0x05
OID = 0x06
UTF8_STRING = 0x0C
SEQUENCE = 0x10
SET = 0x11
PRINTABLE_STRING = 0x13
T61_STRING = 0x14
IA5_STRING = 0x16
UTC_TIME = 0x17
GENERALIZED_TIME = 0x18
BMP_STRING = 0x1E

CLASS_UNIVERSAL = 0
CLASS_APPLICATION = 1
CLASS_CONTEXT = 2
CLASS_PRIVATE = 3


@dataclass(frozen=True, slots=True)
class Element:
    """One TLV: its tag, where its encoding and contents lie in ``data``."""

    data: bytes
    cls: int
    constructed: bool
    tag: int
    start: int  # first byte of the identifier
    content_start: int
    content_end: int
    end: int  # one past the last byte (end-of-contents octets included)
    indefinite: bool

    @property
    def content(self) -> bytes:
        """The content octets (for indefinite-length values: the nested encodings)."""
        return self.data[self.content_start : self.content_end]

    @property
    def encoded(self) -> bytes:
        """The full original encoding of this element."""
        return self.data[self.start : self.end]

    def children(self) -> list[Element]:
        """The nested elements of a constructed value."""
        if not self.constructed:
            raise DerError(f"expected a constructed value, got primitive tag {self.tag}")
        return list(_iter(self.data, self.content_start, self.content_end, 1))

    def is_(self, tag: int, cls: int = CLASS_UNIVERSAL) -> bool:
        """True when this element has the given class and tag number."""
        return self.cls == cls and self.tag == tag

    def expect(self, tag: int, cls: int = CLASS_UNIVERSAL) -> Element:
        """Return self if it has this tag, else raise DerError."""
        if not self.is_(tag, cls):
            raise DerError(
                f"unexpected ASN.1 tag: class {self.cls} tag {self.tag}, "
                f"expected class {cls} tag {tag}"
            )
        return self


def parse(data: bytes, *, allow_trailing: bool = False) -> Element:
    """Parse one element from the start of ``data``."""
    el = _read(data, 0, len(data), 0)
    if not allow_trailing and el.end != len(data):
        raise DerError(f"{len(data) - el.end} trailing bytes after ASN.1 value")
    return el


def parse_all(data: bytes, start: int = 0, end: int | None = None) -> list[Element]:
    """Parse a concatenation of elements."""
    return list(_iter(data, start, len(data) if end is None else end, 0))


def _iter(data: bytes, pos: int, end: int, depth: int) -> Iterator[Element]:
    count = 0
    while pos < end:
        count += 1
        if count > MAX_ELEMENTS:
            raise DerError("too many ASN.1 elements")
        el = _read(data, pos, end, depth)
        if el.cls == 0 and el.tag == 0 and not el.constructed and el.end - el.start == 2:
            # end-of-contents octets only belong inside indefinite-length values
            raise DerError("unexpected end-of-contents octets")
        yield el
        pos = el.end


def _read(data: bytes, pos: int, end: int, depth: int) -> Element:
    if depth > MAX_DEPTH:
        raise DerError("ASN.1 nesting too deep")
    start = pos
    if pos >= end:
        raise DerError("truncated ASN.1: missing identifier")
    ident = data[pos]
    pos += 1
    cls = ident >> 6
    constructed = bool(ident & 0x20)
    tag = ident & 0x1F
    if tag == 0x1F:
        tag = 0
        for _ in range(5):
            if pos >= end:
                raise DerError("truncated ASN.1 tag")
            b = data[pos]
            pos += 1
            tag = (tag << 7) | (b & 0x7F)
            if not b & 0x80:
                break
        else:
            raise DerError("ASN.1 tag number too large")
    if pos >= end:
        raise DerError("truncated ASN.1: missing length")
    first = data[pos]
    pos += 1
    if first < 0x80:
        length = first
    elif first == 0x80:
        if not constructed:
            raise DerError("indefinite length on a primitive ASN.1 value")
        # Indefinite length: contents run until the matching end-of-contents octets.
        content_start = pos
        while True:
            if pos + 2 > end:
                raise DerError("truncated indefinite-length ASN.1 value")
            if data[pos] == 0 and data[pos + 1] == 0:
                return Element(
                    data, cls, constructed, tag, start, content_start, pos, pos + 2, True
                )
            child = _read(data, pos, end, depth + 1)
            pos = child.end
    else:
        n = first & 0x7F
        if n > 4:
            raise DerError("ASN.1 length too large")
        if pos + n > end:
            raise DerError("truncated ASN.1 length")
        length = int.from_bytes(data[pos : pos + n], "big")
        pos += n
    if length > end - pos:
        raise DerError(f"ASN.1 length {length} exceeds the {end - pos} bytes available")
    return Element(data, cls, constructed, tag, start, pos, pos + length, pos + length, False)


# -- value decoders ---------------------------------------------------------------------


def read_oid(el: Element) -> str:
    """Dotted-decimal form of an OBJECT IDENTIFIER."""
    el.expect(OID)
    raw = el.content
    if not raw or raw[-1] & 0x80:
        raise DerError("malformed OBJECT IDENTIFIER")
    arcs: list[int] = []
    value = 0
    for b in raw:
        value = (value << 7) | (b & 0x7F)
        if not b & 0x80:
            arcs.append(value)
            value = 0
    first = arcs[0]
    head = [0, first] if first < 40 else [1, first - 40] if first < 80 else [2, first - 80]
    return ".".join(str(a) for a in head + arcs[1:])


def read_integer(el: Element) -> int:
    """A (signed) INTEGER."""
    el.expect(INTEGER)
    raw = el.content
    if not raw:
        raise DerError("empty INTEGER")
    return int.from_bytes(raw, "big", signed=True)


def read_octets(el: Element) -> bytes:
    """An OCTET STRING, joining the segments of a constructed (BER) one."""
    el.expect(OCTET_STRING)
    if not el.constructed:
        return el.content
    return b"".join(read_octets(c) for c in el.children())


# -- encoding ---------------------------------------------------------------------------


def encode_length(n: int) -> bytes:
    """DER length octets."""
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def encode_tlv(ident: bytes, content: bytes) -> bytes:
    """An element from its identifier octets and content."""
    return ident + encode_length(len(content)) + content


def to_der(el: Element) -> bytes:
    """Re-encode a BER element canonically (definite, minimal lengths).

    SET OF ordering is left as found: certificates are signed over their encoding,
    and re-sorting would only hide, not fix, a non-canonical signer.
    """
    ident = el.data[el.start : el.start + _ident_len(el.data, el.start)]
    if not el.constructed:
        return encode_tlv(ident, el.content)
    if el.cls == CLASS_UNIVERSAL and el.tag in (
        OCTET_STRING,
        BIT_STRING,
        UTF8_STRING,
        PRINTABLE_STRING,
        IA5_STRING,
    ):
        # Constructed string (BER only): DER requires the primitive form.
        parts = b"".join(_string_segments(c) for c in el.children())
        return encode_tlv(bytes([ident[0] & ~0x20]), parts)
    return encode_tlv(ident, b"".join(to_der(c) for c in el.children()))


def _string_segments(el: Element) -> bytes:
    if not el.constructed:
        return el.content
    return b"".join(_string_segments(c) for c in el.children())


def _ident_len(data: bytes, pos: int) -> int:
    if data[pos] & 0x1F != 0x1F:
        return 1
    n = 1
    while data[pos + n] & 0x80:
        n += 1
    return n + 1
