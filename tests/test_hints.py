"""Hints a code generator can act on: the rename table against the installed Manim, the
child's hints on real exceptions, and the corpus of generated scenes (tests/cases/gen_*.yaml)."""

from __future__ import annotations

import importlib
import inspect
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from watcher import hints, renames
from watcher.config import load_config
from watcher.pipeline import render_job
from watcher.validate import check_scene

manim = pytest.importorskip("manim")

ROOT = Path(__file__).resolve().parent.parent
GENERATED = sorted((ROOT / "tests" / "cases").glob("gen_*.yaml"))


def _resolve(dotted: str) -> Any:
    """`config.frame_width`, `np.linalg.norm`, `Mobject.add_updater` looked up from `manim`."""
    value: Any = manim
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


# --- the rename table against the installed Manim ---------------------------------------------


def test_the_table_is_big_enough():
    assert len(renames.RENAMES) >= 30
    assert len({(r.kind, r.old, r.owners) for r in renames.RENAMES}) == len(renames.RENAMES)


@pytest.mark.parametrize("entry", renames.RENAMES, ids=lambda r: f"{r.kind}-{r.old}-{'-'.join(r.owners)}")
def test_old_name_is_gone_and_new_one_is_there(entry: renames.Rename):
    if entry.kind == "name":
        assert not hasattr(manim, entry.old), f"{entry.old} exists in this Manim"
        assert _resolve(entry.new) is not None
    elif entry.kind == "attr" and entry.owners == ("numpy",):
        import numpy

        assert not hasattr(numpy, entry.old)
        importlib.import_module(entry.new)
    elif entry.kind == "attr":
        for owner in entry.owners:
            # On the class: instances answer any get_/set_ through Mobject.__getattr__ (the getter trap).
            assert not hasattr(getattr(manim, owner), entry.old), f"{owner}.{entry.old} exists"
        new_owner, _, new = entry.new.rpartition(".")
        for owner in [new_owner] if new_owner else entry.owners:
            assert hasattr(getattr(manim, owner), new), f"{owner}.{new} is missing"
    elif entry.kind == "kwarg":
        for owner in entry.owners:
            params = hints.accepted_parameters(getattr(manim, owner))
            assert entry.old not in params and entry.new in params, f"{owner}: {params}"
            init = getattr(manim, owner).__init__
            # Where the **kwargs chain ends, an unknown keyword is a TypeError, not silently taken.
            assert entry.old not in inspect.signature(init).parameters
    else:
        with pytest.raises(ModuleNotFoundError):
            importlib.import_module(entry.old)
        importlib.import_module(entry.new)


def test_plugins_are_not_installed():
    for module in renames.PLUGINS:
        with pytest.raises(ModuleNotFoundError):
            importlib.import_module(module)


# --- hints on real exceptions -----------------------------------------------------------------


def _fail(body: str) -> tuple[BaseException, dict[str, Any], str, dict[str, Any]]:
    """Run `body` as a scene module's code; the exception, its namespace, source and a record like describe's."""
    source = "from manim import *\n" + textwrap.dedent(body).lstrip("\n")
    namespace: dict[str, Any] = {"__name__": "scene"}
    try:
        exec(compile(source, "scene.py", "exec"), namespace)
    except Exception as e:  # noqa: BLE001
        frames = [f for f in inspect.getinnerframes(e.__traceback__) if f.filename == "scene.py"]
        record = {"type": type(e).__name__, "message": str(e), "line": frames[-1].lineno}
        return e, namespace, source, record
    raise AssertionError("the code ran")


def explain(body: str) -> tuple[str | None, dict[str, Any] | None]:
    exc, namespace, source, record = _fail(body)
    return hints.explain(exc, "render", namespace, record, source)


def test_name_in_the_rename_table():
    hint, suggestion = explain("anim = ShowCreation(Circle())\n")
    assert "Create" in hint
    assert suggestion == {"line": 2, "column": 8, "replace": "ShowCreation", "with": "Create"}


def test_misspelt_name_gets_the_close_one():
    hint, suggestion = explain("x = 1\nc = Cirlce(radius=x)\n")
    assert "Circle" in hint and suggestion == {"line": 3, "column": 5, "replace": "Cirlce", "with": "Circle"}


def test_unknown_keyword_lists_the_parameters_through_kwargs():
    hint, suggestion = explain("line = Line(LEFT, RIGHT,\n    opacity=0.5)\n")
    assert "start, end, buff" in hint and "stroke_width" in hint  # Line's own, then VMobject's
    assert suggestion == {"line": 3, "column": 5, "replace": "opacity", "with": "stroke_opacity"}


def test_getter_trap_is_explained():
    hint, suggestion = explain("ax = Axes()\nax.get_graph(lambda x: x)\n")
    assert "getter" in hint and "plot" in hint
    assert suggestion == {"line": 3, "column": 4, "replace": "get_graph", "with": "plot"}


def test_numpy_math():
    hint, suggestion = explain("n = np.math.factorial(3)\n")
    assert "import math" in hint and suggestion["with"] == "math"


def test_two_dimensional_point():
    hint, suggestion = explain("d = Dot().move_to(np.array([1, 2]))\n")
    assert "3D" in hint and suggestion["with"] == "[1, 2, 0]"


def test_latex_hints():
    undefined = {"errors": ["! Undefined control sequence.\nl.7 f: \\R\n                ^2"]}
    assert "\\R" in hints.latex_hint(undefined, 'MathTex(r"f: \\R^2")')
    assert "$...$" in hints.latex_hint({"errors": ["! Missing $ inserted."]}, 'Tex(r"\\frac{1}{2}")')
    assert "remove the $" in hints.latex_hint({"errors": ["! Missing } inserted."]}, 'MathTex(r"$x$")')


def test_a_hint_never_raises():
    class Hostile(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    assert hints.explain(Hostile(), "render", {"x": 1}, {"message": None, "line": "x"}, None) == (None, None)


# --- generated output -------------------------------------------------------------------------


def test_extracted_code_renders(tmp_path: Path):
    """What render.py must do for validation.extract_code: render `check.source`, not the file."""
    scene = "from manim import *\n\nclass GeneratedAnimation(Scene):\n    def construct(self):\n"
    scene += "        self.wait(0.1)\n"
    reply = f"Here it is:\n\n```python\n{scene}```\n\nEnjoy!\n"
    settings = load_config(None, [f"folders.work={tmp_path / 'work'}"])
    check = check_scene(reply, settings, "reply.py")
    assert check.ok and check.source is not None and check.extracted == (4, 8)
    with render_job(check.source.encode(), "reply.py", settings, scenes=check.selected) as result:
        assert result.ok, result.record and result.record.to_json()


# --- the corpus ---------------------------------------------------------------------------------


def test_there_are_enough_generated_cases():
    assert len(GENERATED) >= 30


@pytest.mark.slow
def test_generated_corpus_score(tmp_path: Path):
    """Render every gen_ case; print how many name the right line and the right fix."""
    right_line = right_fix = 0
    misses = []
    for path in GENERATED:
        case = yaml.safe_load(path.read_text(encoding="utf-8"))
        expect = case["expect"]
        overrides = [f"{k}={v}" for k, v in (case.get("config") or {}).items()]
        settings = load_config(None, [*overrides, f"folders.work={tmp_path / 'work'}"])
        with render_job(case["scene"].encode(), f"{path.stem}.py", settings) as result:
            rec = result.record
            assert rec is not None, path.name
            line_ok = rec.line == expect["line"]
            fix_ok = bool(re.search(expect["hint"], rec.hint or ""))
            if "suggestion" in expect:
                fix_ok = fix_ok and rec.suggestion is not None and expect["suggestion"] in rec.suggestion["with"]
            right_line += line_ok
            right_fix += fix_ok
            if not (line_ok and fix_ok):
                misses.append(f"{path.stem}: line {rec.line}, hint {rec.hint!r}, suggestion {rec.suggestion}")
    print(f"\n{len(GENERATED)} generated cases: {right_line} right line, {right_fix} right fix")
    print("\n".join(misses))
    assert not misses
