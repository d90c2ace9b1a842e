"""PKCS #7 / CMS SignedData as JAR signature blocks carry it, decoded like the reference.

Android accepts or rejects a JAR signature block according to how apksig's
annotation-driven BER parser reads it, so this module reproduces that reader's
behaviour rather than a strict CMS profile:

* a SEQUENCE is walked field by field; an optional field whose tag does not match
  is skipped, a mandatory one that does not match is an error, elements left over
  once every field is filled are never looked at (so trailing junk is tolerated),
  and a mandatory field that is simply absent stays ``None`` (the caller decides
  what that means, as the reference only fails when it touches the field);
* constructed/primitive bits are not checked, only tag class and number;
* OCTET STRING values are the raw content octets, INTEGERs may be empty (zero);
* a CHOICE or ANY field without a tag number only requires the UNIVERSAL class, so
  a ``[0] subjectKeyIdentifier`` SignerIdentifier is a decoding error, exactly as
  in the reference (Android only supports issuerAndSerialNumber);
* signed attributes are kept as their original ``[0] IMPLICIT`` encoding: the
  signature covers that encoding with its first byte replaced by 0x31 (SET OF),
  not a DER re-encoding.

Element framing (lengths, indefinite lengths, nesting limits) comes from
:mod:`provenance.apk.der`. All failures raise :class:`Asn1DecodingError`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from provenance.apk import der
from provenance.errors import DerError

OID_DATA = "1.2.840.113549.1.7.1"
OID_SIGNED_DATA = "1.2.840.113549.1.7.2"
OID_CONTENT_TYPE = "1.2.840.113549.1.9.3"
OID_MESSAGE_DIGEST = "1.2.840.113549.1.9.4"

_U = der.CLASS_UNIVERSAL
_C = der.CLASS_CONTEXT
_LONG_MAX = (1 << 63) - 1
_INT_MIN, _INT_MAX = -(1 << 31), (1 << 31) - 1
#: Elements read one by one when a container's contents do not all parse.
_MAX_LAZY_ELEMENTS = 64

T = TypeVar("T")


class Asn1DecodingError(Exception):
    """The structure does not decode (apksig ``Asn1DecodingException``)."""


class _UnexpectedTag(Asn1DecodingError):
    """A value has another tag than the field expects (lets optional fields be skipped)."""


class Pkcs7DecodingError(Exception):
    """Signed attributes are ambiguous (apksig ``Pkcs7DecodingException``)."""


# -- data model -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AlgorithmIdentifier:
    """An algorithm OID and the encoding of its parameters, if any."""

    algorithm: str | None
    parameters: bytes | None


@dataclass(frozen=True, slots=True)
class IssuerAndSerialNumber:
    """The signing certificate's issuer (encoded Name) and serial number."""

    issuer: bytes | None
    serial_number: int | None


@dataclass(frozen=True, slots=True)
class SignerIdentifier:
    """Which certificate signed: only issuerAndSerialNumber ever decodes (see module doc)."""

    issuer_and_serial_number: IssuerAndSerialNumber | None
    subject_key_identifier: bytes | None


@dataclass(frozen=True, slots=True)
class Attribute:
    """A (signed or unsigned) attribute: its type and the encodings of its values."""

    attr_type: str | None
    values: tuple[bytes, ...] | None


@dataclass(frozen=True, slots=True)
class SignerInfo:
    """One SignerInfo; ``signed_attrs`` is the original ``[0]`` encoding."""

    version: int
    sid: SignerIdentifier | None
    digest_algorithm: AlgorithmIdentifier | None
    signed_attrs: bytes | None
    signature_algorithm: AlgorithmIdentifier | None
    signature: bytes | None
    unsigned_attrs: tuple[Attribute, ...] | None


@dataclass(frozen=True, slots=True)
class EncapsulatedContentInfo:
    """The signed content's type (and content, absent in detached JAR signatures)."""

    content_type: str | None
    content: bytes | None


@dataclass(frozen=True, slots=True)
class SignedData:
    """SignedData with certificates as their original encodings."""

    version: int
    digest_algorithms: tuple[AlgorithmIdentifier, ...] | None
    encap_content_info: EncapsulatedContentInfo | None
    certificates: tuple[bytes, ...] | None
    crls: tuple[bytes, ...] | None
    signer_infos: tuple[SignerInfo, ...] | None


# -- element access -----------------------------------------------------------------------


def _read_one(data: bytes) -> der.Element:
    """The first element of ``data``; whatever follows it is ignored, as the reference does."""
    if not data:
        raise Asn1DecodingError("Empty input")
    try:
        return der.parse(data, allow_trailing=True)
    except DerError as e:
        raise Asn1DecodingError(f"Failed to decode top-level data value: {e}") from None


def _contents(el: der.Element) -> Iterator[der.Element]:
    """The elements inside ``el``'s contents (primitive or not), read as needed.

    The contents are parsed in one go; only when that fails are they read one
    element at a time, so that a consumer that stops early never sees the bad
    element, like the reference's lazy reader.
    """
    try:
        yield from der.parse_all(el.data, el.content_start, el.content_end)
        return
    except DerError:
        pass
    pos = el.content_start
    for _ in range(_MAX_LAZY_ELEMENTS):
        if pos >= el.content_end:
            return
        try:
            child = der.parse(el.data[pos : el.content_end], allow_trailing=True)
        except DerError as e:
            raise Asn1DecodingError(f"Malformed data value: {e}") from None
        yield child
        pos += child.end
    raise Asn1DecodingError("Malformed data value: too many elements before a malformed one")


def _first_child(el: der.Element) -> der.Element:
    for child in _contents(el):
        return child
    raise Asn1DecodingError("Empty EXPLICIT tagged value")


# -- primitive conversions ------------------------------------------------------------------


def decode_oid(content: bytes) -> str:
    """Dotted form of OBJECT IDENTIFIER content octets, with the reference's limits."""
    if not content:
        raise Asn1DecodingError("Empty OBJECT IDENTIFIER")
    arcs: list[int] = []
    value = 0
    started = False
    for b in content:
        if value > _LONG_MAX >> 7:
            raise Asn1DecodingError("Base-128 number too large")
        value = (value << 7) | (b & 0x7F)
        started = True
        if not b & 0x80:
            arcs.append(value)
            value = 0
            started = False
    if started:
        raise Asn1DecodingError(
            "Truncated base-128 encoded input: missing terminating byte, with highest bit not set"
        )
    first = min(arcs[0] // 40, 2)
    head = [first, arcs[0] - first * 40]
    return ".".join(str(a) for a in head + arcs[1:])


def _oid(el: der.Element) -> str:
    return decode_oid(el.content)


def _big_integer(el: der.Element) -> int:
    raw = el.content
    return int.from_bytes(raw, "big", signed=True) if raw else 0


def _int32(el: der.Element) -> int:
    v = _big_integer(el)
    if not _INT_MIN <= v <= _INT_MAX:
        raise Asn1DecodingError(f"INTEGER cannot be represented as int: {v} ({v:#x})")
    return v


def _octets(el: der.Element) -> bytes:
    return el.content


def _encoded(el: der.Element) -> bytes:
    return el.encoded


# -- the reference's structure walker -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Field:
    cls: int
    tag: int | None  # None: any tag number within ``cls`` (CHOICE / ANY)
    convert: Callable[[der.Element], Any]
    optional: bool = False
    explicit: bool = False


def _set_value(f: _Field, el: der.Element) -> Any:
    if el.cls != f.cls or (f.tag is not None and el.tag != f.tag):
        raise _UnexpectedTag(
            f"Tag mismatch: expected class {f.cls} tag {f.tag}, found class {el.cls} tag {el.tag}"
        )
    if f.explicit:
        el = _first_child(el)
    return f.convert(el)


def _walk(container: der.Element, fields: list[_Field], what: str) -> list[Any]:
    """Assign the container's elements to ``fields`` the way apksig's parseSequence does."""
    values: list[Any] = [None] * len(fields)
    nxt = 0
    reader = _contents(container)
    while nxt < len(fields):
        el = next(reader, None)
        if el is None:
            break
        for i in range(nxt, len(fields)):
            f = fields[i]
            try:
                values[i] = _set_value(f, el)
            except _UnexpectedTag as e:
                if f.optional:
                    continue
                raise Asn1DecodingError(f"Failed to parse {what} field #{i}: {e}") from None
            except Asn1DecodingError as e:
                raise Asn1DecodingError(f"Failed to parse {what} field #{i}: {e}") from None
            nxt = i + 1
            break
    return values


def _sequence(build: Callable[[der.Element], T], what: str) -> Callable[[der.Element], T]:
    """A converter that checks for a UNIVERSAL SEQUENCE tag first (top-level parse)."""

    def convert(el: der.Element) -> T:
        if el.cls != _U or el.tag != der.SEQUENCE:
            raise _UnexpectedTag(
                f"Unexpected data value read as {what}: class {el.cls} tag {el.tag}"
            )
        return build(el)

    return convert


def _set_of(convert: Callable[[der.Element], T]) -> Callable[[der.Element], tuple[T, ...]]:
    def parse_set(el: der.Element) -> tuple[T, ...]:
        return tuple(convert(c) for c in _contents(el))

    return parse_set


def _algorithm_identifier(el: der.Element) -> AlgorithmIdentifier:
    alg, params = _walk(
        el,
        [_Field(_U, der.OID, _oid), _Field(_U, None, _encoded, optional=True)],
        "AlgorithmIdentifier",
    )
    return AlgorithmIdentifier(alg, params)


def _issuer_and_serial(el: der.Element) -> IssuerAndSerialNumber:
    issuer, serial = _walk(
        el,
        [_Field(_U, None, _encoded), _Field(_U, der.INTEGER, _big_integer)],
        "IssuerAndSerialNumber",
    )
    return IssuerAndSerialNumber(issuer, serial)


def _signer_identifier(el: der.Element) -> SignerIdentifier:
    # CHOICE: first option whose tag matches wins; the [0] option can never match here
    # because the field itself only admits UNIVERSAL-class values.
    if el.cls == _U and el.tag == der.SEQUENCE:
        return SignerIdentifier(_issuer_and_serial(el), None)
    if el.cls == _C and el.tag == 0:
        return SignerIdentifier(None, el.content)
    raise Asn1DecodingError("No options of CHOICE SignerIdentifier matched")


def _attribute(el: der.Element) -> Attribute:
    attr_type, values = _walk(
        el,
        [_Field(_U, der.OID, _oid), _Field(_U, der.SET, _set_of(_encoded))],
        "Attribute",
    )
    return Attribute(attr_type, values)


_ATTRIBUTE = _sequence(_attribute, "Attribute")


def _signer_info(el: der.Element) -> SignerInfo:
    v = _walk(
        el,
        [
            _Field(_U, der.INTEGER, _int32),
            _Field(_U, None, _signer_identifier),
            _Field(_U, der.SEQUENCE, _algorithm_identifier),
            _Field(_C, 0, _encoded, optional=True),
            _Field(_U, der.SEQUENCE, _algorithm_identifier),
            _Field(_U, der.OCTET_STRING, _octets),
            _Field(_C, 1, _set_of(_ATTRIBUTE), optional=True),
        ],
        "SignerInfo",
    )
    return SignerInfo(v[0] or 0, v[1], v[2], v[3], v[4], v[5], v[6])


def _encap_content_info(el: der.Element) -> EncapsulatedContentInfo:
    ctype, content = _walk(
        el,
        [
            _Field(_U, der.OID, _oid),
            _Field(_C, 0, _octets, optional=True, explicit=True),
        ],
        "EncapsulatedContentInfo",
    )
    return EncapsulatedContentInfo(ctype, content)


def _signed_data(el: der.Element) -> SignedData:
    v = _walk(
        el,
        [
            _Field(_U, der.INTEGER, _int32),
            _Field(_U, der.SET, _set_of(_sequence(_algorithm_identifier, "AlgorithmIdentifier"))),
            _Field(_U, der.SEQUENCE, _encap_content_info),
            _Field(_C, 0, _set_of(_encoded), optional=True),
            _Field(_C, 1, _set_of(_octets), optional=True),
            _Field(_U, der.SET, _set_of(_sequence(_signer_info, "SignerInfo"))),
        ],
        "SignedData",
    )
    return SignedData(v[0] or 0, v[1], v[2], v[3], v[4], v[5])


# -- entry points -----------------------------------------------------------------------------


def parse_signature_block(data: bytes) -> SignedData:
    """Decode a JAR signature block: a ContentInfo that must carry SignedData."""
    top = _read_one(data)
    if top.cls != _U or top.tag != der.SEQUENCE:
        raise Asn1DecodingError(
            f"Unexpected data value read as ContentInfo: class {top.cls} tag {top.tag}"
        )
    content_type, content = _walk(
        top,
        [_Field(_U, der.OID, _oid), _Field(_C, 0, _encoded, explicit=True)],
        "ContentInfo",
    )
    if content_type != OID_SIGNED_DATA:
        raise Asn1DecodingError(f"Unsupported ContentInfo.contentType: {content_type}")
    if content is None:
        # The reference dereferences the missing content and fails.
        raise Asn1DecodingError("ContentInfo has no content")
    inner = _read_one(content)
    if inner.cls != _U or inner.tag != der.SEQUENCE:
        raise Asn1DecodingError(
            f"Unexpected data value read as SignedData: class {inner.cls} tag {inner.tag}"
        )
    return _signed_data(inner)


def parse_signed_attributes(encoded: bytes) -> list[Attribute]:
    """The attributes inside a ``[0] IMPLICIT SET OF`` encoding (its own tag is not checked)."""
    top = _read_one(encoded)
    return [_ATTRIBUTE(c) for c in _contents(top)]


def signed_attributes_to_verify(encoded: bytes) -> bytes:
    """What the signature covers: the original encoding with its tag byte set to SET OF."""
    return b"\x31" + encoded[1:]


class SignedAttributes:
    """Lookup of single-valued signed attributes, rejecting ambiguity like the reference."""

    def __init__(self, attrs: list[Attribute]) -> None:
        self._attrs: dict[str | None, tuple[bytes, ...] | None] = {}
        for a in attrs:
            if a.attr_type in self._attrs:
                raise Pkcs7DecodingError(f"Duplicate signed attribute: {a.attr_type}")
            self._attrs[a.attr_type] = a.values

    def _single(self, oid: str) -> bytes | None:
        values = self._attrs.get(oid)
        if not values:
            return None
        if len(values) > 1:
            raise Pkcs7DecodingError(f"Attribute {oid} has multiple values")
        return values[0]

    def single_oid(self, oid: str) -> str | None:
        """The attribute's only value as an OID, None when absent."""
        value = self._single(oid)
        if value is None:
            return None
        try:
            el = _read_one(value)
            if el.cls != _U or el.tag != der.OID:
                raise Asn1DecodingError("No options of CHOICE matched")
            return _oid(el)
        except Asn1DecodingError as e:
            raise Pkcs7DecodingError(f"Failed to decode OBJECT IDENTIFIER: {e}") from None

    def single_octets(self, oid: str) -> bytes | None:
        """The attribute's only value as OCTET STRING content, None when absent."""
        value = self._single(oid)
        if value is None:
            return None
        try:
            el = _read_one(value)
            if el.cls != _U or el.tag != der.OCTET_STRING:
                raise Asn1DecodingError("No options of CHOICE matched")
            return el.content
        except Asn1DecodingError as e:
            raise Pkcs7DecodingError(f"Failed to decode OCTET STRING: {e}") from None
