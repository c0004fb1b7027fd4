"""Config-driven cases: each tests/cases/*.yaml is a scene, config overrides and the
expected outcome, rendered for real through `render_job`. A new case needs no Python.

Keys: description, scene (inline source) or scene_file (path from the repo root),
config (dotted overrides), expect: status (done|failed) and, optionally, phase, type,
line, column, message/hint/excerpt (regex), signal, videos (count of outputs), kinds
(video|image per output), width, height, max_seconds (wall-clock bound for the whole job).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
import yaml

from watcher.config import load_config
from watcher.pipeline import render_job

ROOT = Path(__file__).resolve().parent.parent
CASES = sorted((ROOT / "tests" / "cases").glob("*.yaml"))


def _load(path: Path) -> dict:
    case = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert set(case) <= {"description", "scene", "scene_file", "config", "expect"}, f"unknown keys in {path.name}"
    assert ("scene" in case) != ("scene_file" in case), f"{path.name}: give scene or scene_file"
    return case


def test_there_are_enough_cases():
    assert len(CASES) >= 20


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_case(path: Path, tmp_path: Path):
    case = _load(path)
    if "scene_file" in case:
        source = (ROOT / case["scene_file"]).read_bytes()
    else:
        source = case["scene"].encode("utf-8")
    overrides = [f"{k}={v}" for k, v in (case.get("config") or {}).items()]
    overrides.append(f"folders.work={tmp_path / 'work'}")
    settings = load_config(None, overrides)
    expect = case["expect"]

    started = time.monotonic()
    with render_job(source, f"{path.stem}.py", settings) as result:
        elapsed = time.monotonic() - started
        rec = result.record
        detail = rec.to_json() if rec else ""
        assert result.ok == (expect["status"] == "done"), detail
        if result.ok:
            assert len(result.videos) == expect.get("videos", 1)
            assert all(v.is_file() for v in result.videos)
            if "kinds" in expect:  # "video" (an MP4) or "image" (a still scene's PNG), in scene order
                assert [info.kind for info in result.info] == expect["kinds"]
            for info in result.info:
                assert info.frames >= 1 and (info.duration > 0 or info.kind == "image")
                if "width" in expect:
                    assert (info.width, info.height) == (expect["width"], expect["height"])
        else:
            for key in ("phase", "type", "line", "column", "signal"):
                if key in expect:
                    assert getattr(rec, key) == expect[key], f"{key}: {detail}"
            for key in ("message", "hint", "excerpt"):
                if key in expect:
                    assert re.search(expect[key], getattr(rec, key) or ""), f"{key}: {detail}"
            assert rec.source == f"{path.stem}.py"
            if rec.line is not None and rec.phase != "validate":
                marked = [ln for ln in (rec.excerpt or "").splitlines() if ln.startswith(">")]
                assert marked and re.match(rf">\s*{rec.line} \|", marked[0]), detail
        if "max_seconds" in expect:
            assert elapsed < expect["max_seconds"], f"took {elapsed:.1f} s"
    # The job directory is gone, whatever the outcome.
    work = tmp_path / "work"
    assert not work.exists() or not any(work.iterdir())
