"""``AndroidManifest.xml`` → :class:`Manifest`, with the reference verifier's rules.

The verifier needs a handful of manifest facts (minSdkVersion, targetSdkVersion,
targetSandboxVersion, debuggable) and must read them exactly as apksig does, or its
verdicts would drift from the reference: which element and depth count, lookup by
resource ID rather than by name, which value types are accepted, defaults, codename
handling and which errors are fatal. Those rules live here, once, as functions the
verifier calls (:func:`min_sdk_version`, :func:`target_sdk_version`,
:func:`target_sandbox_version`, :func:`debuggable`, :func:`package_name`,
:func:`long_version_code`); :func:`parse_manifest` also records their results in a
:class:`Manifest` together with the element tree for later inspection.

Learned from apksig (``src/main/java/com/android/apksig/apk/ApkUtils.java``: the
``get*FromBinaryAndroidManifest`` methods, ``getMinSdkVersionForCodename``,
``getAttributeValueFromBinaryAndroidManifest``; ``internal/apk/AndroidBinXmlParser.java``:
value-type mapping and coercions).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, TypeVar

from provenance.apk.axml import (
    DEFAULT_LIMITS,
    Limits,
    ValueType,
    XmlDocument,
    XmlElement,
    parse_axml,
)
from provenance.errors import ApkFormatError, AxmlError

__all__ = [
    "ATTR_DEBUGGABLE",
    "ATTR_MAX_SDK_VERSION",
    "ATTR_MIN_SDK_VERSION",
    "ATTR_TARGET_SANDBOX_VERSION",
    "ATTR_TARGET_SDK_VERSION",
    "ATTR_VERSION_CODE",
    "ATTR_VERSION_CODE_MAJOR",
    "ATTR_VERSION_NAME",
    "MANIFEST_ENTRY_NAME",
    "Manifest",
    "debuggable",
    "long_version_code",
    "min_sdk_version",
    "min_sdk_version_for_codename",
    "package_name",
    "parse_manifest",
    "target_sandbox_version",
    "target_sdk_version",
]

MANIFEST_ENTRY_NAME: Final = "AndroidManifest.xml"

# Framework attribute resource IDs (android.R.attr); the platform looks these
# attributes up by ID, not by name.
ATTR_DEBUGGABLE: Final = 0x0101000F
ATTR_MIN_SDK_VERSION: Final = 0x0101020C
ATTR_VERSION_CODE: Final = 0x0101021B
ATTR_VERSION_NAME: Final = 0x0101021C
ATTR_TARGET_SDK_VERSION: Final = 0x01010270
ATTR_MAX_SDK_VERSION: Final = 0x01010271
ATTR_TARGET_SANDBOX_VERSION: Final = 0x0101054C
ATTR_VERSION_CODE_MAJOR: Final = 0x01010576

_MANIFEST: Final = "manifest"
_USES_SDK: Final = "uses-sdk"
_APPLICATION: Final = "application"

_INT_TYPES: Final = (ValueType.INT_DEC, ValueType.INT_HEX)

# First letter of a platform codename → API level, as apksig assumes: one lower than
# the release's level, and +1 per letter after the last known one.
_CODENAME_API_LEVELS: Final = {
    "C": 2,
    "D": 3,
    "E": 4,
    "F": 7,
    "G": 8,
    "H": 10,
    "I": 13,
    "J": 15,
    "K": 18,
    "L": 20,
    "M": 22,
    "N": 23,
    "O": 25,
}
_LAST_KNOWN_CODENAME_LETTER: Final = "O"

_MIN_SDK_FAILURE: Final = "Unable to determine APK's minimum supported Android platform version"


@dataclass(frozen=True, slots=True)
class Manifest:
    """The facts of an ``AndroidManifest.xml`` plus its element tree.

    The SDK fields hold what apksig's rules give (see the functions of the same names);
    ``min_sdk_version`` and ``debuggable`` are ``None`` where apksig rejects the
    manifest -- call :func:`min_sdk_version` / :func:`debuggable` for the error.
    ``version_code`` combines ``versionCodeMajor`` into the upper 32 bits as Android's
    ``PackageInfo.getLongVersionCode`` does (``None`` without a usable versionCode).
    ``max_sdk_version`` is the raw ``uses-sdk`` attribute, which the platform ignores.
    """

    package: str | None
    version_code: int | None
    version_name: str | None
    min_sdk_version: int | None
    target_sdk_version: int
    max_sdk_version: int | None
    target_sandbox_version: int
    debuggable: bool | None
    root: XmlElement
    document: XmlDocument


def parse_manifest(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Manifest:
    """Parse a binary ``AndroidManifest.xml``; raise :class:`AxmlError` if it is malformed.

    Semantic problems that apksig reports only when asked (an unusable minSdkVersion,
    a resource reference in ``android:debuggable``) do not fail the parse; they leave
    the field ``None`` so that the rest of the manifest stays usable.
    """
    doc = parse_axml(data, limits)
    root = doc.root
    return Manifest(
        package=_optional(_package_name, doc),
        version_code=_optional(_long_version_code, doc),
        version_name=_version_name(doc),
        min_sdk_version=_optional(_min_sdk_version, doc),
        target_sdk_version=_target_sdk_version(doc),
        max_sdk_version=_max_sdk_version(doc),
        target_sandbox_version=_target_sandbox_version(doc),
        debuggable=_optional(_debuggable, doc),
        root=root,
        document=doc,
    )


def min_sdk_version(manifest: Manifest | bytes) -> int:
    """The lowest API level the APK supports, as apksig computes it.

    The maximum over ``android:minSdkVersion`` of every un-namespaced ``uses-sdk`` at
    depth 2 (each defaulting to 1; 1 without any), a string value being a platform
    codename (:func:`min_sdk_version_for_codename`). Raises :class:`ApkFormatError`
    where apksig throws ``MinSdkVersionException`` (other value types, unknown
    codenames, malformed binary XML).
    """
    if isinstance(manifest, Manifest):
        return _min_sdk_version(manifest.document)
    try:
        doc = parse_axml(manifest)
    except AxmlError as e:
        raise AxmlError(
            f"{_MIN_SDK_FAILURE}: malformed binary resource: {MANIFEST_ENTRY_NAME}: {e}"
        ) from e
    return _min_sdk_version(doc)


def target_sdk_version(manifest: Manifest | bytes) -> int:
    """The targeted API level as apksig reads it; never raises.

    ``android:targetSdkVersion`` of the first ``uses-sdk`` element (any depth) that has
    one, if it is an integer; otherwise (absent, a codename string, any error) the
    minSdkVersion, and 1 if that cannot be determined either.
    """
    doc = _document_or_none(manifest)
    return 1 if doc is None else _target_sdk_version(doc)


def target_sandbox_version(manifest: Manifest | bytes) -> int:
    """``android:targetSandboxVersion`` as apksig reads it: default 1; never raises.

    Taken from the first ``manifest`` element (any depth) that has the attribute; a
    non-integer value, or malformed binary XML, gives the default 1.
    """
    doc = _document_or_none(manifest)
    return 1 if doc is None else _target_sandbox_version(doc)


def debuggable(manifest: Manifest | bytes) -> bool:
    """Whether the APK is debuggable, as apksig's ``getDebuggableFromBinaryAndroidManifest``.

    Only the first un-namespaced ``application`` element at depth 2 counts; its
    ``android:debuggable`` is true if it renders as ``true``, ``TRUE`` or ``1``. A
    resource reference is rejected (its value would depend on the device
    configuration), as are other non-constant types: :class:`ApkFormatError`.
    """
    if isinstance(manifest, Manifest):
        return _debuggable(manifest.document)
    try:
        doc = parse_axml(manifest)
    except AxmlError as e:
        raise AxmlError(
            "Unable to determine whether APK is debuggable: malformed binary resource: "
            f"{MANIFEST_ENTRY_NAME}: {e}"
        ) from e
    return _debuggable(doc)


def package_name(manifest: Manifest | bytes) -> str | None:
    """The ``package`` attribute of the top-level ``manifest`` element (looked up by name).

    ``None`` if it is not declared; :class:`ApkFormatError` if its value cannot be
    rendered as text.
    """
    if isinstance(manifest, Manifest):
        return _package_name(manifest.document)
    try:
        doc = parse_axml(manifest)
    except AxmlError as e:
        raise AxmlError(
            "Unable to determine APK package name: malformed binary resource: "
            f"{MANIFEST_ENTRY_NAME}: {e}"
        ) from e
    return _package_name(doc)


def long_version_code(manifest: Manifest | bytes) -> int:
    """``versionCodeMajor << 32 | versionCode`` as a signed 64-bit value, as Android has it.

    Both attributes are read the way apksig reads them (first ``manifest`` element
    carrying the attribute, integer values only); a missing or unusable versionCode
    raises :class:`ApkFormatError`, an unusable versionCodeMajor counts as 0. The
    low word is masked as in ``PackageInfo.composeLongVersionCode``; apksig's
    ``getLongVersionCodeFromBinaryAndroidManifest`` sign-extends it instead, which
    differs only for a versionCode of 2^31 or more.
    """
    if isinstance(manifest, Manifest):
        return _long_version_code(manifest.document)
    try:
        doc = parse_axml(manifest)
    except AxmlError as e:
        raise AxmlError(
            f"Unable to determine value for attribute 0x{ATTR_VERSION_CODE:08X} under element "
            f"{_MANIFEST}; malformed binary resource: {MANIFEST_ENTRY_NAME}: {e}"
        ) from e
    return _long_version_code(doc)


def min_sdk_version_for_codename(codename: str) -> int:
    """The API level apksig assumes for a pre-release codename used as minSdkVersion.

    Pessimistic by design: one below the level the platform was released with, judged
    by the first letter only ('A'/'B' → 1, later letters +1 per letter after 'O'),
    except "Baklava", which apksig pins to 34. Anything not starting with an ASCII
    capital raises :class:`ApkFormatError`.
    """
    if codename == "Baklava":
        return 34  # Vanilla Ice Cream (35) came before Baklava; one lower, as for the others
    first = codename[:1]
    if "A" <= first <= "Z":
        known = _CODENAME_API_LEVELS.get(first)
        if known is not None:
            return known
        if first < "C":
            return 1  # 'A' and 'B' (other than Baklava) were never released publicly
        return _CODENAME_API_LEVELS[_LAST_KNOWN_CODENAME_LETTER] + (
            ord(first) - ord(_LAST_KNOWN_CODENAME_LETTER)
        )
    raise ApkFormatError(
        f"{_MIN_SDK_FAILURE} : Unsupported codename in {MANIFEST_ENTRY_NAME}'s minSdkVersion: "
        f'"{codename}"'
    )


# --- the rules, over a parsed document ----------------------------------------------


def _document_or_none(manifest: Manifest | bytes) -> XmlDocument | None:
    """The document, or ``None`` if the bytes are malformed (apksig then uses defaults)."""
    if isinstance(manifest, Manifest):
        return manifest.document
    try:
        return parse_axml(manifest)
    except AxmlError:
        return None


_T = TypeVar("_T")


def _optional(rule: Callable[[XmlDocument], _T], doc: XmlDocument) -> _T | None:
    """A rule's result, or ``None`` where the rule rejects the manifest."""
    try:
        return rule(doc)
    except ApkFormatError:
        return None


def _depth_two(doc: XmlDocument, name: str) -> list[XmlElement]:
    """Un-namespaced elements named ``name`` that are children of a top-level element."""
    return [
        child
        for top in doc.elements
        for child in top.children
        if child.name == name and child.namespace == ""
    ]


def _min_sdk_version(doc: XmlDocument) -> int:
    result = 1
    for uses_sdk in _depth_two(doc, _USES_SDK):
        value = 1
        attr = uses_sdk.attribute_by_id(ATTR_MIN_SDK_VERSION)
        if attr is not None:
            if attr.value_type in _INT_TYPES:
                value = attr.int_value()
            elif attr.value_type == ValueType.STRING:
                value = min_sdk_version_for_codename(attr.string_value())
            else:
                raise ApkFormatError(
                    "Unable to determine APK's minimum supported Android: unsupported value "
                    f"type in {MANIFEST_ENTRY_NAME}'s minSdkVersion. Only integer values "
                    "supported."
                )
        result = max(result, value)
    return result


def _apksig_value_type(value_type: int) -> int:
    """apksig's ``VALUE_TYPE_*`` number for a ``Res_value`` type (used in its messages)."""
    if value_type == ValueType.STRING:
        return 1
    if value_type in _INT_TYPES:
        return 2
    if value_type == ValueType.REFERENCE:
        return 3
    if value_type == ValueType.INT_BOOLEAN:
        return 4
    return 0


def _int_attribute(doc: XmlDocument, element_name: str, resource_id: int) -> int:
    """apksig's ``getAttributeValueFromBinaryAndroidManifest``.

    The first element named ``element_name`` (any depth, any namespace) carrying the
    attribute decides: an integer is returned, anything else is an error -- a string
    too, since apksig's parser refuses to coerce it to an int.
    """
    for _, element in doc.walk():
        if element.name != element_name:
            continue
        attr = element.attribute_by_id(resource_id)
        if attr is None:
            continue
        if attr.value_type in _INT_TYPES:
            return attr.int_value()
        if attr.value_type == ValueType.STRING:
            raise ApkFormatError(
                f"Unable to determine value for attribute 0x{resource_id:08X} under element "
                f"{element_name}; malformed binary resource: {MANIFEST_ENTRY_NAME}"
            )
        raise ApkFormatError(
            f"Unsupported value type, {_apksig_value_type(attr.value_type)}, for attribute "
            f"0x{resource_id:08X} under element {element_name}"
        )
    raise ApkFormatError(
        f"Failed to determine APK's {element_name} attribute 0x{resource_id:08X} value"
    )


def _target_sdk_version(doc: XmlDocument) -> int:
    try:
        return _int_attribute(doc, _USES_SDK, ATTR_TARGET_SDK_VERSION)
    except ApkFormatError:
        pass  # absent or unusable: the platform falls back to minSdkVersion
    try:
        return _min_sdk_version(doc)
    except ApkFormatError:
        return 1


def _target_sandbox_version(doc: XmlDocument) -> int:
    try:
        return _int_attribute(doc, _MANIFEST, ATTR_TARGET_SANDBOX_VERSION)
    except ApkFormatError:
        return 1


def _long_version_code(doc: XmlDocument) -> int:
    code = _int_attribute(doc, _MANIFEST, ATTR_VERSION_CODE)
    try:
        major = _int_attribute(doc, _MANIFEST, ATTR_VERSION_CODE_MAJOR)
    except ApkFormatError:
        major = 0
    return (major << 32) | (code & 0xFFFFFFFF)


def _debuggable(doc: XmlDocument) -> bool:
    applications = _depth_two(doc, _APPLICATION)
    if not applications:
        return False
    attr = applications[0].attribute_by_id(ATTR_DEBUGGABLE)
    if attr is None:
        return False
    if attr.value_type in (ValueType.INT_BOOLEAN, ValueType.STRING, *_INT_TYPES):
        return attr.string_value() in ("true", "TRUE", "1")
    prefix = (
        f"Unable to determine whether APK is debuggable: {MANIFEST_ENTRY_NAME}'s "
        "android:debuggable attribute"
    )
    if attr.value_type == ValueType.REFERENCE:
        raise ApkFormatError(
            f"{prefix} references a resource. References are not supported for security "
            "reasons. Only constant boolean, string and int values are supported."
        )
    raise ApkFormatError(
        f"{prefix} uses unsupported value type. Only boolean, string and int values are supported."
    )


def _top_manifest(doc: XmlDocument) -> XmlElement | None:
    """The first top-level un-namespaced ``manifest`` element."""
    for top in doc.elements:
        if top.name == _MANIFEST and top.namespace == "":
            return top
    return None


def _package_name(doc: XmlDocument) -> str | None:
    manifest = _top_manifest(doc)
    if manifest is None:
        return None
    for attr in manifest.attributes:
        if attr.name == "package":
            try:
                return attr.string_value()
            except AxmlError as e:
                raise ApkFormatError(
                    "Unable to determine APK package name: malformed binary resource: "
                    f"{MANIFEST_ENTRY_NAME}: {e}"
                ) from e
    return None


def _version_name(doc: XmlDocument) -> str | None:
    """``android:versionName`` of the top-level manifest, if it is a constant.

    A reference (``@string/...``) needs resources.arsc to resolve and gives ``None``.
    """
    manifest = _top_manifest(doc)
    if manifest is None:
        return None
    attr = manifest.attribute("versionName", ATTR_VERSION_NAME)
    if attr is None or attr.value_type in (
        ValueType.NULL,
        ValueType.REFERENCE,
        ValueType.ATTRIBUTE,
        ValueType.DYNAMIC_REFERENCE,
        ValueType.DYNAMIC_ATTRIBUTE,
    ):
        return None
    return attr.format_value()


def _max_sdk_version(doc: XmlDocument) -> int | None:
    """``android:maxSdkVersion`` of the first depth-2 ``uses-sdk`` declaring an integer one."""
    for uses_sdk in _depth_two(doc, _USES_SDK):
        attr = uses_sdk.attribute("maxSdkVersion", ATTR_MAX_SDK_VERSION)
        if attr is not None and attr.value_type in _INT_TYPES:
            return attr.int_value()
    return None
