"""apksigner's password specs: ``pass:``, ``env:``, ``file:``, ``stdin`` and the prompt.

apksigner reads several passwords from one source one line at a time (``--ks-pass
file:p --key-pass file:p`` takes line 1, then line 2), so a :class:`PasswordRetriever`
keeps each file (and standard input) open across calls; create one per command run.

Like apksigner it returns *candidates* for each password: keytool historically
encrypted keystores with the console's byte encoding of a non-ASCII password upcast to
characters, so the verbatim password, its UTF-8 bytes upcast to characters and, with
``--pass-encoding``, its bytes in that encoding are all tried.

Passwords never appear in an exception message, a log line or a ``repr``: errors name
the password's *description* and source ("Keystore password for signer #1", a file
path, a variable name), never its value.
"""

from __future__ import annotations

import codecs
import getpass
import os
import sys
from typing import BinaryIO

from provenance.errors import KeystoreError

SPEC_STDIN = "stdin"

__all__ = ["SPEC_STDIN", "PasswordRetriever", "parse_password_spec", "password_candidates"]


def parse_password_spec(spec: str, description: str = "password") -> str:
    """Resolve one password spec to its password (the verbatim candidate).

    For a single password; to read several from one file or stdin use a shared
    :class:`PasswordRetriever`.
    """
    with PasswordRetriever() as retriever:
        return retriever.get_passwords(spec, description)[0]


def password_candidates(
    password: str, extra_encodings: tuple[str, ...] = (), raw: bytes | None = None
) -> list[str]:
    """The password and the variants apksigner also tries, without duplicates.

    Order follows apksigner: each ``--pass-encoding`` form (bytes upcast to chars), the
    verbatim password, its UTF-8 (JVM default charset) form upcast, then, for passwords
    read as bytes from a file or stdin, those raw bytes upcast.
    """
    out: list[str] = []

    def add(candidate: str) -> None:
        if candidate not in out:
            out.append(candidate)

    for enc in extra_encodings:
        add(_upcast(password.encode(enc, errors="replace")))
    add(password)
    add(_upcast(password.encode("utf-8", errors="replace")))
    if raw is not None:
        add(_upcast(raw))
    return out


def _upcast(data: bytes) -> str:
    """Each byte as one character, as Java's ``(char) (b & 0xff)``."""
    return data.decode("latin-1")


def check_encoding(name: str) -> str:
    """Validate a ``--pass-encoding`` name (``cp65001`` means UTF-8, as in apksigner)."""
    if name.lower() == "cp65001":
        return "utf-8"
    try:
        return codecs.lookup(name).name
    except LookupError:
        raise KeystoreError(
            f"unsupported password character encoding requested using --pass-encoding: {name}"
        ) from None


class PasswordRetriever:
    """Resolves password specs, keeping files and stdin open across calls."""

    def __init__(
        self,
        extra_encodings: tuple[str, ...] = (),
        *,
        stdin: BinaryIO | None = None,
        interactive: bool | None = None,
    ) -> None:
        self._extra = tuple(check_encoding(e) for e in extra_encodings)
        self._files: dict[str, BinaryIO] = {}
        self._stdin = stdin
        self._interactive = interactive
        self._closed = False

    def __enter__(self) -> PasswordRetriever:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<PasswordRetriever files={sorted(self._files)!r}>"

    def close(self) -> None:
        """Close the files opened by ``file:`` specs."""
        for f in self._files.values():
            f.close()
        self._files.clear()
        self._closed = True

    def get_passwords(
        self, spec: str, description: str, extra_encodings: tuple[str, ...] = ()
    ) -> list[str]:
        """All candidate forms of the password given by ``spec`` (at least one)."""
        if self._closed:
            raise RuntimeError("PasswordRetriever is closed")
        extra = self._extra + tuple(check_encoding(e) for e in extra_encodings)
        if spec.startswith("pass:"):
            return password_candidates(spec[len("pass:") :], extra)
        if spec.startswith("env:"):
            name = spec[len("env:") :]
            value = os.environ.get(name)
            if value is None:
                raise KeystoreError(
                    f"failed to read {description}: environment variable {name} is not set"
                )
            return password_candidates(value, extra)
        if spec.startswith("file:"):
            return self._from_file(spec[len("file:") :], description, extra)
        if spec == SPEC_STDIN:
            return self._from_stdin(description, extra)
        # Never echo the spec: a mistyped "pass;secret" or a bare password would leak.
        raise KeystoreError(
            f"unsupported password spec for {description}: "
            "use pass:<password>, env:<name>, file:<path> or stdin"
        )

    def _from_file(self, name: str, description: str, extra: tuple[str, ...]) -> list[str]:
        path = os.path.realpath(name)
        f = self._files.get(path)
        if f is None:
            try:
                f = open(path, "rb")  # noqa: SIM115 - kept open for the next line
            except OSError as e:
                raise KeystoreError(
                    f"failed to read {description}: cannot open {name}: {e.strerror}"
                ) from None
            self._files[path] = f
        raw = _read_line(f)
        if not raw:
            raise KeystoreError(f"failed to read {description}: end of file reached in {name}")
        return self._decoded(raw, extra)

    def _from_stdin(self, description: str, extra: tuple[str, ...]) -> list[str]:
        stdin = self._stdin
        interactive = self._interactive
        if stdin is None:
            stdin = sys.stdin.buffer if sys.stdin is not None else None
            if interactive is None:
                interactive = sys.stdin is not None and sys.stdin.isatty()
        if interactive:
            try:
                pw = getpass.getpass(f"{description}: ")
            except (EOFError, KeyboardInterrupt):
                raise KeystoreError(f"failed to read {description}: console closed") from None
            if not pw:
                raise KeystoreError(f"failed to read {description}: empty password")
            return password_candidates(pw, extra)
        if stdin is None:
            raise KeystoreError(f"failed to read {description}: no standard input")
        # apksigner prints the prompt even when reading plainly; stderr keeps stdout clean.
        print(f"{description}: ", file=sys.stderr, flush=True)
        raw = _read_line(stdin)
        if not raw:
            raise KeystoreError(f"failed to read {description}: standard input closed")
        return self._decoded(raw, extra)

    @staticmethod
    def _decoded(raw: bytes, extra: tuple[str, ...]) -> list[str]:
        # Text read from a file or stdin is in the JVM default charset (UTF-8).
        return password_candidates(raw.decode("utf-8", errors="replace"), extra, raw)


def _read_line(f: BinaryIO) -> bytes:
    """One line as apksigner reads it: ends at LF, CRLF or CR+EOF; a lone CR is kept."""
    line = f.readline()
    if line.endswith(b"\n"):
        line = line[:-1]
    if line.endswith(b"\r"):
        line = line[:-1]
    return line
