"""Shared number glyphs: typeset ahead of the jobs (through the Typesetter, or by a trusted scene
when cache.latex is off), found by Manim in every job."""

from __future__ import annotations

import threading
from pathlib import Path

from watcher import apisnapshot, texseed
from watcher.config import load_config
from watcher.executor import LocalExecutor
from watcher.pipeline import render_job

NUMBERS = b"""from manim import *


class GeneratedAnimation(Scene):
    def construct(self):
        line = NumberLine(x_range=[-5, 5, 1], include_numbers=True)
        self.play(Create(line), run_time=0.2)
        self.add(DecimalNumber(3.14), DecimalNumber(-1234.5, group_with_commas=True), Integer(7, include_sign=True))
        self.wait(0.1)
"""


def _typeset_in_job(settings, source: bytes, executor: LocalExecutor) -> set[str]:
    """The SVGs a job's media/Tex holds at the end: seeded ones plus what it typeset itself."""
    with render_job(source, "numbers.py", settings, executor=executor) as result:
        assert result.ok, result.record and result.record.to_json()
        return {p.name for p in (result.workdir / "media" / "Tex").glob("*.svg")}


def test_the_warm_up_typesets_the_documents_jobs_ask_for_once(tmp_path: Path):
    settings = load_config(None, [f"folders.work={tmp_path / 'work'}", f"folders.cache={tmp_path / 'cache'}"])
    executor = LocalExecutor()
    typesetter = executor.typesetter(settings)
    assert typesetter is not None
    docs = texseed.documents(settings)  # recorded from Manim's own DecimalNumber, in a child
    assert len(docs) == 14 and all("\\begin{document}" in d["tex"] for d in docs)  # 0-9 . , - +
    kept = settings.folders.cache_dir / f"glyphs-{apisnapshot.manim_version()}.json"
    assert kept.exists()  # the next start reads it instead of importing Manim again

    # A job renders while the warm-up typesets: each document is typeset once, by whichever asks first.
    executor.glyphs.start(executor.run, settings, typesetter)
    job = threading.Thread(target=_typeset_in_job, args=(settings, NUMBERS, executor))
    job.start()
    job.join()
    assert executor.glyphs.wait(120)
    assert typesetter.counts()["typeset"] == len(docs)  # the job asked for nothing else, and nothing twice
    glyphs = executor.glyphs.current()
    assert set(glyphs) == {texseed.tex_name(d["tex"]) for d in docs}

    # Later jobs get every glyph as a copy under Manim's own name, and typeset nothing.
    assert _typeset_in_job(settings, NUMBERS, executor) == set(glyphs)
    assert typesetter.counts()["typeset"] == len(docs)
    executor.close()


def test_without_the_service_a_scene_seeds_the_glyphs(tmp_path: Path):
    executor = LocalExecutor()  # its own glyphs, and never started: no background build races this test
    settings = load_config(None, [f"folders.work={tmp_path / 'work'}", "cache.latex=false"])
    assert executor.typesetter(settings) is None
    glyphs = texseed.build(executor.run, settings)
    assert len(glyphs) >= 14  # 0-9, '.', ',', '-', '+'
    assert all(name.endswith(".svg") and b"<svg" in data for name, data in glyphs.items())

    unseeded = _typeset_in_job(settings, NUMBERS, executor)
    assert len(unseeded) >= 8 and unseeded <= set(glyphs)  # the digits it needs, typeset alike

    executor.glyphs.add(glyphs)
    seeded = _typeset_in_job(settings, NUMBERS, executor)
    assert seeded == set(glyphs)  # nothing typeset beyond the seed


def test_a_job_gets_copies(tmp_path: Path):
    executor = LocalExecutor()
    executor.glyphs.add({"0" * 16 + ".svg": b"<?xml version='1.0'?><svg/>"})
    settings = load_config(None, [f"folders.work={tmp_path / 'work'}"])
    tamper = b"""from manim import *
from pathlib import Path


class GeneratedAnimation(Scene):
    def construct(self):
        glyph = Path("media/Tex") / ("0" * 16 + ".svg")
        assert glyph.read_bytes().startswith(b"<?xml")
        glyph.write_bytes(b"tampered")
        self.add(Dot())
"""
    for _ in range(2):  # the second job gets a fresh copy, not the first job's tampered one
        with render_job(tamper, "tamper.py", settings, executor=executor) as result:
            assert result.ok, result.record and result.record.to_json()
    assert executor.glyphs.current() == {"0" * 16 + ".svg": b"<?xml version='1.0'?><svg/>"}
