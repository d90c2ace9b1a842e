"""Manifest facts: what ``AndroidManifest.xml`` declares, read the way the platform reads it.

The element tree comes from :func:`provenance.apk.manifest.parse_manifest` (and the SDK
levels from its apksig rules, so inspection and verification never disagree). This
module walks the tree like ``PackageParser``: manifest-level elements at depth 2,
components under the first ``<application>``, attributes looked up by framework
resource ID before name, class names completed with the package, ``exported``
implied from intent filters (providers: from targetSdk), and resource references
resolved through ``resources.arsc`` when a table is given.
"""

from __future__ import annotations

from typing import Final

from provenance.apk.axml import ValueType, XmlAttribute, XmlElement
from provenance.apk.manifest import Manifest
from provenance.errors import AxmlError
from provenance.inspect.model import (
    ApplicationFacts,
    Component,
    DeclaredPermission,
    IntentData,
    IntentFilter,
    ManifestFacts,
    MetaData,
    UsesFeature,
    UsesLibrary,
    UsesPermission,
)
from provenance.inspect.resources import ResourceTable, ResourceValue

__all__ = ["COMPONENT_KINDS", "manifest_facts"]

# android.R.attr resource IDs (checked against framework-res with aapt).
A_LABEL: Final = 0x01010001
A_NAME: Final = 0x01010003
A_PERMISSION: Final = 0x01010006
A_PROTECTION_LEVEL: Final = 0x01010009
A_SHARED_USER_ID: Final = 0x0101000B
A_HAS_CODE: Final = 0x0101000C
A_ENABLED: Final = 0x0101000E
A_DEBUGGABLE: Final = 0x0101000F
A_EXPORTED: Final = 0x01010010
A_PROCESS: Final = 0x01010011
A_AUTHORITIES: Final = 0x01010018
A_PRIORITY: Final = 0x0101001C
A_VALUE: Final = 0x01010024
A_RESOURCE: Final = 0x01010025
A_MIME_TYPE: Final = 0x01010026
A_SCHEME: Final = 0x01010027
A_HOST: Final = 0x01010028
A_PORT: Final = 0x01010029
A_PATH: Final = 0x0101002A
A_PATH_PREFIX: Final = 0x0101002B
A_PATH_PATTERN: Final = 0x0101002C
A_TARGET_ACTIVITY: Final = 0x01010202
A_MAX_SDK_VERSION: Final = 0x01010271
A_TEST_ONLY: Final = 0x01010272
A_ALLOW_BACKUP: Final = 0x01010280
A_GL_ES_VERSION: Final = 0x01010281
A_REQUIRED: Final = 0x0101028E
A_EXTRACT_NATIVE_LIBS: Final = 0x010104EA
A_USES_CLEARTEXT_TRAFFIC: Final = 0x010104EC
A_AUTO_VERIFY: Final = 0x010104EE
A_NETWORK_SECURITY_CONFIG: Final = 0x01010527
A_COMPILE_SDK_VERSION: Final = 0x01010572
A_APP_COMPONENT_FACTORY: Final = 0x0101057A

COMPONENT_KINDS: Final = ("activity", "activity-alias", "service", "receiver", "provider")
_JELLY_BEAN_MR1: Final = 17
_INT_TYPES: Final = (ValueType.INT_DEC, ValueType.INT_HEX)


class _Reader:
    """Attribute values with references resolved through the resource table."""

    def __init__(self, resources: ResourceTable | None) -> None:
        self.resources = resources

    def _resolved(self, attr: XmlAttribute) -> ResourceValue | None:
        if attr.value_type != ValueType.REFERENCE or self.resources is None:
            return None
        try:
            return self.resources.resolve(attr.data)
        except AxmlError:
            return None

    def text(self, el: XmlElement, name: str, rid: int) -> str | None:
        """A string value (constants rendered as text, references resolved if possible)."""
        attr = el.attribute(name, rid)
        if attr is None:
            return None
        if attr.value_type == ValueType.REFERENCE:
            value = self._resolved(attr)
            if value is not None and value.string is not None:
                return value.string
            if value is not None and value.value_type in (*_INT_TYPES, ValueType.INT_BOOLEAN):
                return XmlAttribute(name, "", 0, value.value_type, value.data).format_value()
        return attr.format_value()

    def _typed(self, el: XmlElement, name: str, rid: int) -> tuple[int, int, str | None] | None:
        """(value type, data, string) of an attribute, a resource reference resolved
        through resources.arsc; None when absent or unresolvable."""
        attr = el.attribute(name, rid)
        if attr is None:
            return None
        if attr.value_type == ValueType.REFERENCE:
            value = self._resolved(attr)
            if value is None:
                return None
            return value.value_type, value.data, value.string
        return attr.value_type, attr.data, attr.string

    def boolean(self, el: XmlElement, name: str, rid: int) -> bool | None:
        """A boolean value; ``None`` when absent or not resolvable to a boolean."""
        typed = self._typed(el, name, rid)
        if typed is None:
            return None
        vtype, data, string = typed
        if vtype == ValueType.INT_BOOLEAN or vtype in _INT_TYPES:
            return data != 0
        if vtype == ValueType.STRING and string is not None:
            if string.lower() in ("true", "1"):
                return True
            if string.lower() in ("false", "0"):
                return False
        return None

    def integer(self, el: XmlElement, name: str, rid: int) -> int | None:
        """An integer value; ``None`` when absent or not an integer."""
        typed = self._typed(el, name, rid)
        if typed is None:
            return None
        vtype, data, string = typed
        if vtype in _INT_TYPES or vtype == ValueType.INT_BOOLEAN:
            return data - (1 << 32) if data & 0x8000_0000 else data
        if vtype == ValueType.STRING and string is not None:
            try:
                return int(string, 0)
            except ValueError:
                return None
        return None

    def reference(self, el: XmlElement, name: str, rid: int) -> str | None:
        """A resource reference as ``@0x7f......`` (or the constant given instead)."""
        attr = el.attribute(name, rid)
        if attr is None:
            return None
        return attr.format_value()


def _children(el: XmlElement, name: str) -> list[XmlElement]:
    return [c for c in el.children if c.name == name and c.namespace == ""]


def _class_name(package: str | None, name: str | None) -> str | None:
    """``PackageParser.buildClassName``: ``.Foo`` and ``Foo`` are relative to the package."""
    if not name:
        return name
    if name.startswith("."):
        return f"{package or ''}{name}"
    if "." not in name and package:
        return f"{package}.{name}"
    return name


def _meta_data(r: _Reader, parent: XmlElement) -> tuple[MetaData, ...]:
    out = []
    for md in _children(parent, "meta-data"):
        name = r.text(md, "name", A_NAME)
        if name is None:
            continue
        out.append(
            MetaData(
                name=name,
                value=r.text(md, "value", A_VALUE),
                resource=r.reference(md, "resource", A_RESOURCE),
            )
        )
    return tuple(out)


def _intent_filter(r: _Reader, el: XmlElement) -> IntentFilter:
    actions = tuple(
        v for a in _children(el, "action") if (v := r.text(a, "name", A_NAME)) is not None
    )
    categories = tuple(
        v for c in _children(el, "category") if (v := r.text(c, "name", A_NAME)) is not None
    )
    data = tuple(
        IntentData(
            scheme=r.text(d, "scheme", A_SCHEME),
            host=r.text(d, "host", A_HOST),
            port=r.text(d, "port", A_PORT),
            path=r.text(d, "path", A_PATH),
            path_prefix=r.text(d, "pathPrefix", A_PATH_PREFIX),
            path_pattern=r.text(d, "pathPattern", A_PATH_PATTERN),
            mime_type=r.text(d, "mimeType", A_MIME_TYPE),
        )
        for d in _children(el, "data")
    )
    return IntentFilter(
        actions=actions,
        categories=categories,
        data=data,
        priority=r.integer(el, "priority", A_PRIORITY) or 0,
        auto_verify=bool(r.boolean(el, "autoVerify", A_AUTO_VERIFY)),
    )


def _component(
    r: _Reader, kind: str, el: XmlElement, package: str | None, target_sdk: int
) -> Component | None:
    name = _class_name(package, r.text(el, "name", A_NAME))
    if not name:
        return None
    filters = tuple(_intent_filter(r, f) for f in _children(el, "intent-filter"))
    explicit = r.boolean(el, "exported", A_EXPORTED)
    if explicit is not None:
        exported = explicit
    elif kind == "provider":
        exported = target_sdk < _JELLY_BEAN_MR1
    else:
        exported = bool(filters)
    authorities = r.text(el, "authorities", A_AUTHORITIES) if kind == "provider" else None
    target = r.text(el, "targetActivity", A_TARGET_ACTIVITY) if kind == "activity-alias" else None
    enabled = r.boolean(el, "enabled", A_ENABLED)
    return Component(
        kind=kind,
        name=name,
        exported=exported,
        exported_explicit=explicit,
        enabled=True if enabled is None else enabled,
        permission=r.text(el, "permission", A_PERMISSION),
        process=r.text(el, "process", A_PROCESS),
        target_activity=_class_name(package, target),
        authorities=tuple(a for a in (authorities or "").split(";") if a),
        intent_filters=filters,
        meta_data=_meta_data(r, el),
    )


def manifest_facts(manifest: Manifest, resources: ResourceTable | None = None) -> ManifestFacts:
    """The :class:`ManifestFacts` of a parsed manifest (references resolved if possible)."""
    r = _Reader(resources)
    root = manifest.root
    package = manifest.package
    target_sdk = manifest.target_sdk_version
    version_name = manifest.version_name
    if version_name is None:
        version_name = r.text(root, "versionName", 0x0101021C)
        if version_name is not None and version_name.startswith("@"):
            version_name = None  # an unresolved reference is not a version name
    max_sdk = manifest.max_sdk_version
    if max_sdk is None:
        for uses_sdk in _children(root, "uses-sdk"):
            max_sdk = r.integer(uses_sdk, "maxSdkVersion", A_MAX_SDK_VERSION)
            if max_sdk is not None:
                break
    compile_sdk = r.integer(root, "compileSdkVersion", A_COMPILE_SDK_VERSION)
    if compile_sdk is None:
        build = root.attribute("platformBuildVersionCode", 0, namespace="")
        if build is not None and build.value_type in _INT_TYPES:
            compile_sdk = build.int_value()

    permissions: list[UsesPermission] = []
    for el in root.children:
        if el.namespace or el.name not in ("uses-permission", "uses-permission-sdk-23"):
            continue
        name = r.text(el, "name", A_NAME)
        if name is None:
            continue
        permissions.append(
            UsesPermission(
                name=name,
                max_sdk_version=r.integer(el, "maxSdkVersion", A_MAX_SDK_VERSION),
                sdk23=el.name == "uses-permission-sdk-23",
            )
        )
    declared = tuple(
        DeclaredPermission(name, r.integer(el, "protectionLevel", A_PROTECTION_LEVEL) or 0)
        for el in _children(root, "permission")
        if (name := r.text(el, "name", A_NAME)) is not None
    )
    features: list[UsesFeature] = []
    for el in _children(root, "uses-feature"):
        required = r.boolean(el, "required", A_REQUIRED)
        features.append(
            UsesFeature(
                name=r.text(el, "name", A_NAME),
                required=True if required is None else required,
                gl_es_version=r.integer(el, "glEsVersion", A_GL_ES_VERSION),
            )
        )

    applications = _children(root, "application")
    application = ApplicationFacts()
    components: list[Component] = []
    libraries: list[UsesLibrary] = []
    if applications:
        app = applications[0]
        application = ApplicationFacts(
            name=_class_name(package, r.text(app, "name", A_NAME)),
            debuggable=r.boolean(app, "debuggable", A_DEBUGGABLE),
            allow_backup=r.boolean(app, "allowBackup", A_ALLOW_BACKUP),
            uses_cleartext_traffic=r.boolean(app, "usesCleartextTraffic", A_USES_CLEARTEXT_TRAFFIC),
            test_only=r.boolean(app, "testOnly", A_TEST_ONLY),
            extract_native_libs=r.boolean(app, "extractNativeLibs", A_EXTRACT_NATIVE_LIBS),
            has_code=r.boolean(app, "hasCode", A_HAS_CODE),
            network_security_config=r.text(app, "networkSecurityConfig", A_NETWORK_SECURITY_CONFIG),
            app_component_factory=_class_name(
                package, r.text(app, "appComponentFactory", A_APP_COMPONENT_FACTORY)
            ),
            meta_data=_meta_data(r, app),
        )
        for el in app.children:
            if el.namespace:
                continue
            if el.name in COMPONENT_KINDS:
                c = _component(r, el.name, el, package, target_sdk)
                if c is not None:
                    components.append(c)
            elif el.name == "uses-library":
                lib = r.text(el, "name", A_NAME)
                if lib is not None:
                    req = r.boolean(el, "required", A_REQUIRED)
                    libraries.append(UsesLibrary(lib, True if req is None else req))

    version_code = manifest.version_code
    return ManifestFacts(
        package=package,
        version_code=version_code,
        version_code_major=(version_code >> 32) if version_code is not None else 0,
        version_name=version_name,
        min_sdk=manifest.min_sdk_version,
        target_sdk=target_sdk,
        max_sdk=max_sdk,
        compile_sdk=compile_sdk,
        shared_user_id=r.text(root, "sharedUserId", A_SHARED_USER_ID),
        target_sandbox_version=manifest.target_sandbox_version,
        uses_permissions=tuple(permissions),
        permissions=declared,
        uses_features=tuple(features),
        uses_libraries=tuple(libraries),
        application=application,
        components=tuple(components),
    )
