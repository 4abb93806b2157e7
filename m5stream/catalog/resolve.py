"""Turn a local source string into an ordered list of files.

Understands brace patterns (``shard-{00000..00127}.tar`` numeric ranges keeping the zero
padding, ``{train,val}`` alternatives, nested and repeated), shell globs with ``**``, single
files, and directories (walked recursively, hidden entries skipped). The order is the order of
the pattern's expansion, then lexicographic within each glob or directory, so it is the same
on every machine.
"""

from __future__ import annotations

import glob
import os
import re

from ..errors import ConfigError, NotFound

__all__ = ["expand_braces", "list_files", "list_local"]

_RANGE = re.compile(r"^(-?\d+)\.\.(-?\d+)(?:\.\.(\d+))?$")


def _find_group(pattern: str) -> tuple[int, int] | None:
    depth = 0
    start = -1
    for i, ch in enumerate(pattern):
        if ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}" and depth:
            depth -= 1
            if depth == 0:
                return start, i
    return None


def _split_top(body: str) -> list[str]:
    parts: list[str] = []
    cur: list[str] = []
    depth = 0
    for ch in body:
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        cur.append(ch)
    parts.append("".join(cur))
    return parts


def expand_braces(pattern: str) -> list[str]:
    """Expand ``{a..b}``/``{x,y}`` groups left to right; text without groups is returned as is."""
    group = _find_group(pattern)
    if group is None:
        return [pattern]
    start, end = group
    head, body, tail = pattern[:start], pattern[start + 1 : end], pattern[end + 1 :]
    m = _RANGE.match(body)
    if m:
        lo_s, hi_s, step_s = m.groups()
        lo, hi = int(lo_s), int(hi_s)
        step = int(step_s) if step_s else 1
        if step <= 0:
            raise ConfigError(f"brace range step must be positive in {pattern!r}")
        width = max(len(lo_s), len(hi_s)) if (lo_s.startswith("0") or hi_s.startswith("0")) else 0
        rng = range(lo, hi + 1, step) if lo <= hi else range(lo, hi - 1, -step)
        options = [str(v).zfill(width) if width else str(v) for v in rng]
    else:
        options = _split_top(body)
        if len(options) == 1:
            # "{x}" is not a group in shell syntax; keep the braces literally.
            return [head + "{" + body + "}" + p for p in expand_braces(tail)]
    out: list[str] = []
    for opt in options:
        out.extend(expand_braces(head + opt + tail))
    return out


def _walk(directory: str) -> list[str]:
    found = []
    for dirpath, dirnames, filenames in os.walk(directory, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith("."):
                found.append(os.path.join(dirpath, name))
    found.sort(key=lambda p: os.path.relpath(p, directory).split(os.sep))
    return found


def list_local(source: str) -> tuple[str, list[str]]:
    """Resolve ``source`` to ``(root, files)`` where each file is an absolute path under root."""
    patterns = expand_braces(os.path.expanduser(source))
    files: list[str] = []
    roots: list[str] = []
    for pat in patterns:
        if glob.has_magic(pat):
            hits = sorted(p for p in glob.glob(pat, recursive=True) if os.path.isfile(p))
            if not hits:
                raise NotFound("no file matches the pattern", uri=pat)
            files.extend(os.path.abspath(p) for p in hits)
            roots.append(os.path.abspath(_glob_base(pat)))
        elif os.path.isdir(pat):
            hits = _walk(pat)
            if not hits:
                raise NotFound("directory holds no files", uri=pat)
            files.extend(os.path.abspath(p) for p in hits)
            roots.append(os.path.abspath(pat))
        elif os.path.isfile(pat):
            files.append(os.path.abspath(pat))
            roots.append(os.path.dirname(os.path.abspath(pat)))
        else:
            raise NotFound("no such file or directory", uri=pat)
    root = os.path.commonpath(roots) if roots else ""
    if root and os.path.isfile(root):
        root = os.path.dirname(root)
    return root, files


def list_files(paths: list[str]) -> tuple[str, list[str]]:
    """``(root, files)`` of the files ``paths`` names, literally (a name may hold ``*`` or
    ``{``) and in that order, each made absolute; a missing one is NotFound naming it."""
    files: list[str] = []
    for p in paths:
        path = os.path.abspath(os.path.expanduser(p))
        if os.path.isdir(path):
            raise ConfigError(
                "a list source names files; this is a directory (pass it on its own)", uri=p
            )
        if not os.path.isfile(path):
            raise NotFound("no such file", uri=p)
        files.append(path)
    root = os.path.commonpath([os.path.dirname(f) for f in files]) if files else ""
    return root, files


def _glob_base(pattern: str) -> str:
    parts = pattern.split(os.sep)
    base = []
    for p in parts:
        if glob.has_magic(p):
            break
        base.append(p)
    joined = os.sep.join(base)
    if not joined:
        return "."
    return joined if os.path.isdir(joined) else os.path.dirname(joined) or "."
