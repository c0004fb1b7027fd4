"""The persistent LaTeX cache: SVGs of whole TeX documents, shared by every job, daemon and CLI.

Only trusted typesetting fills it (`watcher.texservice`: LaTeX and dvisvgm run by
watcher on exactly the document the key names, never inside a scene's process), so an
entry is what that document typesets to, whoever asked for it first.

    <folders.cache>/tex/<key[:2]>/<key>.svg     key = sha256 of the document, the compiler,
                                                the output format and the TeX and dvisvgm versions

Entries are written to a temp name and renamed (several processes may share the folder),
checked when read (an entry that does not parse as SVG is dropped, and typeset again),
and their mtime is the last use: past `cache.max_mb`, the least recently used go first.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import secrets
import shutil
import subprocess
import threading
import xml.etree.ElementTree as ET
from pathlib import Path

log = logging.getLogger(__name__)

MAX_ENTRY_BYTES = 4 << 20  # an SVG of one formula is a few KB; a page of text some 100 KB
EVICT_EVERY = 64  # writes between two size checks of the whole folder
_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


@functools.cache
def tool_versions() -> str:
    """The first line of `latex --version` and `dvisvgm --version`: a new TeX is a new cache."""
    lines = []
    for tool in ("latex", "dvisvgm"):
        try:
            out = subprocess.run([tool, "--version"], capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.TimeoutExpired):
            out = "missing"
        lines.append((out.splitlines() or ["?"])[0])
    return "; ".join(lines)


def cache_key(document: str, compiler: str | list[str], output_format: str) -> str:
    doc = {"tex": document, "compiler": compiler, "format": output_format, "tools": tool_versions()}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


class TexCache:
    """One cache folder; thread-safe, and safe to share between processes."""

    def __init__(self, folder: Path, max_mb: int):
        self.folder = folder / "tex"
        self.max_bytes = max_mb * 1024 * 1024
        self.hits = 0
        self.misses = 0
        self._writes = 0
        self._lock = threading.Lock()

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.svg"

    def get(self, key: str) -> bytes | None:
        """The entry's SVG, or None (missing, or not an SVG: then it is dropped)."""
        path = self._path(key)
        try:
            fd = os.open(path, _FLAGS)
        except OSError:
            with self._lock:
                self.misses += 1
            return None
        with os.fdopen(fd, "rb") as f:
            data = f.read(MAX_ENTRY_BYTES + 1)
        if not is_svg(data):
            log.warning("dropping a LaTeX cache entry that is not an SVG: %s", path)
            with contextlib.suppress(OSError):
                os.unlink(path)
            with self._lock:
                self.misses += 1
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # the last use: what eviction goes by
        with self._lock:
            self.hits += 1
        return data

    def put(self, key: str, data: bytes) -> None:
        """Store an entry (atomically; a full disk only costs the entry)."""
        path = self._path(key)
        tmp = path.with_name(f".{path.name}.tmp-{secrets.token_hex(4)}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "xb") as f:
                f.write(data)
            os.replace(tmp, path)
        except OSError as e:
            log.warning("cannot store a LaTeX cache entry in %s: %s", self.folder, e.strerror or e)
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            return
        with self._lock:
            self._writes += 1
            check = self._writes % EVICT_EVERY == 1
        if check:
            self.evict()

    def entries(self) -> list[tuple[float, int, Path]]:
        """(last use, size, path) of every entry."""
        found = []
        with contextlib.suppress(FileNotFoundError):
            for sub in os.scandir(self.folder):
                if not sub.is_dir(follow_symlinks=False):
                    continue
                for entry in os.scandir(sub.path):
                    if entry.name.endswith(".svg") and entry.is_file(follow_symlinks=False):
                        with contextlib.suppress(FileNotFoundError):
                            st = entry.stat(follow_symlinks=False)
                            found.append((st.st_mtime, st.st_size, Path(entry.path)))
        return found

    def evict(self) -> int:
        """Remove the least recently used entries until the cache is under 90% of its size; returns how many."""
        entries = sorted(self.entries())
        total = sum(size for _, size, _ in entries)
        removed = 0
        if total <= self.max_bytes:
            return 0
        for _, size, path in entries:
            if total <= self.max_bytes * 0.9:
                break
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
                removed += 1
            total -= size
        log.info("LaTeX cache: removed %d least recently used entries", removed)
        return removed

    def clear(self) -> int:
        """Remove every entry; returns how many there were."""
        count = len(self.entries())
        shutil.rmtree(self.folder, ignore_errors=True)
        return count


def is_svg(data: bytes) -> bool:
    """Whether `data` parses as an XML document whose root is <svg> (and is not too large)."""
    if len(data) > MAX_ENTRY_BYTES or b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        return False  # dvisvgm writes neither; an entity could expand without bound
    try:
        root = ET.fromstring(data)
    except ET.ParseError:
        return False
    return root.tag in ("svg", "{http://www.w3.org/2000/svg}svg")
