"""Number glyphs: typeset once per executor, ahead of the jobs, then copied into every job.

Manim typesets each character of a DecimalNumber (axis labels, NumberLine numbers,
counters) as its own MathTex and caches the SVG as media/Tex/<hash of the TeX file>.svg.
Jobs have private media folders, so without this every job ran LaTeX for every digit
again (on the benchmark corpus 66 LaTeX runs instead of 28, at about 0.25 s each), and the
first number-heavy jobs of a batch still typeset their own digits while the glyphs were
being made.

With the typesetting service (cache.latex: true) no scene is needed: a trusted child
process imports Manim and records the documents DecimalNumber writes for each character
(Manim's compile_tex replaced by a recorder: no LaTeX, no render), once per Manim version
(<folders.cache>/glyphs-<version>.json). From `LocalExecutor.start`, the executor's
Typesetter typesets them in the background, in the parent: a job asking for a digit
meanwhile finds it in the cache or waits for the run under way (single flight). Each
glyph, once typeset, is also copied into every new job's media/Tex under Manim's own name
for it, so that a job does not even ask.

With cache.latex: false jobs typeset their own LaTeX, and a trusted scene renders the
digits once, in a job like any other, whose SVGs are copied instead.

Each job gets its own copies, so no job can tamper with another's glyphs; a scene with its
own TeX template simply misses them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from . import apisnapshot, jobfs, sandbox
from .apibuild import write_atomic
from .config import Settings
from .job import JobSpec, RenderResult
from .texservice import TexFailure, Typesetter, lower_priority

log = logging.getLogger(__name__)

# Every digit, the sign characters, the decimal point and the thousands separator.
SEED_SCENE = b"""from manim import *


class GeneratedAnimation(Scene):
    def construct(self):
        self.add(
            DecimalNumber(-1234567.89, num_decimal_places=2, group_with_commas=True),
            DecimalNumber(0, include_sign=True),
        )
        self.wait(0.05)
"""
_SVG_NAME = re.compile(r"[0-9a-f]{16,64}\.svg")  # Manim's tex_hash names
_MAX_SVG_BYTES = 256 * 1024
_MAX_DOCUMENTS = 64
CHILD_TIMEOUT = 120.0  # importing Manim on a cold, busy machine can take a while
_CHILD = "import sys; from watcher.texseed import child_main; child_main(sys.argv[1], int(sys.argv[2]))"
# The numbers whose DecimalNumbers bring every glyph, the digits first (what jobs ask for first).
_NUMBERS: list[tuple[float, dict[str, Any]]] = [
    *((float(n), {"num_decimal_places": 0}) for n in range(10)),
    (-0.5, {}),
    (1000.0, {"num_decimal_places": 0, "group_with_commas": True}),
    (1.0, {"num_decimal_places": 0, "include_sign": True}),
]
_BLANK_SVG = (
    '<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="1" height="1" viewBox="0 0 1 1">'
    '<path d="M0 0H1V1H0Z"/></svg>'
)

# What runs a job: an executor's `run`.
Run = Callable[[JobSpec, threading.Event | None], AbstractContextManager[RenderResult]]


class Glyphs:
    """The glyphs of one executor: built once in the background, then handed to every job."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._cancel = threading.Event()
        self._hurry = threading.Event()  # someone waits for the build: its LaTeX runs at normal priority
        self._glyphs: dict[str, bytes] = {}

    def start(self, run: Run, settings: Settings, typesetter: Typesetter | None = None) -> None:
        """Typeset the glyphs in the background, once: with `typesetter` (in this process), else
        by rendering a scene with `run`. Later jobs get copies of each glyph typeset by then."""
        with self._lock:
            if self._thread is not None:
                return
            target, args = (self._warm, (typesetter, settings)) if typesetter else (self._build, (run, settings))
            self._thread = threading.Thread(target=target, args=args, name="texseed", daemon=True)
        self._thread.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the build `start` began; False if it is still running after `timeout`."""
        self._hurry.set()  # no longer work ahead of the jobs: what waits is ours
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    def stop(self, timeout: float | None = None) -> bool:
        """Cancel a build under way and wait for its job to be cleaned up."""
        self._cancel.set()
        return self.wait(timeout)

    def current(self) -> dict[str, bytes]:
        """The glyphs built so far (empty until the build is done): name -> SVG bytes."""
        with self._lock:
            return dict(self._glyphs)

    def add(self, glyphs: dict[str, bytes]) -> None:
        with self._lock:
            self._glyphs.update(glyphs)

    def _build(self, run: Run, settings: Settings) -> None:
        try:
            glyphs = build(run, settings, self._cancel)
        except Exception:  # an optimisation: never the reason a render fails
            log.warning("number glyphs could not be typeset; every job typesets its own", exc_info=True)
            return
        self.add(glyphs)

    def _warm(self, typesetter: Typesetter, settings: Settings) -> None:
        try:
            warm(typesetter, documents(settings, self._cancel, self._hurry), self._cancel, self.add, self._hurry)
        except Exception:  # an optimisation: never the reason a render fails
            log.warning("number glyphs could not be typeset; jobs typeset them as they need them", exc_info=True)


def warm(
    typesetter: Typesetter,
    docs: list[dict[str, Any]],
    cancel: threading.Event | None = None,
    add: Callable[[dict[str, bytes]], None] | None = None,
    hurry: threading.Event | None = None,
) -> dict[str, bytes]:
    """Typeset `docs` with `typesetter`, one at a time (each at once given to `add`), in the
    background (below the jobs' own typesetting) until `hurry` is set; returns the glyphs by the
    name Manim gives their SVG (the tex_hash of the document)."""
    found: dict[str, bytes] = {}
    started = time.monotonic()
    for doc in docs:
        if cancel is not None and cancel.is_set():
            break
        try:
            with typesetter.background(hurry):  # a job that wants this digit meanwhile joins, and hurries it
                svg = typesetter.svg(doc["tex"], doc["compiler"], doc["format"], cancel)
        except TexFailure as e:
            log.debug("a number glyph could not be typeset: %s", e)
            continue
        glyph = {tex_name(doc["tex"]): svg}
        found.update(glyph)
        if add is not None:
            add(glyph)
    log.debug("typeset %d number glyphs for every job in %.2f s", len(found), time.monotonic() - started)
    return found


def tex_name(document: str) -> str:
    """The name Manim gives a document's SVG in media/Tex (manim.utils.tex_file_writing.tex_hash)."""
    return hashlib.sha256(document.encode()).hexdigest()[:16] + ".svg"


def documents(
    settings: Settings, cancel: threading.Event | None = None, hurry: threading.Event | None = None
) -> list[dict[str, Any]]:
    """The TeX documents of the number glyphs, as the installed Manim writes them with its default
    template: from <folders.cache>/glyphs-<version>.json, or recorded by a child process (then stored).

    Raises:
        RuntimeError: the child failed or was cancelled.
    """
    path = settings.folders.cache_dir / f"glyphs-{apisnapshot.manim_version()}.json"
    with contextlib.suppress(OSError, ValueError), open(path, "rb") as f:
        return _checked(json.loads(f.read(_MAX_DOCUMENTS * 65536)))
    docs = _record(settings, cancel, hurry)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(docs).encode())
    except OSError as e:
        log.debug("cannot keep the number glyphs' documents in %s: %s", path, e)
    return docs


def _checked(data: Any) -> list[dict[str, Any]]:
    """`data` if it is a list of typesetting requests, else ValueError."""
    if not isinstance(data, list) or not 0 < len(data) <= _MAX_DOCUMENTS:
        raise ValueError("not a list of documents")
    for doc in data:
        if not (isinstance(doc, dict) and isinstance(doc.get("tex"), str) and isinstance(doc.get("format"), str)):
            raise ValueError("not a document")
        if not isinstance(doc.get("compiler"), str | list):
            raise ValueError("not a compiler")
    return data


def _record(settings: Settings, cancel: threading.Event | None, hurry: threading.Event | None) -> list[dict[str, Any]]:
    """Run `child_main` in a fresh trusted interpreter (no scene code, a scrubbed environment, a
    timeout, a folder of its own in folders.work, which the next start removes if this process
    dies first; in the background until `hurry` is set) and return the documents it recorded."""
    folder = jobfs.create(settings.folders.work, "glyphs", "recorder")
    home = folder.path
    try:
        (home / "tmp").mkdir()
        out = home / "documents.json"
        proc = subprocess.Popen(
            [sys.executable, "-I", "-c", _CHILD, str(out), str(os.getpid())],
            cwd=home,
            env=sandbox.child_environment(home),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        deadline = time.monotonic() + CHILD_TIMEOUT
        while True:
            try:
                _, err = proc.communicate(timeout=0.1)
                break
            except subprocess.TimeoutExpired:
                if hurry is not None and hurry.is_set():
                    lower_priority(proc.pid, 0)  # someone waits for it now
                    hurry = None
                if (cancel is None or not cancel.is_set()) and time.monotonic() < deadline:
                    continue
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise RuntimeError("cancelled" if cancel is not None and cancel.is_set() else "the recorder timed out")
        if proc.returncode != 0:
            tail = err.decode("utf-8", "replace").strip().splitlines()[-1:] or [f"exit code {proc.returncode}"]
            raise RuntimeError(f"the recorder failed: {tail[0][:300]}")
        return _checked(json.loads(out.read_bytes()))
    finally:
        jobfs.discard(folder.root)


def child_main(out: str, parent: int) -> None:
    """In the recorder process: build the DecimalNumbers of _NUMBERS with Manim's LaTeX step replaced
    by a recorder, and write the documents it was given (in the order asked) to `out`."""
    from .linux import PR_SET_PDEATHSIG, prctl

    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # it dies with the thread that started it
    if os.getppid() != parent:  # that one is gone already
        return
    signal.alarm(int(CHILD_TIMEOUT))
    lower_priority()  # the warm workers' Manim imports, which the first jobs wait for, go first
    import manim
    from manim.utils import tex_file_writing

    recorded: list[dict[str, Any]] = []

    def compile_tex(tex_file: Path, tex_compiler: str | list[str], output_format: str) -> Path:
        recorded.append(
            {"tex": tex_file.read_text(encoding="utf-8"), "compiler": tex_compiler, "format": output_format}
        )
        tex_file.with_suffix(".svg").write_text(_BLANK_SVG, encoding="utf-8")  # what Manim then reads
        return tex_file.with_suffix(output_format)

    tex_file_writing.compile_tex = compile_tex
    tex_file_writing.convert_to_svg = lambda dvi_file, extension, page=1: dvi_file.with_suffix(".svg")
    manim.config.media_dir = str(Path.cwd() / "media")
    for number, options in _NUMBERS:
        manim.DecimalNumber(number, **options)
    Path(out).write_text(json.dumps(recorded), encoding="utf-8")


def build(run: Run, settings: Settings, cancel: threading.Event | None = None) -> dict[str, bytes]:
    """Render the seed scene with `run` and keep its number SVGs (empty on failure)."""
    render = dataclasses.replace(settings.render, quality="low_quality", timeout=max(settings.render.timeout, 60))
    settings = dataclasses.replace(settings, render=render)
    found: dict[str, bytes] = {}
    with run(JobSpec(SEED_SCENE, "texseed.py", settings, ["GeneratedAnimation"]), cancel) as result:
        if result.cancelled:
            return found
        if not result.ok:
            summary = result.record.summary() if result.record else "no record"
            log.warning("number glyphs could not be typeset (%s); every job typesets its own", summary)
            return found
        # Our own scene, but read like any job's directory: nothing in it is followed or trusted blindly.
        assert result.workdir is not None
        dir_fd = jobfs.open_dir(result.workdir)
        try:
            owners = sandbox.job_owners(settings.sandbox)
            found = jobfs.read_dir(dir_fd, "media/Tex", _SVG_NAME, max_bytes=_MAX_SVG_BYTES, owners=owners)
        finally:
            os.close(dir_fd)
    log.debug("typeset %d number glyphs for every job to share", len(found))
    return found
