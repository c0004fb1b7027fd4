"""Number glyphs typeset once per executor by a scene of ours, then copied into every job.

Manim typesets each character of a DecimalNumber (axis labels, NumberLine numbers,
counters) as its own MathTex and caches the SVG as media/Tex/<hash of the TeX file>.svg.
Jobs have private media folders, so every job ran latex and dvisvgm for every digit
again: on the benchmark corpus 66 LaTeX runs instead of 28, at about 0.25 s each. Here a
trusted scene renders the digits once, in a job like any other; its SVGs are copied into
each new job's media/Tex, where Manim finds them by the same hash. Each job gets its own
copies, so no job can tamper with another's glyphs; a scene with its own TeX template
simply misses the cache.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager

from . import jobfs, sandbox
from .config import Settings
from .job import JobSpec, RenderResult

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

# What runs a job: an executor's `run`.
Run = Callable[[JobSpec, threading.Event | None], AbstractContextManager[RenderResult]]


class Glyphs:
    """The glyphs of one executor: built once in the background, then handed to every job."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._cancel = threading.Event()
        self._glyphs: dict[str, bytes] = {}

    def start(self, run: Run, settings: Settings) -> None:
        """Typeset the glyphs in the background with `run`, once; later jobs get copies."""
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._build, args=(run, settings), name="texseed", daemon=True)
        self._thread.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the build `start` began; False if it is still running after `timeout`."""
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
