"""The published-listing schema: what a distribution platform says about an app.

A :class:`Listing` is one app on one platform: who publishes it, under which signing
keys per distribution channel, and per release what the platform reviewed (APK
digest, version, SDK range, permissions with purposes, features, third-party SDKs
with the data they handle). A :class:`Catalog` holds the listings of one or more
platforms and answers the two look-ups a shelf check needs: *is this package
registered?* and *does another app already use this name?*

Every importer (F-Droid, AppVerifier, the JSON form below) produces these same
objects, so the risk engine never sees a store-specific format. The JSON form
(``SCHEMA``) is versioned; it is what :meth:`Catalog.to_json` writes and
:func:`catalog_from_json` reads strictly (unknown fields are refused, so a typo in
a published listing is an error rather than a silently missing declaration).
``listing.schema.json`` next to this module is the same schema as JSON Schema, for
platforms that publish listings directly.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from provenance.errors import InputError
from provenance.metadata.errors import ListingError
from provenance.metadata.jsonin import Node

SCHEMA = "apkprov.listing/1"
SCHEMA_PREFIX = "apkprov.listing/"

MAX_LISTINGS = 200_000
MAX_RELEASES = 10_000
MAX_ITEMS = 4_096  # permissions, features, SDKs, signers, channels, ... per object
MAX_NAME = 1_024  # package, permission, feature, SDK, channel names
MAX_TEXT = 64 * 1024  # purposes, names, URLs

_PACKAGE = re.compile(r"[A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*")
_CHANNEL = re.compile(r"[a-z0-9][a-z0-9._:/-]*")
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_COLON_HEX = re.compile(r"[0-9a-fA-F]{2}(?::[0-9a-fA-F]{2}){31}")


def normalize_sha256(
    text: str, where: str = "SHA-256", error: type[InputError] = ListingError
) -> str:
    """A certificate or file SHA-256 as lowercase hex.

    Accepts the forms platforms publish: plain hex in either case (F-Droid) and
    colon-separated pairs (AppVerifier, ``keytool -list``).
    """
    t = text.strip()
    if _HEX64.fullmatch(t):
        return t.lower()
    if _COLON_HEX.fullmatch(t):
        return t.replace(":", "").lower()
    raise error(f"{where}: not a SHA-256 (64 hex digits, optionally colon-separated)")


def normalize_name(name: str) -> str:
    """An app name folded for comparison: NFKC, case-folded, inner whitespace collapsed.

    Counterfeits rely on names a user reads as the same; NFKC maps full-width and
    compatibility characters onto the plain ones.
    """
    return " ".join(unicodedata.normalize("NFKC", name).casefold().split())


def check_package(name: str, where: str) -> str:
    """An Android package name (letters, digits, underscores, dot-separated)."""
    if len(name) > 255 or not _PACKAGE.fullmatch(name):
        raise ListingError(f"{where}: {name[:80]!r} is not a valid package name")
    return name


def check_channel(name: str, where: str) -> str:
    """A distribution channel id: lower-case ``fdroid``, ``google_play_store``, ..."""
    if len(name) > MAX_NAME or not _CHANNEL.fullmatch(name):
        raise ListingError(
            f"{where}: {name[:80]!r} is not a channel id (lower-case letters, digits, ._:/-)"
        )
    return name


@dataclass(frozen=True)
class Developer:
    """Who publishes the app, as the platform identifies them.

    ``id`` is the platform's account id; ``filing_number`` a regulator's registration
    (e.g. an MIIT APP filing number) that app and platform must both display.
    """

    name: str | None = None
    id: str | None = None
    filing_number: str | None = None
    website: str | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON form (absent values omitted)."""
        return _drop_none(
            {
                "name": self.name,
                "id": self.id,
                "filing_number": self.filing_number,
                "website": self.website,
            }
        )


@dataclass(frozen=True)
class DeclaredPermission:
    """A permission the listing declares, with the purpose shown to users.

    ``min_sdk`` is 23 for ``<uses-permission-sdk-23>``; ``max_sdk`` is the manifest's
    ``android:maxSdkVersion`` on the permission.
    """

    name: str
    purpose: str | None = None
    max_sdk: int | None = None
    min_sdk: int | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON form (absent values omitted)."""
        return _drop_none(
            {
                "name": self.name,
                "purpose": self.purpose,
                "max_sdk": self.max_sdk,
                "min_sdk": self.min_sdk,
            }
        )


@dataclass(frozen=True)
class DeclaredSdk:
    """A third-party SDK the listing declares, with its purpose and the data it handles.

    ``packages`` are the code namespaces (Java package prefixes such as
    ``com.google.firebase``) that identify the SDK in the APK, when the platform
    knows them; matching by name is the fallback.
    """

    name: str
    purpose: str | None = None
    data_types: tuple[str, ...] = ()
    packages: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """JSON form (absent values omitted)."""
        return _drop_none(
            {
                "name": self.name,
                "purpose": self.purpose,
                "data_types": list(self.data_types) or None,
                "packages": list(self.packages) or None,
            }
        )


@dataclass(frozen=True)
class Release:
    """One published version: the APK the platform reviewed and what it declares.

    ``signers`` are the signing-certificate SHA-256s published for this very file
    (F-Droid's ``manifest.signer``); the app-level allowed set is
    :attr:`Listing.signers`. ``sdks`` is ``None`` when the platform publishes no
    SDK list at all (F-Droid), and ``()`` when it declares that there are none.
    """

    version_code: int
    version_name: str | None = None
    apk_sha256: str | None = None
    apk_size: int | None = None
    signers: tuple[str, ...] = ()
    min_sdk: int | None = None
    target_sdk: int | None = None
    max_sdk: int | None = None
    permissions: tuple[DeclaredPermission, ...] = ()
    features: tuple[str, ...] = ()
    sdks: tuple[DeclaredSdk, ...] | None = None
    native_code: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    anti_features: tuple[str, ...] = ()

    @property
    def permission_names(self) -> frozenset[str]:
        """Names of every declared permission."""
        return frozenset(p.name for p in self.permissions)

    def to_json(self) -> dict[str, Any]:
        """JSON form (absent values and empty lists omitted)."""
        return _drop_none(
            {
                "version_code": self.version_code,
                "version_name": self.version_name,
                "apk_sha256": self.apk_sha256,
                "apk_size": self.apk_size,
                "signers": list(self.signers) or None,
                "min_sdk": self.min_sdk,
                "target_sdk": self.target_sdk,
                "max_sdk": self.max_sdk,
                "permissions": [p.to_json() for p in self.permissions] or None,
                "features": list(self.features) or None,
                "sdks": None if self.sdks is None else [s.to_json() for s in self.sdks],
                "native_code": list(self.native_code) or None,
                "channels": list(self.channels) or None,
                "anti_features": list(self.anti_features) or None,
            }
        )


@dataclass(frozen=True)
class Listing:
    """One app as one platform publishes it.

    ``signers`` maps a distribution channel (``fdroid``, ``google_play_store``,
    ``github``, ...) to the signing-certificate SHA-256s allowed there: one package
    can legitimately use a different key per channel. ``names`` holds localized
    app names (locale → name) besides the primary ``app_name``.
    """

    platform: str
    package: str
    app_name: str | None = None
    names: Mapping[str, str] = field(default_factory=dict)
    developer: Developer = field(default_factory=Developer)
    signers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    releases: tuple[Release, ...] = ()
    functions: tuple[str, ...] = ()
    privacy_policy_url: str | None = None

    def allowed_signers(self, channel: str | None = None) -> frozenset[str]:
        """Allowed signer SHA-256s on ``channel``, or on any channel when None."""
        if channel is not None:
            return frozenset(self.signers.get(channel, ()))
        return frozenset(s for values in self.signers.values() for s in values)

    def display_names(self) -> frozenset[str]:
        """Every name the app is shown under, folded for comparison."""
        names = [self.app_name] if self.app_name else []
        names.extend(self.names.values())
        return frozenset(n for n in (normalize_name(x) for x in names) if n)

    def release(
        self, *, apk_sha256: str | None = None, version_code: int | None = None
    ) -> Release | None:
        """The release published with this APK digest, else the first with this version."""
        if apk_sha256 is not None:
            for r in self.releases:
                if r.apk_sha256 == apk_sha256:
                    return r
        if version_code is not None:
            for r in self.releases:
                if r.version_code == version_code:
                    return r
        return None

    def to_json(self) -> dict[str, Any]:
        """JSON form (absent values and empty collections omitted)."""
        return _drop_none(
            {
                "platform": self.platform,
                "package": self.package,
                "app_name": self.app_name,
                "names": dict(self.names) or None,
                "developer": self.developer.to_json() or None,
                "signers": {k: list(v) for k, v in self.signers.items()} or None,
                "functions": list(self.functions) or None,
                "privacy_policy_url": self.privacy_policy_url,
                "releases": [r.to_json() for r in self.releases] or None,
            }
        )


@dataclass(frozen=True)
class Catalog:
    """The listings a check is made against, with where they came from.

    ``authenticated_by`` is the pinned certificate SHA-256 that verified the
    source (a signed F-Droid index), or None when the source was taken as given.
    """

    listings: tuple[Listing, ...]
    source: str = ""
    authenticated_by: str | None = None
    _by_package: dict[str, list[Listing]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _by_name: dict[str, list[Listing]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _by_signer: dict[str, list[Listing]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        for listing in self.listings:
            self._by_package.setdefault(listing.package, []).append(listing)
            for name in listing.display_names():
                self._by_name.setdefault(name, []).append(listing)
            for signer in listing.allowed_signers():
                self._by_signer.setdefault(signer, []).append(listing)

    def by_package(self, package: str) -> list[Listing]:
        """Listings registered under ``package`` (one per platform)."""
        return list(self._by_package.get(package, ()))

    def by_name(self, name: str) -> list[Listing]:
        """Listings shown under ``name`` (compared folded, see :func:`normalize_name`)."""
        return list(self._by_name.get(normalize_name(name), ()))

    def by_signer(self, sha256: str) -> list[Listing]:
        """Listings that allow the signer certificate ``sha256`` on some channel."""
        return list(self._by_signer.get(sha256, ()))

    def merged(self, other: Catalog) -> Catalog:
        """Both catalogs' listings (sources joined; authenticated only if both are)."""
        auth = self.authenticated_by if self.authenticated_by == other.authenticated_by else None
        return Catalog(self.listings + other.listings, f"{self.source}+{other.source}", auth)

    def to_json(self) -> dict[str, Any]:
        """The published JSON form: ``{"schema": SCHEMA, "listings": [...]}``."""
        return {"schema": SCHEMA, "listings": [x.to_json() for x in self.listings]}


# -- reading the JSON form ----------------------------------------------------------------


def catalog_from_json(doc: Any, source: str) -> Catalog:
    """A catalog from the JSON form: a catalog document or a single listing document."""
    root = Node(doc, source).obj()
    schema = root.req("schema").string(MAX_NAME)
    if not schema.startswith(SCHEMA_PREFIX):
        root.fail(f"not an apkprov listing (schema {schema[:80]!r})")
    if schema != SCHEMA:
        root.fail(f"unsupported listing schema {schema!r} (this version reads {SCHEMA!r})")
    if root.has("listings"):
        root.only({"schema", "listings"})
        listings = tuple(_listing(n) for n in root.req("listings").array(MAX_LISTINGS))
    else:
        listings = (_listing(root, extra={"schema"}),)
    return Catalog(listings, source)


_LISTING_FIELDS = frozenset(
    {
        "platform",
        "package",
        "app_name",
        "names",
        "developer",
        "signers",
        "functions",
        "privacy_policy_url",
        "releases",
    }
)
_RELEASE_FIELDS = frozenset(
    {
        "version_code",
        "version_name",
        "apk_sha256",
        "apk_size",
        "signers",
        "min_sdk",
        "target_sdk",
        "max_sdk",
        "permissions",
        "features",
        "sdks",
        "native_code",
        "channels",
        "anti_features",
    }
)


def _listing(n: Node, extra: Iterable[str] = ()) -> Listing:
    n.obj().only(_LISTING_FIELDS | set(extra))
    package = check_package(n.req("package").string(MAX_NAME), f"{n.path}.package")
    names: dict[str, str] = {}
    if (nn := n.get("names")) is not None:
        names = {k: v.string(MAX_TEXT) for k, v in nn.items(MAX_ITEMS)}
    signers: dict[str, tuple[str, ...]] = {}
    if (sn := n.get("signers")) is not None:
        for channel, values in sn.items(MAX_ITEMS):
            check_channel(channel, sn.path)
            signers[channel] = _sha256_list(values)
    developer = Developer()
    if (dn := n.get("developer")) is not None:
        dn.only({"name", "id", "filing_number", "website"})
        developer = Developer(
            name=_opt_str(dn, "name"),
            id=_opt_str(dn, "id"),
            filing_number=_opt_str(dn, "filing_number"),
            website=_opt_str(dn, "website"),
        )
    releases: tuple[Release, ...] = ()
    if (rn := n.get("releases")) is not None:
        releases = tuple(_release(r) for r in rn.array(MAX_RELEASES))
    return Listing(
        platform=n.req("platform").string(MAX_NAME),
        package=package,
        app_name=_opt_str(n, "app_name"),
        names=names,
        developer=developer,
        signers=signers,
        releases=releases,
        functions=_str_list(n.get("functions"), MAX_TEXT),
        privacy_policy_url=_opt_str(n, "privacy_policy_url"),
    )


def _release(n: Node) -> Release:
    n.obj().only(_RELEASE_FIELDS)
    perms = []
    if (pn := n.get("permissions")) is not None:
        for p in pn.array(MAX_ITEMS):
            p.obj().only({"name", "purpose", "max_sdk", "min_sdk"})
            perms.append(
                DeclaredPermission(
                    name=p.req("name").string(MAX_NAME),
                    purpose=_opt_str(p, "purpose"),
                    max_sdk=_opt_sdk(p, "max_sdk"),
                    min_sdk=_opt_sdk(p, "min_sdk"),
                )
            )
    sdks: tuple[DeclaredSdk, ...] | None = None
    if (sn := n.get("sdks")) is not None:
        out = []
        for s in sn.array(MAX_ITEMS):
            s.obj().only({"name", "purpose", "data_types", "packages"})
            out.append(
                DeclaredSdk(
                    name=s.req("name").string(MAX_NAME),
                    purpose=_opt_str(s, "purpose"),
                    data_types=_str_list(s.get("data_types"), MAX_NAME),
                    packages=_str_list(s.get("packages"), MAX_NAME),
                )
            )
        sdks = tuple(out)
    sha = n.get("apk_sha256")
    size = n.get("apk_size")
    return Release(
        version_code=n.req("version_code").integer(),
        version_name=_opt_str(n, "version_name"),
        apk_sha256=normalize_sha256(sha.string(MAX_NAME), sha.path) if sha is not None else None,
        apk_size=size.integer() if size is not None else None,
        signers=_sha256_list(n.get("signers")),
        min_sdk=_opt_sdk(n, "min_sdk"),
        target_sdk=_opt_sdk(n, "target_sdk"),
        max_sdk=_opt_sdk(n, "max_sdk"),
        permissions=tuple(perms),
        features=_str_list(n.get("features"), MAX_NAME),
        sdks=sdks,
        native_code=_str_list(n.get("native_code"), MAX_NAME),
        channels=_str_list(n.get("channels"), MAX_NAME),
        anti_features=_str_list(n.get("anti_features"), MAX_NAME),
    )


def _opt_str(n: Node, key: str) -> str | None:
    v = n.get(key)
    return None if v is None else v.string(MAX_TEXT)


def _opt_sdk(n: Node, key: str) -> int | None:
    v = n.get(key)
    return None if v is None else v.integer(0, 10_000)


def _str_list(n: Node | None, max_len: int) -> tuple[str, ...]:
    return () if n is None else tuple(x.string(max_len) for x in n.array(MAX_ITEMS))


def _sha256_list(n: Node | None) -> tuple[str, ...]:
    if n is None:
        return ()
    return tuple(normalize_sha256(x.string(MAX_NAME), x.path) for x in n.array(MAX_ITEMS))


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}
