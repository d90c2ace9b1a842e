"""``apkprov rotate`` and ``apkprov lineage`` against apksigner's lineage files and output.

RSA PKCS#1 v1.5 signatures are deterministic, so lineages made from the corpus keys
must equal the corpus lineage files (written by ``apksigner rotate``) byte for byte.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import reference
from corpus import apksig_dir, require

from provenance.apk import lineage as lin
from provenance.apk.sign import read_lineage
from provenance.apk.verify import verify_apk
from provenance.cli import main as cli_main

C = apksig_dir()


def signer(name: str) -> list[str]:
    base = require(C)
    return ["--key", str(base / f"{name}.pk8"), "--cert", str(base / f"{name}.x509.pem")]


def rotate(out: Path, old: str, new: str, *extra: str, old_opts: tuple[str, ...] = ()) -> int:
    return cli_main(
        [
            "rotate",
            "--out",
            str(out),
            *extra,
            "--old-signer",
            *signer(old),
            *old_opts,
            "--new-signer",
            *signer(new),
        ]
    )


def reference_lineage_print(path: Path) -> str:
    proc = subprocess.run(
        [*reference.command(), "lineage", "--in", str(path), "--print-certs", "-v"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_rotate_two_and_three_match_corpus(tmp_path: Path) -> None:
    two = tmp_path / "two"
    assert rotate(two, "rsa-2048", "rsa-2048_2") == 0
    assert two.read_bytes() == (C / "rsa-2048-lineage-2-signers").read_bytes()
    three = tmp_path / "three"
    assert rotate(three, "rsa-2048_2", "rsa-2048_3", "--in", str(two)) == 0
    assert three.read_bytes() == (C / "rsa-2048-lineage-3-signers").read_bytes()
    assert len(read_lineage(three)) == 3


def test_rotate_ec_and_mixed(tmp_path: Path) -> None:
    ec = tmp_path / "ec"
    assert rotate(ec, "ec-p256", "ec-p256_2") == 0
    got = read_lineage(ec)
    want = read_lineage(C / "ec-p256-lineage-2-signers")
    assert [n.cert for n in got.nodes] == [n.cert for n in want.nodes]
    assert [n.flags for n in got.nodes] == [n.flags for n in want.nodes]
    mixed = tmp_path / "mixed"
    assert rotate(mixed, "dsa-2048", "rsa-4096", "--min-sdk-version", "28") == 0
    assert rotate(tmp_path / "m3", "rsa-4096", "ec-p384", "--in", str(mixed)) == 0
    m3 = read_lineage(tmp_path / "m3")
    assert [n.cert.subject for n in m3.nodes] == ["CN=dsa-2048", "CN=rsa-4096", "CN=ec-p384"]
    out = tmp_path / "signed.apk"
    keys = [n.cert for n in m3.nodes]
    assert len(keys) == 3
    args = [
        "sign",
        *signer("dsa-2048"),
        "--next-signer",
        *signer("ec-p384"),
        "--lineage",
        str(tmp_path / "m3"),
        "--rotation-min-sdk-version",
        "28",
        "--out",
        str(out),
        str(C / "original.apk"),
    ]
    assert cli_main(args) == 0
    res = verify_apk(out, v4_signature_file=tmp_path / "signed.apk.idsig")
    assert res.verified and res.verified_schemes == ["v1", "v2", "v3", "v4"]
    assert res.lineage is not None and len(res.lineage) == 3
    if reference.available():
        assert reference.verify(out).ok


def test_rotate_capabilities_and_lineage_modification(tmp_path: Path) -> None:
    lineage = tmp_path / "l"
    assert (
        rotate(
            lineage,
            "rsa-2048",
            "rsa-2048_2",
            old_opts=("--set-rollback", "true", "--set-installed-data", "false"),
        )
        == 0
    )
    nodes = read_lineage(lineage).nodes
    assert (
        nodes[0].flags == lin.CAP_SHARED_UID | lin.CAP_PERMISSION | lin.CAP_AUTH | lin.CAP_ROLLBACK
    )
    assert nodes[1].flags == lin.DEFAULT_CAPS
    # Take every capability away from the first signer of the 3-signer lineage: the
    # corpus has that very file, made by apksigner.
    out = tmp_path / "nocaps"
    args = [
        "lineage",
        "--in",
        str(C / "rsa-2048-lineage-3-signers"),
        "--out",
        str(out),
        "--signer",
        *signer("rsa-2048"),
        "--set-installed-data",
        "false",
        "--set-shared-uid",
        "false",
        "--set-permission",
        "false",
        "--set-auth",
        "false",
    ]
    assert cli_main(args) == 0
    assert out.read_bytes() == (C / "rsa-2048-lineage-3-signers-1-no-caps").read_bytes()
    # A modification needs --out; an unknown signer is an input error.
    assert cli_main(args[:3] + args[5:]) == 2
    assert (
        cli_main(
            [
                "lineage",
                "--in",
                str(out),
                "--signer",
                *signer("ec-p256"),
                "--set-auth",
                "false",
                "--out",
                str(tmp_path / "x"),
            ]
        )
        == 2
    )
    assert not (tmp_path / "x").exists()


def test_lineage_print_matches_apksigner(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    made = tmp_path / "made"
    assert rotate(made, "rsa-2048", "rsa-2048_2") == 0
    assert rotate(tmp_path / "made3", "rsa-2048_2", "rsa-2048_3", "--in", str(made)) == 0
    capsys.readouterr()
    for path in (tmp_path / "made3", C / "rsa-2048-lineage-3-signers-1-no-caps"):
        assert cli_main(["lineage", "--in", str(path), "--print-certs", "-v"]) == 0
        ours = capsys.readouterr().out
        assert "Signer #3 in lineage certificate DN: CN=rsa-2048_3" in ours
        if reference.available():
            assert ours == reference_lineage_print(path)


def test_lineage_from_signed_apk(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    apk = tmp_path / "rotated.apk"
    args = [
        "sign",
        *signer("rsa-2048"),
        "--next-signer",
        *signer("rsa-2048_2"),
        "--lineage",
        str(C / "rsa-2048-lineage-2-signers"),
        "--out",
        str(apk),
        str(C / "original.apk"),
    ]
    assert cli_main(args) == 0  # default rotation: the lineage lives in the v3.1 block
    capsys.readouterr()
    assert cli_main(["lineage", "--json", str(apk)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [c["subject"] for c in doc["certificates"]] == ["CN=rsa-2048", "CN=rsa-2048_2"]
    assert doc["updated"] is False
    assert cli_main(["lineage", "--print-certs", str(C / "original.apk")]) == 2


def test_rotate_usage_errors(tmp_path: Path) -> None:
    out = tmp_path / "l"
    assert cli_main(["rotate", "--out", str(out), "--old-signer", *signer("rsa-2048")]) == 2
    assert (
        cli_main(
            ["rotate", "--old-signer", *signer("rsa-2048"), "--new-signer", *signer("rsa-2048_2")]
        )
        == 2
    )
    # The old signer must be the newest certificate of the lineage being extended.
    assert rotate(out, "rsa-2048", "rsa-2048_3", "--in", str(C / "rsa-2048-lineage-2-signers")) == 2
    assert cli_main(["lineage", "--in", str(C / "rsa-2048-lineage-invalid-version")]) == 2
    assert not out.exists()
    assert not list(tmp_path.glob("*.tmp"))
