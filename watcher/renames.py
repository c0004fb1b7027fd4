"""Manim names that older Manim, ManimGL or 3Blue1Brown's own code used, and what Manim Community 0.22 has instead.

Code generators learned Manim from years of tutorials, so a generated scene often mixes
APIs. The table feeds the static check in `watcher.validate` (every occurrence is reported
before any render) and the hints the render child gives (`watcher.hints`). Each entry is
checked against the installed Manim by tests/test_hints.py: the old spelling must be gone
and the new one present, so an upgrade of Manim that brings a name back fails a test.

Pure data: importing this module does not import Manim.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["name", "attr", "kwarg", "module"]


@dataclass(frozen=True)
class Rename:
    """One old spelling and what to write instead.

    `new` is checked to exist: a name in `manim`'s namespace (dotted for an attribute of
    one, `config.frame_width`), a method of each class in `owners`, a parameter of each
    class in `owners`, or an importable module. `exact` says that writing `new` in place
    of `old` is the whole fix (a `suggestion` can be made); otherwise `note` says how.
    `fix` says the rename is also right in every use, so `watcher fix` (watcher.fix) may
    apply it unasked; an exact entry whose note offers a choice or an extra argument is not.
    """

    kind: Kind
    old: str
    new: str
    note: str
    exact: bool = True
    owners: tuple[str, ...] = ()  # attr: classes that lack it; kwarg: callables that refuse it
    fix: bool = False


def _names() -> list[Rename]:
    r = [
        ("ShowCreation", "Create", "ShowCreation was renamed Create", True),
        ("TextMobject", "Text", "TextMobject is gone: Text for plain text, Tex for LaTeX text", True),
        ("TexMobject", "MathTex", "TexMobject is gone: MathTex for math (no $...$), Tex for text", True),
        ("TexText", "Tex", "ManimGL's TexText is Tex in Manim Community", True),
        ("OldTex", "MathTex", "ManimGL's OldTex is MathTex in Manim Community", True),
        ("OldTexText", "Tex", "ManimGL's OldTexText is Tex in Manim Community", True),
        ("ParametricSurface", "Surface", "ParametricSurface was renamed Surface (u_range=, v_range=)", True),
        ("ParametricCurve", "ParametricFunction", "ManimGL's ParametricCurve is ParametricFunction (t_range=)", True),
        ("ShowCreationThenDestruction", "ShowPassingFlash", "use ShowPassingFlash(mobject, time_width=...)", True),
        ("ShowCreationThenFadeOut", "Create", "play Create(m), then FadeOut(m)", False),
        ("ShowCreationThenDestructionAround", "Circumscribe", "use Circumscribe(mobject)", True),
        ("ShowCreationThenFadeAround", "Circumscribe", "use Circumscribe(mobject, fade_out=True)", True),
        ("ShowPassingFlashAround", "Circumscribe", "use Circumscribe(mobject)", True),
        ("CircleIndicate", "Circumscribe", "use Circumscribe(mobject, Circle)", True),
        ("FlashAround", "Circumscribe", "ManimGL's FlashAround is Circumscribe in Manim Community", True),
        ("WiggleOutThenIn", "Wiggle", "WiggleOutThenIn was renamed Wiggle", True),
        ("FadeInFrom", "FadeIn", "write FadeIn(mobject, shift=direction)", False),
        ("FadeInFromDown", "FadeIn", "write FadeIn(mobject, shift=UP)", False),
        ("FadeInFromLarge", "FadeIn", "write FadeIn(mobject, scale=factor)", False),
        ("FadeOutAndShift", "FadeOut", "write FadeOut(mobject, shift=direction)", False),
        ("FadeOutAndShiftDown", "FadeOut", "write FadeOut(mobject, shift=DOWN)", False),
        ("VFadeIn", "FadeIn", "ManimGL's VFadeIn is FadeIn in Manim Community", True),
        ("VFadeOut", "FadeOut", "ManimGL's VFadeOut is FadeOut in Manim Community", True),
        ("TransformMatchingStrings", "TransformMatchingShapes", "or TransformMatchingTex for MathTex parts", True),
        ("Histogram", "BarChart", "there is no Histogram: bin the data yourself and use BarChart(values)", False),
        (
            "GraphScene",
            "Axes",
            "GraphScene is gone: derive from Scene and create Axes(x_range=..., y_range=...)",
            False,
        ),
        ("ContinualAnimation", "Mobject.add_updater", "continual animations are updaters: m.add_updater(f)", False),
        ("InteractiveScene", "Scene", "ManimGL's InteractiveScene: derive from Scene", True),
        ("GlowDot", "Dot", "ManimGL's GlowDot: use Dot", True),
        ("SGroup", "Group", "ManimGL's SGroup: use Group", True),
        ("PiCreature", "SVGMobject", "pi creatures are 3Blue1Brown's own, not part of Manim: draw shapes", False),
        ("DashedArrow", "DashedVMobject", "write DashedVMobject(Arrow(start, end))", False),
        ("get_norm", "np.linalg.norm", "get_norm is gone: np.linalg.norm(v)", True),
        ("FRAME_WIDTH", "config.frame_width", "frame sizes live on config", True),
        ("FRAME_HEIGHT", "config.frame_height", "frame sizes live on config", True),
        ("FRAME_X_RADIUS", "config.frame_x_radius", "frame sizes live on config", True),
        ("FRAME_Y_RADIUS", "config.frame_y_radius", "frame sizes live on config", True),
    ]
    # Exact, but the new name alone changes what the scene shows: a person decides.
    judgement = {"ShowCreationThenDestruction", "ShowCreationThenFadeAround", "CircleIndicate"}
    judgement |= {"TransformMatchingStrings", "GlowDot"}
    return [Rename("name", old, new, note, exact, fix=exact and old not in judgement) for old, new, note, exact in r]


def _attrs() -> list[Rename]:
    axes = ("Axes", "NumberPlane", "ThreeDAxes")
    r = [
        ("get_graph", "plot", "Axes.get_graph was renamed plot", True, axes),
        ("get_derivative_graph", "plot_derivative_graph", "renamed plot_derivative_graph", True, axes),
        ("get_antiderivative_graph", "plot_antiderivative_graph", "renamed plot_antiderivative_graph", True, axes),
        ("get_parametric_curve", "plot_parametric_curve", "renamed plot_parametric_curve", True, axes),
        ("get_implicit_curve", "plot_implicit_curve", "renamed plot_implicit_curve", True, axes),
        ("get_line_graph", "plot_line_graph", "renamed plot_line_graph", True, axes),
        ("add_coordinate_labels", "add_coordinates", "add_coordinate_labels was renamed add_coordinates", True, axes),
        ("get_v_line", "get_vertical_line", "ManimGL's get_v_line(point) is get_vertical_line(point)", True, axes),
        ("get_h_line", "get_horizontal_line", "ManimGL's get_h_line(point) is get_horizontal_line(point)", True, axes),
        (
            "get_vertical_line_to_graph",
            "get_vertical_line",
            "write axes.get_vertical_line(axes.i2gp(x, graph))",
            False,
            axes,
        ),
        ("fix_in_frame", "ThreeDScene.add_fixed_in_frame_mobjects", "self.add_fixed_in_frame_mobjects(m)", False, ()),
        ("math", "math", "np.math was removed from NumPy: `import math` and use math.<name>", True, ("numpy",)),
    ]
    return [
        Rename("attr", old, new, note, exact, owners or ("Mobject",), fix=exact) for old, new, note, exact, owners in r
    ]


def _kwargs() -> list[Rename]:
    axes = ("Axes", "NumberPlane", "ThreeDAxes", "NumberLine", "FunctionGraph")
    rng = "give a range instead: x_range=[min, max, step]"
    r = [
        ("x_min", "x_range", rng, axes),
        ("x_max", "x_range", rng, axes),
        ("y_min", "y_range", "give y_range=[min, max, step]", ("Axes", "NumberPlane", "ThreeDAxes")),
        ("y_max", "y_range", "give y_range=[min, max, step]", ("Axes", "NumberPlane", "ThreeDAxes")),
        ("t_min", "t_range", "give t_range=[min, max] (or [min, max, step])", ("ParametricFunction",)),
        ("t_max", "t_range", "give t_range=[min, max] (or [min, max, step])", ("ParametricFunction",)),
        ("u_min", "u_range", "give u_range=[min, max]", ("Surface",)),
        ("u_max", "u_range", "give u_range=[min, max]", ("Surface",)),
        ("v_min", "v_range", "give v_range=[min, max]", ("Surface",)),
        ("v_max", "v_range", "give v_range=[min, max]", ("Surface",)),
        ("x_axis_width", "x_length", "GraphScene's x_axis_width is Axes(x_length=...)", ("Axes", "NumberPlane")),
        ("y_axis_height", "y_length", "GraphScene's y_axis_height is Axes(y_length=...)", ("Axes", "NumberPlane")),
        ("tick_frequency", "x_range", "the step is the third item of x_range=[min, max, step]", ("NumberLine",)),
        ("numbers_to_show", "numbers_to_include", "renamed numbers_to_include", ("NumberLine",)),
        ("number_scale_val", "font_size", "number sizes are font_size= now", ("NumberLine",)),
        ("size", "font_size", "size= is gone: font_size= (48 is the default) or .scale()", ("Text", "Tex", "MathTex")),
        ("code", "code_string", "Code(code_string=...) for source text", ("Code",)),
        ("file_name", "code_file", "Code(code_file=...) for a file", ("Code",)),
        ("style", "formatter_style", "Code(formatter_style=...)", ("Code",)),
        ("insert_line_no", "add_line_numbers", "Code(add_line_numbers=...)", ("Code",)),
    ]
    exact = {"numbers_to_show", "code", "file_name", "style", "insert_line_no", "x_axis_width", "y_axis_height"}
    return [Rename("kwarg", old, new, note, old in exact, owners, fix=old in exact) for old, new, note, owners in r]


def _modules() -> list[Rename]:
    moved = [
        ("manim.mobject.svg.tex_mobject", "manim.mobject.text.tex_mobject"),
        ("manim.mobject.svg.text_mobject", "manim.mobject.text.text_mobject"),
        ("manim.mobject.svg.code_mobject", "manim.mobject.text.code_mobject"),
        ("manim.mobject.numbers", "manim.mobject.text.numbers"),
        ("manim.mobject.coordinate_systems", "manim.mobject.graphing.coordinate_systems"),
        ("manim.mobject.functions", "manim.mobject.graphing.functions"),
        ("manim.mobject.number_line", "manim.mobject.graphing.number_line"),
        ("manim.mobject.probability", "manim.mobject.graphing.probability"),
        ("manim.mobject.shape_matchers", "manim.mobject.geometry.shape_matchers"),
        ("manim.mobject.three_dimensions", "manim.mobject.three_d.three_dimensions"),
        ("manim.mobject.three_d_utils", "manim.mobject.three_d.three_d_utils"),
    ]
    out = [Rename("module", old, new, "the module moved; `from manim import *` has its names") for old, new in moved]
    gl = "this is ManimGL (3Blue1Brown's manim), a different library: write `from manim import *`"
    out += [
        Rename("module", "manimlib", "manim", gl, exact=False),
        Rename(
            "module", "big_ol_pile_of_manim_imports", "manim", "a 2019 manim import: write `from manim import *`", False
        ),
    ]
    return out


RENAMES: tuple[Rename, ...] = tuple(_names() + _attrs() + _kwargs() + _modules())

NAMES = {r.old: r for r in RENAMES if r.kind == "name"}
ATTRS = {r.old: r for r in RENAMES if r.kind == "attr"}
MODULES = {r.old: r for r in RENAMES if r.kind == "module"}
KWARGS: dict[str, list[Rename]] = {}
for _r in RENAMES:
    if _r.kind == "kwarg":
        KWARGS.setdefault(_r.old, []).append(_r)


def module_rename(module: str) -> Rename | None:
    """The entry for `module` or the nearest package of it that moved (`manimlib.imports` -> manimlib)."""
    parts = module.split(".")
    for i in range(len(parts), 0, -1):
        if (entry := MODULES.get(".".join(parts[:i]))) is not None:
            return entry
    return None


def kwarg_rename(keyword: str, callee: str) -> Rename | None:
    """The entry for `keyword` passed to the Manim callable named `callee`, if it is an old one."""
    return next((r for r in KWARGS.get(keyword, ()) if callee in r.owners), None)


# Manim plugins generators reach for; none is installed with watcher.
PLUGINS = {
    "manim_voiceover": "manim-voiceover (narration)",
    "manim_physics": "manim-physics (physics simulations)",
    "manim_slides": "manim-slides (presentations)",
    "manim_chemistry": "manim-chemistry (molecules)",
    "manim_ml": "manim-ml (neural network diagrams)",
    "manim_editor": "manim-editor (presentations)",
    "manim_fonts": "manim-fonts",
    "manim_rubikscube": "manim-rubikscube",
    "manim_data_structures": "manim-data-structures",
    "manim_dsa": "manim-dsa",
    "manim_circuit": "manim-circuit",
}

# Libraries whose scripts are sometimes sent instead of a Manim scene.
FOREIGN = {
    "bpy": "a Blender script",
    "manimlib": "a ManimGL scene (3Blue1Brown's manim, a different library)",
    "pygame": "a pygame program",
    "turtle": "a turtle-graphics program",
    "tkinter": "a Tk program",
    "vpython": "a VPython program",
    "pyglet": "a pyglet program",
    "matplotlib": "a matplotlib script",
    "plotly": "a plotly script",
}
