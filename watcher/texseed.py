"""Number glyphs typeset once per process by a scene of ours, then copied into every job.

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
from pathlib import Path

from . import jobfs, sandbox
from .config import Settings

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

_lock = threading.Lock()
_started = False
_thread: threading.Thread | None = None
_cancel = threading.Event()
_glyphs: dict[str, bytes] = {}


def start(settings: Settings) -> None:
    """Typeset the glyphs in the background, once per process; later jobs get copies."""
    global _started, _thread
    with _lock:
        if _started:
            return
        _started = True
        _thread = threading.Thread(target=_build, args=(settings,), name="texseed", daemon=True)
    _thread.start()


def wait(timeout: float | None = None) -> None:
    """Wait for a build that `start` began (a batch run ends with no render of its own left)."""
    if _thread is not None:
        _thread.join(timeout)


def stop() -> None:
    """Cancel a build under way and wait for its job to be cleaned up (daemon shutdown)."""
    _cancel.set()
    wait()


def copy_into(tex_dir: Path) -> int:
    """Copy the glyphs built so far into a job's media/Tex; returns how many."""
    with _lock:
        glyphs = dict(_glyphs)
    if glyphs:
        tex_dir.mkdir(parents=True, exist_ok=True)
        for name, data in glyphs.items():
            (tex_dir / name).write_bytes(data)
    return len(glyphs)


def names() -> set[str]:
    """The glyph files every new job gets (empty until the build is done)."""
    with _lock:
        return set(_glyphs)


def build(settings: Settings, cancel: threading.Event | None = None) -> dict[str, bytes]:
    """Render the seed scene in an isolated job and keep its number SVGs (empty on failure)."""
    from .render import render_job  # render.py imports this module

    render = dataclasses.replace(settings.render, quality="low_quality", timeout=max(settings.render.timeout, 60))
    settings = dataclasses.replace(settings, render=render)
    found: dict[str, bytes] = {}
    with render_job(SEED_SCENE, "texseed.py", settings, scenes=["GeneratedAnimation"], cancel=cancel) as result:
        if result.cancelled:
            return found
        if not result.ok:
            summary = result.record.summary() if result.record else "cancelled"
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


def _build(settings: Settings) -> None:
    try:
        glyphs = build(settings, _cancel)
    except Exception:  # an optimisation: never the reason a render fails
        log.warning("number glyphs could not be typeset; every job typesets its own", exc_info=True)
        return
    with _lock:
        _glyphs.update(glyphs)
