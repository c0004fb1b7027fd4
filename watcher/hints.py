"""Specific hints for a failed render, made in the render child where the exception lives.

Most failed scenes come from code generators, and the record goes back to the generator
for its next attempt: "check the call against the API" sends it guessing, while "Axes has
no get_graph: it is plot in Manim Community 0.22" is a fix. `explain` looks at the
exception, the scene module's namespace and the source, and returns a hint and, when one
replacement is clearly right, a `suggestion` {"line", "column", "replace", "with"}.
Here: the choice by exception, and the hints for a call (keyword arguments, 2D points,
LaTeX); those for a name that is not there are in `watcher.namehints`, and what they all
work from (the source around the failing line) in `watcher.hintcontext`.

Manim is not imported here at module level (the module is pure); the functions look it up
in `sys.modules`, where the render child has already put it. Nothing here may raise:
`explain` falls back to a general hint on any error of its own.
"""

from __future__ import annotations

import ast
import inspect
import re
import sys
from collections.abc import Callable
from typing import Any

from . import renames
from .hintcontext import API, Context, Namespace, Suggestion, general_hint, loaded_manim, quoted
from .namehints import attribute_hint, getter_hint, import_name_hint, module_hint, name_hint
from .spelling import best, close

_GETTER_TRAP = re.compile(r"__getattr__\.<locals>\.(getter|setter)\(\) (takes|got)")
_BAD_KWARG = re.compile(r"(\w+)\(\) got an unexpected keyword argument '(\w+)'")
_SHAPES_2D = re.compile(r"\(2,\)|\(\d+, ?2\)|shape \(\d+,2\)|same number of dimensions")


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
        return general_hint(exc, phase), None


def _explain(
    exc: BaseException, phase: str, ns: Namespace, record: dict[str, Any], source: str
) -> tuple[str | None, Suggestion | None]:
    ctx = Context(source, record.get("line"))
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
        return name_hint(getattr(exc, "name", None) or quoted(text), ns, ctx)
    if isinstance(exc, AttributeError):
        return attribute_hint(exc, ns, ctx)
    if isinstance(exc, TypeError):
        if _GETTER_TRAP.search(text):
            return getter_hint(ns, ctx)
        if m := _BAD_KWARG.search(text):
            return keyword_hint(m.group(2), ns, ctx)
    if isinstance(exc, (ValueError, TypeError, IndexError)) and _SHAPES_2D.search(text):
        return points_hint(ctx)
    return general_hint(exc, phase), None


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


def keyword_hint(keyword: str, ns: Namespace, ctx: Context) -> tuple[str | None, Suggestion | None]:
    call = next((c for c in reversed(ctx.calls()) if any(k.arg == keyword for k in c.keywords)), None)
    callee = _callee_name(call.func) if call else None
    target = ns.get(callee) if callee else None
    manim = loaded_manim()
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
    if match := (matches[0] if keyword == "opacity" and matches else best(matches, keyword)):
        return f"{hint}. Did you mean `{match}=`?", ctx.replace(
            keyword, match, rf"\b{re.escape(keyword)}(?=\s*=)", kw_line
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


# -- points, LaTeX, the scene module ----------------------------------------------------------


def points_hint(ctx: Context) -> tuple[str | None, Suggestion | None]:
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


def scene_namespace(scene_path: str) -> Namespace | None:
    """The globals of the scene module `child.run` registered as "scene", if it is the one at `scene_path`."""
    try:
        module = sys.modules.get("scene")
        if isinstance(module, type(sys)) and module.__dict__.get("__file__") == scene_path:
            return module.__dict__
    except Exception:  # noqa: BLE001 - the scene may have put anything there
        pass
    return None
