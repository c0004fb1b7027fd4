"""The snapshot of Manim's API (watcher.apisnapshot) and the name and keyword checks made with it."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest
import yaml

from watcher import apisnapshot
from watcher.apisnapshot import Snapshot, class_keywords
from watcher.config import Settings, load_config
from watcher.errors import InvalidScene
from watcher.validate import check_scene, validate_scene_code

ROOT = Path(__file__).resolve().parent.parent
CORPUS = Path(os.environ.get("WATCHER_CORPUS", ROOT.parent / "shared" / "corpus"))
GALLERY = CORPUS / "manim-docs-gallery"
API_CODES = ("undefined-name", "unknown-keyword")


def settings(base: Path, *overrides: str) -> Settings:
    return load_config(None, [f"folders.work={base / 'work'}", *overrides])


@pytest.fixture(scope="module")
def ready(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings whose cache holds the snapshot (made by a builder process, once for the module)."""
    s = settings(tmp_path_factory.mktemp("api"))
    assert apisnapshot.get(s, wait=180) is not None
    return s


def api_findings(source: str, s: Settings) -> list[tuple[str, int | None, str]]:
    result = check_scene(textwrap.dedent(source), s)
    return [(f.code, f.line, f.message) for f in result.findings + result.warnings if f.code in API_CODES]


def test_the_snapshot_knows_manims_names_and_keywords(ready: Settings):
    snap = apisnapshot.get(ready)
    assert snap is not None and snap.manim == apisnapshot.manim_version()
    assert snap.names["Circle"] == snap.names["Create"] == snap.names["MathTex"] == "class"
    assert (snap.names["smooth"], snap.names["RED"], snap.names["np"]) == ("function", "constant", "module")
    circle = snap.keywords("Circle")
    assert circle is not None and not circle.open
    assert {"radius", "color", "fill_opacity", "stroke_width", "z_index"} <= set(circle.names)  # up the MRO
    assert "opacity" not in circle.names
    assert {"font_size", "tex_to_color_map", "substrings_to_isolate"} <= set(snap.keywords("MathTex").names)
    assert {"run_time", "lag_ratio", "rate_func"} <= set(snap.keywords("Create").names)
    plot = snap.method("Axes", "plot")  # defined on CoordinateSystem, found along Axes' MRO
    assert plot is not None and "x_range" in plot.names and plot.open  # its **kwargs go to the graph
    assert snap.method("Axes", "get_graph") is None
    assert "sqrt" in snap.modules["math"] and "randint" in snap.modules["random"]
    path = apisnapshot.snapshot_path(ready)
    assert path is not None and path.name == f"manim-api-{snap.manim}.json"
    assert path.parent == ready.folders.work.parent / "cache"
    assert json.loads(path.read_text())["format"] == apisnapshot.FORMAT


def test_class_keywords_follow_kwargs_only_where_they_are_passed_on():
    class Base:
        def __init__(self, color=None, z_index=0):
            pass

    class Passes(Base):
        def __init__(self, radius=1, **kwargs):
            self.label = kwargs.pop("label", None)
            super().__init__(**kwargs)

    class Swallows(Base):
        def __init__(self, radius=1, **kwargs):
            super().__init__()

    class Elsewhere(Base):
        def __init__(self, **kwargs):
            self.inner = dict(**kwargs)
            super().__init__()

    assert class_keywords(Passes) == (["radius", "label", "color", "z_index"], False)
    assert class_keywords(Swallows) == (["radius"], True)  # any keyword is taken (and dropped)
    assert class_keywords(Elsewhere) == ([], True)


def test_undefined_names_and_unknown_keywords_come_in_one_record(ready: Settings):
    source = textwrap.dedent(
        """\
        from manim import *

        class GeneratedAnimation(Scene):
            def construct(self):
                title = Text("Hello", font_sise=40)
                ring = Circle(radius=1, colour=BLUE)
                axes = Axes(x_range=[0, 5], x_lenght=6)
                self.play(Creat(ring), Wirte(title), Create(axes))
        """
    )
    with pytest.raises(InvalidScene) as caught:
        validate_scene_code(source, ready)
    record = caught.value.record
    assert record is not None
    assert (record.phase, record.type, record.line, record.column) == ("validate", "TypeError", 5, 31)
    assert record.suggestion == {"line": 5, "column": 31, "replace": "font_sise", "with": "font_size"}
    where = [(f["code"], f["line"], f["column"]) for f in record.findings]
    assert where == [
        ("unknown-keyword", 5, 31),
        ("unknown-keyword", 6, 33),
        ("unknown-keyword", 7, 37),
        ("undefined-name", 8, 19),
        ("undefined-name", 8, 32),
    ]
    messages = [f["message"] for f in record.findings]
    assert "`font_sise=`" in messages[0] and "did you mean `font_size=`?" in messages[0]
    assert "`color=`" in messages[1] and messages[1].index("color") < messages[1].index("radius")  # closest first
    assert "`x_length=`" in messages[2]
    assert "did you mean `Create`?" in messages[3] and "`Write`" in messages[4]
    assert "fix all 5" in (record.hint or "")


def test_what_the_checks_leave_alone(ready: Settings):
    clean = """\
        from manim import *
        from math import *
        import numpy as np

        class Circle(VMobject):  # the file's own class: its keywords are its own
            def __init__(self, size=1, **kwargs):
                super().__init__(**kwargs)

        def helper(points: Sequence[Point3D]) -> Thing:  # annotations are not checked
            total = 0
            for i, (a, b) in enumerate(points):
                total += sqrt(a) + pi  # from math import *
            try:
                pass
            except ValueError as err:
                print(err)
            if (n := len(points)) > 2:
                total += n
            return [k for k in range(3)], lambda t, *args, **kw: t

        class GeneratedAnimation(Scene):
            def construct(self):
                c = Circle(size=2, colour=RED)
                d = Dot(**{"colour": RED})
                self.play(Create(c), FadeIn(d, shift=UP), run_time=1)
                self.wait(__class__ and 0.1)
        """
    assert api_findings(clean, ready) == []
    unknown_star = """\
        from manim import *
        from manim_extra import *

        class GeneratedAnimation(Scene):
            def construct(self):
                self.play(Create(Sqaure(colour=RED)))
        """
    assert api_findings(unknown_star, ready) == []  # the other star import may bring anything
    dynamic = "from manim import *\nglobals()['Sqaure'] = Square\nclass S(Scene):\n    def construct(self): Sqaure()\n"
    assert api_findings(dynamic, ready) == []
    explicit = """\
        from manim import Scene, Circle as Ring

        class GeneratedAnimation(Scene):
            def construct(self):
                self.add(Ring(radius=1, colour=RED))
        """
    assert [(c, line) for c, line, _ in api_findings(explicit, ready)] == [("unknown-keyword", 5)]


def test_old_names_stay_old_api_findings(ready: Settings):
    source = """\
        from manim import *

        class GeneratedAnimation(Scene):
            def construct(self):
                self.play(ShowCreation(Circle()), Writ(Text("x", size=30)))
        """
    result = check_scene(textwrap.dedent(source), ready)
    codes = [(f.code, f.line) for f in result.findings]
    assert codes == [("old-api", 5), ("old-api", 5), ("undefined-name", 5)]  # no second report of either


@pytest.mark.parametrize("mode", ["warn", "off"])
def test_api_check_warn_and_off(ready: Settings, tmp_path: Path, mode: str):
    s = settings(ready.folders.work.parent, f"validation.api_check={mode}")
    source = "from manim import *\nclass S(Scene):\n    def construct(self):\n        self.add(Sqaure(sid=1))\n"
    result = check_scene(source, s)
    assert result.ok
    expected = [("undefined-name", 4)] if mode == "warn" else []
    assert [(f.code, f.line) for f in result.warnings] == expected


def test_the_check_is_skipped_without_a_snapshot(ready: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    source = "from manim import *\nclass S(Scene):\n    def construct(self):\n        self.add(Sqaure())\n"
    # Unresolved settings (a bare Settings()) have no cache: nothing is checked, nothing written.
    monkeypatch.chdir(tmp_path)
    assert check_scene(source, Settings()).ok and not (tmp_path / "cache").exists()
    # A location without a snapshot: the first check is skipped and has it made (here: copied
    # from the one this process made); the next check uses it.
    fresh = settings(tmp_path / "fresh")
    assert check_scene(source, fresh).ok
    assert not check_scene(source, fresh).ok
    # A builder that fails: skipped, logged once, not retried for every scene.
    monkeypatch.setattr(apisnapshot, "_builds", {})
    monkeypatch.setattr(apisnapshot, "_run_builder", lambda *a: (_ for _ in ()).throw(RuntimeError("no manim")))
    broken = settings(tmp_path / "broken")
    assert apisnapshot.get(broken, wait=30) is None
    assert check_scene(source, broken).ok


def test_a_corrupted_cache_file_is_made_again(ready: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    s = settings(tmp_path)
    path = apisnapshot.snapshot_path(s)
    assert path is not None
    path.parent.mkdir(mode=0o700)
    version = apisnapshot.manim_version()
    for bad in (b'{"format": 1, "manim": "', json.dumps({"format": 1, "manim": version, "names": {}}).encode()):
        path.write_bytes(bad)
        with pytest.raises(ValueError):
            Snapshot.from_json(json.loads(bad) if bad.endswith(b"}") else None, version or "")
    monkeypatch.setattr(apisnapshot, "_builds", {})  # a real builder process, not this process's copy
    monkeypatch.setattr(apisnapshot, "_loaded", {})
    snap = apisnapshot.get(s, wait=180)
    assert snap is not None and "Circle" in snap.names
    assert Snapshot.from_json(json.loads(path.read_bytes()), version or "").names == snap.names


def _done_cases() -> list[tuple[str, str]]:
    out = []
    for path in sorted((ROOT / "tests" / "cases").glob("*.yaml")):
        case = yaml.safe_load(path.read_text(encoding="utf-8"))
        if case["expect"]["status"] == "done" and path.stem != "api_check_warn_renders":  # those warn on purpose
            source = case.get("scene") or (ROOT / case["scene_file"]).read_text(encoding="utf-8")
            out.append((path.stem, source))
    return out


def test_no_findings_on_the_examples_and_the_cases_that_render(ready: Settings):
    scenes = [(p.name, p.read_text(encoding="utf-8")) for p in sorted((ROOT / "examples").glob("*.py"))]
    scenes = [(name, text) for name, text in scenes if "from manim import" in text]  # not repair_loop.py
    cases = _done_cases()
    assert len(scenes) >= 6 and len(cases) >= 15
    found = {name: api_findings(text, ready) for name, text in scenes + cases}
    assert {name: f for name, f in found.items() if f} == {}


def test_no_findings_on_the_manim_docs_gallery(ready: Settings):
    if not GALLERY.is_dir():
        pytest.skip(f"the gallery corpus is not here ({GALLERY}); set WATCHER_CORPUS to the folder that holds it")
    files = sorted(GALLERY.glob("*.py"))
    assert len(files) == 27
    results = {p.name: check_scene(p.read_bytes(), ready, p.name) for p in files}
    assert {name: [f.to_dict() for f in r.findings] for name, r in results.items() if not r.ok} == {}
