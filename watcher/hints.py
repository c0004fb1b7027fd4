"""Specific hints for a failed render, made in the render child where the exception lives.

Most failed scenes come from code generators, and the record goes back to the generator
for its next attempt: "check the call against the API" sends it guessing, while "Axes has
no get_graph: it is plot in Manim Community 0.22" is a fix. `explain` looks at the
exception, the scene module's namespace and the source, and returns a hint and, when one
replacement is clearly right, a `suggestion` {"line", "column", "replace", "with"}.

Manim is not imported here at module level (the module is pure); the functions look it up
in `sys.modules`, where the render child has already put it. Nothing here may raise:
`explain` falls back to a general hint on any error of its own.
"""

from __future__ import annotations

import ast
import builtins
import difflib
import inspect
import re
import sys
from collections.abc import Callable, Iterable
from typing import Any

from . import renames

Suggestion = dict[str, Any]
Namespace = dict[str, Any]

API = "Manim Community 0.22"
_GETTER_TRAP = re.compile(r"__getattr__\.<locals>\.(getter|setter)\(\) (takes|got)")
_BAD_KWARG = re.compile(r"(\w+)\(\) got an unexpected keyword argument '(\w+)'")
_SHAPES_2D = re.compile(r"\(2,\)|\(\d+, ?2\)|shape \(\d+,2\)|same number of dimensions")
# Scene methods that only ThreeDScene has; generators call them on a plain Scene.
THREED_METHODS = frozenset(
    "set_camera_orientation move_camera begin_ambient_camera_rotation stop_ambient_camera_rotation "
    "add_fixed_in_frame_mobjects add_fixed_orientation_mobjects begin_3dillusion_camera_rotation".split()
)


def explain(
    exc: BaseException, phase: str, namespace: Namespace | None, record: dict[str, Any], source: str | None = None
) -> tuple[str | None, Suggestion | None]:
    """A hint for `exc` (raised in `phase`) and, when one replacement is clearly right, a suggestion.

    Args:
        exc: what the scene raised.
        phase: "import" (running the module) or "render".
        namespace: the scene module's globals (empty or None when not known).
        record: the record so far (line, frames, latex, message), as `child.describe` builds it.
        source: the scene's source text, to place suggestions at a line and column.
    """
    try:
        return _explain(exc, phase, namespace or {}, record, source or "")
    except Exception:  # noqa: BLE001 - a hint must never cost the record
        return _general(exc, phase), None


def _explain(
    exc: BaseException, phase: str, ns: Namespace, record: dict[str, Any], source: str
) -> tuple[str | None, Suggestion | None]:
    ctx = _Context(source, record.get("line"))
    text = str(record.get("message") or "")
    if record.get("type") == "LaTeXError":
        return latex_hint(record.get("latex"), ctx.code()), None
    if "has no play calls" in text:
        return (
            "render.still is fail, so a scene must animate: add self.play(...) or self.wait() to construct(), "
            "or set render.still: png to file its last frame as an image",
            None,
        )
    if isinstance(exc, ModuleNotFoundError):
        return module_hint(exc.name or "", ctx)
    if isinstance(exc, ImportError) and getattr(exc, "name", None):  # from manim import ShowCreation
        return import_name_hint(exc, ctx)
    if isinstance(exc, NameError):
        return name_hint(getattr(exc, "name", None) or _quoted(text), ns, ctx)
    if isinstance(exc, AttributeError):
        return attribute_hint(exc, ns, ctx)
    if isinstance(exc, TypeError):
        if _GETTER_TRAP.search(text):
            return getter_hint(ns, ctx)
        if m := _BAD_KWARG.search(text):
            return keyword_hint(m.group(2), ns, ctx)
    if isinstance(exc, (ValueError, TypeError, IndexError)) and _SHAPES_2D.search(text):
        return points_hint(ctx)
    return _general(exc, phase), None


def _general(exc: BaseException, phase: str) -> str | None:
    if isinstance(exc, NameError):
        return "is the name spelled right and imported? `from manim import *` brings Manim's names"
    if isinstance(exc, (AttributeError, TypeError)) and phase == "render":
        return f"check the call against the {API} API"
    return None


class _Context:
    """The user's source and the failing line, for finding where a name is written."""

    def __init__(self, source: str, line: int | None):
        self.lines = source.splitlines()
        self.line = line
        self.source = source

    def code(self) -> str:
        if self.line is None or not 0 < self.line <= len(self.lines):
            return ""
        return self.lines[self.line - 1]

    def find(self, pattern: str, start: int | None = None, span: int = 6) -> tuple[int, int] | None:
        """(line, column) of `pattern` at or after the failing line (a call may span lines), 1-based."""
        first = start or self.line
        if first is None:
            return None
        for n in range(first, min(first + span, len(self.lines) + 1)):
            if m := re.search(pattern, self.lines[n - 1]):
                return n, m.start() + 1
        return None

    def replace(self, old: str, new: str, pattern: str | None = None, start: int | None = None) -> Suggestion | None:
        where = self.find(pattern or rf"(?<![\w.]){re.escape(old)}\b", start)
        if where is None:
            return None
        return {"line": where[0], "column": where[1], "replace": old, "with": new}

    def replace_attribute(self, old: str, new: str) -> Suggestion | None:
        """Like `replace` for an attribute: `.old` is found, the column is the name's, past the dot."""
        suggestion = self.replace(old, new, rf"\.{re.escape(old)}\b")
        if suggestion:
            suggestion["column"] += 1
        return suggestion

    def calls(self) -> list[ast.Call]:
        """The calls that start on the failing line, outermost first."""
        try:
            tree = ast.parse(self.source)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return []
        found = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and n.lineno <= (self.line or 0) <= n.end_lineno]
        return sorted(found, key=lambda n: (n.lineno, n.col_offset))


def close(word: str, choices: Iterable[str], n: int = 3) -> list[str]:
    """Names in `choices` that look like `word`, best first (case-insensitive, as people misspell)."""
    by_lower: dict[str, str] = {}
    for c in choices:
        by_lower.setdefault(c.lower(), c)
    return [by_lower[m] for m in difflib.get_close_matches(word.lower(), by_lower, n=n, cutoff=0.75)]


def _one(matches: list[str], word: str) -> str | None:
    """The match to suggest: the only one, or one clearly closer than the next."""
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        ratio = [difflib.SequenceMatcher(None, word.lower(), m.lower()).ratio() for m in matches[:2]]
        if ratio[0] - ratio[1] >= 0.1:
            return matches[0]
    return None


def _manim() -> Any:
    return sys.modules.get("manim")


def _rename_text(entry: renames.Rename) -> str:
    return f"`{entry.old}` is not in {API}: use `{entry.new}` ({entry.note})"


# -- names -----------------------------------------------------------------------------------


def name_hint(name: str, ns: Namespace, ctx: _Context) -> tuple[str | None, Suggestion | None]:
    if not name:
        return _general(NameError(), "render"), None
    if entry := renames.NAMES.get(name):
        return _rename_text(entry), ctx.replace(name, entry.new) if entry.exact else None
    if name in sys.stdlib_module_names:
        return f"`{name}` is a Python module that the file uses without importing: add `import {name}` at the top", {
            "line": 1,
            "column": 1,
            "replace": "",
            "with": f"import {name}\n",
        }
    if braces := _fstring_tex(ctx, name):
        return braces, None
    known = set(ns) | set(dir(builtins)) | set(dir(_manim() or object()))
    matches = close(name, known)
    undefined = f"`{name}` is neither defined in the file nor imported"
    if best := _one(matches, name):
        return f"{undefined}: did you mean `{best}`?", ctx.replace(name, best)
    if matches:
        return f"{undefined}: did you mean one of {', '.join(f'`{m}`' for m in matches)}?", None
    return f"{undefined}, and {API} has no such name (`from manim import *` brings Manim's names)", None


def _fstring_tex(ctx: _Context, name: str) -> str | None:
    """An f-string whose TeX braces Python took for a field: f"\\frac{a}{b}" looks up `a`."""
    code = ctx.code()
    if re.search(r"\b[rR]?[fF][rR]?[\"']", code) and re.search(rf"\\[A-Za-z]+\{{{re.escape(name)}\b", code):
        return (
            f"`{name}` comes from an f-string: Python reads the TeX braces in it as fields; "
            "double them ({{ and }}) or build the string without f"
        )
    return None


def import_name_hint(exc: ImportError, ctx: _Context) -> tuple[str | None, Suggestion | None]:
    name = _quoted(str(exc))
    if entry := renames.NAMES.get(name):
        return _rename_text(entry), ctx.replace(name, entry.new) if entry.exact else None
    manim = _manim()
    matches = close(name, dir(manim)) if manim else []
    if best := _one(matches, name):
        return f"`{name}` is not in {API}: did you mean `{best}`?", ctx.replace(name, best)
    return f"`{name}` is not in {API}: import from `manim` only what `from manim import *` provides", None


def module_hint(module: str, ctx: _Context) -> tuple[str | None, Suggestion | None]:
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


def attribute_hint(exc: AttributeError, ns: Namespace, ctx: _Context) -> tuple[str | None, Suggestion | None]:
    name = getattr(exc, "name", None) or _quoted(str(exc), last=True)
    obj = getattr(exc, "obj", None)
    manim = _manim()
    if isinstance(obj, type(sys)) and obj.__name__ == "numpy" and name == "math":
        return _rename_text(renames.ATTRS["math"]), ctx.replace("np.math", "math", r"\b(np|numpy)\.math\b")
    if manim is not None and isinstance(obj, manim.Scene):
        if name in THREED_METHODS and not isinstance(obj, manim.ThreeDScene):
            return _scene_base_hint(obj, name, "ThreeDScene", ctx)
    if manim is not None and isinstance(obj, manim.Camera) and name == "frame":
        return _scene_base_hint(_scene_at(ns, manim, ctx), "camera.frame", "MovingCameraScene", ctx)
    if (entry := renames.ATTRS.get(name)) is not None:
        return _rename_text(entry), ctx.replace_attribute(name, entry.new) if entry.exact else None
    owner = type(obj).__name__ if obj is not None else "the object"
    matches = close(name, dir(type(obj))) if obj is not None else []
    if best := _one(matches, name):
        return f"{owner} has no attribute `{name}`: did you mean `{best}`?", ctx.replace_attribute(name, best)
    if matches:
        return f"{owner} has no attribute `{name}`; close ones: {', '.join(matches)}", None
    return f"{owner} has no attribute `{name}` in {API}; see its methods in the Manim reference", None


def _scene_base_hint(scene: Any, what: str, base: str, ctx: _Context) -> tuple[str, Suggestion | None]:
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


def _scene_at(ns: Namespace, manim: Any, ctx: _Context) -> type | None:
    """The scene class of the file whose body holds the failing line (the last one defined before it)."""
    own = [v for v in ns.values() if isinstance(v, type) and issubclass(v, manim.Scene)]
    own = [v for v in own if v.__module__ == ns.get("__name__")]  # not Manim's, which * imported
    placed = [(n, cls) for cls in own if (n := _class_line(ctx, cls.__name__)) and n <= (ctx.line or 0)]
    return max(placed, key=lambda p: p[0])[1] if placed else None


def _class_line(ctx: _Context, name: str) -> int | None:
    for n, text in enumerate(ctx.lines, 1):
        if re.match(rf"\s*class\s+{re.escape(name)}\b", text):
            return n
    return None


def getter_hint(ns: Namespace, ctx: _Context) -> tuple[str | None, Suggestion | None]:
    """Mobject.__getattr__ turns an unknown `get_x()` into a getter of attribute `x`, taking no arguments."""
    called = re.findall(r"\.((?:get|set)_\w+)\s*\(", ctx.code())
    manim = _manim()
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
        return f"{explain}. {_rename_text(entry)}", ctx.replace_attribute(name, entry.new) if entry.exact else None
    matches = close(name, real)
    if best := _one(matches, name):
        return f"{explain}. Did you mean `{best}`?", ctx.replace_attribute(name, best)
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


# -- keyword arguments ------------------------------------------------------------------------


def accepted_parameters(target: Callable[..., Any]) -> list[str]:
    """The keyword parameters `target` takes, following **kwargs up a class's bases as Manim passes them on."""
    seen: list[str] = []
    if not isinstance(target, type):
        return [p.name for p in _params(target) if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    for cls in target.__mro__:
        init = cls.__dict__.get("__init__")
        if init is None or cls is object:
            continue
        params = _params(init)
        seen += [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self"]
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return list(dict.fromkeys(seen))


def _params(func: Callable[..., Any]) -> list[inspect.Parameter]:
    try:
        return list(inspect.signature(func).parameters.values())
    except (TypeError, ValueError):
        return []


def keyword_hint(keyword: str, ns: Namespace, ctx: _Context) -> tuple[str | None, Suggestion | None]:
    call = next((c for c in reversed(ctx.calls()) if any(k.arg == keyword for k in c.keywords)), None)
    callee = _callee_name(call.func) if call else None
    target = ns.get(callee) if callee else None
    manim = _manim()
    if callee and target is None and manim is not None:
        target = getattr(manim, callee, None)
    kw_at = ctx.find(rf"\b{re.escape(keyword)}\s*=", start=call.lineno if call else None)
    kw_line = kw_at[0] if kw_at else None
    if callee and (entry := renames.kwarg_rename(keyword, callee)):
        suggestion = ctx.replace(keyword, entry.new, start=kw_line) if entry.exact else None
        return f"{callee}() has no `{keyword}=` in {API}: use `{entry.new}=` ({entry.note})", suggestion
    if keyword in ("dash_length", "dashed_ratio") and callee in ("Line", "Arrow"):
        return f"`{keyword}=` belongs to DashedLine: use DashedLine(...) instead of {callee}(...)", ctx.replace(
            callee, "DashedLine", start=call.lineno if call else None
        )
    if not callable(target):
        return f"`{keyword}=` is not a parameter of {callee or 'the call'} in {API}", None
    params = accepted_parameters(target)
    matches = close(keyword, params)
    if keyword == "opacity" and "stroke_opacity" in params:  # a Line or an outline: its colour is its stroke
        matches = ["stroke_opacity", "fill_opacity"] if "fill_opacity" in params else ["stroke_opacity"]
    listed = ", ".join(params[:40]) + (", ..." if len(params) > 40 else "")
    hint = f"{callee}() does not take `{keyword}=`; it takes: {listed}"
    if best := (matches[0] if keyword == "opacity" and matches else _one(matches, keyword)):
        return f"{hint}. Did you mean `{best}=`?", ctx.replace(
            keyword, best, rf"\b{re.escape(keyword)}(?=\s*=)", kw_line
        )
    if matches:
        return f"{hint}. Close ones: {', '.join(matches)}", None
    return hint, None


def _callee_name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


# -- points, LaTeX, modules ------------------------------------------------------------------


def points_hint(ctx: _Context) -> tuple[str | None, Suggestion | None]:
    hint = (
        "Manim points are 3D: give [x, y, 0] (or np.array([x, y, 0])), not [x, y]; "
        "Point(x, y) is Point([x, y, 0]); or use axes.c2p(x, y) for a point on Axes"
    )
    code = ctx.code()
    if m := re.search(r"\[\s*([^\[\],]+?)\s*,\s*([^\[\],]+?)\s*\]", code):
        whole = m.group(0)
        return hint, {"line": ctx.line, "column": m.start() + 1, "replace": whole, "with": whole[:-1] + ", 0]"}
    if m := re.search(r"\bPoint\(\s*([^(),]+?)\s*,\s*([^(),]+?)\s*\)", code):
        whole = m.group(0)
        fixed = f"Point([{m.group(1)}, {m.group(2)}, 0])"
        return hint, {"line": ctx.line, "column": m.start() + 1, "replace": whole, "with": fixed}
    return hint, None


def latex_hint(latex: Any, code: str) -> str:
    """What the first LaTeX error means for the scene's Tex or MathTex string."""
    errors = latex.get("errors") if isinstance(latex, dict) else None
    first = errors[0] if errors else ""
    tex_source = latex.get("tex_source", "") if isinstance(latex, dict) else ""
    plain_tex = bool(re.search(r"(?<!Math)\bTex\(", code)) and "MathTex(" not in code
    tex = f"{tex_source}\n{code}"  # TeX's line is often just \end{...}: the scene's line says more
    if "Undefined control sequence" in first:
        context = [ln for ln in first.splitlines()[1:] if ln.strip()]
        names = re.findall(r"\\[A-Za-z@]+", context[0] if context else "")
        name = names[-1] if names else "a command"
        return (
            f"LaTeX does not know {name}: fix its spelling, or load the package that defines it "
            "(a TexTemplate with add_to_preamble); Manim's template has amsmath and amssymb only"
        )
    # The failing line is the scene's: a $ in a MathTex string is the usual cause, whatever TeX says.
    if "Display math should end with $$" in first or ("MathTex(" in code and "$" in code):
        return "MathTex is already math: remove the $ signs from its string (or use Tex for text with $...$)"
    if "Missing $ inserted" in first or ("\\(" in tex and plain_tex):
        if "\\(" in tex or "\\[" in tex:
            return "Tex does not take \\( ... \\) or \\[ ... \\]: write math as $...$ inside Tex, or use MathTex"
        if plain_tex or "$" not in tex_source:
            return "math in Tex must be inside $...$: wrap it, or use MathTex(...) for a formula"
        return "a math command is outside math mode: use MathTex(...) or put it between $...$"
    if "Missing } inserted" in first or "Extra }" in first or "Missing { inserted" in first:
        return "the braces of the TeX string do not balance; in an f-string write TeX braces as {{ }}"
    return "check the TeX string: use a raw string r'...' for backslashes and balanced braces"


def _quoted(text: str, last: bool = False) -> str:
    found = re.findall(r"'([^']+)'", text)
    return (found[-1] if last else found[0]) if found else ""


def scene_namespace(scene_path: str) -> Namespace | None:
    """The globals of the scene module `child.run` registered as "scene", if it is the one at `scene_path`."""
    try:
        module = sys.modules.get("scene")
        if isinstance(module, type(sys)) and module.__dict__.get("__file__") == scene_path:
            return module.__dict__
    except Exception:  # noqa: BLE001 - the scene may have put anything there
        pass
    return None
