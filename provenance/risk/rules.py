"""The rule catalogue: every rule id a detector can raise, with its title.

Ids are stable (policies and stored verdicts refer to them); titles are what a user
reads. Severity, confidence, verdict and weight are not here: they are policy
(``policies/*.toml``), validated against this catalogue on load.
"""

from __future__ import annotations

from typing import Final

RULES: Final[dict[str, str]] = {
    # identity: who signed it, under which name (counterfeits)
    "signature.not-verified": "APK signature does not verify",
    "signer.not-allowed": "Signer is not an allowed signer of the registered app",
    "name.impersonation": "Name of a registered app, under another package and signer",
    "package.unregistered": "Package is not registered on the platform",
    # the published release
    "release.unpublished": "This APK file is not a published release",
    "release.file-differs": "A published version number with different file content",
    "release.mismatch": "APK contradicts the release record published for this file",
    "version.regression": "Version is older than one shelved before",
    # declared capabilities (hot swaps)
    "permission.undeclared": "Permission requested beyond the published list",
    "feature.undeclared": "Hardware or software feature beyond the published list",
    "sdk.undeclared": "Third-party SDK not in the published list",
    "sdk.unlisted": "Third-party SDK present; the platform publishes no SDK list",
    "code.dynamic-loading": "Dynamic code loading in the app's own code",
    "code.hot-update-framework": "Hot-update or plugin framework",
    "code.runtime-report": "A terminal reported code loaded at run time",
    "drift.same-version": "Same version scanned before with different content",
    "drift.new-code-loading": "Code loading added since the previous version",
    # repackaging
    "repackage.content-shared": "Content of a registered app under another signer",
    "repackage.identical-resources": "Identical resources, different signer",
    "repackage.added-classes": "Classes added to a registered app's code",
    "repackage.added-permissions": "Permissions added to a registered app's manifest",
    "repackage.debuggable": "Debuggable build of a registered app that is not debuggable",
    "container.prefix-data": "Data before the first ZIP entry (Janus, CVE-2017-13156)",
}
