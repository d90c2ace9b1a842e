"""Key loading for ``apkprov sign``: password specs, key files, keystores, PKCS#11.

Keystores are made by the tools people use: the JDK's ``keytool`` (PKCS#12 by default,
``-storetype JKS``/``JCEKS`` for the legacy formats), ``openssl`` and ``cryptography``.
Every signature is verified with ``cryptography`` against the certificate; RSA
PKCS#1 v1.5 ones are also compared byte for byte with ``openssl pkeyutl`` and Java's
``Signature``, and deterministic DSA with BouncyCastle's ``SHA256withDetDSA``.
PKCS#11 runs against a SoftHSM2 token store created in a temporary directory.
"""

from __future__ import annotations

import datetime
import io
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pkcs11_util
import pytest
from corpus import apksig_dir, require
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from provenance.errors import InputError, KeystoreError
from provenance.keystore import (
    PasswordRetriever,
    Pkcs11Spec,
    SignerKey,
    SignerKeySpec,
    load_signer,
    parse_password_spec,
    parse_pkcs11_uri,
    parse_provider_arg,
    password_candidates,
)
from provenance.keystore.pkcs11 import ENV_MODULE, resolve_module

STORE_PW = "st0re-Password"  # the JDK refuses non-ASCII PKCS#12 passwords
KEY_PW = "k3y-password"
HASHES = ("md5", "sha1", "sha224", "sha256", "sha384", "sha512")
CORPUS_KEYS = (
    "rsa-1024",
    "rsa-2048",
    "rsa-3072",
    "rsa-4096",
    "ec-p256",
    "ec-p384",
    "ec-p521",
    "dsa-1024",
    "dsa-2048",
    "dsa-3072",
)
KEYTOOL = shutil.which("keytool")
OPENSSL = shutil.which("openssl")
JAVA = shutil.which("java")
BCPROV = next(
    (
        p
        for p in ("/usr/share/java/bcprov.jar", "/usr/share/java/bcprov-jdk18on.jar")
        if Path(p).exists()
    ),
    None,
)
needs_keytool = pytest.mark.skipif(KEYTOOL is None, reason="keytool (a JDK) not installed")
needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="openssl not installed")


# -- helpers ---------------------------------------------------------------------------


def corpus(name: str) -> Path:
    return require(apksig_dir() / name)


def key_spec(name: str) -> SignerKeySpec:
    return SignerKeySpec(key=str(corpus(f"{name}.pk8")), cert=str(corpus(f"{name}.x509.pem")))


def hash_obj(name: str) -> hashes.HashAlgorithm:
    algos: dict[str, type[hashes.HashAlgorithm]] = {
        "md5": hashes.MD5,
        "sha1": hashes.SHA1,
        "sha224": hashes.SHA224,
        "sha256": hashes.SHA256,
        "sha384": hashes.SHA384,
        "sha512": hashes.SHA512,
    }
    return algos[name]()


def verify(key: SignerKey, sig: bytes, data: bytes, hash_name: str, pad: str) -> None:
    """Check a signature against the signer certificate, as a verifier would."""
    pub = x509.load_der_x509_certificate(key.certificates[0]).public_key()
    algo = hash_obj(hash_name)
    if isinstance(pub, rsa.RSAPublicKey):
        p: padding.AsymmetricPadding = (
            padding.PSS(padding.MGF1(algo), algo.digest_size)
            if pad == "pss"
            else padding.PKCS1v15()
        )
        pub.verify(sig, data, p, algo)
    elif isinstance(pub, ec.EllipticCurvePublicKey):
        pub.verify(sig, data, ec.ECDSA(algo))
    else:
        assert isinstance(pub, dsa.DSAPublicKey)
        pub.verify(sig, data, algo)


def sign_all(key: SignerKey) -> None:
    """Every hash and padding the key type allows signs and verifies."""
    data = b"APK signed data \x00\x01" * 7
    for h in HASHES:
        pads = ("pkcs1", "pss") if key.key_type == "RSA" else ("",)
        for pad in pads:
            if pad == "pss" and h == "md5":
                continue
            if key.key_type == "RSA" and key.key_size <= 1024 and pad == "pss" and h == "sha512":
                continue  # 64-byte salt + 64-byte hash does not fit a 1024-bit modulus
            verify(key, key.sign(data, h, pad), data, h, pad)


def assert_clean(err: BaseException, *secrets: str) -> None:
    """A KeystoreError that carries no password."""
    assert isinstance(err, KeystoreError) and isinstance(err, InputError)
    assert err.exit_code == 2
    text = str(err) + repr(err) + repr(err.args)
    for s in (*secrets, STORE_PW, KEY_PW):
        assert s not in text, f"secret leaked into {text!r}"


def run(*args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(args, check=True, capture_output=True, input=input, timeout=300)


def make_cert(
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
    subject: str,
    issuer_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | None = None,
    issuer: str | None = None,
) -> x509.Certificate:
    now = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer or subject)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=3650))
        .sign(issuer_key or key, hashes.SHA256())
    )


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("keystore")


@pytest.fixture(scope="module")
def p12_from_openssl(work: Path) -> dict[str, Path]:
    """Single-key PKCS#12 files (OpenSSL defaults) for rsa-2048 and ec-p256."""
    if OPENSSL is None:
        pytest.skip("openssl not installed")
    out = {}
    for name, alias in (("rsa-2048", "release"), ("ec-p256", "second")):
        pem = work / f"{name}.key.pem"
        run(
            "openssl",
            "pkcs8",
            "-inform",
            "DER",
            "-in",
            str(corpus(f"{name}.pk8")),
            "-nocrypt",
            "-out",
            str(pem),
        )
        dest = work / f"{name}.openssl.p12"
        run(
            "openssl", "pkcs12", "-export", "-inkey", str(pem),
            "-in", str(corpus(f"{name}.x509.pem")), "-name", alias,
            "-passout", f"pass:{STORE_PW}", "-out", str(dest),
        )  # fmt: skip
        out[name] = dest
    return out


def keytool_import(
    src: Path, src_type: str, dest: Path, dest_type: str, *extra: str, dest_pass: str = STORE_PW
) -> None:
    assert KEYTOOL is not None
    run(
        KEYTOOL, "-importkeystore", "-noprompt", "-srckeystore", str(src),
        "-srcstoretype", src_type, "-srcstorepass", STORE_PW,
        "-destkeystore", str(dest), "-deststoretype", dest_type,
        "-deststorepass", dest_pass, *extra,
    )  # fmt: skip


@pytest.fixture(scope="module")
def jdk_stores(work: Path, p12_from_openssl: dict[str, Path]) -> dict[str, Path]:
    """Keystores written by keytool: PKCS#12 (one and two keys, a .jks name), JKS, JCEKS."""
    if KEYTOOL is None:
        pytest.skip("keytool (a JDK) not installed")
    out: dict[str, Path] = {}
    single = work / "release.jks"  # PKCS#12 inside, as JDK 9+ keytool writes it
    keytool_import(p12_from_openssl["rsa-2048"], "PKCS12", single, "PKCS12")
    out["p12-single-jks-name"] = single
    multi = work / "multi.p12"
    for src in p12_from_openssl.values():
        keytool_import(src, "PKCS12", multi, "PKCS12")
    out["p12-multi"] = multi
    for kind in ("JKS", "JCEKS"):
        dest = work / f"legacy.{kind.lower()}"
        for src in p12_from_openssl.values():
            keytool_import(src, "PKCS12", dest, kind)
        out[kind] = dest
        # One key protected by its own password (apksigner's --key-pass case).
        sep = work / f"separate-keypass.{kind.lower()}"
        keytool_import(
            p12_from_openssl["ec-p256"],
            "PKCS12",
            sep,
            kind,
            "-srcalias",
            "second",
            "-destkeypass",
            KEY_PW,
        )
        out[f"{kind}-keypass"] = sep
    return out


# -- password specs --------------------------------------------------------------------


def test_pass_and_env_specs(monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse_password_spec("pass:hunter2") == "hunter2"
    assert parse_password_spec("pass:") == ""
    assert parse_password_spec("pass:a:b") == "a:b"
    monkeypatch.setenv("APKPROV_TEST_PW", "from-env")
    assert parse_password_spec("env:APKPROV_TEST_PW") == "from-env"
    monkeypatch.delenv("APKPROV_TEST_PW")
    with pytest.raises(KeystoreError, match="APKPROV_TEST_PW is not set") as e:
        parse_password_spec("env:APKPROV_TEST_PW", "Keystore password for signer #1")
    assert "Keystore password for signer #1" in str(e.value)


def test_unknown_spec_never_echoed() -> None:
    for spec in ("hunter2", "pass;hunter2", "secret:hunter2", "fyle:hunter2"):
        with pytest.raises(KeystoreError) as e:
            parse_password_spec(spec)
        assert_clean(e.value, "hunter2", spec)


def test_file_spec_reads_successive_lines(tmp_path: Path) -> None:
    f = tmp_path / "pw.txt"
    f.write_bytes(b"first\r\nsecond\nthird\rstill-third\n\nsixth")
    with PasswordRetriever() as r:
        spec = f"file:{f}"
        assert r.get_passwords(spec, "ks")[0] == "first"
        # The same file through another path spelling is the same stream.
        assert r.get_passwords(f"file:{tmp_path}/./pw.txt", "key")[0] == "second"
        assert r.get_passwords(spec, "x")[0] == "third\rstill-third"
        with pytest.raises(KeystoreError, match="end of file reached"):
            r.get_passwords(spec, "y")  # an empty line ends the passwords, as in apksigner
    # A fresh retriever starts again at the first line.
    assert parse_password_spec(f"file:{f}") == "first"
    with pytest.raises(KeystoreError, match="cannot open"):
        parse_password_spec(f"file:{tmp_path}/missing")


def test_stdin_spec_plain_and_shared() -> None:
    stdin = io.BytesIO(b"one\ntwo\r\n")
    with PasswordRetriever(stdin=stdin, interactive=False) as r:
        assert r.get_passwords("stdin", "a")[0] == "one"
        assert r.get_passwords("stdin", "b")[0] == "two"
        with pytest.raises(KeystoreError, match="standard input closed"):
            r.get_passwords("stdin", "c")


def test_stdin_prompts_on_a_tty(monkeypatch: pytest.MonkeyPatch) -> None:
    prompts: list[str] = []

    def fake_getpass(prompt: str) -> str:
        prompts.append(prompt)
        return "typed"

    monkeypatch.setattr("getpass.getpass", fake_getpass)
    with PasswordRetriever(stdin=io.BytesIO(b""), interactive=True) as r:
        assert r.get_passwords("stdin", "Keystore password for signer #1")[0] == "typed"
    assert prompts == ["Keystore password for signer #1: "]


def test_password_candidates_like_apksigner() -> None:
    assert password_candidates("ascii") == ["ascii"]
    pw = "ab\u00a1\u00e4\u044e1"
    cands = password_candidates(pw, ("ibm437",))
    assert cands[0] == "ab\u00ad\u0084?1"  # --pass-encoding form first
    assert pw in cands
    assert pw.encode("utf-8").decode("latin-1") in cands
    with pytest.raises(KeystoreError, match="unsupported password character encoding"):
        PasswordRetriever(("no-such-charset",))


def test_retriever_repr_has_no_password(tmp_path: Path) -> None:
    f = tmp_path / "pw"
    f.write_text("sekrit\n")
    with PasswordRetriever() as r:
        r.get_passwords(f"file:{f}", "x")
        assert "sekrit" not in repr(r)


# -- key and certificate files --------------------------------------------------------


@pytest.mark.parametrize("name", CORPUS_KEYS)
def test_corpus_key_files_sign_and_verify(name: str) -> None:
    key = load_signer(key_spec(name))
    kind, size = name.split("-")
    assert key.key_type == {"rsa": "RSA", "ec": "EC", "dsa": "DSA"}[kind]
    assert key.key_size == int(size.lstrip("p"))
    cert = x509.load_pem_x509_certificate(corpus(f"{name}.x509.pem").read_bytes())
    assert key.certificates == [cert.public_bytes(serialization.Encoding.DER)]
    assert key.public_key_spki == cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert key.v1_signer_name == name
    sign_all(key)


@needs_openssl
@pytest.mark.parametrize("name", ["rsa-1024", "rsa-2048", "rsa-4096"])
def test_rsa_pkcs1_matches_openssl_bytewise(name: str, tmp_path: Path) -> None:
    key = load_signer(key_spec(name))
    data = tmp_path / "data"
    data.write_bytes(b"deterministic" * 100)
    for h in ("sha1", "sha256", "sha512"):
        ref = run(
            "openssl", "dgst", f"-{h}", "-sign", str(corpus(f"{name}.pk8")),
            "-keyform", "DER", str(data),
        ).stdout  # fmt: skip
        assert key.sign(data.read_bytes(), h, "pkcs1") == ref


JAVA_SIGN = r"""
import java.nio.file.*;
import java.security.*;
import java.security.spec.*;
import java.util.HexFormat;
public class JavaSign {
    public static void main(String[] a) throws Exception {
        try {
            Class<?> bc = Class.forName("org.bouncycastle.jce.provider.BouncyCastleProvider");
            Security.addProvider((Provider) bc.getConstructor().newInstance());
        } catch (ClassNotFoundException e) { /* DetDSA cases are not asked for then */ }
        for (int i = 0; i + 3 < a.length; i += 4) {
            PrivateKey k = KeyFactory.getInstance(a[i + 1]).generatePrivate(
                new PKCS8EncodedKeySpec(Files.readAllBytes(Paths.get(a[i]))));
            Signature s = Signature.getInstance(a[i + 2]);
            s.initSign(k);
            s.update(HexFormat.of().parseHex(a[i + 3]));
            System.out.println(HexFormat.of().formatHex(s.sign()));
        }
    }
}
"""


@pytest.mark.skipif(JAVA is None, reason="java not installed")
def test_signatures_match_java(tmp_path: Path) -> None:
    """RSA PKCS#1 as Java's SHAxwithRSA; DSA deterministic as BouncyCastle's DetDSA."""
    src = tmp_path / "JavaSign.java"
    src.write_text(JAVA_SIGN)
    data = b"META-INF/CERT.SF contents\r\n" * 3
    cases: list[tuple[str, str, str, str, bool]] = [
        ("rsa-2048", "RSA", "SHA256withRSA", "sha256", False),
        ("rsa-2048", "RSA", "SHA1withRSA", "sha1", False),
        ("rsa-4096", "RSA", "SHA512withRSA", "sha512", False),
        ("rsa-1024", "RSA", "MD5withRSA", "md5", False),
    ]
    if BCPROV is not None:
        cases += [
            ("dsa-1024", "DSA", "SHA1withDetDSA", "sha1", True),
            ("dsa-1024", "DSA", "SHA256withDetDSA", "sha256", True),  # hash longer than q
            ("dsa-2048", "DSA", "SHA256withDetDSA", "sha256", True),
            ("dsa-2048", "DSA", "SHA1withDetDSA", "sha1", True),
            ("dsa-3072", "DSA", "SHA256withDetDSA", "sha256", True),
        ]
    args: list[str] = []
    for name, alg, sigalg, _, _ in cases:
        args += [str(corpus(f"{name}.pk8")), alg, sigalg, data.hex()]
    cp = ["-cp", BCPROV] if BCPROV else []
    assert JAVA is not None
    out = run(JAVA, *cp, str(src), *args).stdout.decode().split()
    assert len(out) == len(cases)
    for (name, _, sigalg, h, det), ref in zip(cases, out, strict=True):
        key = load_signer(key_spec(name))
        ours = key.sign(data, h, "" if det else "pkcs1", deterministic=det)
        assert ours.hex() == ref, f"{name} {sigalg}"
        verify(key, ours, data, h, "")


def test_deterministic_dsa_only_changes_dsa() -> None:
    dsa_key = load_signer(key_spec("dsa-2048"))
    a = dsa_key.sign(b"x", "sha256", "", deterministic=True)
    assert a == dsa_key.sign(b"x", "sha256", "", deterministic=True)
    assert a != dsa_key.sign(b"y", "sha256", "", deterministic=True)
    verify(dsa_key, a, b"x", "sha256", "")
    # Plain DSA is randomised (two signatures differ) and verifies.
    r1, r2 = dsa_key.sign(b"x", "sha256", ""), dsa_key.sign(b"x", "sha256", "")
    assert r1 != r2
    verify(dsa_key, r1, b"x", "sha256", "")
    rsa_key = load_signer(key_spec("rsa-2048"))
    assert rsa_key.sign(b"x", "sha256", "pkcs1", deterministic=True) == rsa_key.sign(
        b"x", "sha256", "pkcs1"
    )


def test_sign_argument_checks() -> None:
    rsa_key = load_signer(key_spec("rsa-2048"))
    ec_key = load_signer(key_spec("ec-p256"))
    with pytest.raises(ValueError, match="hash"):
        rsa_key.sign(b"x", "sha3-256", "pkcs1")
    with pytest.raises(ValueError, match="padding"):
        rsa_key.sign(b"x", "sha256", "oaep")
    with pytest.raises(ValueError, match="RSA keys"):
        rsa_key.sign(b"x", "sha256", "")
    with pytest.raises(ValueError, match="EC keys"):
        ec_key.sign(b"x", "sha256", "pkcs1")
    # PSS salt + hash longer than the modulus allows: a KeystoreError, not a traceback.
    small = load_signer(key_spec("rsa-1024"))
    with pytest.raises(KeystoreError, match="cannot sign"):
        small.sign(b"x", "sha512", "pss")


@needs_openssl
def test_pem_and_encrypted_pkcs8(tmp_path: Path) -> None:
    src = str(corpus("rsa-2048.pk8"))
    cert = str(corpus("rsa-2048.x509.pem"))
    pem = tmp_path / "plain.pem"
    run("openssl", "pkcs8", "-inform", "DER", "-in", src, "-nocrypt", "-out", str(pem))
    variants = {
        "enc.der": ("-v2", "aes256", "-outform", "DER"),
        "enc.pem": ("-v2", "aes128"),
        "enc3des.der": ("-v1", "PBE-SHA1-3DES", "-outform", "DER"),
    }
    for fname, opts in variants.items():
        out = tmp_path / fname
        run(
            "openssl", "pkcs8", "-topk8", "-inform", "DER", "-in", src, *opts,
            "-passout", f"pass:{KEY_PW}", "-out", str(out),
        )  # fmt: skip
    ref = load_signer(SignerKeySpec(key=src, cert=cert)).sign(b"m", "sha256", "pkcs1")
    assert load_signer(SignerKeySpec(key=str(pem), cert=cert)).sign(b"m", "sha256", "pkcs1") == ref
    for fname in variants:
        path = str(tmp_path / fname)
        key = load_signer(SignerKeySpec(key=path, cert=cert, key_pass=f"pass:{KEY_PW}"))
        assert key.sign(b"m", "sha256", "pkcs1") == ref
        assert key.v1_signer_name == fname.split(".")[0]
        with pytest.raises(KeystoreError, match="wrong password") as e:
            load_signer(SignerKeySpec(key=path, cert=cert, key_pass="pass:not-it"))
        assert_clean(e.value, "not-it")
        # No --key-pass: prompt on stdin; with nothing to read, a clean error.
        with (
            PasswordRetriever(stdin=io.BytesIO(b""), interactive=False) as r,
            pytest.raises(KeystoreError, match="Private key password for signer #1"),
        ):
            load_signer(SignerKeySpec(key=path, cert=cert), r)
        with PasswordRetriever(stdin=io.BytesIO(KEY_PW.encode() + b"\n"), interactive=False) as r:
            assert load_signer(SignerKeySpec(key=path, cert=cert), r).key_type == "RSA"
    with pytest.raises(KeystoreError, match="not encrypted"):
        load_signer(SignerKeySpec(key=src, cert=cert, key_pass=f"pass:{KEY_PW}"))


def test_certificate_chain_files(tmp_path: Path) -> None:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    ca = make_cert(ca_key, "CA")
    leaf = make_cert(leaf_key, "leaf", ca_key, "CA")
    key_file = tmp_path / "leaf.pk8"
    key_file.write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    ders = [c.public_bytes(serialization.Encoding.DER) for c in (leaf, ca)]
    pem = tmp_path / "chain.pem"
    pem.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (leaf, ca)))
    der = tmp_path / "chain.der"
    der.write_bytes(b"".join(ders))
    for f in (pem, der):
        key = load_signer(SignerKeySpec(key=str(key_file), cert=str(f), v1_signer_name="MINE"))
        assert key.certificates == ders
        assert key.v1_signer_name == "MINE"
        sign_all(key)


def test_mismatched_certificate_is_an_error() -> None:
    spec = SignerKeySpec(key=str(corpus("rsa-2048.pk8")), cert=str(corpus("rsa-2048_2.x509.pem")))
    with pytest.raises(KeystoreError, match="does not match"):
        load_signer(spec)
    spec = SignerKeySpec(key=str(corpus("rsa-2048.pk8")), cert=str(corpus("ec-p256.x509.pem")))
    with pytest.raises(KeystoreError, match="does not match"):
        load_signer(spec)


def test_option_combinations() -> None:
    with pytest.raises(KeystoreError, match="no key for signer #1"):
        load_signer(SignerKeySpec())
    with pytest.raises(KeystoreError, match="--ks and --key"):
        load_signer(SignerKeySpec(ks="x.jks", key="k.pk8"))
    with pytest.raises(KeystoreError, match="--ks and --cert"):
        load_signer(SignerKeySpec(ks="x.jks", cert="c.pem"))
    with pytest.raises(KeystoreError, match="--cert"):
        load_signer(SignerKeySpec(key=str(corpus("rsa-2048.pk8"))))
    with pytest.raises(KeystoreError, match="--key"):
        load_signer(SignerKeySpec(cert=str(corpus("rsa-2048.x509.pem"))))
    with pytest.raises(KeystoreError, match="--ks NONE"):
        load_signer(SignerKeySpec(ks="NONE", ks_pass="pass:x"))
    with pytest.raises(KeystoreError, match="unsupported keystore type BKS"):
        load_signer(SignerKeySpec(ks=str(corpus("rsa-2048.pk8")), ks_type="BKS"))
    with pytest.raises(KeystoreError, match="cannot read keystore"):
        load_signer(SignerKeySpec(ks="/nonexistent/release.jks", ks_pass="pass:x"))


def test_spec_repr_hides_passwords() -> None:
    spec = SignerKeySpec(
        ks="pkcs11:token=t;object=k?pin-value=4321&module-path=/m.so",
        ks_pass="pass:hunter2",
        key_pass="pass:hunter3",
    )
    text = repr(spec) + str(spec)
    assert "hunter2" not in text and "hunter3" not in text and "4321" not in text
    assert "pin-value=***" in text and "token=t" in text
    assert "4321" not in repr(parse_pkcs11_uri(spec.ks or ""))
    key = load_signer(key_spec("rsa-2048"))
    assert "RSA-2048" in repr(key)


# -- PKCS#12 ---------------------------------------------------------------------------


def test_pkcs12_from_openssl(p12_from_openssl: dict[str, Path]) -> None:
    key = load_signer(
        SignerKeySpec(ks=str(p12_from_openssl["rsa-2048"]), ks_pass=f"pass:{STORE_PW}")
    )
    assert key.v1_signer_name == "release"
    assert "PKCS#12" in key.source
    ref = load_signer(key_spec("rsa-2048"))
    assert key.certificates == ref.certificates
    assert key.sign(b"m", "sha256", "pkcs1") == ref.sign(b"m", "sha256", "pkcs1")
    with pytest.raises(KeystoreError, match="wrong password") as e:
        load_signer(SignerKeySpec(ks=str(p12_from_openssl["rsa-2048"]), ks_pass="pass:Wrong-pw1"))
    assert_clean(e.value, "Wrong-pw1")


@needs_keytool
def test_pkcs12_written_by_keytool(jdk_stores: dict[str, Path]) -> None:
    single = jdk_stores["p12-single-jks-name"]
    assert single.suffix == ".jks" and single.read_bytes()[:1] == b"\x30"  # PKCS#12 inside
    key = load_signer(SignerKeySpec(ks=str(single), ks_pass=f"pass:{STORE_PW}"))
    assert key.v1_signer_name == "release" and key.key_type == "RSA"
    sign_all(key)
    # --ks-type is about the JCA implementation; the bytes decide the format.
    load_signer(SignerKeySpec(ks=str(single), ks_pass=f"pass:{STORE_PW}", ks_type="JKS"))

    multi = str(jdk_stores["p12-multi"])
    with pytest.raises(KeystoreError, match="multiple key entries") as e:
        load_signer(SignerKeySpec(ks=multi, ks_pass=f"pass:{STORE_PW}"))
    assert "release" in str(e.value) and "second" in str(e.value)
    ec_key = load_signer(SignerKeySpec(ks=multi, ks_pass=f"pass:{STORE_PW}", ks_key_alias="second"))
    assert ec_key.key_type == "EC" and ec_key.v1_signer_name == "second"
    sign_all(ec_key)
    # The JDK compares aliases without case.
    assert (
        load_signer(
            SignerKeySpec(ks=multi, ks_pass=f"pass:{STORE_PW}", ks_key_alias="RELEASE")
        ).key_type
        == "RSA"
    )
    with pytest.raises(KeystoreError, match="no key entry 'nope'") as e:
        load_signer(SignerKeySpec(ks=multi, ks_pass=f"pass:{STORE_PW}", ks_key_alias="nope"))
    assert "release, second" in str(e.value)
    # An explicit wrong --key-pass is not retried with the keystore password.
    with pytest.raises(KeystoreError, match="wrong key password") as e:
        load_signer(
            SignerKeySpec(
                ks=multi,
                ks_pass=f"pass:{STORE_PW}",
                key_pass="pass:other-pw",
                ks_key_alias="second",
            )
        )
    assert_clean(e.value, "other-pw")


@needs_keytool
def test_pkcs12_password_from_file_and_stdin(jdk_stores: dict[str, Path], tmp_path: Path) -> None:
    multi = str(jdk_stores["p12-multi"])
    pw = tmp_path / "pw"
    pw.write_text(f"{STORE_PW}\n{STORE_PW}\n")
    with PasswordRetriever() as r:
        a = load_signer(SignerKeySpec(ks=multi, ks_key_alias="release", ks_pass=f"file:{pw}"), r)
        b = load_signer(SignerKeySpec(ks=multi, ks_key_alias="second", ks_pass=f"file:{pw}"), r)
    assert (a.key_type, b.key_type) == ("RSA", "EC")
    stdin = io.BytesIO(STORE_PW.encode() + b"\n")
    with PasswordRetriever(stdin=stdin, interactive=False) as r:
        assert load_signer(SignerKeySpec(ks=multi, ks_key_alias="second"), r).key_type == "EC"


def test_pkcs12_from_cryptography_with_chain(tmp_path: Path) -> None:
    ca_key = rsa.generate_private_key(65537, 2048)
    leaf_key = ec.generate_private_key(ec.SECP384R1())
    ca = make_cert(ca_key, "Release CA")
    leaf = make_cert(leaf_key, "release", ca_key, "Release CA")
    other = make_cert(ec.generate_private_key(ec.SECP256R1()), "unrelated")
    for name, enc in (
        ("aes", serialization.BestAvailableEncryption(STORE_PW.encode())),
        (
            "legacy",
            serialization.PrivateFormat.PKCS12.encryption_builder()
            .kdf_rounds(2048)
            .key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC)
            .hmac_hash(hashes.SHA1())
            .build(STORE_PW.encode()),
        ),
    ):
        data = pkcs12.serialize_key_and_certificates(b"release", leaf_key, leaf, [other, ca], enc)
        path = tmp_path / f"{name}.p12"
        path.write_bytes(data)
        key = load_signer(SignerKeySpec(ks=str(path), ks_pass=f"pass:{STORE_PW}"))
        assert key.v1_signer_name == "release"
        assert key.certificates == [c.public_bytes(serialization.Encoding.DER) for c in (leaf, ca)]
        sign_all(key)


@needs_openssl
def test_pkcs12_legacy_rc2(tmp_path: Path) -> None:
    """OpenSSL 1.x / old JDK style: certificates under 40-bit RC2, keys under 3DES."""
    pem = tmp_path / "k.pem"
    run(
        "openssl",
        "pkcs8",
        "-inform",
        "DER",
        "-in",
        str(corpus("dsa-2048.pk8")),
        "-nocrypt",
        "-out",
        str(pem),
    )
    dest = tmp_path / "legacy.p12"
    try:
        run(
            "openssl", "pkcs12", "-export", "-legacy", "-inkey", str(pem),
            "-in", str(corpus("dsa-2048.x509.pem")), "-name", "old", "-passout", f"pass:{STORE_PW}",
            "-out", str(dest),
        )  # fmt: skip
    except subprocess.CalledProcessError:
        pytest.skip("this openssl cannot write legacy PKCS#12 (no legacy provider)")
    key = load_signer(SignerKeySpec(ks=str(dest), ks_pass=f"pass:{STORE_PW}"))
    assert key.key_type == "DSA" and key.v1_signer_name == "old"
    sign_all(key)


# -- JKS and JCEKS ---------------------------------------------------------------------


@needs_keytool
@pytest.mark.parametrize("kind", ["JKS", "JCEKS"])
def test_legacy_keystores(kind: str, jdk_stores: dict[str, Path]) -> None:
    pytest.importorskip("jks", reason="pyjks not installed (pip install '.[jks]')")
    path = jdk_stores[kind]
    assert path.read_bytes()[:4] == (b"\xfe\xed\xfe\xed" if kind == "JKS" else b"\xce\xce\xce\xce")
    with pytest.raises(KeystoreError, match="multiple key entries"):
        load_signer(SignerKeySpec(ks=str(path), ks_pass=f"pass:{STORE_PW}"))
    for alias, ktype in (("release", "RSA"), ("SECOND", "EC")):
        key = load_signer(
            SignerKeySpec(ks=str(path), ks_pass=f"pass:{STORE_PW}", ks_key_alias=alias)
        )
        assert key.key_type == ktype
        assert key.source.startswith(kind)
        sign_all(key)
    with pytest.raises(KeystoreError, match="wrong password") as e:
        load_signer(SignerKeySpec(ks=str(path), ks_pass="pass:Bad-pass", ks_key_alias="release"))
    assert_clean(e.value, "Bad-pass")


@needs_keytool
def test_jks_with_non_ascii_passwords(p12_from_openssl: dict[str, Path], tmp_path: Path) -> None:
    """JKS takes any UTF-16 password (unlike the JDK's PKCS#12 and JCEKS)."""
    pytest.importorskip("jks", reason="pyjks not installed (pip install '.[jks]')")
    dest = tmp_path / "intl.jks"
    keytool_import(
        p12_from_openssl["rsa-2048"], "PKCS12", dest, "JKS",
        "-destkeypass", "ключ-kéy", dest_pass="störe-пароль",
    )  # fmt: skip
    spec = SignerKeySpec(ks=str(dest), ks_pass="pass:störe-пароль", key_pass="pass:ключ-kéy")
    assert load_signer(spec).key_type == "RSA"


@needs_keytool
@pytest.mark.parametrize("kind", ["JKS", "JCEKS"])
def test_legacy_keystore_with_separate_key_password(kind: str, jdk_stores: dict[str, Path]) -> None:
    pytest.importorskip("jks", reason="pyjks not installed (pip install '.[jks]')")
    path = str(jdk_stores[f"{kind}-keypass"])
    key = load_signer(SignerKeySpec(ks=path, ks_pass=f"pass:{STORE_PW}", key_pass=f"pass:{KEY_PW}"))
    assert key.key_type == "EC"
    # Without --key-pass: the keystore password fails, then apksigner prompts (stdin).
    with PasswordRetriever(stdin=io.BytesIO(KEY_PW.encode() + b"\n"), interactive=False) as r:
        assert load_signer(SignerKeySpec(ks=path, ks_pass=f"pass:{STORE_PW}"), r).key_type == "EC"
    with (
        PasswordRetriever(stdin=io.BytesIO(b"nope\n"), interactive=False) as r,
        pytest.raises(KeystoreError, match="wrong key password") as e,
    ):
        load_signer(SignerKeySpec(ks=path, ks_pass=f"pass:{STORE_PW}"), r)
    assert_clean(e.value, "nope")


# -- hostile input ---------------------------------------------------------------------


def _mutations(data: bytes) -> Iterator[bytes]:
    yield b""
    yield b"\x00" * 64
    yield b"garbage, not a keystore at all\n" * 10
    yield b"\x30\x80" + data[2:40]  # indefinite length, truncated
    yield b"\x30\x84\xff\xff\xff\xff" + data[6:]
    for cut in (1, 4, 16, len(data) // 3, len(data) // 2, len(data) - 1):
        yield data[:cut]
    for pos in (0, 1, 5, 30, len(data) // 2, len(data) - 30, len(data) - 1):
        b = bytearray(data)
        b[pos] ^= 0x41
        yield bytes(b)


@pytest.mark.parametrize("which", ["p12", "jks", "jceks", "pk8", "cert"])
def test_hostile_input_only_raises_keystore_errors(
    which: str, p12_from_openssl: dict[str, Path], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if which in ("jks", "jceks"):
        pytest.importorskip("jks")
        if KEYTOOL is None:
            pytest.skip("keytool (a JDK) not installed")
        original = request.getfixturevalue("jdk_stores")[which.upper()].read_bytes()
    elif which == "p12":
        original = p12_from_openssl["ec-p256"].read_bytes()
    elif which == "pk8":
        original = corpus("ec-p256.pk8").read_bytes()
    else:
        original = corpus("ec-p256.x509.pem").read_bytes()
    target = tmp_path / "input"
    for i, mutated in enumerate(_mutations(original)):
        target.write_bytes(mutated)
        if which in ("pk8", "cert"):
            spec = SignerKeySpec(
                key=str(target if which == "pk8" else corpus("ec-p256.pk8")),
                cert=str(target if which == "cert" else corpus("ec-p256.x509.pem")),
                key_pass=None,
            )
        else:
            spec = SignerKeySpec(ks=str(target), ks_pass=f"pass:{STORE_PW}", ks_key_alias="second")
        try:
            with PasswordRetriever(stdin=io.BytesIO(b""), interactive=False) as r:
                key = load_signer(spec, r)
        except KeystoreError as e:
            assert_clean(e)
        else:
            # A flip that leaves a loadable key must still give a working signer.
            verify(key, key.sign(b"m", "sha256", ""), b"m", "sha256", "")
        _ = i


def test_directory_as_keystore(tmp_path: Path) -> None:
    with pytest.raises(KeystoreError, match="cannot read keystore"):
        load_signer(SignerKeySpec(ks=str(tmp_path), ks_pass="pass:x"))


# -- PKCS#11 without a token -----------------------------------------------------------


def test_pkcs11_uri_parsing() -> None:
    spec = parse_pkcs11_uri(
        "pkcs11:token=My%20Token;object=release;id=%01%a0;type=private;slot-id=3;x-vendor=1"
        "?module-path=/opt/hsm/lib.so&pin-source=file:/run/pin"
    )
    assert spec == Pkcs11Spec(
        module="/opt/hsm/lib.so",
        token_label="My Token",
        slot_id=3,
        key_label="release",
        key_id=b"\x01\xa0",
        pin_spec="file:/run/pin",
    )
    assert parse_pkcs11_uri("PKCS11:object=k?pin-value=12%3b4").pin_spec == "pass:12;4"
    for bad, msg in (
        ("pkcs11:tokn=x", "unsupported PKCS#11 URI attribute 'tokn'"),
        ("pkcs11:type=secret-key", "does not name a signing key"),
        ("pkcs11:object", "expected name=value"),
        ("pkcs11:slot-id=x1", "decimal"),
        ("pkcs11:object=a;object=b", "given twice"),
        ("pkcs11:?pin-value=1&pin-source=/f", "both"),
        ("file:/x", "must start with 'pkcs11:'"),
    ):
        with pytest.raises(KeystoreError, match=msg):
            parse_pkcs11_uri(bad)


def test_sunpkcs11_provider_arg(tmp_path: Path) -> None:
    cfg = tmp_path / "token.cfg"
    cfg.write_text(
        '# SunPKCS11 config\nname = SoftHSM\nlibrary = "/usr/lib/softhsm/libsofthsm2.so"\n'
        "slotListIndex = 1\nattributes(*,CKO_PRIVATE_KEY,*) = {\n  CKA_SIGN = true\n}\n"
    )
    assert parse_provider_arg(str(cfg)) == Pkcs11Spec(
        module="/usr/lib/softhsm/libsofthsm2.so", slot_index=1
    )
    assert parse_provider_arg("--name=x\nlibrary=/l.so\nslot=5") == Pkcs11Spec(
        module="/l.so", slot_id=5
    )
    assert parse_provider_arg("/opt/vendor/libp11.so") == Pkcs11Spec(module="/opt/vendor/libp11.so")
    assert parse_provider_arg("pkcs11:token=t").token_label == "t"
    (tmp_path / "nolib.cfg").write_text("name = x\n")
    with pytest.raises(KeystoreError, match="no 'library' line"):
        parse_provider_arg(str(tmp_path / "nolib.cfg"))
    with pytest.raises(KeystoreError, match="cannot read PKCS#11 provider config"):
        parse_provider_arg(str(tmp_path / "missing.cfg"))


def test_pkcs11_module_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_module("/explicit.so") == "/explicit.so"
    monkeypatch.setenv(ENV_MODULE, "/from/env.so")
    assert resolve_module(None) == "/from/env.so"
    monkeypatch.delenv(ENV_MODULE)
    monkeypatch.setattr("provenance.keystore.pkcs11.SOFTHSM2_MODULES", ("/nowhere/lib.so",))
    with pytest.raises(KeystoreError, match="SoftHSM2 is not installed"):
        resolve_module(None)


def test_pkcs11_missing_module_is_a_clean_error() -> None:
    pytest.importorskip("pkcs11")
    with pytest.raises(KeystoreError, match="does not exist"):
        load_signer(
            SignerKeySpec(ks="pkcs11:token=x?module-path=/nonexistent/p11.so", ks_pass="pass:1")
        )


# -- PKCS#11 against SoftHSM2 ----------------------------------------------------------

PIN = "1234"


@pytest.fixture(scope="module")
def hsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A SoftHSM2 store: token 'apkprov' (RSA, EC with certs; DSA without), 'solo', 'pins'."""
    reason = pkcs11_util.missing_reason()
    if reason:
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("softhsm")

    def cert(name: str) -> bytes:
        return x509.load_pem_x509_certificate(corpus(f"{name}.x509.pem").read_bytes()).public_bytes(
            serialization.Encoding.DER
        )

    K = pkcs11_util.KeyObject
    tokens = [
        pkcs11_util.Token(
            "apkprov",
            PIN,
            [
                K(corpus("rsa-2048.pk8"), "release", b"\x01", cert("rsa-2048")),
                K(corpus("ec-p256.pk8"), "ec-key", b"\x02", cert("ec-p256")),
                K(corpus("dsa-2048.pk8"), "dsa-key", b"\x03"),
                K(corpus("rsa-4096.pk8"), "wrong-cert", b"\x04", cert("rsa-2048_2")),
            ],
        ),
        pkcs11_util.Token(
            "solo", "5678", [K(corpus("ec-p384.pk8"), "only", b"\x09", cert("ec-p384"))]
        ),
        pkcs11_util.Token(
            "pins", "2468", [K(corpus("rsa-1024.pk8"), "k", b"\x07", cert("rsa-1024"))]
        ),
    ]
    conf = pkcs11_util.create_store(root, tokens)
    # SoftHSM reads this when the module is first initialised in this process.
    old = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    module = pkcs11_util.softhsm_module()
    assert module is not None
    yield module
    if old is None:
        os.environ.pop("SOFTHSM2_CONF", None)
    else:
        os.environ["SOFTHSM2_CONF"] = old


def test_pkcs11_uri_signs_on_token(hsm: str) -> None:
    uri = f"pkcs11:token=apkprov;object=release?module-path={hsm}"
    with load_signer(SignerKeySpec(ks=uri, ks_pass=f"pass:{PIN}")) as key:
        assert key.key_type == "RSA" and key.key_size == 2048
        assert key.v1_signer_name == "release"
        assert "apkprov" in key.source and PIN not in repr(key)
        sign_all(key)
        # The token's PKCS#1 v1.5 signature is the same bytes as the software key's.
        soft = load_signer(key_spec("rsa-2048"))
        assert key.certificates == soft.certificates
        for h in ("sha1", "sha256", "sha512"):
            assert key.sign(b"msg", h, "pkcs1") == soft.sign(b"msg", h, "pkcs1")
        with pytest.raises(KeystoreError, match="deterministic"):
            load_signer(
                SignerKeySpec(ks=f"pkcs11:token=apkprov;object=dsa-key?module-path={hsm}",
                              ks_pass=f"pass:{PIN}", cert=str(corpus("dsa-2048.x509.pem")))
            ).sign(b"x", "sha256", "", deterministic=True)  # fmt: skip


def test_pkcs11_select_by_id_and_pin_in_uri(hsm: str) -> None:
    with load_signer(SignerKeySpec(ks=f"pkcs11:token=apkprov;id=%02?pin-value={PIN}")) as key:
        assert key.key_type == "EC" and key.v1_signer_name == "ec-key"
        sign_all(key)


def test_pkcs11_apksigner_form_with_config(hsm: str, tmp_path: Path) -> None:
    cfg = tmp_path / "softhsm.cfg"
    cfg.write_text(f"name = SoftHSM\nlibrary = {hsm}\n")
    spec = SignerKeySpec(
        ks="NONE",
        ks_type="PKCS11",
        provider_arg=str(cfg),
        ks_key_alias="ec-key",
        ks_pass=f"pass:{PIN}",
    )
    # Several tokens are present and the config names no slot: a clear error.
    with pytest.raises(KeystoreError, match="several PKCS#11 tokens") as e:
        load_signer(spec)
    assert "apkprov" in str(e.value) and "solo" in str(e.value)
    # Alias via the certificate's label works too (SunPKCS11 aliases are cert labels).
    uri_spec = SignerKeySpec(
        ks="NONE", ks_type="PKCS11", provider_arg="pkcs11:token=apkprov", ks_key_alias="ec-key",
        ks_pass=f"pass:{PIN}",
    )  # fmt: skip
    with load_signer(uri_spec) as key:
        assert key.key_type == "EC"


def test_pkcs11_only_key_on_token_and_env_module(hsm: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_MODULE, hsm)
    with load_signer(SignerKeySpec(ks="pkcs11:token=solo", ks_pass="pass:5678")) as key:
        assert key.key_type == "EC" and key.key_size == 384
        sign_all(key)
    with (
        PasswordRetriever(stdin=io.BytesIO(b"5678\n"), interactive=False) as r,
        load_signer(SignerKeySpec(pkcs11=Pkcs11Spec(token_label="solo")), r) as key,
    ):
        assert key.v1_signer_name == "only"


def test_pkcs11_key_without_token_certificate(hsm: str) -> None:
    uri = "pkcs11:token=apkprov;object=dsa-key"
    with pytest.raises(KeystoreError, match="give one with --cert"):
        load_signer(SignerKeySpec(ks=uri, ks_pass=f"pass:{PIN}"))
    with load_signer(
        SignerKeySpec(ks=uri, ks_pass=f"pass:{PIN}", cert=str(corpus("dsa-2048.x509.pem")))
    ) as key:
        assert key.key_type == "DSA"
        sign_all(key)
    with pytest.raises(KeystoreError, match="does not match"):
        load_signer(
            SignerKeySpec(ks="pkcs11:token=apkprov;object=wrong-cert", ks_pass=f"pass:{PIN}")
        )


def test_pkcs11_selection_errors(hsm: str) -> None:
    with pytest.raises(KeystoreError, match="several private keys") as e:
        load_signer(SignerKeySpec(ks="pkcs11:token=apkprov", ks_pass=f"pass:{PIN}"))
    assert "'release' id 01" in str(e.value)
    with pytest.raises(KeystoreError, match="private key not found") as e:
        load_signer(SignerKeySpec(ks="pkcs11:token=apkprov;object=nope", ks_pass=f"pass:{PIN}"))
    assert "'ec-key' id 02" in str(e.value)
    with pytest.raises(KeystoreError, match="token not found") as e:
        load_signer(SignerKeySpec(ks="pkcs11:token=absent", ks_pass=f"pass:{PIN}"))
    assert "'apkprov'" in str(e.value)
    with pytest.raises(KeystoreError, match="--key"):
        load_signer(SignerKeySpec(ks="pkcs11:token=apkprov", key=str(corpus("rsa-2048.pk8"))))


def test_pkcs11_wrong_pin(hsm: str) -> None:
    with pytest.raises(KeystoreError, match="wrong PIN") as e:
        load_signer(SignerKeySpec(ks="pkcs11:token=pins", ks_pass="pass:1357"))
    assert_clean(e.value, "1357", "2468")
    with load_signer(SignerKeySpec(ks="pkcs11:token=pins", ks_pass="pass:2468")) as key:
        sign_all(key)


def test_pkcs11_signers_share_a_token(hsm: str, tmp_path: Path) -> None:
    pw = tmp_path / "pins"
    pw.write_text(f"{PIN}\n{PIN}\n")
    with PasswordRetriever() as r:
        a = load_signer(
            SignerKeySpec(ks="pkcs11:token=apkprov;object=release", ks_pass=f"file:{pw}"), r
        )
        b = load_signer(
            SignerKeySpec(ks="pkcs11:token=apkprov;object=ec-key", ks_pass=f"file:{pw}"), r
        )
    a.close()  # closing one must not log the other out
    verify(b, b.sign(b"m", "sha256", ""), b"m", "sha256", "")
    b.close()
    with pytest.raises(KeystoreError, match="closed"):
        b.sign(b"m", "sha256", "")


def test_apk_signed_on_token_matches_apksig_golden(hsm: str, tmp_path: Path) -> None:
    """End to end: ``apkprov sign`` with the key on SoftHSM2 gives apksig's golden APK."""
    import sys

    src, golden = corpus("golden-aligned-in.apk"), corpus("golden-aligned-out.apk")
    out = tmp_path / "signed.apk"
    proc = subprocess.run(
        [
            sys.executable, "-m", "provenance", "sign", "--ks",
            f"pkcs11:token=apkprov;object=release?module-path={hsm}", "--ks-pass", "env:HSM_PIN",
            "--v1-signer-name", "rsa-2048",  # the golden file's JAR signature name
            "--in", str(src), "--out", str(out),
        ],
        env=dict(os.environ, HSM_PIN=PIN),
        capture_output=True,
        timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    assert PIN.encode() not in proc.stdout + proc.stderr
    assert out.read_bytes() == golden.read_bytes()
