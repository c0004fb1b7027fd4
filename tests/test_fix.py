"""Deterministic fixes (watcher.fix): the function, `watcher fix`, and the daemon with validation.autofix."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from watcher import renames
from watcher.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, cli
from watcher.fix import fix_source
from watcher.verify import verify_mp4

from .daemon_helpers import DaemonProc, wait_for

ROOT = Path(__file__).resolve().parent.parent
HEAD = "from manim import *\n\n\nclass GeneratedAnimation(Scene):\n    def construct(self):\n"


def scene(*body: str, head: str = HEAD) -> str:
    return head + "".join(f"        {line}\n" for line in body)


# -- fix_source ---------------------------------------------------------------------------


def test_a_rename_touches_code_only_not_strings_comments_or_longer_names():
    text = scene(
        't = Text("ShowCreation stays")  # ShowCreation stays',
        "MyShowCreation = ShowCreationX = 1",
        'self.play(ShowCreation(t), run_time=ShowCreation.__name__ == "x")',
        'print(f"{ShowCreation}")',  # inside an f-string: one STRING token, left alone
    )
    fixed = fix_source(text)
    assert fixed.text == scene(
        't = Text("ShowCreation stays")  # ShowCreation stays',
        "MyShowCreation = ShowCreationX = 1",
        'self.play(Create(t), run_time=Create.__name__ == "x")',
        'print(f"{ShowCreation}")',
    )
    assert fixed.changes == ["ShowCreation -> Create (line 8)"]
    assert fixed.note is None


def test_columns_are_characters_not_bytes_after_non_ascii_text():
    text = scene('self.play(Write(Text("größe ≥ π")), ShowCreation(Circle()), TextMobject("é"))')
    assert fix_source(text).text == scene('self.play(Write(Text("größe ≥ π")), Create(Circle()), Text("é"))')


def test_attribute_and_keyword_renames_apply_to_their_owners_only():
    text = scene(
        "axes = Axes(x_axis_width=6)",
        "g = axes.get_graph(lambda x: x)",
        'c = Code(code="x = 1", style="monokai", insert_line_no=False)',
        'other(code="x", style=1)',  # not Manim's Code: its keywords are its own
        "n = NumberLine(numbers_to_show=[1, 2])",
    )
    fixed = fix_source(text)
    assert fixed.text == scene(
        "axes = Axes(x_length=6)",
        "g = axes.plot(lambda x: x)",
        'c = Code(code_string="x = 1", formatter_style="monokai", add_line_numbers=False)',
        'other(code="x", style=1)',
        "n = NumberLine(numbers_to_include=[1, 2])",
    )
    assert "Axes(x_axis_width=) -> x_length= (line 6)" in fixed.changes
    assert ".get_graph -> .plot (line 7)" in fixed.changes


def test_renames_that_need_judgement_are_left_to_the_hint():
    text = scene(
        "axes = Axes(x_min=0, x_max=5)",  # x_range=[0, 5]: the value changes shape
        "self.play(FadeInFrom(axes, LEFT))",  # FadeIn(m, shift=LEFT): the arguments change
        "self.play(ShowCreationThenFadeAround(axes))",  # exact, but needs fade_out=True
        "t = Text('a', size=2)",  # font_size is not size: a different scale
    )
    assert fix_source(text).text == text and fix_source(text).changes == []


def test_only_exact_renames_of_names_attributes_and_keywords_are_marked_fix():
    fixable = [r for r in renames.RENAMES if r.fix]
    assert all(r.exact for r in fixable)
    assert {r.kind for r in fixable} == {"name", "attr", "kwarg"}
    assert not renames.NAMES["CircleIndicate"].fix and renames.NAMES["ShowCreation"].fix


def test_the_files_own_names_are_not_manims_old_ones():
    text = scene(
        "self.play(ShowCreation(Square()))",
        head="from manim import *\nfrom mylib import ShowCreation\n\n\nclass GeneratedAnimation(Scene):\n"
        "    def construct(self):\n",
    )
    assert fix_source(text).text == text
    own = HEAD + "        self.get_graph()\n\n    def get_graph(self):\n        return 1\n"  # its own method
    assert fix_source(own).text == own
    shadow = scene("Create = 1", "self.play(ShowCreation(Square()))")  # Create here is not Manim's
    assert fix_source(shadow).text == shadow


def test_a_from_manim_import_is_renamed_with_its_uses():
    head = "from manim import Scene, ShowCreation, Square\n\n\nclass S(Scene):\n    def construct(self):\n"
    fixed = fix_source(scene("self.play(ShowCreation(Square()))", head=head))
    assert fixed.text == scene("self.play(Create(Square()))", head=head.replace("ShowCreation", "Create"))


def test_markdown_fences_and_prose_around_one_code_block_are_removed():
    code = scene("self.play(Create(Square()))")
    reply = f"Here is the scene you asked for:\n\n```python\n{code}```\n\nRun it with `manim -ql`.\n"
    fixed = fix_source(reply)
    assert fixed.text == code
    assert fixed.changes == ["kept only the code (lines 4-9): removed the Markdown fences and prose around it"]
    assert fix_source("Sure! Two blocks:\n```python\nx = 1\n```\n```python\ny = 2\n```\n").changes == []


def test_renames_in_a_markdown_reply_report_the_replys_line_numbers():
    reply = "Here:\n```python\n" + scene("self.play(ShowCreation(Square()))") + "```\n"
    fixed = fix_source(reply)
    assert "ShowCreation -> Create (line 8)" in fixed.changes  # line 8 of the reply, line 6 of the code
    assert reply.splitlines()[7].strip() == "self.play(ShowCreation(Square()))"


def test_missing_math_and_random_imports_go_after_the_star_import():
    text = '"""Doc."""\nfrom manim import *\nimport numpy as np\n\n\nclass S(Scene):\n    def construct(self):\n'
    text += "        x = math.pi * random.random() + np.math.sqrt(2)\n"
    fixed = fix_source(text)
    assert fixed.text == (
        '"""Doc."""\nfrom manim import *\nimport math\nimport random\nimport numpy as np\n\n\n'
        "class S(Scene):\n    def construct(self):\n        x = math.pi * random.random() + math.sqrt(2)\n"
    )
    assert fixed.changes == [
        "np.math -> math (line 8)",
        "added `import math` (math is used on line 8 and never imported)",
        "added `import random` (random is used on line 8 and never imported)",
    ]


def test_no_import_is_added_when_the_name_is_bound_or_unused():
    for text in [
        scene("x = math.pi", head="import math\n" + HEAD),
        scene("x = m.pi", head="import math as m\n" + HEAD),
        scene("math = 3", "x = math"),
        scene("x = random.random()", head="from numpy import *\n" + HEAD),  # numpy's star brings random
        scene("x = 'math.pi'  # math.pi"),
    ]:
        assert fix_source(text).text == text, text


def test_fixing_a_fixed_file_changes_nothing():
    samples = [p.read_text() for p in sorted((ROOT / "examples").glob("*.py"))]
    samples.append("Here:\n```py\n" + scene("self.play(ShowCreation(TextMobject('a')))", "x = math.pi") + "```\n")
    samples.append(scene("g = Axes().get_graph(lambda x: np.math.sin(x), x_axis_width=2)"))
    for text in samples:
        once = fix_source(text)
        twice = fix_source(once.text)
        assert (twice.text, twice.changes) == (once.text, []), text


def test_a_fix_that_would_not_compile_is_not_made():
    # x_axis_width= is x_length=, which this call already has: Python refuses a repeated keyword.
    text = scene("axes = Axes(x_axis_width=6, x_length=4)", "self.play(ShowCreation(axes))")
    fixed = fix_source(text)
    assert fixed.text == text and fixed.changes == []
    assert fixed.note is not None and "would not compile" in fixed.note and "repeated" in fixed.note


def test_a_file_that_does_not_parse_is_left_alone_with_a_note():
    text = scene("self.play(ShowCreation(Square())")
    fixed = fix_source(text)
    assert fixed.text == text and fixed.changes == []
    assert fixed.note is not None and "does not parse" in fixed.note


# -- watcher fix ------------------------------------------------------------------------------


OLD = scene("self.play(ShowCreation(TextMobject('hi')), run_time=0.3)")


def test_fix_has_help_with_an_example():
    result = CliRunner().invoke(cli, ["fix", "--help"])
    assert result.exit_code == EXIT_OK and "Example" in result.output and "watcher fix" in result.output


def test_fix_prints_a_unified_diff_and_exits_1_without_touching_the_file(tmp_path: Path):
    path = tmp_path / "x.py"
    path.write_text(OLD)
    result = CliRunner().invoke(cli, ["fix", str(path)])
    assert result.exit_code == EXIT_FAILED, result.output
    assert result.stdout.startswith(f"--- {path}\toriginal\n+++ {path}\tfixed\n@@ ")
    assert "-        self.play(ShowCreation(TextMobject('hi')), run_time=0.3)\n" in result.stdout
    assert "+        self.play(Create(Text('hi')), run_time=0.3)\n" in result.stdout
    assert path.read_text() == OLD


def test_fix_write_replaces_the_file_atomically_keeping_its_mode(tmp_path: Path):
    path = tmp_path / "x.py"
    path.write_text(OLD)
    path.chmod(0o640)
    link = tmp_path / "link.py"
    link.symlink_to(path)  # written through: the link stays a link
    result = CliRunner().invoke(cli, ["fix", "--write", str(link)])
    assert result.exit_code == EXIT_OK, result.output
    assert "+        self.play(Create(Text('hi')), run_time=0.3)\n" in result.stdout
    assert path.read_text() == fix_source(OLD).text and link.is_symlink()
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.py", "x.py"]  # no temp file left
    again = CliRunner().invoke(cli, ["fix", str(path)])
    assert (again.exit_code, again.stdout) == (EXIT_OK, "")


def test_fix_exits_2_on_files_it_cannot_read_and_still_shows_the_others(tmp_path: Path):
    good = tmp_path / "good.py"
    good.write_text(OLD)
    latin1 = tmp_path / "latin1.py"
    latin1.write_bytes(b"x = '\xe9'\n")
    result = CliRunner().invoke(cli, ["fix", str(latin1), str(tmp_path / "missing.py"), str(good)])
    assert result.exit_code == EXIT_USAGE
    assert "not UTF-8" in result.stderr and "missing.py: cannot read" in result.stderr
    assert "+        self.play(Create(Text('hi')), run_time=0.3)\n" in result.stdout
    assert CliRunner().invoke(cli, ["fix"]).exit_code == EXIT_USAGE  # no file named
    assert CliRunner().invoke(cli, ["fix", str(tmp_path)]).exit_code == EXIT_USAGE  # a folder


def test_fix_reports_why_a_file_was_not_fixed(tmp_path: Path):
    path = tmp_path / "x.py"
    path.write_text(scene("axes = Axes(x_axis_width=6, x_length=4)"))
    result = CliRunner().invoke(cli, ["fix", str(path)])
    assert (result.exit_code, result.stdout) == (EXIT_OK, "")
    assert "not fixed: the fixed file would not compile" in result.stderr


def test_fix_as_a_real_command_gives_a_diff_that_patch_applies(tmp_path: Path):
    path = tmp_path / "x.py"
    path.write_text("Here it is:\n\n```python\n" + OLD + "```\n")
    run = subprocess.run(
        [sys.executable, "-m", "watcher", "fix", "x.py"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == EXIT_FAILED, run.stderr
    if not os.path.exists("/usr/bin/patch"):
        pytest.skip("patch is not installed")
    subprocess.run(["patch", "-p0", "--quiet"], cwd=tmp_path, input=run.stdout, text=True, check=True, timeout=30)
    assert path.read_text() == fix_source(OLD).text


# -- the daemon with validation.autofix -----------------------------------------------------


@pytest.mark.slow
def test_the_daemon_renders_the_fixed_scene_and_files_original_fix_and_diff(tmp_path: Path):
    broken = scene("self.play(ShowCreation(TextMobject('x')), run_time=0.3)", "1 / 0")
    with DaemonProc(tmp_path / "w", {"validation": {"autofix": True}}) as d:
        d.drop("x.py", OLD)
        d.drop("y.py", broken)
        wait_for(lambda: (d.done / "x.py").exists() and (d.failed / "y.py").exists(), 120, "both results")
        assert d.results() == {
            "done": ["x.fix.diff", "x.fixed.py", "x.meta.json", "x.mp4", "x.py"],
            "failed": ["y.error.json", "y.fix.diff", "y.fixed.py", "y.meta.json", "y.py"],
        }, d.log()
        assert (d.done / "x.py").read_text() == OLD  # the original bytes, as sent
        assert (d.done / "x.fixed.py").read_text() == fix_source(OLD).text
        diff = (d.done / "x.fix.diff").read_text()
        assert diff.startswith("--- x.py\n+++ x.fixed.py\n") and "+        self.play(Create(Text('hi'))" in diff
        assert verify_mp4(d.done / "x.mp4").frames >= 1
        assert (d.failed / "y.py").read_text() == broken
        assert "ZeroDivisionError" in (d.failed / "y.error.json").read_text()
        assert "x.py: fixed before rendering: ShowCreation -> Create (line 6); TextMobject -> Text (line 6)" in d.log()
