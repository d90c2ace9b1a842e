"""The facts of an APK: a frozen, JSON-serialisable dataclass tree (:class:`ApkFacts`).

This is the contract between the inspector and its consumers (the risk engine, the
repackaging detector, ``apkprov inspect --json``). It only records what the APK *says*
-- no verdicts -- so that a consumer can apply its own policy and so that the same
facts can be signed into an inspection statement and re-evaluated later.

Stability rules: :data:`FACTS_VERSION` is bumped on any change a consumer could notice
(a field renamed, removed or re-typed, or a value's meaning changed); adding an
optional field with a default keeps the version. :meth:`ApkFacts.to_json` is
deterministic (field order as declared, collections in a documented sort order), and
:meth:`ApkFacts.from_json` reads it back, so facts can be stored and compared.

Naming: class and type names are DEX descriptors (``Lcom/example/Foo;``) and method
references are smali-style (``Lcom/example/Foo;->bar(ILjava/lang/String;)V``), exactly
as ``dexdump``/``baksmali`` print them; component names are fully qualified Java names
(``com.example.MainActivity``) as the platform resolves them.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Hashable
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Final, TypeVar, Union

__all__ = [
    "FACTS_VERSION",
    "ApkFacts",
    "ApplicationFacts",
    "CallSite",
    "CodeLoadingFacts",
    "Component",
    "DeclaredPermission",
    "DexFacts",
    "FileFacts",
    "FrameworkHit",
    "IntentData",
    "IntentFilter",
    "ManifestFacts",
    "MetaData",
    "NativeLib",
    "ResourceFile",
    "SdkHit",
    "SigningFacts",
    "StringHit",
    "UsesFeature",
    "UsesLibrary",
    "UsesPermission",
]

FACTS_VERSION: Final = 1
"""Schema version of :class:`ApkFacts` and of its JSON form."""


@dataclass(frozen=True, slots=True)
class FileFacts:
    """The file itself: what a store or a log entry names it by."""

    name: str
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class UsesPermission:
    """A ``<uses-permission>`` (``sdk23=False``) or ``<uses-permission-sdk-23>``.

    ``max_sdk_version`` limits the API levels on which the permission is requested
    (``None``: all).
    """

    name: str
    max_sdk_version: int | None = None
    sdk23: bool = False


@dataclass(frozen=True, slots=True)
class DeclaredPermission:
    """A ``<permission>`` the app defines; ``protection_level`` as the raw int flags."""

    name: str
    protection_level: int = 0


@dataclass(frozen=True, slots=True)
class UsesFeature:
    """A ``<uses-feature>``: a named feature, or an OpenGL ES version (``name`` None).

    ``gl_es_version`` is the packed form (major << 16 | minor), e.g. 0x20000 = 2.0.
    """

    name: str | None
    required: bool = True
    gl_es_version: int | None = None


@dataclass(frozen=True, slots=True)
class UsesLibrary:
    """A ``<uses-library>`` (shared Java library the app links against)."""

    name: str
    required: bool = True


@dataclass(frozen=True, slots=True)
class MetaData:
    """A ``<meta-data>``: ``value`` as text, or ``resource`` (``@0x7f...`` id) -- or both.

    A ``android:value`` that is a resource reference is rendered as ``@0x........``
    unless it resolved to a constant through ``resources.arsc``.
    """

    name: str
    value: str | None = None
    resource: str | None = None


@dataclass(frozen=True, slots=True)
class IntentData:
    """One ``<data>`` element of an intent filter (only the attributes it has)."""

    scheme: str | None = None
    host: str | None = None
    port: str | None = None
    path: str | None = None
    path_prefix: str | None = None
    path_pattern: str | None = None
    mime_type: str | None = None


@dataclass(frozen=True, slots=True)
class IntentFilter:
    """An ``<intent-filter>``; ``auto_verify`` is App Links verification."""

    actions: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    data: tuple[IntentData, ...] = ()
    priority: int = 0
    auto_verify: bool = False


@dataclass(frozen=True, slots=True)
class Component:
    """An activity, activity-alias, service, receiver or provider.

    ``exported`` is what the platform decides: the explicit ``android:exported`` if
    present, else implied -- true with an intent filter for activities, aliases,
    services and receivers; for providers true only when targetSdk <= 16.
    ``exported_explicit`` keeps the declared value (``None``: not declared; from
    targetSdk 31 on, a component with intent filters must declare it).
    ``target_activity`` is set for aliases, ``authorities`` for providers.
    """

    kind: str
    name: str
    exported: bool
    exported_explicit: bool | None = None
    enabled: bool = True
    permission: str | None = None
    process: str | None = None
    target_activity: str | None = None
    authorities: tuple[str, ...] = ()
    intent_filters: tuple[IntentFilter, ...] = ()
    meta_data: tuple[MetaData, ...] = ()


@dataclass(frozen=True, slots=True)
class ApplicationFacts:
    """``<application>`` attributes as declared (``None``: absent, platform default applies).

    Defaults: debuggable false; allowBackup true; usesCleartextTraffic true below
    targetSdk 28, false from 28 (and ``network_security_config`` overrides it);
    testOnly false; extractNativeLibs true (false by default in AGP >= 3.6 builds, but
    that is written into the manifest). Resource references are resolved through
    ``resources.arsc`` where possible; an unresolved one leaves the flag ``None``.
    """

    name: str | None = None
    debuggable: bool | None = None
    allow_backup: bool | None = None
    uses_cleartext_traffic: bool | None = None
    test_only: bool | None = None
    extract_native_libs: bool | None = None
    has_code: bool | None = None
    network_security_config: str | None = None
    app_component_factory: str | None = None
    meta_data: tuple[MetaData, ...] = ()

    def cleartext_allowed(self, target_sdk: int) -> bool:
        """Whether cleartext HTTP is allowed by the manifest alone (platform default)."""
        if self.uses_cleartext_traffic is not None:
            return self.uses_cleartext_traffic
        return target_sdk < 28


@dataclass(frozen=True, slots=True)
class ManifestFacts:
    """What ``AndroidManifest.xml`` declares, values resolved like the platform does.

    ``version_code`` is the long version code (``versionCodeMajor << 32 | versionCode``);
    ``min_sdk``/``target_sdk`` follow apksig's rules (see ``provenance.apk.manifest``),
    ``max_sdk`` is the raw ``uses-sdk`` attribute (ignored by the platform since 2.0.1).
    """

    package: str | None
    version_code: int | None
    version_code_major: int
    version_name: str | None
    min_sdk: int | None
    target_sdk: int
    max_sdk: int | None
    compile_sdk: int | None = None
    shared_user_id: str | None = None
    target_sandbox_version: int = 1
    uses_permissions: tuple[UsesPermission, ...] = ()
    permissions: tuple[DeclaredPermission, ...] = ()
    uses_features: tuple[UsesFeature, ...] = ()
    uses_libraries: tuple[UsesLibrary, ...] = ()
    application: ApplicationFacts = field(default_factory=ApplicationFacts)
    components: tuple[Component, ...] = ()

    def permission_names(self) -> frozenset[str]:
        """Every requested permission name (both element kinds)."""
        return frozenset(p.name for p in self.uses_permissions)


@dataclass(frozen=True, slots=True)
class SigningFacts:
    """Who signed the APK, from :func:`provenance.apk.verify.verify_apk`.

    ``signer_sha256`` are the certificates the platform would bind the app to (the
    newest v3 signer, else every v2/v1 signer); ``lineage_sha256`` the v3 rotation
    lineage, oldest first. ``errors`` are the verifier's issue names when it does not
    verify (``["APK_FORMAT: ..."]`` when it could not be read at all).
    """

    verified: bool
    schemes: tuple[str, ...] = ()
    signer_sha256: tuple[str, ...] = ()
    signer_subjects: tuple[str, ...] = ()
    lineage_sha256: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DexFacts:
    """One ``classes*.dex``: its defined classes and every method it references.

    ``classes`` are the classes it defines (sorted descriptors); ``method_refs`` every
    ``method_id`` (sorted smali-style references, calls to the platform included).
    ``error`` is set (and the lists are empty) when the file is not a readable DEX;
    ``checksum_ok`` is false when the header's Adler-32 does not match (the runtime
    refuses such a file).
    """

    name: str
    size: int
    sha256: str
    version: int = 0
    class_count: int = 0
    method_ref_count: int = 0
    string_count: int = 0
    classes: tuple[str, ...] = ()
    method_refs: tuple[str, ...] = ()
    error: str | None = None
    checksum_ok: bool = True


@dataclass(frozen=True, slots=True)
class NativeLib:
    """A native library ``lib/<abi>/<name>.so`` (directly in the ABI folder)."""

    abi: str
    name: str
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class SdkHit:
    """An SDK found in the APK, with the dataset that names it and the evidence.

    ``source`` is ``exodus`` (εxodus tracker), ``libchecker`` or ``libradar``; ``ident``
    the dataset's own id (εxodus tracker id, LibChecker rule name, LibRadar package);
    ``evidence`` entries are ``class:<descriptor prefix>``, ``native:<lib name>``,
    ``component:<class name>``.
    """

    name: str
    source: str
    ident: str
    categories: tuple[str, ...] = ()
    evidence: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CallSite:
    """Calls from one method to a code-loading API, attributed to the calling class.

    ``origin`` says whose code makes the call: ``app`` (the app's own package or any
    unknown code), ``store`` (store-mediated delivery: Play Feature Delivery),
    ``library`` (well-known platform libraries: Google Play services, Firebase,
    AndroidX, Kotlin...), ``sdk`` (a third-party SDK named in ``library``) or
    ``hot-update`` (a hot-update / plugin framework named in ``library``).
    ``strength`` is ``strong`` for APIs that load code, ``weak`` for reflection and
    ``System.loadLibrary``-style ones. ``count`` is the number of invoke instructions.
    """

    api: str
    caller: str
    caller_class: str
    caller_package: str
    origin: str
    strength: str
    dex: str
    count: int = 1
    library: str | None = None


@dataclass(frozen=True, slots=True)
class StringHit:
    """A code-loading indicator string loaded by ``const-string`` in some methods.

    ``callers`` are the calling classes (descriptors, sorted) with their origins
    summarised in ``origins``; ``in_pool_only`` when the string is in a string pool but
    no instruction loads it (e.g. an annotation or a field name).
    """

    string: str
    meaning: str
    callers: tuple[str, ...] = ()
    origins: tuple[str, ...] = ()
    in_pool_only: bool = False


@dataclass(frozen=True, slots=True)
class FrameworkHit:
    """A hot-update / plugin framework whose signature matched.

    ``store_mediated`` marks store-delivered dynamic code (Play Feature Delivery),
    which a policy normally allows.
    """

    name: str
    kind: str
    evidence: tuple[str, ...] = ()
    store_mediated: bool = False


@dataclass(frozen=True, slots=True)
class CodeLoadingFacts:
    """Dynamic code loading and hot-update capability, every call site attributed."""

    call_sites: tuple[CallSite, ...] = ()
    strings: tuple[StringHit, ...] = ()
    frameworks: tuple[FrameworkHit, ...] = ()

    def app_call_sites(self, strength: str = "strong") -> tuple[CallSite, ...]:
        """Call sites in the app's own (or unknown) code with the given strength."""
        return tuple(c for c in self.call_sites if c.origin == "app" and c.strength == strength)


@dataclass(frozen=True, slots=True)
class ResourceFile:
    """A non-code entry: anything but ``classes*.dex`` and ``META-INF/`` (by name)."""

    name: str
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class ApkFacts:
    """Everything :func:`provenance.inspect.inspect_apk` establishes about one APK.

    ``class_fingerprint`` is the SHA-256 of the sorted, de-duplicated class
    descriptors of all DEX files joined by ``\\n`` (a repackaged app keeps it when only
    resources or signatures change). ``issues`` lists parts that could not be read
    (``"<entry>: <reason>"``) -- the rest of the facts still stand.
    """

    facts_version: int
    file: FileFacts
    manifest: ManifestFacts
    signing: SigningFacts
    dex: tuple[DexFacts, ...] = ()
    native_libs: tuple[NativeLib, ...] = ()
    abis: tuple[str, ...] = ()
    sdks: tuple[SdkHit, ...] = ()
    code_loading: CodeLoadingFacts = field(default_factory=CodeLoadingFacts)
    resources: tuple[ResourceFile, ...] = ()
    class_count: int = 0
    class_fingerprint: str = ""
    sdk_db_version: str = ""
    issues: tuple[str, ...] = ()

    def class_names(self) -> frozenset[str]:
        """Every class defined by any DEX file (descriptors)."""
        return frozenset(c for d in self.dex for c in d.classes)

    def to_json(self) -> dict[str, Any]:
        """A plain-JSON dict (lists for tuples); deterministic for the same facts."""
        out = _to_json(self)
        assert isinstance(out, dict)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ApkFacts:
        """Read back :meth:`to_json` output; raises ``ValueError`` on another version."""
        version = data.get("facts_version")
        if version != FACTS_VERSION:
            raise ValueError(f"facts_version {version!r} not supported (want {FACTS_VERSION})")
        return _from_json(cls, data)


# --- JSON mapping -------------------------------------------------------------------

_T = TypeVar("_T")


def _to_json(value: object) -> object:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_to_json(v) for v in value]
    return value


@cache
def _hints(cls: Hashable) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _from_json(cls: type[_T], data: Any) -> _T:
    if not isinstance(data, dict):
        raise ValueError(f"{cls.__name__}: expected an object, got {type(data).__name__}")
    hints = _hints(typing.cast(Hashable, cls))
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name in data:
            kwargs[f.name] = _convert(hints[f.name], data[f.name])
    return cls(**kwargs)


def _convert(tp: Any, value: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _convert(args[0], value) if len(args) == 1 else value
    if origin is tuple:
        (item,) = {a for a in typing.get_args(tp) if a is not Ellipsis}
        if not isinstance(value, list | tuple):
            raise ValueError(f"expected a list, got {type(value).__name__}")
        return tuple(_convert(item, v) for v in value)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _from_json(tp, value)
    return value
