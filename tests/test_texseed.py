"""Shared number glyphs: typeset once by a trusted scene, found by Manim in every job."""

from __future__ import annotations

from pathlib import Path

import pytest

from watcher import texseed
from watcher.config import load_config
from watcher.render import render_job

NUMBERS = b"""from manim import *


class GeneratedAnimation(Scene):
    def construct(self):
        line = NumberLine(x_range=[-5, 5, 1], include_numbers=True)
        self.play(Create(line), run_time=0.2)
        self.add(DecimalNumber(3.14))
        self.wait(0.1)
"""


def _typeset_in_job(settings, source: bytes) -> set[str]:
    """The SVGs a job's media/Tex holds at the end: seeded ones plus what it typeset itself."""
    with render_job(source, "numbers.py", settings) as result:
        assert result.ok, result.record and result.record.to_json()
        return {p.name for p in (result.workdir / "media" / "Tex").glob("*.svg")}


def test_seeded_jobs_typeset_no_digits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(texseed, "_started", True)  # no background build racing this test
    monkeypatch.setattr(texseed, "_glyphs", {})
    settings = load_config(None, [f"folders.work={tmp_path / 'work'}"])
    glyphs = texseed.build(settings)
    assert len(glyphs) >= 14  # 0-9, '.', ',', '-', '+'
    assert all(name.endswith(".svg") and b"<svg" in data for name, data in glyphs.items())

    unseeded = _typeset_in_job(settings, NUMBERS)
    assert len(unseeded) >= 8 and unseeded <= set(glyphs)  # the digits it needs, typeset alike

    texseed._glyphs.update(glyphs)
    assert texseed.copy_into(tmp_path / "Tex") == len(glyphs)
    seeded = _typeset_in_job(settings, NUMBERS)
    assert seeded == set(glyphs)  # nothing typeset beyond the seed


def test_a_job_gets_copies(tmp_path: Path):
    texseed._glyphs["0" * 16 + ".svg"] = b"<?xml version='1.0'?><svg/>"
    try:
        assert texseed.copy_into(tmp_path / "a") >= 1
        (tmp_path / "a" / ("0" * 16 + ".svg")).write_bytes(b"tampered")
        texseed.copy_into(tmp_path / "b")
        assert (tmp_path / "b" / ("0" * 16 + ".svg")).read_bytes().startswith(b"<?xml")
    finally:
        texseed._glyphs.pop("0" * 16 + ".svg")
