r"""Precompiled LaTeX formats: a template preamble in use is read once, then loaded from a dump.

Most of a one-formula LaTeX run goes into reading its preamble (the document class,
babel, amsmath...). Once a preamble has been seen, the Typesetter (`watcher.texservice`)
dumps LaTeX's state at the end of that preamble into a format, `latex -ini "&latex"` on
the preamble followed by `\dump`, and typesets later documents with that preamble as
`latex -fmt` on their body alone:

    <folders.cache>/fmt/<key>.fmt     key = sha256 of the preamble, the TeX and dvisvgm
                                      versions and the stamp of the system's latex.fmt

A build runs in a thread of its own, one at a time, at a low CPU priority (it is work ahead
of the jobs); documents of that preamble are typeset plain until it is there. At most
MAX_FORMATS are kept, within the size given (half of cache.max_mb), least recently used
removed first.

Why the SVG is byte for byte the plain run's: the state dumped is the plain run's state
when it reaches `\begin{document}`; the body is read under the same job name and file
name, at the same line numbers (the preamble's lines become empty comment lines); a new
format is kept only if the document that made it typesets to the same SVG both ways; and a
document that fails with the format is typeset plain again, so that its error reads as
always (a format LaTeX cannot load is not used again). Only `latex` to DVI (Manim's
default) uses formats; other compilers keep the plain run.

The build is trusted typesetting like any other (the render user, no shell escape,
paranoid file access, a time limit, a private directory). A format holds what its preamble
makes, and only documents with that same preamble load it. A run gets it as a hard link
of a read-only file it cannot write (a copy when LaTeX would run as root), so no document
can change the format another one loads.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import pwd
import secrets
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from . import jobfs
from .config import Settings
from .texcache import tool_versions

log = logging.getLogger(__name__)

BEGIN = "\\begin{document}"
NAME = "preamble"  # the format's name in a run's directory: `latex -fmt=preamble`
MAX_FORMATS = 8  # formats kept (about 6.5 MB each), least recently used removed first
MAX_FORMAT_BYTES = 64 << 20
SEEN = 2  # a preamble gets a format when it comes with its second document to typeset
_MAX_TRACKED = 4096  # preambles counted before the counts start again
_GZIP = b"\x1f\x8b"  # web2c writes formats compressed: a file LaTeX's \write made cannot start so


class Runner(Protocol):
    """What a build needs of the Typesetter (`watcher.texservice`): its sandboxed runs."""

    settings: Settings

    def background(
        self, urgent: threading.Event | None = None
    ) -> contextlib.AbstractContextManager[threading.Event]: ...

    def prepare(self, path: Path, document: str, fmt: Path | None) -> pwd.struct_passwd | None: ...

    def run_tool(
        self, argv: list[str], cwd: Path, user: pwd.struct_passwd | None, cancel: threading.Event | None
    ) -> subprocess.CompletedProcess[bytes]: ...

    def typeset_once(
        self,
        document: str,
        compilers: list[str],
        output_format: str,
        cancel: threading.Event | None,
        fmt: Path | None = None,
    ) -> bytes: ...


class BuildFailed(Exception):
    """The format could not be made, or does not typeset like plain LaTeX."""


@dataclass(frozen=True)
class Plan:
    """How one document is typeset: with the format of its preamble, or plain (then perhaps build it)."""

    key: str
    preamble: str
    body: str  # the document for a run with the format: the preamble's lines emptied
    use: Path | None  # the verified format to typeset with
    build: bool  # this request builds the format (after its plain run, which it is checked against)


@functools.cache
def base_stamp() -> str:
    """Path, size and mtime of the system's latex.fmt: fmtutil rewrites it when TeX Live's packages change."""
    try:
        out = subprocess.run(
            ["kpsewhich", "-engine=pdftex", "-progname=latex", "latex.fmt"], capture_output=True, text=True, timeout=30
        ).stdout.strip()
        st = os.stat(out)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return f"{out}:{st.st_size}:{st.st_mtime_ns}"


def split(document: str) -> tuple[str, str] | None:
    """(preamble, body) of a document that can be typeset with a format, else None.

    The preamble must end at a line that begins with \\begin{document} (as Manim writes
    them), and the document must not choose its own format on its first line (`%&`).
    """
    at = document.find(BEGIN)
    if at <= 0 or document[at - 1] != "\n" or document.startswith("%&") or "\r" in document[:at]:
        return None
    preamble = document[:at]
    # Comment lines keep the body at its line numbers (\inputlineno, LaTeX's messages) without a token.
    return preamble, "%\n" * preamble.count("\n") + document[at:]


def build_document(preamble: str) -> str:
    """What `latex -ini "&latex"` reads to dump the format: the preamble, then \\dump at top level."""
    return preamble + "\\dump\n"


def build_command(jobname: str) -> list[str]:
    return [
        "latex",
        "-no-shell-escape",
        "-ini",
        f"-jobname={jobname}",
        "-interaction=batchmode",
        "-halt-on-error",
        "&latex",
        f"{jobname}.tex",
    ]


class Formats:
    """The formats in one cache folder, and which preambles this process has seen, built or given up on."""

    def __init__(self, folder: Path, max_bytes: int):
        self.folder = folder  # <folders.cache>/fmt
        self.max_bytes = max_bytes  # formats use at most this much of the cache's size
        self._lock = threading.Lock()
        self._seen: dict[str, int] = {}
        self._building: set[str] = set()
        self._failed: set[str] = set()
        self._used: set[str] = set()  # marked as used (mtime) by this process already
        self._thread: threading.Thread | None = None  # the build under way (one at a time)
        self._stop = threading.Event()  # set: kill the build's LaTeX run
        self._hurry = threading.Event()  # set: someone waits for the build, which then runs at normal priority

    def plan(self, document: str, compilers: list[str], output_format: str) -> Plan | None:
        """How to typeset `document`: None for the plain run without a format to build."""
        if compilers != ["latex"] or output_format != ".dvi" or not (parts := split(document)):
            return None
        preamble, body = parts
        key = self.key(preamble)
        path = self.path(key)
        with self._lock:
            if key in self._failed:
                return None
            if key not in self._used and path.exists():
                self._used.add(key)
                with contextlib.suppress(OSError):
                    os.utime(path)  # the last use: what eviction goes by
            if key in self._used:
                return Plan(key, preamble, body, path, False)
            if len(self._seen) >= _MAX_TRACKED:
                self._seen.clear()
            seen = self._seen[key] = self._seen.get(key, 0) + 1
            # One build at a time, in the background: a later document of a preamble skipped now builds it.
            build = seen >= SEEN and not self._building and self._fits()
            if build:
                self._building.add(key)
        return Plan(key, preamble, body, None, build) if build else None

    def key(self, preamble: str) -> str:
        doc = {"preamble": preamble, "compiler": "latex", "tools": tool_versions(), "base": base_stamp()}
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.fmt"

    def temp_path(self) -> Path:
        """A new name in the folder for a format being checked (created with the folder if missing)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        return self.folder / f".tmp-{secrets.token_hex(8)}"

    def built(self, plan: Plan, temp: Path) -> None:
        """The build `plan` asked for made the verified format `temp`: keep it."""
        try:
            os.replace(temp, self.path(plan.key))
        except OSError as e:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            self.failed(plan, f"cannot store it in {self.folder}: {e.strerror or e}")
            return
        self.evict()
        with self._lock:
            self._building.discard(plan.key)
            self._used.add(plan.key)
        log.debug("LaTeX format for preamble %s built", plan.key[:12])

    def abandon(self, plan: Plan) -> None:
        """The build `plan` asked for did not happen (its document failed, or its job ended): a later one builds it."""
        with self._lock:
            self._building.discard(plan.key)

    def failed(self, plan: Plan, reason: str) -> None:
        """No format for this preamble in this process: it could not be built, or LaTeX could not load
        it (unless it was removed meanwhile: then it is built again)."""
        with self._lock:
            self._building.discard(plan.key)
            if plan.use is not None and not plan.use.exists():
                self._used.discard(plan.key)
                return
            self._failed.add(plan.key)
        log.debug("no LaTeX format for preamble %s: %s", plan.key[:12], reason)

    def start_build(self, runner: Runner, plan: Plan, reference: bytes) -> None:
        """Build the format `plan` asked for in a background thread; `reference` is the plain SVG of
        its document, which the format must reproduce byte for byte to be kept."""

        def build() -> None:
            with runner.background(self._hurry):  # at a lower CPU priority than the jobs' own typesetting
                self._build(runner, plan, reference)

        thread = threading.Thread(target=build, name="texformat", daemon=True)
        with self._lock:
            self._thread = thread
        thread.start()

    def close(self, cancel: bool = False, timeout: float | None = None) -> bool:
        """Wait up to `timeout` for the build under way (with `cancel`, its LaTeX run is killed first).

        Returns False if it is still running."""
        with self._lock:
            thread = self._thread
        if thread is None:
            return True
        if cancel:
            self._stop.set()
        else:
            self._hurry.set()
        thread.join(timeout)
        if thread.is_alive():
            return False
        self._stop.clear()  # the next build runs, in the background
        self._hurry.clear()
        return True

    def _build(self, runner: Runner, plan: Plan, reference: bytes) -> None:
        """Dump the preamble in a private directory, check the format on `plan`'s document, keep it. Never raises."""
        temp: Path | None = None
        root: jobfs.JobDir | None = None
        try:
            root = jobfs.create(runner.settings.folders.work, "tex", "format")
            temp = self.temp_path()
            user = runner.prepare(root.path, build_document(plan.preamble), None)
            if runner.run_tool(build_command("document"), root.path, user, self._stop).returncode != 0:
                raise BuildFailed("latex -ini could not dump the preamble")
            owners = {os.getuid()} | ({user.pw_uid} if user is not None else set())
            dir_fd = jobfs.open_dir(root.path)
            try:
                jobfs.copy_out(dir_fd, "document.fmt", temp, max_bytes=MAX_FORMAT_BYTES, owners=owners)
            finally:
                os.close(dir_fd)
            os.chmod(temp, 0o444)  # before any document runs with it: a hard link it cannot write through
            if not looks_dumped(temp):
                raise BuildFailed("the build made no format")
            if runner.typeset_once(plan.body, ["latex"], ".dvi", self._stop, temp) != reference:
                raise BuildFailed("its SVG differs from plain LaTeX's")
            self.built(plan, temp)
        except Exception as e:  # an optimisation: never the reason a document fails
            if temp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(temp)
            if self._stop.is_set():
                self.abandon(plan)
            else:
                self.failed(plan, str(e) if isinstance(e, BuildFailed) else f"{type(e).__name__}: {e}")
        finally:
            if root is not None:
                jobfs.discard(root.root)

    def entries(self) -> list[tuple[float, int, Path]]:
        """(last use, size, path) of every format, and of leftovers of builds older than an hour."""
        found = []
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(self.folder):
                with contextlib.suppress(FileNotFoundError):
                    st = entry.stat(follow_symlinks=False)
                    stale = entry.name.startswith(".tmp-") and st.st_mtime < time.time() - 3600
                    if entry.name.endswith(".fmt") or stale:
                        found.append((st.st_mtime, st.st_size, Path(entry.path)))
        return found

    def evict(self) -> int:
        """Keep the most recently used formats within MAX_FORMATS and the size; returns how many went."""
        entries = sorted(self.entries(), reverse=True)
        removed, total = 0, 0
        for i, (_, size, path) in enumerate(entries):
            total += size
            if i >= MAX_FORMATS or total > self.max_bytes or not path.name.endswith(".fmt"):
                with contextlib.suppress(OSError):
                    os.unlink(path)
                    removed += 1
        return removed

    def clear(self) -> int:
        """Remove every format; returns how many there were."""
        count = len(self.entries())
        shutil.rmtree(self.folder, ignore_errors=True)
        return count

    def _fits(self) -> bool:
        return self.max_bytes >= 16 << 20  # a format is about 6.5 MB: under this, none is worth its place


def place(source: Path, target: Path, copy: bool) -> None:
    """Put the format `source` in a run's directory as `target`: a hard link, or a copy when
    `copy` (LaTeX runs as root, which a read-only mode does not stop) or across file systems."""
    if not copy:
        try:
            os.link(source, target)
            return
        except OSError:
            pass  # another file system: copy
    shutil.copyfile(source, target)


def looks_dumped(path: Path) -> bool:
    """Whether a build's output starts like a format \\dump wrote (not like text \\write made)."""
    try:
        with open(path, "rb") as f:
            return f.read(2) == _GZIP
    except OSError:
        return False
