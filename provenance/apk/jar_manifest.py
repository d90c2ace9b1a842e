"""JAR manifest and signature-file (.SF) parsing, with the reference's exact byte spans.

A v1 signature digests the manifest's sections over their raw bytes, so a section
here remembers where it starts and how many bytes it spans, line terminators and the
closing blank line included, exactly as apksig's ``ManifestParser`` counts them.
The line rules are the reference's, not the JAR specification's: CR, LF and CR LF
all end a line, a line starting with one space continues the previous attribute
(whatever its length), an empty line ends a section, and an attribute's name is
separated from its value by the first ``": "`` (so names may keep trailing spaces
and values leading ones). Attribute names compare case-insensitively, per character,
the way ``String.equalsIgnoreCase`` does.

Parsing is linear in the input: lines are located with one regular-expression
search each and continuation lines are joined once. The number of sections and of
attributes per file is capped (far above what a ZIP's 65535 entries can need) so a
hostile file cannot make the parser build millions of objects.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_EOL = re.compile(rb"\r\n?|\n")

#: Most sections one file may have (a manifest needs one per entry, at most 65535).
MAX_SECTIONS = 300_000
#: Most attributes one file may have, over all its sections.
MAX_ATTRIBUTES = 1_000_000


class ManifestLimitError(ValueError):
    """The file has more sections or attributes than :data:`MAX_SECTIONS`/:data:`MAX_ATTRIBUTES`."""


def _simple_upper(c: str) -> str:
    u = c.upper()
    return u if len(u) == 1 else c


def _simple_lower(c: str) -> str:
    if c == "\u0130":  # Java maps capital dotted I to plain 'i' (simple case mapping)
        return "i"
    low = c.lower()
    return low if len(low) == 1 else c


def equals_ignore_case(a: str, b: str) -> bool:
    """``String.equalsIgnoreCase``: same length, each character equal up to case."""
    if len(a) != len(b):
        return False
    if a == b:
        return True
    if a.isascii() and b.isascii():
        return a.lower() == b.lower()
    for x, y in zip(a, b, strict=True):
        if x == y:
            continue
        ux, uy = _simple_upper(x), _simple_upper(y)
        if ux == uy:
            continue
        if _simple_lower(ux) == _simple_lower(uy):
            continue
        return False
    return True


@dataclass(frozen=True, slots=True)
class Attribute:
    """One ``Name: value`` pair, continuation lines already joined."""

    name: str
    value: str


@dataclass(frozen=True, slots=True)
class Section:
    """A main or individual section and the exact bytes it occupies in the file."""

    start: int
    size: int
    attributes: tuple[Attribute, ...]
    name: str | None = field(init=False)

    def __post_init__(self) -> None:
        first = self.attributes[0] if self.attributes else None
        named = first is not None and equals_ignore_case(first.name, "Name")
        object.__setattr__(self, "name", first.value if named and first else None)

    @property
    def end(self) -> int:
        """One past the section's last byte."""
        return self.start + self.size

    def get(self, name: str) -> str | None:
        """Value of the first attribute with this name (case-insensitive), or None."""
        for attr in self.attributes:
            if equals_ignore_case(attr.name, name):
                return attr.value
        return None


def _parse_attribute(raw: bytes) -> Attribute:
    text = raw.decode("utf-8", "replace")
    i = text.find(": ")
    if i < 0:
        return Attribute(text, "")
    return Attribute(text[:i], text[i + 2 :])


class ManifestParser:
    """Reads sections one at a time from a manifest or signature file."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._offset = 0
        self._end = len(data)
        # A line read ahead while looking for continuation lines: b"" means "the
        # section ended", None means nothing is buffered.
        self._buffered: bytes | None = None
        self._sections = 0
        self._attributes = 0

    def read_all_sections(self) -> list[Section]:
        """All remaining sections."""
        out: list[Section] = []
        while (s := self.read_section()) is not None:
            out.append(s)
        return out

    def read_section(self) -> Section | None:
        """The next section, or None at the end of input; blank lines before it are skipped.

        Raises :class:`ManifestLimitError` past the section or attribute caps.
        """
        while True:
            start = self._offset
            raw = self._read_attribute()
            if raw is None:
                return None
            if raw:
                break
        self._sections += 1
        if self._sections > MAX_SECTIONS:
            raise ManifestLimitError(f"more than {MAX_SECTIONS} sections")
        attrs = [_parse_attribute(raw)]
        while True:
            raw = self._read_attribute()
            if not raw:  # None (end of input) or b"" (end of section)
                break
            attrs.append(_parse_attribute(raw))
            if self._attributes + len(attrs) > MAX_ATTRIBUTES:
                raise ManifestLimitError(f"more than {MAX_ATTRIBUTES} attributes")
        self._attributes += len(attrs)
        return Section(start, self._offset - start, tuple(attrs))

    def _read_line(self) -> bytes | None:
        if self._offset >= self._end:
            return None
        start = self._offset
        m = _EOL.search(self._data, start, self._end)
        if m is None:
            line_end = next_start = self._end
        else:
            line_end, next_start = m.start(), m.end()
        self._offset = next_start
        return self._data[start:line_end]

    def _read_attribute(self) -> bytes | None:
        """Next attribute's bytes, b"" at the end of a section, None at the end of input."""
        if self._buffered is not None and not self._buffered:
            self._buffered = None
            return b""
        line = self._read_line()
        if line is None:
            pending, self._buffered = self._buffered, None
            return pending
        if not line:
            if self._buffered is not None:
                pending, self._buffered = self._buffered, b""
                return pending
            return b""
        if self._buffered is None:
            parts = [line]
        else:
            if line[0] != 0x20:
                pending, self._buffered = self._buffered, line
                return pending
            parts = [self._buffered, line[1:]]
            self._buffered = None
        while True:
            line = self._read_line()
            if line is None:
                return b"".join(parts)
            if not line:
                self._buffered = b""
                return b"".join(parts)
            if line[0] == 0x20:
                parts.append(line[1:])
            else:
                self._buffered = line
                return b"".join(parts)


def parse(data: bytes) -> tuple[Section | None, list[Section]]:
    """The main section (None for empty input) and the individual sections."""
    parser = ManifestParser(data)
    main = parser.read_section()
    return main, parser.read_all_sections()
