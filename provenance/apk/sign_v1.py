"""JAR signing (APK signature scheme v1) as apksig's ``V1SchemeSigner`` writes it.

Output must match the reference byte for byte, so the writers follow
``ManifestWriter`` / ``SignatureFileWriter`` (CRLF lines split at 70 bytes, main
attributes sorted by name after the version attribute, an extra CRLF when a
``.SF`` is a multiple of 1024 bytes) and the PKCS#7 block is DER-encoded the way
``ApkSigningBlockUtils.generatePkcs7DerEncodedMessage`` encodes it (certificates
sorted as a DER SET OF, no signed attributes).

The main section of an existing ``META-INF/MANIFEST.MF`` is carried over; it is
read with the rules of ``java.util.jar.Manifest`` (512-byte lines, continuation
lines, valid attribute names), since that is what the reference uses there.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from provenance.apk import certs, der
from provenance.apk.sign_block import SignerKey, UnsupportedKeyError
from provenance.errors import ApkFormatError, DerError, InputError, SignatureError

MANIFEST_ENTRY = "META-INF/MANIFEST.MF"
DEFAULT_CREATED_BY = "1.0 (Android)"
MAX_SIGNERS = 10
_LINE = 70
_CRLF = b"\r\n"

OID_DATA = "1.2.840.113549.1.7.1"
OID_SIGNED_DATA = "1.2.840.113549.1.7.2"
OID_SHA1 = "1.3.14.3.2.26"
OID_SHA256 = "2.16.840.1.101.3.4.2.1"
OID_RSA = "1.2.840.113549.1.1.1"
OID_DSA = "1.2.840.10040.4.1"
OID_SHA256_WITH_DSA = "2.16.840.1.101.3.4.3.2"
OID_EC_PUBLIC_KEY = "1.2.840.10045.2.1"
_DER_NULL = b"\x05\x00"
_NEWLINE = re.compile(b"[\r\n]")


# -- which entries, which names, which digest -------------------------------------------


def is_digest_needed(name: str) -> bool:
    """Whether a JAR entry must be listed in MANIFEST.MF (JAR spec, as apksig reads it)."""
    if name.endswith("/"):
        return False
    if not name.startswith("META-INF/"):
        return True
    if "/" in name[len("META-INF/") :]:
        return True
    base = name[len("META-INF/") :].lower()
    return not (
        base == "manifest.mf"
        or base.endswith((".sf", ".rsa", ".dsa", ".ec"))
        or base.startswith("sig-")
    )


def safe_signer_name(name: str) -> str:
    """At most 8 characters of A-Z, 0-9, '-' and '_' (others become '_')."""
    if not name:
        raise InputError("Empty v1 signer name")
    out = []
    for c in name.upper()[:8]:
        out.append(c if ("A" <= c <= "Z" or "0" <= c <= "9" or c in "-_") else "_")
    return "".join(out)


def signature_digest(key_type: str, min_sdk: int) -> str:
    """'sha1' or 'sha256': the strongest digest every targeted platform accepts."""
    if key_type == "RSA":
        return "sha1" if min_sdk < 18 else "sha256"
    if key_type == "DSA":
        return "sha1" if min_sdk < 21 else "sha256"
    if key_type == "EC":
        if min_sdk < 18:
            raise UnsupportedKeyError(
                "ECDSA signatures only supported for minSdkVersion 18 and higher"
            )
        return "sha256"
    raise UnsupportedKeyError(f"Unsupported key algorithm: {key_type}")


def block_extension(key_type: str) -> str:
    """Signature block file extension: the key algorithm, upper-case."""
    return key_type.upper()


def output_entry_names(signers: Sequence[tuple[str, str]]) -> set[str]:
    """Entries the v1 signature consists of, for (safe name, key type) signers."""
    out = {MANIFEST_ENTRY}
    for name, key_type in signers:
        out.add(f"META-INF/{name}.SF")
        out.add(f"META-INF/{name}.{block_extension(key_type)}")
    return out


# -- java.util.jar.Manifest, main section ------------------------------------------------


class _FastInput:
    """``java.util.jar.Manifest.FastInputStream`` over bytes (8 KiB fills, 512-byte lines)."""

    BUF = 8192

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.count = 0  # end of the current fill, absolute

    def _fill(self) -> None:
        self.count = min(len(self.data), self.pos + self.BUF)

    def read_line(self, limit: int = 512) -> bytes | None:
        """Up to ``limit`` bytes through the first CR, LF or CRLF (a CRLF split by the end
        of the limit or of a buffer fill stays split, as in Java)."""
        out = b""
        while len(out) < limit:
            if self.pos >= self.count:
                self._fill()
                if self.pos >= self.count:
                    return out or None
            maxpos = min(self.count, self.pos + limit - len(out))
            m = _NEWLINE.search(self.data, self.pos, maxpos)
            if m is None:
                out += self.data[self.pos : maxpos]
                self.pos = maxpos
                continue
            tpos = m.end()
            if self.data[tpos - 1] == 0x0D and tpos < maxpos and self.data[tpos] == 0x0A:
                tpos += 1
            out += self.data[self.pos : tpos]
            self.pos = tpos
            break
        return out

    def peek(self) -> int:
        if self.pos >= self.count:
            self._fill()
            if self.pos >= self.count:
                return -1
        return self.data[self.pos]


def _valid_name(name: str) -> bool:
    return 0 < len(name) <= 70 and all(c.isascii() and (c.isalnum() or c in "-_") for c in name)


def _read_attributes(f: _FastInput, attrs: dict[str, tuple[str, str]] | None) -> None:
    """``Attributes.read``: one section, up to an empty line or the end."""
    name: str | None = None
    last: bytes | None = None
    while (line := f.read_line()) is not None:
        n = len(line) - 1
        if line[n] not in (0x0A, 0x0D):
            raise ApkFormatError("Malformed source META-INF/MANIFEST.MF: line too long")
        if n > 0 and line[n - 1] == 0x0D:
            n -= 1
        if n == 0:
            return
        if line[0] == 0x20:
            if name is None or last is None:
                raise ApkFormatError(
                    "Malformed source META-INF/MANIFEST.MF: misplaced continuation line"
                )
            buf = last + line[1:n]
            if f.peek() == 0x20:
                last = buf
                continue
            value = buf.decode("utf-8", "replace")
            last = None
        else:
            i = line.find(b":", 0, n)
            if i < 0 or i + 1 >= len(line) or line[i + 1] != 0x20:
                raise ApkFormatError("Malformed source META-INF/MANIFEST.MF: invalid header field")
            name = line[:i].decode("utf-8", "replace")
            if f.peek() == 0x20:
                last = line[i + 2 : n]
                continue
            value = line[i + 2 : n].decode("utf-8", "replace")
        if not _valid_name(name):
            raise ApkFormatError(
                f"Malformed source META-INF/MANIFEST.MF: invalid header field name: {name}"
            )
        if attrs is not None:
            key = name.lower()
            if key in attrs:
                attrs[key] = (attrs[key][0], value)  # keeps the first spelling and position
            else:
                attrs[key] = (name, value)


def manifest_main_attributes(data: bytes) -> list[tuple[str, str]]:
    """Main attributes of a manifest, in order, parsed (and checked) as Java does."""
    f = _FastInput(data)
    main: dict[str, tuple[str, str]] = {}
    _read_attributes(f, main)
    skip_empty = True
    while (line := f.read_line()) is not None:
        n = len(line) - 1
        if line[n] not in (0x0A, 0x0D):
            raise ApkFormatError("Malformed source META-INF/MANIFEST.MF: manifest line too long")
        if n > 0 and line[n - 1] == 0x0D:
            n -= 1
        if n == 0 and skip_empty:
            continue
        if n < 6 or line[:5].lower() != b"name:" or line[5] != 0x20:
            raise ApkFormatError("Malformed source META-INF/MANIFEST.MF: invalid manifest format")
        while f.peek() == 0x20:  # wrapped name
            cont = f.read_line()
            if cont is None:
                break
        _read_attributes(f, None)
        skip_empty = True
    return list(main.values())


# -- MANIFEST.MF and .SF writers ----------------------------------------------------------


def _write_line(out: bytearray, text: str) -> None:
    raw = text.encode("utf-8")
    first = True
    pos = 0
    while pos < len(raw):
        if first:
            n = min(len(raw) - pos, _LINE)
        else:
            out += b"\r\n "
            n = min(len(raw) - pos, _LINE - 1)
        out += raw[pos : pos + n]
        pos += n
        first = False
    out += _CRLF


def _java_key(s: str) -> bytes:
    """Sort key giving Java ``String.compareTo`` order (UTF-16 code units)."""
    return s.encode("utf-16-be", "surrogatepass")


def _write_main(out: bytearray, version_name: str, attrs: Sequence[tuple[str, str]]) -> None:
    version = next((v for k, v in attrs if k.lower() == version_name.lower()), None)
    if version is None:
        raise ApkFormatError(f"Mandatory {version_name} attribute missing")
    _write_line(out, f"{version_name}: {version}")
    rest = {k: v for k, v in attrs}
    rest.pop(version_name, None)
    for k in sorted(rest, key=_java_key):
        _write_line(out, f"{k}: {rest[k]}")
    out += _CRLF


def _digest_attr(alg: str) -> str:
    return {"sha1": "SHA1-Digest", "sha256": "SHA-256-Digest"}[alg]


@dataclass(frozen=True)
class Manifest:
    """A generated MANIFEST.MF with its per-entry sections (for the .SF digests)."""

    contents: bytes
    sections: dict[str, bytes]


def check_entry_name(name: str) -> None:
    """CR, LF and NUL cannot be written into MANIFEST.MF or .SF lines."""
    for c in name:
        if c in "\r\n\0":
            raise ApkFormatError(f'Unsupported character 0x{ord(c):02x} in ZIP entry name "{name}"')


def manifest_file(
    digest_alg: str, entry_digests: Mapping[str, bytes], source: bytes | None
) -> Manifest:
    """MANIFEST.MF: the source's main section (or just the version), then one section per
    entry, sorted by name."""
    attrs = (
        manifest_main_attributes(source) if source is not None else [("Manifest-Version", "1.0")]
    )
    out = bytearray()
    _write_main(out, "Manifest-Version", attrs)
    sections: dict[str, bytes] = {}
    attr = _digest_attr(digest_alg)
    for name in sorted(entry_digests, key=_java_key):
        check_entry_name(name)
        sec = bytearray()
        _write_line(sec, f"Name: {name}")
        _write_line(sec, f"{attr}: {base64.b64encode(entry_digests[name]).decode()}")
        sec += _CRLF
        sections[name] = bytes(sec)
        out += sec
    return Manifest(bytes(out), sections)


def signature_file(
    scheme_ids: Sequence[int], digest_alg: str, created_by: str, manifest: Manifest
) -> bytes:
    """The .SF file: digests of the whole manifest and of each of its sections."""
    attrs = [("Signature-Version", "1.0"), ("Created-By", created_by)]
    if scheme_ids:
        attrs.append(("X-Android-APK-Signed", ", ".join(str(i) for i in scheme_ids)))
    h = getattr(hashlib, digest_alg)
    attrs.append(
        (
            f"{_digest_attr(digest_alg)}-Manifest",
            base64.b64encode(h(manifest.contents).digest()).decode(),
        )
    )
    out = bytearray()
    _write_main(out, "Signature-Version", attrs)
    attr = _digest_attr(digest_alg)
    for name in sorted(manifest.sections, key=_java_key):
        _write_line(out, f"Name: {name}")
        _write_line(
            out, f"{attr}: {base64.b64encode(h(manifest.sections[name]).digest()).decode()}"
        )
        out += _CRLF
    if out and len(out) % 1024 == 0:
        # Android up to 1.6 fails on .SF files whose size is a multiple of 1024.
        out += _CRLF
    return bytes(out)


# -- PKCS#7 SignedData --------------------------------------------------------------------


def _oid(dotted: str) -> bytes:
    arcs = [int(a) for a in dotted.split(".")]
    body = bytearray()
    for arc in [arcs[0] * 40 + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body += bytes(reversed(chunk))
    return der.encode_tlv(b"\x06", bytes(body))


def _int(value: int) -> bytes:
    n = (value.bit_length() + 8) // 8 if value >= 0 else ((-value - 1).bit_length() + 8) // 8
    return der.encode_tlv(b"\x02", value.to_bytes(max(n, 1), "big", signed=True))


def _seq(*parts: bytes) -> bytes:
    return der.encode_tlv(b"\x30", b"".join(parts))


def _set_of(items: Sequence[bytes], tag: bytes = b"\x31") -> bytes:
    ordered = sorted(items) if len(items) > 1 else list(items)
    return der.encode_tlv(tag, b"".join(ordered))


def _alg_id(oid: str) -> bytes:
    return _seq(_oid(oid), _DER_NULL)


def _issuer_and_serial(cert: certs.Certificate) -> bytes:
    try:
        tbs = der.parse(cert.encoded, allow_trailing=True).children()[0].children()
        i = 1 if tbs[0].is_(0, der.CLASS_CONTEXT) else 0
        serial = der.read_integer(tbs[i])
        issuer = tbs[i + 2].encoded
    except (DerError, IndexError) as e:
        raise InputError(f"Malformed signer certificate: {e}") from None
    return _seq(issuer, _int(serial))


def _sig_alg_oid(key_type: str, digest_alg: str) -> str:
    if key_type == "RSA":
        return OID_RSA
    if key_type == "DSA":
        return OID_DSA if digest_alg == "sha1" else OID_SHA256_WITH_DSA
    if key_type == "EC":
        return OID_EC_PUBLIC_KEY
    raise UnsupportedKeyError(f"Unsupported key algorithm: {key_type}")


def signature_block(
    key: SignerKey, chain: Sequence[certs.Certificate], digest_alg: str, sf: bytes
) -> bytes:
    """PKCS#7 SignedData (detached) over the .SF bytes, as apksig encodes it."""
    cert = chain[0]
    key_type = cert.key_algorithm
    sig = key.sign(sf, digest_alg, "pkcs1" if key_type == "RSA" else "")
    try:
        ok = certs.verify(
            cert.public_key, key_type, digest_alg, "pkcs1" if key_type == "RSA" else "", sf, sig
        )
    except (certs.VerifyException, certs.PublicKeyError) as e:
        raise SignatureError(f"Failed to verify generated signature: {e}") from None
    if not ok:
        raise SignatureError(
            "Failed to verify generated v1 signature using public key from certificate "
            "(does the key match the certificate?)"
        )
    digest_id = _alg_id(OID_SHA1 if digest_alg == "sha1" else OID_SHA256)
    signer_info = _seq(
        _int(1),
        _issuer_and_serial(cert),
        digest_id,
        _alg_id(_sig_alg_oid(key_type, digest_alg)),
        der.encode_tlv(b"\x04", sig),
    )
    signed_data = _seq(
        _int(1),
        _set_of([digest_id]),
        _seq(_oid(OID_DATA)),
        _set_of([c.encoded for c in chain], b"\xa0"),
        _set_of([signer_info]),
    )
    return _seq(_oid(OID_SIGNED_DATA), der.encode_tlv(b"\xa0", signed_data))


@dataclass(frozen=True)
class V1Signer:
    """One v1 signer: safe name, key, chain and signature digest."""

    name: str
    key: SignerKey
    chain: list[certs.Certificate]
    digest_alg: str


def sign_v1(
    signers: Sequence[V1Signer],
    content_digest_alg: str,
    entry_digests: Mapping[str, bytes],
    scheme_ids: Sequence[int],
    source_manifest: bytes | None,
    created_by: str = DEFAULT_CREATED_BY,
) -> tuple[list[tuple[str, bytes]], Manifest]:
    """The v1 signature entries in output order: each signer's .SF and block, then the
    manifest."""
    if not signers:
        raise InputError("At least one signer config must be provided")
    if len(signers) > MAX_SIGNERS:
        raise InputError(
            f"APK Signature Scheme v1 only supports a maximum of {MAX_SIGNERS}, "
            f"{len(signers)} provided"
        )
    manifest = manifest_file(content_digest_alg, entry_digests, source_manifest)
    sf = signature_file(scheme_ids, content_digest_alg, created_by, manifest)
    out: list[tuple[str, bytes]] = []
    for s in signers:
        try:
            block = signature_block(s.key, s.chain, s.digest_alg, sf)
        except SignatureError as e:
            raise SignatureError(f'Failed to sign using signer "{s.name}": {e}') from None
        out.append((f"META-INF/{s.name}.SF", sf))
        out.append((f"META-INF/{s.name}.{block_extension(s.chain[0].key_algorithm)}", block))
    out.append((MANIFEST_ENTRY, manifest.contents))
    return out, manifest
