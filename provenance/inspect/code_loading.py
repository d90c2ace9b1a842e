"""Dynamic code loading and hot-update capability, each call site attributed to its caller.

Applying the indicators (``hotupdate_indicators.json``) naively flags almost every app:
Google Play services, AndroidX and Play Feature Delivery all load code. So every hit is
tied to the method that makes it -- ``invoke`` instructions for the API methods,
``const-string`` for the injection strings -- and that method's class is classified:

- ``store``: store-mediated delivery (Play Feature Delivery's ``splitinstall`` /
  ``splitcompat``), allowed by policy;
- ``hot-update``: inside a known hot-update / plugin framework (named);
- ``library``: well-known platform libraries (Google Play services, Firebase, AndroidX,
  Kotlin, ...);
- ``app``: the app's own package -- or any code we cannot name, obfuscated code
  included, so that unknown code is never excused;
- ``sdk``: a third-party SDK from the SDK database (named).

API methods are matched on the declaring class *or* any app-defined subclass of it
(``new MyLoader(...)`` where ``MyLoader extends DexClassLoader``), resolved through the
class hierarchy of all DEX files of the APK.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from provenance.apk.dex import DexFile
from provenance.inspect.model import (
    CallSite,
    CodeLoadingFacts,
    FrameworkHit,
    ManifestFacts,
    StringHit,
)
from provenance.inspect.sdk import SdkDatabase

__all__ = ["WELL_KNOWN_LIBRARIES", "Classifier", "code_loading_facts"]

#: Well-known libraries whose code-loading calls are expected (origin ``library``).
WELL_KNOWN_LIBRARIES: Final = (
    ("Landroidx/", "AndroidX"),
    ("Landroid/support/", "Android Support Library"),
    ("Landroid/arch/", "Android Architecture Components"),
    ("Lcom/google/android/gms/", "Google Play services"),
    ("Lcom/google/firebase/", "Firebase"),
    ("Lcom/google/android/play/", "Google Play libraries"),
    ("Lcom/google/android/material/", "Material Components"),
    ("Lcom/google/android/datatransport/", "Google Data Transport"),
    ("Lcom/android/billingclient/", "Google Play Billing Library"),
    ("Lcom/android/installreferrer/", "Play Install Referrer Library"),
    ("Lcom/google/common/", "Guava"),
    ("Lcom/google/gson/", "Gson"),
    ("Lcom/google/protobuf/", "Protocol Buffers"),
    ("Lkotlin/", "Kotlin"),
    ("Lkotlinx/", "Kotlin"),
    ("Lj$/", "Java library desugaring"),
    ("Ljava/", "Java"),
    ("Ljavax/", "Java"),
)

_CONTEXT: Final = "Landroid/content/Context;"
#: Platform classes that inherit the API methods of the key (beyond the key itself).
_PLATFORM_SUBCLASSES: Final = {
    _CONTEXT: frozenset(
        {
            "Landroid/content/ContextWrapper;",
            "Landroid/view/ContextThemeWrapper;",
            "Landroid/app/Activity;",
            "Landroid/app/Application;",
            "Landroid/app/Service;",
            "Landroid/app/IntentService;",
            "Landroid/app/ListActivity;",
            "Landroid/app/NativeActivity;",
            "Landroid/app/TabActivity;",
            "Landroid/app/ActivityGroup;",
            "Landroid/app/ExpandableListActivity;",
            "Landroid/preference/PreferenceActivity;",
            "Landroid/inputmethodservice/InputMethodService;",
            "Landroid/accessibilityservice/AccessibilityService;",
            "Landroid/service/wallpaper/WallpaperService;",
            "Landroid/app/job/JobService;",
        }
    ),
    "Ldalvik/system/BaseDexClassLoader;": frozenset(
        {
            "Ldalvik/system/DexClassLoader;",
            "Ldalvik/system/PathClassLoader;",
            "Ldalvik/system/InMemoryDexClassLoader;",
            "Ldalvik/system/DelegateLastClassLoader;",
        }
    ),
    "Ljava/lang/ClassLoader;": frozenset(
        {
            "Ldalvik/system/BaseDexClassLoader;",
            "Ldalvik/system/DexClassLoader;",
            "Ldalvik/system/PathClassLoader;",
            "Ldalvik/system/InMemoryDexClassLoader;",
            "Ldalvik/system/DelegateLastClassLoader;",
            "Ljava/net/URLClassLoader;",
            "Ljava/security/SecureClassLoader;",
        }
    ),
}
_MAX_HIERARCHY_DEPTH: Final = 64


@dataclass(frozen=True, slots=True)
class _Api:
    key: str
    class_: str
    name: str
    strength: str


class Classifier:
    """Whose code a class is: store, hot-update framework, library, the app, an SDK."""

    def __init__(self, package: str | None, db: SdkDatabase, indicators: dict[str, Any]) -> None:
        self.own = f"L{package.replace('.', '/')}/" if package else None
        self.db = db
        self.store: list[tuple[str, str]] = []
        self.frameworks: list[tuple[str, str]] = []
        for name, fw in indicators.get("frameworks", {}).items():
            target = self.store if _store_mediated(name, fw) else self.frameworks
            for prefix in fw.get("class_prefixes", ()):
                target.append((prefix, name))

    def classify(self, descriptor: str) -> tuple[str, str | None]:
        """``(origin, library name)`` of the class with this descriptor."""
        for prefix, name in self.store:
            if descriptor.startswith(prefix):
                return "store", name
        for prefix, name in self.frameworks:
            if descriptor.startswith(prefix):
                return "hot-update", name
        for prefix, name in WELL_KNOWN_LIBRARIES:
            if descriptor.startswith(prefix):
                return "library", name
        if self.own and descriptor.startswith(self.own):
            return "app", None
        owner = self.db.prefix_owner(descriptor)
        if owner is not None:
            return "sdk", owner[0]
        return "app", None


def _store_mediated(name: str, fw: dict[str, Any]) -> bool:
    return "store-mediated" in str(fw.get("type", "")) or "(legit)" in name


def _java_package(descriptor: str) -> str:
    body = descriptor[1:-1] if descriptor.startswith("L") and descriptor.endswith(";") else ""
    return body.rpartition("/")[0].replace("/", ".")


def _apis(indicators: dict[str, Any]) -> list[_Api]:
    out = []
    for key, meaning in indicators.get("dcl_api_methods", {}).items():
        cls, _, name = key.partition("->")
        out.append(_Api(key, cls, name, "weak" if "weak" in meaning else "strong"))
    return out


def _resolve(descriptor: str, apis: list[_Api], supers: dict[str, str | None]) -> _Api | None:
    """The API a method reference on ``descriptor`` resolves to, walking up app classes.

    The most specific API wins: a call to ``DexClassLoader.<init>`` is that API, not
    also ``BaseDexClassLoader.<init>``; a platform subclass (``Activity`` for
    ``Context``) stands for its API class; app-defined classes are followed to their
    superclass.
    """
    by_class = {a.class_: a for a in apis}
    current: str | None = descriptor
    for _ in range(_MAX_HIERARCHY_DEPTH):
        if current is None:
            return None
        api = by_class.get(current)
        if api is not None:
            return api
        for a in apis:
            if current in _PLATFORM_SUBCLASSES.get(a.class_, ()):
                return a
        if current not in supers:
            return None  # a platform (or missing) class that is not an API class
        current = supers[current]
    return None


def code_loading_facts(
    dexes: Sequence[tuple[str, DexFile]],
    all_classes: Sequence[str],
    supers: dict[str, str | None],
    manifest: ManifestFacts,
    native_libs: Iterable[str],
    entry_names: Iterable[str],
    db: SdkDatabase,
    indicators: dict[str, Any],
) -> CodeLoadingFacts:
    """Call sites of code-loading APIs, injection strings and framework signatures."""
    classifier = Classifier(manifest.package, db, indicators)
    apis = _apis(indicators)
    strings: dict[str, str] = dict(indicators.get("dcl_strings", {}))
    fw_strings = {
        s: name
        for name, fw in indicators.get("frameworks", {}).items()
        for s in fw.get("strings", ())
    }
    wanted_strings = {**strings, **{s: "" for s in fw_strings if s not in strings}}
    by_name: dict[str, list[_Api]] = {}
    for api in apis:
        by_name.setdefault(api.name, []).append(api)

    sites: dict[tuple[str, str, str], list[Any]] = {}
    string_callers: dict[str, set[str]] = {}
    strings_in_pool: set[str] = set()
    for dex_name, dex in dexes:
        # Method ids whose name is an API name and whose class is (a subclass of) its class.
        name_idx = {sidx: name for name in by_name if (sidx := dex.find_string(name)) is not None}
        method_api: dict[int, _Api] = {}
        if name_idx:
            for midx, (cls_idx, _proto, nidx) in enumerate(dex.method_ids()):
                name = name_idx.get(nidx)
                if name is None:
                    continue
                resolved = _resolve(dex.type_name(cls_idx), by_name[name], supers)
                if resolved is not None:
                    method_api[midx] = resolved
        string_idx: dict[int, str] = {}
        for text in wanted_strings:
            sidx = dex.find_string(text)
            if sidx is not None:
                string_idx[sidx] = text
                strings_in_pool.add(text)
        if not method_api and not string_idx:
            continue
        for ref in dex.find_references(method_api, string_idx):
            caller = dex.method_ref(ref.caller)
            if ref.kind == "string":
                string_callers.setdefault(string_idx[ref.target], set()).add(caller.class_)
                continue
            api = method_api[ref.target]
            key = (api.key, str(caller), dex_name)
            row = sites.get(key)
            if row is None:
                sites[key] = [api, caller.class_, ref.occurrences]
            else:
                row[2] += ref.occurrences

    call_sites = []
    for (api_key, caller_ref, dex_name), (api, caller_class, count) in sorted(sites.items()):
        origin, library = classifier.classify(caller_class)
        call_sites.append(
            CallSite(
                api=api_key,
                caller=caller_ref,
                caller_class=caller_class,
                caller_package=_java_package(caller_class),
                origin=origin,
                strength=api.strength,
                dex=dex_name,
                count=count,
                library=library,
            )
        )
    string_hits = []
    for text in sorted(strings_in_pool & set(strings)):
        callers = sorted(string_callers.get(text, ()))
        string_hits.append(
            StringHit(
                string=text,
                meaning=strings[text],
                callers=tuple(callers),
                origins=tuple(sorted({classifier.classify(c)[0] for c in callers})),
                in_pool_only=not callers,
            )
        )
    frameworks = _frameworks(
        indicators, all_classes, manifest, set(native_libs), set(entry_names), strings_in_pool
    )
    return CodeLoadingFacts(tuple(call_sites), tuple(string_hits), tuple(frameworks))


def _has_prefix(classes: Sequence[str], prefix: str) -> bool:
    j = bisect_left(classes, prefix)
    return j < len(classes) and classes[j].startswith(prefix)


def _manifest_names(manifest: ManifestFacts) -> tuple[set[str], dict[str, set[str]]]:
    meta = {m.name for m in manifest.application.meta_data}
    components: dict[str, set[str]] = {}
    for c in manifest.components:
        components.setdefault(c.kind, set()).add(c.name)
        meta.update(m.name for m in c.meta_data)
    return meta, components


def _frameworks(
    indicators: dict[str, Any],
    classes: Sequence[str],
    manifest: ManifestFacts,
    native_libs: set[str],
    entries: set[str],
    pool_strings: set[str],
) -> list[FrameworkHit]:
    meta, components = _manifest_names(manifest)
    all_components = set().union(*components.values()) if components else set()
    hits = []
    for name, fw in indicators.get("frameworks", {}).items():
        evidence: list[str] = []
        strong = False
        for prefix in fw.get("class_prefixes", ()):
            if _has_prefix(classes, prefix):
                evidence.append(f"class:{prefix}")
                strong = True
        for asset in fw.get("assets", ()):
            if asset in entries:
                evidence.append(f"asset:{asset}")
                strong = True
        for text in fw.get("strings", ()):
            if text in pool_strings:
                evidence.append(f"string:{text}")
                strong = True
        for spec in fw.get("manifest", ()):
            kind, _, value = spec.rpartition(" ")
            if kind == "meta-data" or not kind:
                found = value in meta or (not kind and value in all_components)
            else:
                found = value in components.get(kind, set())
            if found:
                evidence.append(f"manifest:{spec}")
                strong = True
        libs = [lib for lib in fw.get("native_libs", ()) if lib in native_libs]
        evidence.extend(f"native:{lib}" for lib in libs)
        # Native libraries alone name a framework unless it is told apart by an asset
        # (libflutter.so is every Flutter app; shorebird.yaml is Shorebird).
        if libs and not fw.get("assets"):
            strong = True
        if strong:
            hits.append(
                FrameworkHit(
                    name=name,
                    kind=str(fw.get("type", "")),
                    evidence=tuple(evidence),
                    store_mediated=_store_mediated(name, fw),
                )
            )
    hits.sort(key=lambda h: h.name)
    return hits
