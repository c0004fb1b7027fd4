"""Hints for a name that is not there: NameError, ImportError, ModuleNotFoundError, AttributeError.

The commonest failures of a generated scene: a name from older Manim or ManimGL
(`ShowCreation`, `axes.get_graph`, `manimlib`), a misspelling, a module used without an
import or not installed here, a camera method only ThreeDScene or MovingCameraScene has,
and Mobject's getter trap (`get_<anything>()` becomes a getter that takes no arguments).
Each function gives a hint and, when one replacement is clearly right, a suggestion;
`watcher.hints.explain` chooses the function by the exception.
"""

from __future__ import annotations

import builtins
import re
import sys
from typing import Any

from . import renames
from .hintcontext import API, Context, Namespace, Suggestion, general_hint, loaded_manim, quoted, rename_text
from .spelling import best, close

# Scene methods that only ThreeDScene has; generators call them on a plain Scene.
THREED_METHODS = frozenset(
    "set_camera_orientation move_camera begin_ambient_camera_rotation stop_ambient_camera_rotation "
    "add_fixed_in_frame_mobjects add_fixed_orientation_mobjects begin_3dillusion_camera_rotation".split()
)


# -- names -----------------------------------------------------------------------------------


def name_hint(name: str, ns: Namespace, ctx: Context) -> tuple[str | None, Suggestion | None]:
    if not name:
        return general_hint(NameError(), "render"), None
    if entry := renames.NAMES.get(name):
        return rename_text(entry), ctx.replace(name, entry.new) if entry.exact else None
    if name in sys.stdlib_module_names:
        return f"`{name}` is a Python module that the file uses without importing: add `import {name}` at the top", {
            "line": 1,
            "column": 1,
            "replace": "",
            "with": f"import {name}\n",
        }
    if braces := _fstring_tex(ctx, name):
        return braces, None
    known = set(ns) | set(dir(builtins)) | set(dir(loaded_manim() or object()))
    matches = close(name, known)
    undefined = f"`{name}` is neither defined in the file nor imported"
    if match := best(matches, name):
        return f"{undefined}: did you mean `{match}`?", ctx.replace(name, match)
    if matches:
        return f"{undefined}: did you mean one of {', '.join(f'`{m}`' for m in matches)}?", None
    return f"{undefined}, and {API} has no such name (`from manim import *` brings Manim's names)", None


def _fstring_tex(ctx: Context, name: str) -> str | None:
    """An f-string whose TeX braces Python took for a field: f"\\frac{a}{b}" looks up `a`."""
    code = ctx.code()
    if re.search(r"\b[rR]?[fF][rR]?[\"']", code) and re.search(rf"\\[A-Za-z]+\{{{re.escape(name)}\b", code):
        return (
            f"`{name}` comes from an f-string: Python reads the TeX braces in it as fields; "
            "double them ({{ and }}) or build the string without f"
        )
    return None


def import_name_hint(exc: ImportError, ctx: Context) -> tuple[str | None, Suggestion | None]:
    name = quoted(str(exc))
    if entry := renames.NAMES.get(name):
        return rename_text(entry), ctx.replace(name, entry.new) if entry.exact else None
    manim = loaded_manim()
    matches = close(name, dir(manim)) if manim else []
    if match := best(matches, name):
        return f"`{name}` is not in {API}: did you mean `{match}`?", ctx.replace(name, match)
    return f"`{name}` is not in {API}: import from `manim` only what `from manim import *` provides", None


def module_hint(module: str, ctx: Context) -> tuple[str | None, Suggestion | None]:
    top = module.split(".")[0]
    if top in renames.PLUGINS:
        return (
            f"`{module}` is the Manim plugin {renames.PLUGINS[top]}, which is not installed here "
            "(only Manim itself is): write the scene with Manim's own classes"
        ), None
    if entry := renames.module_rename(module):
        suggestion = ctx.replace(entry.old, entry.new) if entry.exact else None
        return f"`{module}` does not exist in {API}: use `{entry.new}` ({entry.note})", suggestion
    if top == "manim":
        return f"`{module}` is not a module of {API}: import from `manim` (`from manim import *`)", ctx.replace(
            module, "manim"
        )
    return f"`{module}` is not installed here: only Manim, NumPy and the standard library are", None


# -- attributes ------------------------------------------------------------------------------


def attribute_hint(exc: AttributeError, ns: Namespace, ctx: Context) -> tuple[str | None, Suggestion | None]:
    name = getattr(exc, "name", None) or quoted(str(exc), last=True)
    obj = getattr(exc, "obj", None)
    manim = loaded_manim()
    if isinstance(obj, type(sys)) and obj.__name__ == "numpy" and name == "math":
        return rename_text(renames.ATTRS["math"]), ctx.replace("np.math", "math", r"\b(np|numpy)\.math\b")
    if manim is not None and isinstance(obj, manim.Scene):
        if name in THREED_METHODS and not isinstance(obj, manim.ThreeDScene):
            return _scene_base_hint(obj, name, "ThreeDScene", ctx)
    if manim is not None and isinstance(obj, manim.Camera) and name == "frame":
        return _scene_base_hint(_scene_at(ns, manim, ctx), "camera.frame", "MovingCameraScene", ctx)
    if (entry := renames.ATTRS.get(name)) is not None:
        return rename_text(entry), ctx.replace_attribute(name, entry.new) if entry.exact else None
    owner = type(obj).__name__ if obj is not None else "the object"
    matches = close(name, dir(type(obj))) if obj is not None else []
    if match := best(matches, name):
        return f"{owner} has no attribute `{name}`: did you mean `{match}`?", ctx.replace_attribute(name, match)
    if matches:
        return f"{owner} has no attribute `{name}`; close ones: {', '.join(matches)}", None
    return f"{owner} has no attribute `{name}` in {API}; see its methods in the Manim reference", None


def _scene_base_hint(scene: Any, what: str, base: str, ctx: Context) -> tuple[str, Suggestion | None]:
    hint = f"`{what}` needs a {base}: derive the scene from {base} instead of Scene"
    if scene is None:
        return hint, None
    cls = scene if isinstance(scene, type) else type(scene)
    where = _class_line(ctx, cls.__name__)
    if where is None:
        return hint, None
    found = ctx.find(r"\bScene\b", start=where, span=1)
    if found is None:
        return hint, None
    return hint, {"line": found[0], "column": found[1], "replace": "Scene", "with": base}


def _scene_at(ns: Namespace, manim: Any, ctx: Context) -> type | None:
    """The scene class of the file whose body holds the failing line (the last one defined before it)."""
    own = [v for v in ns.values() if isinstance(v, type) and issubclass(v, manim.Scene)]
    own = [v for v in own if v.__module__ == ns.get("__name__")]  # not Manim's, which * imported
    placed = [(n, cls) for cls in own if (n := _class_line(ctx, cls.__name__)) and n <= (ctx.line or 0)]
    return max(placed, key=lambda p: p[0])[1] if placed else None


def _class_line(ctx: Context, name: str) -> int | None:
    for n, text in enumerate(ctx.lines, 1):
        if re.match(rf"\s*class\s+{re.escape(name)}\b", text):
            return n
    return None


def getter_hint(ns: Namespace, ctx: Context) -> tuple[str | None, Suggestion | None]:
    """Mobject.__getattr__ turns an unknown `get_x()` into a getter of attribute `x`, taking no arguments."""
    called = re.findall(r"\.((?:get|set)_\w+)\s*\(", ctx.code())
    manim = loaded_manim()
    real = _mobject_methods(manim) if manim else set()
    fake = [c for c in called if c not in real] or called
    if not fake:
        return (
            "a get_/set_ method that Manim does not have was called with arguments: Mobject turns any unknown "
            "get_<name>/set_<name> into a getter/setter of attribute <name>, which takes no arguments"
        ), None
    name = fake[-1]
    explain = (
        f"`{name}` is not a Manim method: Mobject turns any unknown get_<name> into a getter of the attribute "
        f"<name> (here `{name[4:]}`), which takes no arguments, hence the TypeError"
    )
    if entry := renames.ATTRS.get(name):
        return f"{explain}. {rename_text(entry)}", ctx.replace_attribute(name, entry.new) if entry.exact else None
    matches = close(name, real)
    if match := best(matches, name):
        return f"{explain}. Did you mean `{match}`?", ctx.replace_attribute(name, match)
    if matches:
        return f"{explain}. Close ones: {', '.join(matches)}", None
    return explain, None


def _mobject_methods(manim: Any) -> set[str]:
    """Every public method name of Manim's mobject classes."""
    names: set[str] = set()
    for value in vars(manim).values():
        if isinstance(value, type) and issubclass(value, manim.Mobject):
            names.update(n for n in dir(value) if not n.startswith("_"))
    return names
