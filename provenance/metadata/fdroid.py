"""F-Droid repository indexes (``index-v2.json`` with ``entry.json``; ``index-v1.json``)
→ :class:`~provenance.metadata.listing.Catalog`.

F-Droid publishes, per APK file, the SHA-256 of the file, the signer certificate's
SHA-256 (``manifest.signer.sha256`` in v2, ``signer`` in v1), the version, SDK range,
permissions and features as ``fdroidserver`` read them from the APK. Per app, v2 adds
``metadata.preferredSigner``: the key the client follows for updates. That key is the
app's allowed signer on the channel; an indexed file signed by another key is still
listed as a release (with its own published signer) so the risk engine can say both
"this file is the one the repository published" and "but not with the app's key".
Index v1 has no preferred signer: the signer of the suggested version (else of the
newest file) stands in for it, as the F-Droid client does.

Only the fields a shelf check needs are read; everything else (descriptions,
screenshots, donation links) is skipped, but the fields that are read are checked
strictly. F-Droid publishes no list of third-party SDKs, so releases carry
``sdks=None``.
"""

from __future__ import annotations

import hashlib
from typing import Any

from provenance.metadata.errors import IndexSignatureError
from provenance.metadata.jsonin import Node
from provenance.metadata.listing import (
    MAX_ITEMS,
    MAX_LISTINGS,
    MAX_NAME,
    MAX_RELEASES,
    MAX_TEXT,
    Catalog,
    DeclaredPermission,
    Developer,
    Listing,
    Release,
    check_channel,
    check_package,
    normalize_sha256,
)

DEFAULT_CHANNEL = "fdroid"
INDEX_V2_NAME = "/index-v2.json"
_PREFERRED_LOCALES = ("en-US", "en", "en-GB")


def platform_id(address: str | None) -> str:
    """The platform name used in listings: ``fdroid:<repo address>``."""
    return f"fdroid:{address}" if address else "fdroid"


# -- entry.json --------------------------------------------------------------------------


def check_entry(entry: Any, index: bytes, source: str) -> None:
    """Check ``index-v2.json``'s bytes against ``entry.json``'s ``index`` record.

    ``entry.json`` is the signed part (inside ``entry.jar``); it vouches for the
    index only through this SHA-256 and size, so a mismatch means the index is not
    the one the repository signed.
    """
    root = Node(entry, source).obj()
    version = root.req("version").integer()
    if version < 20001:
        root.fail(f"entry.json version {version} is not an index-v2 entry")
    rec = root.req("index").obj()
    name = rec.req("name").string(MAX_NAME)
    if name != INDEX_V2_NAME:
        rec.fail(f"names {name!r}, expected {INDEX_V2_NAME!r}")
    want = normalize_sha256(rec.req("sha256").string(MAX_NAME), f"{rec.path}.sha256")
    size = rec.req("size").integer()
    if len(index) != size:
        raise IndexSignatureError(
            f"{source}: index-v2.json is {len(index)} bytes, entry.json says {size}"
        )
    got = hashlib.sha256(index).hexdigest()
    if got != want:
        raise IndexSignatureError(
            f"{source}: index-v2.json SHA-256 {got} does not match entry.json's {want}"
        )


def entry_num_packages(entry: Any, source: str) -> int | None:
    """``entry.index.numPackages`` when given (cross-checked against the index)."""
    rec = Node(entry, source).obj().req("index").obj()
    n = rec.get("numPackages")
    return None if n is None else n.integer()


# -- index-v2.json -----------------------------------------------------------------------


def catalog_from_index_v2(
    doc: Any,
    source: str,
    *,
    channel: str = DEFAULT_CHANNEL,
    authenticated_by: str | None = None,
    num_packages: int | None = None,
) -> Catalog:
    """Listings from a parsed ``index-v2.json`` document."""
    check_channel(channel, "channel")
    root = Node(doc, source).obj()
    repo = root.req("repo").obj()
    address = _opt(repo, "address")
    platform = platform_id(address)
    packages = root.req("packages")
    listings = []
    for package, pnode in packages.items(MAX_LISTINGS):
        listings.append(_v2_listing(package, pnode, platform, channel))
    if num_packages is not None and num_packages != len(listings):
        packages.fail(f"{len(listings)} packages, entry.json says {num_packages}")
    return Catalog(tuple(listings), source, authenticated_by)


def _v2_listing(package: str, n: Node, platform: str, channel: str) -> Listing:
    check_package(package, n.path)
    n.obj()
    meta = n.get("metadata")
    names: dict[str, str] = {}
    developer = Developer()
    preferred: str | None = None
    if meta is not None:
        meta.obj()
        if (nn := meta.get("name")) is not None:
            names = _localized(nn)
        developer = Developer(name=_opt(meta, "authorName"), website=_opt(meta, "authorWebSite"))
        if (ps := meta.get("preferredSigner")) is not None:
            preferred = normalize_sha256(ps.string(MAX_NAME), ps.path)
    releases = []
    if (vn := n.get("versions")) is not None:
        for key, v in vn.items(MAX_RELEASES):
            releases.append(_v2_release(key, v))
    releases.sort(key=lambda r: -r.version_code)
    return Listing(
        platform=platform,
        package=package,
        app_name=_pick_locale(names),
        names=names,
        developer=developer,
        signers=_allowed(channel, preferred, releases),
        releases=tuple(releases),
    )


def _v2_release(key: str, n: Node) -> Release:
    n.obj()
    f = n.req("file").obj()
    sha = normalize_sha256(f.req("sha256").string(MAX_NAME), f"{f.path}.sha256")
    if normalize_sha256(key, n.path) != sha:
        n.fail(f"version key {key} differs from file.sha256 {sha}")
    size = f.get("size")
    m = n.req("manifest").obj()
    sdk = m.get("usesSdk")
    signers: tuple[str, ...] = ()
    if (sn := m.get("signer")) is not None:
        signers = tuple(
            normalize_sha256(x.string(MAX_NAME), x.path) for x in sn.obj().req("sha256").array(16)
        )
    perms = [_v2_permission(p, None) for p in _array(m.get("usesPermission"))]
    perms += [_v2_permission(p, 23) for p in _array(m.get("usesPermissionSdk23"))]
    features = tuple(x.obj().req("name").string(MAX_NAME) for x in _array(m.get("features")))
    anti: tuple[str, ...] = ()
    if (an := n.get("antiFeatures")) is not None:
        anti = tuple(k for k, _ in an.items(MAX_ITEMS))
    return Release(
        version_code=m.req("versionCode").integer(),
        version_name=_opt(m, "versionName"),
        apk_sha256=sha,
        apk_size=size.integer() if size is not None else None,
        signers=signers,
        min_sdk=_opt_int(sdk, "minSdkVersion") if sdk is not None else None,
        target_sdk=_opt_int(sdk, "targetSdkVersion") if sdk is not None else None,
        max_sdk=_opt_int(m, "maxSdkVersion"),
        permissions=tuple(perms),
        features=features,
        sdks=None,
        native_code=tuple(x.string(MAX_NAME) for x in _array(m.get("nativecode"))),
        channels=tuple(x.string(MAX_NAME) for x in _array(n.get("releaseChannels"))),
        anti_features=anti,
    )


def _v2_permission(n: Node, min_sdk: int | None) -> DeclaredPermission:
    n.obj()
    return DeclaredPermission(
        name=n.req("name").string(MAX_NAME), max_sdk=_opt_int(n, "maxSdkVersion"), min_sdk=min_sdk
    )


# -- index-v1.json -----------------------------------------------------------------------


def catalog_from_index_v1(
    doc: Any,
    source: str,
    *,
    channel: str = DEFAULT_CHANNEL,
    authenticated_by: str | None = None,
) -> Catalog:
    """Listings from a parsed ``index-v1.json`` document."""
    check_channel(channel, "channel")
    root = Node(doc, source).obj()
    repo = root.req("repo").obj()
    platform = platform_id(_opt(repo, "address"))
    apps: dict[str, Node] = {}
    for a in _array(root.get("apps"), MAX_LISTINGS):
        a.obj()
        pkg = check_package(a.req("packageName").string(MAX_NAME), f"{a.path}.packageName")
        if pkg in apps:
            a.fail(f"package {pkg} listed twice")
        apps[pkg] = a
    files: dict[str, list[Node]] = {}
    if (pn := root.get("packages")) is not None:
        for pkg, arr in pn.items(MAX_LISTINGS):
            check_package(pkg, pn.path)
            files[pkg] = arr.array(MAX_RELEASES)
    listings = []
    for pkg in list(apps) + [p for p in files if p not in apps]:
        listings.append(_v1_listing(pkg, apps.get(pkg), files.get(pkg, []), platform, channel))
    return Catalog(tuple(listings), source, authenticated_by)


def _v1_listing(
    package: str, app: Node | None, files: list[Node], platform: str, channel: str
) -> Listing:
    names: dict[str, str] = {}
    developer = Developer()
    suggested: int | None = None
    if app is not None:
        if (ln := app.get("localized")) is not None:
            for locale, entry in ln.items(MAX_ITEMS):
                if (nm := entry.obj().get("name")) is not None:
                    names[locale] = nm.string(MAX_TEXT)
        top = _opt(app, "name")
        developer = Developer(name=_opt(app, "authorName"), website=_opt(app, "authorWebSite"))
        if (sv := app.get("suggestedVersionCode")) is not None:
            suggested = sv.integer(decimal_string=True)
    else:
        top = None
    releases = [_v1_release(package, f) for f in files]
    preferred = None
    candidates = [r for r in releases if r.signers]
    picked = [r for r in candidates if r.version_code == suggested] or candidates
    if picked:
        preferred = picked[0].signers[0]
    return Listing(
        platform=platform,
        package=package,
        app_name=top or _pick_locale(names),
        names=names,
        developer=developer,
        signers=_allowed(channel, preferred, releases),
        releases=tuple(releases),
    )


def _v1_release(package: str, n: Node) -> Release:
    n.obj()
    pkg = n.req("packageName").string(MAX_NAME)
    if pkg != package:
        n.fail(f"packageName {pkg!r} listed under {package!r}")
    sha = None
    if (h := n.get("hash")) is not None:
        hash_type = _opt(n, "hashType") or "sha256"
        if hash_type != "sha256":
            n.fail(f"hashType {hash_type!r} is not supported (only sha256)")
        sha = normalize_sha256(h.string(MAX_NAME), h.path)
    signer = n.get("signer")
    perms = [_v1_permission(p, None) for p in _array(n.get("uses-permission"))]
    perms += [_v1_permission(p, 23) for p in _array(n.get("uses-permission-sdk-23"))]
    size = n.get("size")
    return Release(
        version_code=n.req("versionCode").integer(decimal_string=True),
        version_name=_opt(n, "versionName"),
        apk_sha256=sha,
        apk_size=size.integer() if size is not None else None,
        signers=(normalize_sha256(signer.string(MAX_NAME), signer.path),) if signer else (),
        min_sdk=_opt_int(n, "minSdkVersion"),
        target_sdk=_opt_int(n, "targetSdkVersion"),
        max_sdk=_opt_int(n, "maxSdkVersion"),
        permissions=tuple(perms),
        features=tuple(x.string(MAX_NAME) for x in _array(n.get("features"))),
        sdks=None,
        native_code=tuple(x.string(MAX_NAME) for x in _array(n.get("nativecode"))),
        anti_features=tuple(x.string(MAX_NAME) for x in _array(n.get("antiFeatures"))),
    )


def _v1_permission(n: Node, min_sdk: int | None) -> DeclaredPermission:
    pair = n.array(2)
    if not pair:
        n.fail("empty permission entry")
    max_sdk = None
    if len(pair) == 2 and pair[1].value is not None:
        max_sdk = pair[1].integer(0, 10_000, decimal_string=True)
    return DeclaredPermission(name=pair[0].string(MAX_NAME), max_sdk=max_sdk, min_sdk=min_sdk)


# -- shared helpers ----------------------------------------------------------------------


def _allowed(
    channel: str, preferred: str | None, releases: list[Release]
) -> dict[str, tuple[str, ...]]:
    """The app's allowed signers: the preferred one, else every published one."""
    if preferred is not None:
        return {channel: (preferred,)}
    seen = tuple(dict.fromkeys(s for r in releases for s in r.signers))
    return {channel: seen} if seen else {}


def _localized(n: Node) -> dict[str, str]:
    if isinstance(n.value, str):
        return {"": n.string(MAX_TEXT)}
    return {k: v.string(MAX_TEXT) for k, v in n.items(MAX_ITEMS)}


def _pick_locale(names: dict[str, str]) -> str | None:
    for loc in _PREFERRED_LOCALES:
        if names.get(loc):
            return names[loc]
    for loc in sorted(names):
        if names[loc]:
            return names[loc]
    return None


def _array(n: Node | None, limit: int = MAX_ITEMS) -> list[Node]:
    return [] if n is None else n.array(limit)


def _opt(n: Node, key: str) -> str | None:
    v = n.get(key)
    return None if v is None else v.string(MAX_TEXT)


def _opt_int(n: Node, key: str) -> int | None:
    v = n.get(key)
    return None if v is None else v.integer(0, 10_000, decimal_string=True)
