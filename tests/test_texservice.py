"""The typesetting service and the shared LaTeX cache: real LaTeX, real renders, hostile scenes."""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path

import pytest

from watcher.config import load_config
from watcher.executor import LocalExecutor
from watcher.pipeline import render_job
from watcher.texcache import TexCache, cache_key
from watcher.texservice import BACKGROUND_NICE, TexFailure, Typesetter

from .conftest import job_processes
from .daemon_helpers import wait_for

TEMPLATE = "\\documentclass[preview]{standalone}\n\\usepackage{amsmath}\n\\begin{document}\n%s\n\\end{document}\n"


def _settings(tmp_path: Path):
    return load_config(
        None, [f"folders.work={tmp_path / 'work'}", f"folders.cache={tmp_path / 'cache'}", "validation.api_check=off"]
    )


def test_a_document_is_typeset_once_then_served_from_the_cache(tmp_path: Path):
    settings = _settings(tmp_path)
    typesetter = Typesetter(TexCache(settings.folders.cache_dir, 10), settings)
    runs = []
    real = typesetter._typeset
    typesetter._typeset = lambda *args: runs.append(args) or real(*args)  # type: ignore[method-assign]
    document = TEMPLATE % "$x^2$"
    results: list[bytes] = []
    threads = [threading.Thread(target=lambda: results.append(typesetter.svg(document, "latex", ".dvi"))) for _ in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(runs) == 1 and len(results) == 2 and results[0] == results[1]  # one flight for two askers
    assert typesetter.svg(document, "latex", ".dvi") == results[0] and len(runs) == 1
    assert results[0].lstrip().startswith(b"<?xml") and b"<svg" in results[0]


def test_an_entry_that_is_not_an_svg_is_dropped_and_typeset_again(tmp_path: Path):
    settings = _settings(tmp_path)
    cache = TexCache(settings.folders.cache_dir, 10)
    typesetter = Typesetter(cache, settings)
    document = TEMPLATE % "$y$"
    good = typesetter.svg(document, "latex", ".dvi")
    key = cache_key(document, "latex", ".dvi")
    entry = cache._path(key)
    entry.write_bytes(b"<svg><text>forged</text>")  # not even XML
    assert cache.get(key) is None and not entry.exists()
    assert typesetter.svg(document, "latex", ".dvi") == good


def test_the_least_recently_used_entries_go_first(tmp_path: Path):
    cache = TexCache(tmp_path, max_mb=1)
    blob = b"<svg xmlns='http://www.w3.org/2000/svg'>" + b" " * 300_000 + b"</svg>"
    for i, key in enumerate(["a" * 64, "b" * 64, "c" * 64, "d" * 64]):
        cache.put(key, blob)
        os.utime(cache._path(key), (1000 + i, 1000 + i))
    cache.get("a" * 64)  # used last now
    assert cache.evict() >= 1
    assert cache.get("a" * 64) is not None and cache.get("b" * 64) is None


@pytest.mark.parametrize(
    "body",
    [
        "\\input{/etc/passwd}",
        "\\immediate\\write18{touch %(marker)s}x",
        "\\immediate\\openout5=%(outside)s \\immediate\\write5{x}\\immediate\\closeout5 x",
    ],
    ids=["input-etc-passwd", "write18", "openout-outside"],
)
def test_trusted_typesetting_reads_and_runs_nothing_outside_its_directory(tmp_path: Path, body: str):
    settings = _settings(tmp_path)
    typesetter = Typesetter(TexCache(settings.folders.cache_dir, 10), settings)
    marker, outside = tmp_path / "pwned", tmp_path / "outside.tex"
    try:
        svg = typesetter.svg(TEMPLATE % (body % {"marker": marker, "outside": outside}), "latex", ".dvi")
    except TexFailure as e:
        assert "root:" not in e.log
    else:
        assert b"root:" not in svg
    assert not marker.exists() and not outside.exists()


HOSTILE = r"""from manim import *
from manim.utils.tex_file_writing import generate_tex_file
from watcher import texclient


class GeneratedAnimation(Scene):
    def construct(self):
        tex = generate_tex_file("z = 1", "align*", config.tex_template)
        # A forged drawing under the string's own name: this job may use it, no other job ever sees it.
        tex.with_suffix(".svg").write_text(
            "<?xml version='1.0'?><svg xmlns='http://www.w3.org/2000/svg'><path d='M0 0L9 9' id='FORGED'/></svg>"
        )
        self.add(MathTex("z = 1"))
        # The service itself, asked for what no scene may read or run.
        for body in (r"\input{/etc/passwd}", r"\immediate\write18{touch /tmp/watcher-pwned}x"):
            texclient._ask({"tex": "\\documentclass{standalone}\\begin{document}" + body + "\\end{document}",
                            "compiler": "latex", "format": ".dvi"})
"""

HONEST = b"""from manim import *


class GeneratedAnimation(Scene):
    def construct(self):
        self.add(MathTex("z = 1"))
"""


def test_a_hostile_scene_changes_nothing_another_job_sees(tmp_path: Path):
    settings = _settings(tmp_path)
    executor = LocalExecutor()
    with render_job(HOSTILE.encode(), "hostile.py", settings, executor=executor) as result:
        assert result.ok, result.record and result.record.to_json()
    with render_job(HONEST, "honest.py", settings, executor=executor) as result:
        assert result.ok, result.record and result.record.to_json()
        assert result.workdir is not None
        svgs = list((result.workdir / "media" / "Tex").glob("*.svg"))
        assert svgs and not any(b"FORGED" in p.read_bytes() for p in svgs)
    cache = TexCache(settings.folders.cache_dir, 10)
    assert cache.entries() and not any(b"FORGED" in path.read_bytes() for _, _, path in cache.entries())
    assert not Path("/tmp/watcher-pwned").exists()


def _nice(pid: int) -> int:
    with open(f"/proc/{pid}/stat", "rb") as f:
        return int(f.read().rsplit(b")", 1)[1].split()[16])  # field 19: nice


def test_background_typesetting_yields_until_a_job_waits_for_it(tmp_path: Path):
    settings = _settings(tmp_path)
    typesetter = Typesetter(TexCache(settings.folders.cache_dir, 10), settings)
    # LaTeX busy for far longer than the test needs; killed by `stop` at the end.
    slow = TEMPLATE % "\\count255=0 \\loop\\advance\\count255 by 1 \\ifnum\\count255<2000000000 \\repeat x"
    stop = threading.Event()
    hurried: list[threading.Event] = []

    def ask(background: bool) -> None:
        with contextlib.ExitStack() as stack:
            if background:  # as the glyph warm-up does
                hurried.append(stack.enter_context(typesetter.background()))
            with contextlib.suppress(TexFailure):
                typesetter.svg(slow, "latex", ".dvi", stop)

    ahead = threading.Thread(target=ask, args=(True,))
    ahead.start()
    try:
        wait_for(lambda: job_processes(settings.folders.work), 60, "the background LaTeX run")
        [latex] = job_processes(settings.folders.work)
        wait_for(lambda: _nice(latex) == BACKGROUND_NICE, 10, "the run to yield")
        job = threading.Thread(target=ask, args=(False,))  # a job asks for the same document: it joins
        job.start()
        assert hurried[0].wait(30)
        wait_for(lambda: _nice(latex) == 0, 10, "the run to be raised back")  # (root may raise it)
    finally:
        stop.set()
        ahead.join(30)
    job.join(30)
    assert not job_processes(settings.folders.work)
