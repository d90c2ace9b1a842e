"""Reference tools for the inspection tests: Debian's ``dexdump`` output, parsed."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path

DEXDUMP = shutil.which("dexdump")

_CLASS = re.compile(r"^  Class descriptor  : '(.*)'$", re.M)
_METHOD_HEAD = re.compile(r"^    #\d+ +: \(in (.*)\)$")
_INSN = re.compile(r"^[0-9a-f]{6}: ((?:[0-9a-f]{4} )+)(?:\.\.\. )? *\|[0-9a-f]{4}: (\S+)")
_CALL = re.compile(r"}, (L[^ ]*?;|\[[^ ]*?)\.([^:]+):(\([^ ]*) // method@([0-9a-f]+)")


@cache
def dexdump(data: bytes) -> str:
    """``dexdump -d`` of these bytes (cached per content)."""
    assert DEXDUMP is not None
    with tempfile.TemporaryDirectory(prefix="apkprov-dexdump-") as tmp:
        path = Path(tmp) / "classes.dex"
        path.write_bytes(data)
        out = subprocess.run(
            [DEXDUMP, "-d", str(path)], capture_output=True, timeout=120, check=False
        )
    assert out.returncode == 0, out.stderr.decode(errors="replace")[-2000:]
    return out.stdout.decode("utf-8", "replace")


def dexdump_refs(
    text: str,
) -> tuple[
    list[str], dict[tuple[str, str, str], list[tuple[str, int]]], dict[int, tuple[str, str, str]]
]:
    """Classes, per-method (kind, index) references, and method@ index → (class, name, proto)."""
    classes = _CLASS.findall(text)
    refs: dict[tuple[str, str, str], list[tuple[str, int]]] = {}
    targets: dict[int, tuple[str, str, str]] = {}
    current: tuple[str, str, str] | None = None
    in_methods = False
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith(("  Direct methods", "  Virtual methods")):
            in_methods = True
        elif line.startswith(("  Static fields", "  Instance fields", "Class #")):
            in_methods = False
            current = None
        m = _METHOD_HEAD.match(line)
        if m and in_methods and i + 2 < len(lines):
            name = lines[i + 1].split("'", 1)[1].rsplit("'", 1)[0]
            proto = lines[i + 2].split("'", 1)[1].rsplit("'", 1)[0]
            current = (m.group(1), name, proto)
            refs.setdefault(current, [])
            i += 3
            continue
        d = _INSN.match(line)
        if current is not None and d:
            # Operands from the code units themselves: string literals may hold newlines.
            units = [int(u[2:] + u[:2], 16) for u in d.group(1).split()]
            op = d.group(2)
            if op.startswith("invoke-") and not op.startswith("invoke-custom"):
                refs[current].append(("method", units[1]))
            elif op == "const-string":
                refs[current].append(("string", units[1]))
            elif op == "const-string/jumbo":
                refs[current].append(("string", units[1] | units[2] << 16))
            c = _CALL.search(line)
            if c:
                targets[int(c.group(4), 16)] = (c.group(1), c.group(2), c.group(3))
        i += 1
    return classes, refs, targets
