"""`apkprov serve` options for Sigstore build provenance."""

from __future__ import annotations

import argparse

import pytest
from corpus import shared_dir

from provenance.cli.serve import _sigstore_policy
from provenance.errors import InputError


def _args(**kw: object) -> argparse.Namespace:
    base: dict[str, object] = {
        "sigstore_trusted_root": None,
        "build_identity": [],
        "require_build_provenance": False,
    }
    base.update(kw)
    return argparse.Namespace(**base)


def test_not_configured_means_no_policy() -> None:
    assert _sigstore_policy(_args()) is None


@pytest.mark.parametrize(
    "kw",
    [
        {"build_identity": ["https://issuer=me@example.com"]},
        {"require_build_provenance": True},
        {"sigstore_trusted_root": "root.json"},
        {"sigstore_trusted_root": "root.json", "build_identity": ["no-equals-sign"]},
        {"sigstore_trusted_root": "root.json", "build_identity": ["=missing-issuer"]},
    ],
)
def test_incomplete_configuration_is_a_usage_error(kw: dict[str, object]) -> None:
    with pytest.raises(InputError):
        _sigstore_policy(_args(**kw))


def test_policy_from_options() -> None:
    root = shared_dir() / "corpus" / "tlog" / "sigstore" / "staging_trusted_root.json"
    policy = _sigstore_policy(
        _args(
            sigstore_trusted_root=str(root),
            build_identity=["https://token.actions.githubusercontent.com=https://github.com/x"],
            require_build_provenance=True,
        )
    )
    assert policy is not None
    assert policy.require
    assert policy.identities[0].issuer == "https://token.actions.githubusercontent.com"
    assert policy.identities[0].identity == "https://github.com/x"
    assert str(policy.trusted_root) == str(root)
