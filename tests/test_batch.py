"""Batch runs as a library: choosing files, content keys, filing without overwriting, real renders."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from watcher.batch import find_sources, run_batch, run_rerender
from watcher.config import load_config
from watcher.job import content_key
from watcher.sinks import publish, replace
from watcher.verify import verify_mp4

from .conftest import job_processes
from .daemon_helpers import scene


def settings_for(root: Path, *overrides: str):
    return load_config(
        None, [f"folders.{k}={root / k}" for k in ("inbox", "processing", "done", "failed", "work")] + list(overrides)
    )


# -- choosing files (no renders) ---------------------------------------------------------------


def test_find_sources_skips_hidden_temp_links_and_the_output_folder(tmp_path: Path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / ".hidden").mkdir()
    (src / "__pycache__").mkdir()
    for name in ("b.py", "a.py", ".x.py", "notes.txt", "sub/c.py", ".hidden/d.py", "__pycache__/e.py"):
        (src / name).write_text("")
    (src / "link.py").symlink_to(src / "a.py")
    (src / "out").mkdir()
    (src / "out" / "old.py").write_text("")

    assert [p.name for p in find_sources([src])] == ["a.py", "b.py"]
    deep = find_sources([src], recursive=True, exclude=src / "out")
    assert sorted(p.relative_to(src).as_posix() for p in deep) == ["a.py", "b.py", "sub/c.py"]
    # A file named twice (directly and through its folder) is rendered once; an explicit file is taken as given.
    assert [p.name for p in find_sources([src / "a.py", src, src / "notes.txt"])] == ["a.py", "b.py", "notes.txt"]


def test_content_key_covers_source_settings_and_policy(tmp_path: Path):
    base = settings_for(tmp_path)
    key = content_key(b"x", base)
    assert key == content_key(b"x", settings_for(tmp_path))
    assert key == content_key(b"x", settings_for(tmp_path, "workers.count=7"))  # not a render setting
    assert key != content_key(b"y", base)
    assert key != content_key(b"x", settings_for(tmp_path, "render.quality=m"))
    assert key != content_key(b"x", settings_for(tmp_path, "render.timeout=5"))
    assert key != content_key(b"x", settings_for(tmp_path, "validation.forbidden_imports=[socket]"))


# -- filing (no renders) -----------------------------------------------------------------------


def test_publish_never_replaces_and_tags_the_whole_group(tmp_path: Path):
    out = tmp_path / "out"
    first = publish(out, "x", [(".mp4", b"video 1"), (".meta.json", b"{}")])
    assert first == [out / "x.mp4", out / "x.meta.json"]

    source = tmp_path / "x.py"
    source.write_text("source 2")
    second = publish(out, "x", [(".error.json", b"record 2"), (".meta.json", b"{}")], source=source)
    tags = {p.name.split(".")[1] for p in second}
    assert len(tags) == 1 and tags.pop().endswith("-001"), second  # one sortable tag for the group
    assert [p.suffix for p in second] == [".json", ".json", ".py"]  # the source moves last
    assert second[-1].read_text() == "source 2" and not source.exists()
    assert (out / "x.mp4").read_bytes() == b"video 1"  # untouched
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp file left


def test_replace_swaps_a_files_content_atomically(tmp_path: Path):
    (tmp_path / "x.mp4").write_bytes(b"old")
    video = tmp_path / "elsewhere.mp4"
    video.write_bytes(b"new")
    assert replace(tmp_path, "x", [(".mp4", video), (".meta.json", b"{}")]) == [
        tmp_path / "x.mp4",
        tmp_path / "x.meta.json",
    ]
    assert (tmp_path / "x.mp4").read_bytes() == b"new" and not video.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.meta.json", "x.mp4"]


# -- real renders ------------------------------------------------------------------------------


def test_run_batch_files_results_and_never_overwrites(tmp_path: Path):
    settings = settings_for(tmp_path)
    src = tmp_path / "src"
    src.mkdir()
    (src / "good.py").write_text(scene())
    (src / "bad.py").write_text("from manim import *\nclass GeneratedAnimation(Scene):\n    def construct(self)\n")
    out = tmp_path / "out"
    seen = []

    summary = run_batch(find_sources([src]), settings, out, workers=2, on_result=seen.append)

    assert (summary.count("rendered"), summary.count("failed"), summary.failed_by_phase) == (1, 1, {"validate": 1})
    assert sorted(o.source.name for o in seen) == ["bad.py", "good.py"]
    assert [o.source.name for o in summary.outcomes] == ["bad.py", "good.py"]  # the order given
    assert sorted(p.name for p in out.iterdir()) == ["bad.error.json", "bad.meta.json", "good.meta.json", "good.mp4"]
    assert verify_mp4(out / "good.mp4").frames >= 1
    meta = json.loads((out / "good.meta.json").read_text())
    assert meta["ok"] and meta["key"] == content_key((src / "good.py").read_bytes(), settings)
    assert meta["videos"][0]["suffix"] == ".mp4" and meta["videos"][0]["width"] == 854
    assert json.loads((out / "bad.error.json").read_text())["line"] == 3
    assert (src / "good.py").exists()  # sources stay unless moved
    first_video = (out / "good.mp4").stat()

    # Again, moving the sources this time: nothing is replaced, everything gets a tag.
    summary = run_batch(find_sources([src]), settings, out, move=True)
    assert summary.count("rendered") == 1
    assert os.stat(out / "good.mp4").st_ino == first_video.st_ino
    tagged = sorted(p.name for p in out.iterdir() if p.name.count(".") > 1 and "-001" in p.name)
    assert len(tagged) == 6, tagged  # good.<tag>.{mp4,meta.json,py} and bad.<tag>.{error.json,meta.json,py}
    assert not list(src.iterdir())
    assert job_processes(settings.folders.work) == []


def test_rerender_of_a_failed_scene_that_now_renders_moves_it_to_done(tmp_path: Path):
    settings = settings_for(tmp_path)
    done, failed = settings.folders.done, settings.folders.failed
    failed.mkdir(parents=True)
    done.mkdir()
    (failed / "x.py").write_text(scene())  # fixed since it failed
    (failed / "x.error.json").write_text('{"phase": "render"}')
    # done/ already holds another scene of the same name: it must not be touched.
    (done / "x.py").write_text("an older x")
    (done / "x.mp4").write_bytes(b"an older video")

    summary = run_rerender([failed / "x.py"], settings)

    assert summary.count("rendered") == 1, summary.to_dict()
    outcome = summary.outcomes[0]
    assert "moved from failed/ to done/" in outcome.note
    assert not list(failed.iterdir())
    assert (done / "x.mp4").read_bytes() == b"an older video" and (done / "x.py").read_text() == "an older x"
    new = {p.suffix: p for p in outcome.outputs}
    assert new[".py"].parent == done and new[".py"].read_text() == scene()
    assert verify_mp4(new[".mp4"]).frames >= 1 and new[".mp4"].name != "x.mp4"
    assert json.loads(new[".json"].read_text())["ok"] is True
    assert not list(settings.folders.processing.iterdir())  # the claim was cleaned up

    # Nothing changed: the moved scene is now up to date where it is.
    again = run_rerender(find_sources([done]), settings)
    statuses = {o.source.name: o.status for o in again.outcomes}
    assert statuses[new[".py"].name] == "skipped"


@pytest.mark.parametrize("bad", ["missing", "fifo"])
def test_unreadable_sources_fail_with_an_ingest_record(tmp_path: Path, bad: str):
    settings = settings_for(tmp_path)
    path = tmp_path / "x.py"
    if bad == "fifo":
        os.mkfifo(path)  # must not hang the batch
    summary = run_batch([path], settings, tmp_path / "out")
    outcome = summary.outcomes[0]
    assert outcome.status == "failed" and outcome.record is not None and outcome.record.phase == "ingest"
    assert (tmp_path / "out" / "x.error.json").exists()


def test_stills_and_scenes_rendered_before_a_failure_are_filed(tmp_path: Path):
    still = "from manim import *\n\n\nclass Title(Scene):\n    def construct(self):\n        self.add(Text('hi'))\n"
    broken = (
        "from manim import *\n\n\nclass A(Scene):\n    def construct(self):\n"
        "        self.play(FadeIn(Dot()), run_time=0.2)\n"
        "\n\nclass B(Scene):\n    def construct(self):\n        1 / 0\n"
    )
    src = tmp_path / "src"
    src.mkdir()
    (src / "still.py").write_text(still)
    (src / "broken.py").write_text(broken)
    settings = load_config(None, [f"folders.work={tmp_path / 'work'}", "render.scene=all"])
    summary = run_batch(sorted(src.glob("*.py")), settings, tmp_path / "out")
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["broken.A.mp4", "broken.error.json", "broken.meta.json", "still.meta.json", "still.png"]
    assert (summary.count("rendered"), summary.images, summary.to_dict()["images"]) == (1, 1, 1)
    meta = json.loads((tmp_path / "out" / "still.meta.json").read_text())
    assert [(v["suffix"], v["kind"], v["width"]) for v in meta["videos"]] == [(".png", "image", 854)]
    record = json.loads((tmp_path / "out" / "broken.error.json").read_text())
    assert record["type"] == "ZeroDivisionError" and record["message"].startswith("in scene B:")
