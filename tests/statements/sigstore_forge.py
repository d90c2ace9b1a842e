"""A private Sigstore deployment in a few functions, for offline verification tests.

Builds what a trusted root names -- a Fulcio-like CA, a CT log key and a Rekor v1 log
key (all ECDSA P-256) -- and bundles a real verifier accepts against it: a Fulcio-style
leaf certificate (SAN, OIDC issuer extension, code-signing EKU, an embedded SCT over
the precertificate), a DSSE envelope over an in-toto SLSA statement signed by the
leaf key, and a ``dsse/0.0.1`` Rekor entry with a signed entry timestamp (SET), an
inclusion proof and an ECDSA-signed checkpoint. Everything is deterministic except
the ECDSA nonces; nothing talks to a network.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from provenance.log.merkle import leaf_hash, node_hash
from provenance.statements.canonical import canonical_json
from provenance.statements.dsse import pae

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SIGNED_AT = T0 + timedelta(days=30)
ISSUER = "https://issuer.build.test"
IDENTITY = "https://ci.build.test/acme/app/.github/workflows/release.yml@refs/heads/main"
_OID_ISSUER = ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
_OID_SCT = ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _spki(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _sign(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    return key.sign(data, ec.ECDSA(hashes.SHA256()))


def _octet_string(data: bytes) -> bytes:
    n = len(data)
    if n < 0x80:
        return b"\x04" + bytes([n]) + data
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return b"\x04" + bytes([0x80 | len(body)]) + body + data


@dataclass
class PrivateSigstore:
    """Keys of a private Sigstore instance and the trusted root that names them."""

    ca_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    ct_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    rekor_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )

    def __post_init__(self) -> None:
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "apk-provenance tests"),
                x509.NameAttribute(NameOID.COMMON_NAME, "private-fulcio"),
            ]
        )
        ca_pub = self.ca_key.public_key()
        self.ca_cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(ca_pub)
            .serial_number(1)
            .not_valid_before(T0 - timedelta(days=365))
            .not_valid_after(T0 + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_pub), critical=False)
            .sign(self.ca_key, hashes.SHA256())
        )
        self.rekor_log_id = hashlib.sha256(_spki(self.rekor_key)).digest()
        self.ct_log_id = hashlib.sha256(_spki(self.ct_key)).digest()

    # ------------------------------------------------------------- trusted root

    def trusted_root(self) -> dict[str, Any]:
        """``trusted_root.json`` (media type v0.1) naming this instance's keys."""

        def tlog(url: str, key: ec.EllipticCurvePrivateKey, log_id: bytes) -> dict[str, Any]:
            return {
                "baseUrl": url,
                "hashAlgorithm": "SHA2_256",
                "publicKey": {
                    "rawBytes": _b64(_spki(key)),
                    "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                    "validFor": {"start": "2025-01-01T00:00:00Z"},
                },
                "logId": {"keyId": _b64(log_id)},
            }

        return {
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [tlog("https://rekor.private.test", self.rekor_key, self.rekor_log_id)],
            "certificateAuthorities": [
                {
                    "subject": {"organization": "apk-provenance tests", "commonName": "fulcio"},
                    "uri": "https://fulcio.private.test",
                    "certChain": {
                        "certificates": [
                            {
                                "rawBytes": _b64(
                                    self.ca_cert.public_bytes(serialization.Encoding.DER)
                                )
                            }
                        ]
                    },
                    "validFor": {"start": "2025-01-01T00:00:00Z"},
                }
            ],
            "ctlogs": [tlog("https://ct.private.test", self.ct_key, self.ct_log_id)],
            "timestampAuthorities": [],
        }

    # ------------------------------------------------------------- certificates

    def leaf(
        self, key: ec.EllipticCurvePrivateKey, identity: str = IDENTITY, issuer: str = ISSUER
    ) -> x509.Certificate:
        """A Fulcio-style code-signing certificate with an embedded precertificate SCT."""
        ca_pub = self.ca_key.public_key()
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(self.ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(0x5EED)
            .not_valid_before(SIGNED_AT - timedelta(minutes=1))
            .not_valid_after(SIGNED_AT + timedelta(minutes=10))
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), False)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_pub), critical=False
            )
            .add_extension(
                x509.SubjectAlternativeName([x509.UniformResourceIdentifier(identity)]),
                critical=True,
            )
            .add_extension(x509.UnrecognizedExtension(_OID_ISSUER, issuer.encode()), False)
        )
        precert = builder.sign(self.ca_key, hashes.SHA256())
        sct = self._sct(precert.tbs_certificate_bytes)
        sct_list = struct.pack("!H", len(sct) + 2) + struct.pack("!H", len(sct)) + sct
        ext = x509.UnrecognizedExtension(_OID_SCT, _octet_string(sct_list))
        cert = builder.add_extension(ext, critical=False).sign(self.ca_key, hashes.SHA256())
        assert cert.tbs_precertificate_bytes == precert.tbs_certificate_bytes
        return cert

    def _sct(self, tbs: bytes) -> bytes:
        """RFC 6962 SCT (v1, precert entry) by the CT key over ``tbs``."""
        timestamp = int((SIGNED_AT - timedelta(seconds=30)).timestamp() * 1000)
        issuer_key_hash = hashlib.sha256(
            self.ca_key.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        ).digest()
        signed = (
            struct.pack("!BBQH", 0, 0, timestamp, 1)
            + issuer_key_hash
            + len(tbs).to_bytes(3, "big")
            + tbs
            + struct.pack("!H", 0)
        )
        sig = _sign(self.ct_key, signed)
        return (
            b"\x00"
            + self.ct_log_id
            + struct.pack("!QH", timestamp, 0)
            + bytes([4, 3])
            + struct.pack("!H", len(sig))
            + sig
        )

    # ------------------------------------------------------------------ bundles

    def dsse_bundle(
        self,
        subject_sha256: str,
        *,
        identity: str = IDENTITY,
        issuer: str = ISSUER,
        predicate_type: str = "https://slsa.dev/provenance/v1",
        tamper_payload: bool = False,
    ) -> dict[str, Any]:
        """A v0.3 bundle: DSSE SLSA statement about ``subject_sha256``, logged in Rekor v1."""
        key = ec.generate_private_key(ec.SECP256R1())
        cert = self.leaf(key, identity, issuer)
        statement = {
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": "app-release.apk", "digest": {"sha256": subject_sha256}}],
            "predicateType": predicate_type,
            "predicate": {
                "buildDefinition": {
                    "buildType": "https://ci.build.test/gradle/v1",
                    "externalParameters": {"task": "assembleRelease"},
                },
                "runDetails": {"builder": {"id": "https://ci.build.test/runner"}},
            },
        }
        payload = canonical_json(statement)
        payload_type = "application/vnd.in-toto+json"
        sig = _sign(key, pae(payload_type, payload))
        envelope = {
            "payload": _b64(payload),
            "payloadType": payload_type,
            "signatures": [{"sig": _b64(sig), "keyid": ""}],
        }
        envelope_bytes = canonical_json(envelope)
        pem = cert.public_bytes(serialization.Encoding.PEM)
        body = canonical_json(
            {
                "apiVersion": "0.0.1",
                "kind": "dsse",
                "spec": {
                    "envelopeHash": {
                        "algorithm": "sha256",
                        "value": hashlib.sha256(envelope_bytes).hexdigest(),
                    },
                    "payloadHash": {
                        "algorithm": "sha256",
                        "value": hashlib.sha256(payload).hexdigest(),
                    },
                    "signatures": [{"signature": _b64(sig), "verifier": _b64(pem)}],
                },
            }
        )
        if tamper_payload:
            payload = payload.replace(b"assembleRelease", b"assembleDebug!!")
            envelope["payload"] = _b64(payload)
        entry = self._tlog_entry(body, "dsse")
        return {
            "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "verificationMaterial": {
                "certificate": {"rawBytes": _b64(cert.public_bytes(serialization.Encoding.DER))},
                "tlogEntries": [entry],
            },
            "dsseEnvelope": envelope,
        }

    def _tlog_entry(self, body: bytes, kind: str) -> dict[str, Any]:
        """Rekor v1 entry at index 1 of 3: SET, inclusion proof, signed checkpoint."""
        index, size = 1, 3
        integrated = int(SIGNED_AT.timestamp())
        leaves = [leaf_hash(b"earlier entry"), leaf_hash(body), leaf_hash(b"later entry")]
        root = node_hash(node_hash(leaves[0], leaves[1]), leaves[2])
        proof = [leaves[0], leaves[2]]
        set_payload = canonical_json(
            {
                "body": _b64(body),
                "integratedTime": integrated,
                "logID": self.rekor_log_id.hex(),
                "logIndex": index,
            }
        )
        origin = "rekor.private.test - 1"
        note = f"{origin}\n{size}\n{_b64(root)}\n"
        note_sig = self.rekor_log_id[:4] + _sign(self.rekor_key, note.encode())
        checkpoint = f"{note}\n\u2014 rekor.private.test {_b64(note_sig)}\n"
        return {
            "logIndex": str(index),
            "logId": {"keyId": _b64(self.rekor_log_id)},
            "kindVersion": {"kind": kind, "version": "0.0.1"},
            "integratedTime": str(integrated),
            "inclusionPromise": {"signedEntryTimestamp": _b64(_sign(self.rekor_key, set_payload))},
            "inclusionProof": {
                "logIndex": str(index),
                "rootHash": _b64(root),
                "treeSize": str(size),
                "hashes": [_b64(h) for h in proof],
                "checkpoint": {"envelope": checkpoint},
            },
            "canonicalizedBody": _b64(body),
        }
