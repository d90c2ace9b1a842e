"""A throw-away SoftHSM2 token store for the PKCS#11 tests.

Everything lives in a temporary directory named by ``SOFTHSM2_CONF``, so the tests
run on a clean machine once Debian's ``softhsm2`` package is installed and never touch
``/var/lib/softhsm``. SoftHSM reads its configuration once, when the module is first
initialised in a process, so all tokens are created (by ``softhsm2-util`` and a
child Python for the certificates) before the test process loads the module.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

SOFTHSM2_MODULES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
)


def softhsm_module() -> str | None:
    """Path of libsofthsm2.so, or None when SoftHSM2 is not installed."""
    return next((m for m in SOFTHSM2_MODULES if os.path.exists(m)), None)


def missing_reason() -> str | None:
    """Why the PKCS#11 tests cannot run here, or None when they can."""
    if shutil.which("softhsm2-util") is None or softhsm_module() is None:
        return "SoftHSM2 not installed (Debian package softhsm2)"
    try:
        import pkcs11  # noqa: F401
    except ImportError:
        return "python-pkcs11 not installed (pip install '.[pkcs11]')"
    return None


@dataclass
class KeyObject:
    """A key pair to import: PKCS#8 DER file, label, CKA_ID, optional certificate."""

    pk8: Path
    label: str
    key_id: bytes
    cert_der: bytes | None = None


@dataclass
class Token:
    """A token to create: label, user PIN and its keys."""

    label: str
    pin: str
    keys: list[KeyObject] = field(default_factory=list)


def create_store(root: Path, tokens: list[Token]) -> Path:
    """Write a SoftHSM2 config under ``root``, create the tokens, return the config path."""
    tokendir = root / "tokens"
    tokendir.mkdir(parents=True, exist_ok=True)
    conf = root / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {tokendir}\n"
        "objectstore.backend = file\n"
        "log.level = ERROR\n"
        "slots.removable = false\n"
    )
    env = dict(os.environ, SOFTHSM2_CONF=str(conf))

    def run(*args: str) -> None:
        subprocess.run(args, env=env, check=True, capture_output=True, timeout=120)

    certs: list[tuple[str, str, str, str, str]] = []
    for token in tokens:
        run(
            "softhsm2-util", "--init-token", "--free", "--label", token.label,
            "--pin", token.pin, "--so-pin", "12345678",
        )  # fmt: skip
        for key in token.keys:
            pem = root / f"{token.label}-{key.label}.pem"
            der = key.pk8.read_bytes()
            pem.write_text(_pem("PRIVATE KEY", der))
            run(
                "softhsm2-util", "--import", str(pem), "--token", token.label,
                "--label", key.label, "--id", key.key_id.hex(), "--pin", token.pin,
            )  # fmt: skip
            pem.unlink()
            if key.cert_der is not None:
                cert_file = root / f"{token.label}-{key.label}.crt"
                cert_file.write_bytes(key.cert_der)
                certs.append((token.label, token.pin, key.label, key.key_id.hex(), str(cert_file)))
    if certs:
        # python-pkcs11 in a child process: this one must load the module only later.
        script = textwrap.dedent(
            """
            import sys, pkcs11
            from pkcs11 import Attribute as A
            from cryptography import x509
            lib = pkcs11.lib(sys.argv[1])
            for spec in sys.argv[2:]:
                token_label, pin, label, key_id, path = spec.split("|")
                der = open(path, "rb").read()
                cert = x509.load_der_x509_certificate(der)
                token = lib.get_token(token_label=token_label)
                with token.open(rw=True, user_pin=pin) as s:
                    s.create_object({
                        A.CLASS: pkcs11.ObjectClass.CERTIFICATE,
                        A.CERTIFICATE_TYPE: pkcs11.CertificateType.X_509,
                        A.TOKEN: True,
                        A.LABEL: label,
                        A.ID: bytes.fromhex(key_id),
                        A.VALUE: der,
                        A.SUBJECT: cert.subject.public_bytes(),
                    })
            """
        )
        module = softhsm_module()
        assert module is not None
        subprocess.run(
            [sys.executable, "-c", script, module, *("|".join(c) for c in certs)],
            env=env,
            check=True,
            capture_output=True,
            timeout=120,
        )
    return conf


def _pem(kind: str, der: bytes) -> str:
    import base64

    b64 = base64.b64encode(der).decode()
    lines = [b64[i : i + 64] for i in range(0, len(b64), 64)]
    return f"-----BEGIN {kind}-----\n" + "\n".join(lines) + f"\n-----END {kind}-----\n"
