"""Run Debian's ``apksigner`` (31.0.2) as the reference, for tests and benchmarks.

Debian's ``apksigner`` script runs ``java -jar apksigner.jar``, which ignores any
``-cp``, so the BouncyCastle provider it needs for RSA-PSS cannot be added through it.
This module therefore starts the JVM itself, exactly as the script does (``-Xmx1024M``),
plus:

* ``-cp apksigner.jar:apksig.jar:bcprov.jar`` and the main class
  ``com.android.apksigner.ApkSignerTool``;
* ``-Djava.security.properties=<file>`` with a file (cached under
  ``$XDG_CACHE_HOME/apkprov`` or ``~/.cache/apkprov``) registering BouncyCastle as the
  lowest-priority provider, ``security.provider.13``;
* ``-Dorg.bouncycastle.rsa.max_size=16384`` for the corpus's 16384-bit RSA keys.

With that it agrees with ``expected_cases.tsv``'s ``cli_deb31`` column (see
``/work/shared/corpus/apksig/README.md``).

Usage::

    import reference
    if not reference.available():
        pytest.skip(reference.unavailable_reason())
    res = reference.verify(apk, min_sdk=24)
    assert res.verified and res.schemes == ["v2"]

Environment overrides: ``APKPROV_JAVA`` (the ``java`` binary), ``APKPROV_JAVA_LIBDIR``
(folder holding ``apksigner.jar``, ``apksig.jar``, ``bcprov.jar``; default
``/usr/share/java``), ``APKPROV_SHARED`` (the shared folder, default ``../shared`` next
to the repository; used to name issues from ``issue_formats.json``).
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "ApksignerError",
    "ApksignerUnavailable",
    "ReferenceIssue",
    "ReferenceResult",
    "SignResult",
    "Signer",
    "available",
    "command",
    "corpus_dir",
    "issue_formats",
    "name_issue",
    "shared_dir",
    "sign",
    "unavailable_reason",
    "verify",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
MAIN_CLASS = "com.android.apksigner.ApkSignerTool"
JARS = ("apksigner.jar", "apksig.jar", "bcprov.jar")
#: What /usr/bin/apksigner passes by default; kept so timings and memory match it.
DEFAULT_JVM_OPTIONS: tuple[str, ...] = ("-Xmx1024M",)
SECURITY_OVERRIDE = (
    "# Written by apk-provenance tests/reference.py: BouncyCastle for RSA-PSS.\n"
    "security.provider.13=org.bouncycastle.jce.provider.BouncyCastleProvider\n"
)
DEFAULT_TIMEOUT = 600.0

SchemeName = str  # "v1", "v2", "v3", "v3.1", "v4"


class ApksignerUnavailable(RuntimeError):
    """Java or one of the jars is missing; the message says which and how to install."""


class ApksignerError(RuntimeError):
    """apksigner ran but did not do what was asked (e.g. ``sign`` exited non-zero)."""

    def __init__(self, message: str, *, rc: int, stdout: str, stderr: str) -> None:
        super().__init__(message)
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr


# --------------------------------------------------------------------------- locating


def shared_dir() -> Path:
    """The shared folder: ``$APKPROV_SHARED`` or ``<repo>/../shared``."""
    env = os.environ.get("APKPROV_SHARED")
    return Path(env) if env else REPO_ROOT.parent / "shared"


def corpus_dir() -> Path:
    """The apksig conformance corpus (``<shared>/corpus/apksig``)."""
    return shared_dir() / "corpus" / "apksig"


def _libdir() -> Path:
    return Path(os.environ.get("APKPROV_JAVA_LIBDIR", "/usr/share/java"))


def _java() -> str | None:
    env = os.environ.get("APKPROV_JAVA")
    if env:
        return env if Path(env).is_file() else shutil.which(env)
    return shutil.which("java")


def unavailable_reason() -> str | None:
    """Why the reference cannot run here, or None when it can."""
    if _java() is None:
        return "java not found (apt-get install apksigner pulls in a JRE; or set APKPROV_JAVA)"
    missing = [j for j in JARS if not (_libdir() / j).is_file()]
    if missing:
        return (
            f"{', '.join(missing)} not found in {_libdir()} "
            "(apt-get install apksigner libbcprov-java; or set APKPROV_JAVA_LIBDIR)"
        )
    return None


def available() -> bool:
    """True when Debian's apksigner and BouncyCastle can be run."""
    return unavailable_reason() is None


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "apkprov"


def _write_if_different(path: Path, content: str) -> bool:
    try:
        if path.is_file() and path.read_text(encoding="utf-8") == content:
            return True
        path.parent.mkdir(parents=True, exist_ok=True)
        # Atomic: parallel test workers may race here.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".security-", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(content)
        os.replace(tmp, path)
        return True
    except OSError:
        return False


@functools.cache
def security_file() -> Path:
    """The ``java.security`` override adding BouncyCastle (written once, cached)."""
    for folder in (_cache_dir(), Path(tempfile.gettempdir()) / f"apkprov-{os.getuid()}"):
        path = folder / "apksigner-bouncycastle.security"
        if _write_if_different(path, SECURITY_OVERRIDE):
            return path
    raise ApksignerUnavailable("cannot write the java.security override file anywhere")


def command(jvm_options: Sequence[str] = DEFAULT_JVM_OPTIONS) -> list[str]:
    """The argv prefix that runs apksigner with BouncyCastle; append e.g. ``verify ...``."""
    reason = unavailable_reason()
    if reason is not None:
        raise ApksignerUnavailable(reason)
    java = _java()
    assert java is not None
    classpath = os.pathsep.join(str(_libdir() / j) for j in JARS)
    return [
        java,
        *jvm_options,
        f"-Djava.security.properties={security_file()}",
        "-Dorg.bouncycastle.rsa.max_size=16384",
        "-cp",
        classpath,
        MAIN_CLASS,
    ]


# ------------------------------------------------------------------- naming issues


@functools.cache
def issue_formats() -> dict[str, str]:
    """apksig issue name -> Java message format, from the corpus (empty if absent)."""
    path = corpus_dir() / "issue_formats.json"
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


_JAVA_SPEC = re.compile(r"%(?:(\d+)\$)?([-#+ 0,(]*)(\d+)?(?:\.\d+)?([a-zA-Z%])")


def _format_to_regex(fmt: str) -> re.Pattern[str]:
    out: list[str] = []
    pos = 0
    for m in _JAVA_SPEC.finditer(fmt):
        out.append(re.escape(fmt[pos : m.start()]))
        flags, conv = m.group(2), m.group(4)
        if conv == "%":
            out.append("%")
        elif conv == "n":
            out.append(r"\n")
        elif conv == "d":
            out.append(r"-?\d+")
        elif conv in "xX":
            out.append(("0[xX]" if "#" in flags else "") + "[0-9a-fA-F]+")
        else:  # s, S, b and anything else: free text
            out.append(".*?")
        pos = m.end()
    out.append(re.escape(fmt[pos:]))
    return re.compile("".join(out), re.DOTALL)


@functools.cache
def _issue_patterns() -> tuple[tuple[str, re.Pattern[str], int], ...]:
    pats = []
    for name, fmt in issue_formats().items():
        literal = len(_JAVA_SPEC.sub("", fmt))
        pats.append((name, _format_to_regex(fmt), literal))
    return tuple(pats)


_SCOPE_PREFIX = {
    "jar": ("JAR_SIG_",),
    "v2": ("V2_SIG_",),
    "v3": ("V3_SIG_", "V31_", "V3_"),
    "v4": ("V4_SIG_",),
    "stamp": ("SOURCE_STAMP_",),
}


def name_issue(message: str, scope: str | None = None) -> str | None:
    """The apksig issue name whose message format matches ``message``, if any.

    ``scope`` ("jar", "v2", "v3", "v4", "stamp" or None) breaks ties between formats
    shared by several schemes (e.g. "No certificates" is V2_SIG_ and V3_SIG_). Among the
    remaining matches, the format with the most literal text wins.
    """
    matches = [(lit, name) for name, rx, lit in _issue_patterns() if rx.fullmatch(message)]
    if not matches:
        return None
    if scope in _SCOPE_PREFIX:
        scoped = [m for m in matches if m[1].startswith(_SCOPE_PREFIX[scope])]
        matches = scoped or matches
    matches.sort(key=lambda m: (-m[0], m[1]))
    return matches[0][1]


# ------------------------------------------------------------------ results


@dataclass(frozen=True)
class ReferenceIssue:
    """One ``ERROR:``/``WARNING:`` line of apksigner's output."""

    level: Literal["error", "warning"]
    message: str
    #: Who reported it: ``None`` (the APK), ``"JAR signer CERT.RSA"``,
    #: ``"APK Signature Scheme v2 signer #1"``, ``"SourceStamp"`` ...
    where: str | None = None
    #: The apksig issue name matched from ``issue_formats.json`` (None if no match).
    issue: str | None = None

    def __str__(self) -> str:
        prefix = f"{self.where}: " if self.where else ""
        return f"{self.level.upper()}: {prefix}{self.message}"


@dataclass(frozen=True)
class ReferenceResult:
    """What one ``apksigner verify`` run said."""

    #: The verdict line: "Verifies" (True) or "DOES NOT VERIFY"/crash (False).
    verified: bool
    #: Schemes reported as verified (needs ``-v``), e.g. ``["v1", "v2"]``.
    schemes: list[SchemeName]
    errors: list[ReferenceIssue]
    warnings: list[ReferenceIssue]
    #: "Verified for SourceStamp: true" (None when not printed).
    source_stamp_verified: bool | None
    #: ``"com.android.apksig.apk.ApkFormatException: Malformed APK: ..."`` when Java threw.
    exception: str | None
    rc: int
    stdout: str
    stderr: str
    argv: list[str] = field(repr=False)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Verified and apksigner exited 0 (``--print-certs`` can crash after the verdict)."""
        return self.verified and self.rc == 0

    @property
    def error_issues(self) -> list[str]:
        """Issue names of the errors, in order, unnamed ones as ``?<message>``."""
        return [e.issue or f"?{e.message}" for e in self.errors]

    @property
    def warning_issues(self) -> list[str]:
        return [w.issue or f"?{w.message}" for w in self.warnings]

    @property
    def is_format_error(self) -> bool:
        """apksig gave up on a malformed APK (what ``ApkFormatError`` mirrors)."""
        return self.exception is not None and "ApkFormatException" in self.exception

    def summary(self) -> str:
        """One line in the style of ``expected_cases.tsv``'s ``cli_deb31`` column."""
        verdict = "verifies" if self.verified else "fails"
        parts = [f"rc={self.rc}", verdict]
        if self.verified:
            parts.append(f"[{','.join(self.schemes)}]")
        elif self.errors:
            parts.append(",".join(dict.fromkeys(self.error_issues)))
        if self.exception:
            parts.append(f'Exception in thread "main" {self.exception}')
        return " ".join(parts)


_SCHEME_LINE = re.compile(r"^Verified using (v[\d.]+) scheme \(.*\): (true|false)$")
_STAMP_LINE = re.compile(r"^Verified for SourceStamp: (true|false)$")
_ISSUE_LINE = re.compile(
    r"^(ERROR|WARNING): "
    r"(?:(JAR signer [^:]*|APK Signature Scheme v[\d.]+ (?:signer #\d+|stamp signer)"
    r"|SourceStamp): )?(.*)$"
)
_EXCEPTION_LINE = re.compile(r'^Exception in thread "[^"]*" (.*)$')


def _scope(where: str | None) -> str | None:
    if where is None:
        return None
    if where.startswith("JAR signer"):
        return "jar"
    if where.startswith("SourceStamp"):
        return "stamp"
    m = re.match(r"APK Signature Scheme (v[\d.]+)", where)
    if m:
        return {"v3.1": "v3"}.get(m.group(1), m.group(1))
    return None


def parse_verify_output(
    stdout: str, stderr: str, rc: int, argv: Sequence[str] = (), seconds: float = 0.0
) -> ReferenceResult:
    """Parse ``apksigner verify [-v]`` output (both streams) into a result."""
    verified = False
    schemes: list[str] = []
    errors: list[ReferenceIssue] = []
    warnings: list[ReferenceIssue] = []
    stamp: bool | None = None
    exception: str | None = None
    for line in (stdout + "\n" + stderr).splitlines():
        line = line.rstrip("\r")
        if line == "Verifies":
            verified = True
        elif m := _SCHEME_LINE.match(line):
            if m.group(2) == "true":
                schemes.append(m.group(1))
        elif m := _STAMP_LINE.match(line):
            stamp = m.group(1) == "true"
        elif m := _ISSUE_LINE.match(line):
            level: Literal["error", "warning"] = "error" if m.group(1) == "ERROR" else "warning"
            where, message = m.group(2), m.group(3)
            issue = ReferenceIssue(level, message, where, name_issue(message, _scope(where)))
            (errors if level == "error" else warnings).append(issue)
        elif (m := _EXCEPTION_LINE.match(line)) and exception is None:
            exception = m.group(1)
    return ReferenceResult(
        verified=verified,
        schemes=schemes,
        errors=errors,
        warnings=warnings,
        source_stamp_verified=stamp,
        exception=exception,
        rc=rc,
        stdout=stdout,
        stderr=stderr,
        argv=list(argv),
        seconds=seconds,
    )


# ------------------------------------------------------------------ running


def _run(
    args: Sequence[str], timeout: float, jvm_options: Sequence[str]
) -> tuple[subprocess.CompletedProcess[str], list[str], float]:
    argv = [*command(jvm_options), *args]
    start = time.perf_counter()
    proc = subprocess.run(
        argv,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=timeout,
        check=False,
    )
    return proc, argv, time.perf_counter() - start


def verify_args(
    apks: Sequence[str | os.PathLike[str]],
    *,
    min_sdk: int | None = None,
    max_sdk: int | None = None,
    v4_signature_file: str | os.PathLike[str] | None = None,
    print_certs: bool = False,
    verbose: bool = True,
) -> list[str]:
    """The ``verify ...`` arguments (after :func:`command`)."""
    args = ["verify"]
    if verbose:
        args.append("-v")
    if print_certs:
        args.append("--print-certs")
    if min_sdk is not None:
        args += ["--min-sdk-version", str(min_sdk)]
    if max_sdk is not None:
        args += ["--max-sdk-version", str(max_sdk)]
    if v4_signature_file is not None:
        args += ["--v4-signature-file", os.fspath(v4_signature_file)]
    for apk in apks:
        path = os.fspath(apk)
        args.append(os.path.join(".", path) if path.startswith("-") else path)
    return args


def verify(
    apk: str | os.PathLike[str],
    *,
    min_sdk: int | None = None,
    max_sdk: int | None = None,
    v4_signature_file: str | os.PathLike[str] | None = None,
    print_certs: bool = False,
    verbose: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
    jvm_options: Sequence[str] = DEFAULT_JVM_OPTIONS,
) -> ReferenceResult:
    """Run ``apksigner verify -v`` on one APK and parse what it says.

    Never raises for a failed verification or a malformed APK (see ``.exception``);
    raises :class:`ApksignerUnavailable` when the tool is missing and
    :class:`subprocess.TimeoutExpired` on a hang.
    """
    if not Path(apk).is_file():
        raise FileNotFoundError(f"APK not found: {apk}")
    args = verify_args(
        [apk],
        min_sdk=min_sdk,
        max_sdk=max_sdk,
        v4_signature_file=v4_signature_file,
        print_certs=print_certs,
        verbose=verbose,
    )
    proc, argv, seconds = _run(args, timeout, jvm_options)
    return parse_verify_output(proc.stdout, proc.stderr, proc.returncode, argv, seconds)


@dataclass(frozen=True)
class Signer:
    """One signer for :func:`sign`: PKCS#8 DER key and PEM/DER certificate."""

    key: str | os.PathLike[str]
    cert: str | os.PathLike[str]
    #: v1 signer name (``--v1-signer-name``): the META-INF/<NAME>.SF basename.
    v1_name: str | None = None
    #: Per-signer ``--lineage`` (for multi-signer v3 rotation).
    lineage: str | os.PathLike[str] | None = None

    def args(self) -> list[str]:
        out = ["--key", os.fspath(self.key), "--cert", os.fspath(self.cert)]
        if self.v1_name is not None:
            out += ["--v1-signer-name", self.v1_name]
        if self.lineage is not None:
            out += ["--lineage", os.fspath(self.lineage)]
        return out


@dataclass(frozen=True)
class SignResult:
    out: Path
    rc: int
    stdout: str
    stderr: str
    argv: list[str] = field(repr=False)
    seconds: float = 0.0


def _bool(v: bool) -> str:
    return "true" if v else "false"


def sign(
    in_apk: str | os.PathLike[str],
    out_apk: str | os.PathLike[str],
    *,
    key: str | os.PathLike[str],
    cert: str | os.PathLike[str],
    v1: bool | None = None,
    v2: bool | None = None,
    v3: bool | None = None,
    v4: bool | Literal["only"] | None = None,
    lineage: str | os.PathLike[str] | None = None,
    min_sdk: int | None = None,
    max_sdk: int | None = None,
    alignment_preserved: bool | None = None,
    v1_signer_name: str | None = None,
    next_signers: Sequence[Signer] = (),
    extra_args: Sequence[str] = (),
    timeout: float = DEFAULT_TIMEOUT,
    jvm_options: Sequence[str] = DEFAULT_JVM_OPTIONS,
) -> SignResult:
    """Run ``apksigner sign`` with a PKCS#8 key and certificate; raise on failure.

    ``None`` for a flag leaves apksigner's default (v1/v2/v3 decided by minSdk; v4 on
    when ``--out`` is given, writing ``<out>.idsig``). ``lineage`` is the top-level
    ``--lineage`` (rotation from an older signer to ``key``); ``next_signers`` adds
    ``--next-signer`` blocks. Debian's 31.0.2 has no ``--alignment-preserved`` (it
    aligns stored entries to 4 bytes, native libraries to 4 KiB, as the goldens expect):
    leave ``alignment_preserved`` None for it. Raises :class:`ApksignerError` with
    apksigner's output when it exits non-zero or writes no output.
    """
    if not Path(in_apk).is_file():
        raise FileNotFoundError(f"input APK not found: {in_apk}")
    for p in (key, cert, lineage, *(s.key for s in next_signers), *(s.cert for s in next_signers)):
        if p is not None and not Path(p).is_file():
            raise FileNotFoundError(f"signing input not found: {p}")
    args = ["sign"]
    for flag, value in (
        ("--v1-signing-enabled", v1),
        ("--v2-signing-enabled", v2),
        ("--v3-signing-enabled", v3),
    ):
        if value is not None:
            args += [flag, _bool(value)]
    if v4 is not None:
        args += ["--v4-signing-enabled", "only" if v4 == "only" else _bool(bool(v4))]
    if alignment_preserved is not None:
        args += ["--alignment-preserved", _bool(alignment_preserved)]
    if min_sdk is not None:
        args += ["--min-sdk-version", str(min_sdk)]
    if max_sdk is not None:
        args += ["--max-sdk-version", str(max_sdk)]
    if lineage is not None:
        args += ["--lineage", os.fspath(lineage)]
    args += Signer(key, cert, v1_signer_name).args()
    for signer in next_signers:
        args += ["--next-signer", *signer.args()]
    args += list(extra_args)
    out = Path(out_apk)
    args += ["--out", os.fspath(out), os.fspath(in_apk)]
    proc, argv, seconds = _run(args, timeout, jvm_options)
    if proc.returncode != 0 or not out.is_file():
        detail = (proc.stderr.strip() or proc.stdout.strip() or "(no output)").splitlines()
        raise ApksignerError(
            f"apksigner sign failed (rc={proc.returncode}): " + " | ".join(detail[:5]),
            rc=proc.returncode,
            stdout=proc.stdout,
            stderr=proc.stderr,
        )
    return SignResult(out, proc.returncode, proc.stdout, proc.stderr, argv, seconds)


def version() -> str:
    """``apksigner --version`` (e.g. ``"0.9"`` for Debian's 31.0.2)."""
    proc, _, _ = _run(["--version"], 60.0, DEFAULT_JVM_OPTIONS)
    return proc.stdout.strip()


# ------------------------------------------------------------- self-check


@dataclass(frozen=True)
class CorpusCase:
    """One ``expected_cases.tsv`` row with a ``cli_deb31`` observation."""

    case_id: str
    file: str
    min_sdk: int | None
    max_sdk: int | None
    v4_file: str | None
    cli_deb31: str

    def expectation(self) -> str:
        """The ``cli_deb31`` text that applies with BouncyCastle installed."""
        text = self.cli_deb31
        return text.split(" | with BC: ", 1)[1] if " | with BC: " in text else text


def corpus_cases() -> list[CorpusCase]:
    """Rows of ``expected_cases.tsv`` that say what Debian's apksigner CLI reported."""
    import csv

    path = corpus_dir() / "expected_cases.tsv"
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    return [
        CorpusCase(
            case_id=r["case_id"],
            file=r["file"],
            min_sdk=int(r["min_sdk"]) if r["min_sdk"] else None,
            max_sdk=int(r["max_sdk"]) if r["max_sdk"] else None,
            v4_file=r["v4_file"] or None,
            cli_deb31=r["cli_deb31"],
        )
        for r in rows
        if r["cli_deb31"].startswith("rc=")
    ]


_COLUMN = re.compile(r"^rc=(\d+) (verifies|fails)(?: \[([^\]]*)\])?(?: (.*))?$", re.DOTALL)


def agrees(result: ReferenceResult, expectation: str) -> str | None:
    """None when ``result`` matches a ``cli_deb31`` text, else what differs."""
    m = _COLUMN.match(expectation)
    if not m:
        return f"cannot parse expectation {expectation!r}"
    rc, verdict, schemes, rest = int(m.group(1)), m.group(2), m.group(3), m.group(4) or ""
    problems = []
    if result.rc != rc:
        problems.append(f"rc {result.rc} != {rc}")
    if result.verified != (verdict == "verifies"):
        problems.append(f"verdict {'verifies' if result.verified else 'fails'} != {verdict}")
    if schemes is not None and result.schemes != [s for s in schemes.split(",") if s]:
        problems.append(f"schemes {result.schemes} != [{schemes}]")
    marker = 'Exception in thread "main" '
    if marker in rest:
        want = rest.split(marker, 1)[1]
        if not (result.exception or "").startswith(want):
            problems.append(f"exception {result.exception!r} does not start with {want!r}")
    elif rest and verdict == "fails":
        want_issues = set(rest.split(","))
        got = set(result.error_issues)
        if got != want_issues:
            problems.append(f"errors {sorted(got)} != {sorted(want_issues)}")
    return "; ".join(problems) or None


def _main(argv: Sequence[str] | None = None) -> int:
    import argparse
    from concurrent.futures import ThreadPoolExecutor

    ap = argparse.ArgumentParser(
        description="Check this wrapper against expected_cases.tsv's cli_deb31 column."
    )
    ap.add_argument("--limit", type=int, default=12, help="cases to run (0 = all)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--print-certs", action="store_true", help="pass --print-certs too")
    ns = ap.parse_args(argv)
    reason = unavailable_reason()
    if reason:
        print(f"apksigner unavailable: {reason}")
        return 2
    cases = corpus_cases()
    if ns.limit:
        step = max(1, len(cases) // ns.limit)
        cases = cases[::step][: ns.limit]
    base = corpus_dir()

    def run(case: CorpusCase) -> tuple[CorpusCase, ReferenceResult]:
        res = verify(
            base / case.file,
            min_sdk=case.min_sdk,
            max_sdk=case.max_sdk,
            v4_signature_file=base / case.v4_file if case.v4_file else None,
            print_certs=ns.print_certs,
        )
        return case, res

    bad = 0
    with ThreadPoolExecutor(max_workers=ns.jobs) as pool:
        for case, res in pool.map(run, cases):
            diff = agrees(res, case.expectation())
            status = "ok  " if diff is None else "DIFF"
            bad += diff is not None
            print(f"{status} {case.case_id} {case.file} ({res.seconds:.2f}s) {res.summary()}")
            if diff:
                print(f"     {diff}")
    print(f"{len(cases) - bad} agree, {bad} differ, of {len(cases)}")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(_main())
