"""`watcher explain` on records made by real renders, and on files that are not records."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from watcher.cli import EXIT_OK, EXIT_USAGE, cli
from watcher.config import load_config
from watcher.errors import CAPS, ErrorRecord
from watcher.pipeline import render_job
from watcher.report import MAX_RECORD_BYTES

SCENES = {
    # A NameError that has one sure fix, after some output of its own.
    "name": """from manim import *


class GeneratedAnimation(Scene):
    def construct(self):
        print("printed before the error")
        c = Circle()
        s = Sqare()
        self.play(Create(c))
""",
    # Two old API names: found statically, both listed, nothing rendered.
    "old": """from manim import *


class GeneratedAnimation(Scene):
    def construct(self):
        self.play(ShowCreation(Circle()))
        self.play(FadeInFrom(Square(), LEFT))
""",
    # A LaTeX command that does not exist.
    "tex": """from manim import *


class GeneratedAnimation(Scene):
    def construct(self):
        self.play(Write(MathTex(r"\\frac{1}{2} \\foo")))
""",
}


@pytest.fixture(scope="module")
def records(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """`<name>.error.json` of each scene, as a real render files it."""
    folder = tmp_path_factory.mktemp("explain")
    settings = load_config(None, [f"folders.work={folder / 'work'}"])
    paths = {}
    for name, code in SCENES.items():
        with render_job(code.encode(), f"{name}.py", settings) as result:
            assert result.record is not None, f"{name}.py rendered"
            paths[name] = folder / f"{name}.error.json"
            paths[name].write_text(result.record.to_json(), encoding="utf-8")
    return paths


def explain(*args: str | Path):
    return CliRunner().invoke(cli, ["explain", *map(str, args)])


def test_a_name_error_is_shown_with_its_line_its_fix_and_its_frame(records: dict[str, Path]):
    result = explain(records["name"])
    assert result.exit_code == EXIT_OK, result.output
    assert result.stdout.splitlines() == [
        "name.py:8:13: render: NameError: name 'Sqare' is not defined",
        '  6 |         print("printed before the error")',
        "  7 |         c = Circle()",
        "> 8 |         s = Sqare()",
        "                  ^",  # under the column
        "  9 |         self.play(Create(c))",
        "hint: `Sqare` is neither defined in the file nor imported: did you mean `Square`?",
        "fix: replace 'Sqare' with 'Square' at 8:13",
        "frames (innermost last):",
        "  line 8, in construct: s = Sqare()",
        result.stdout.splitlines()[-1],
    ]
    assert result.stdout.splitlines()[-1].startswith("exit code 1, took ")
    assert "printed before the error\n" not in result.stdout  # the render's output only with --verbose


def test_verbose_adds_the_end_of_the_render_output(records: dict[str, Path]):
    result = explain("--verbose", records["name"])
    assert result.exit_code == EXIT_OK
    output = result.stdout.split("render output (its end):\n", 1)[1]
    assert "  printed before the error\n" in output


def test_every_finding_is_listed(records: dict[str, Path]):
    result = explain(records["old"])
    assert result.exit_code == EXIT_OK
    assert result.stdout.startswith("old.py:6:19: validate: OldManimAPI: ShowCreation is not in Manim Community")
    assert "fix: replace 'ShowCreation' with 'Create' at 6:19\n" in result.stdout
    findings = result.stdout.split("findings (2):\n", 1)[1].splitlines()
    assert findings[0].startswith("  6:19 old-api: ShowCreation is not in Manim Community 0.22: use Create")
    assert findings[1].startswith("  7:19 old-api: FadeInFrom is not in Manim Community 0.22: use FadeIn")


def test_a_latex_failure_shows_the_latex_block(records: dict[str, Path]):
    result = explain(records["tex"])
    assert result.exit_code == EXIT_OK
    assert result.stdout.startswith("tex.py:6:")
    assert "render: LaTeXError: " in result.stdout.splitlines()[0]
    latex = result.stdout.split("LaTeX:\n", 1)[1].splitlines()
    assert latex[0] == "  ! Undefined control sequence."
    assert any(line.startswith("  TeX line ") for line in latex)
    assert "LaTeX does not know \\foo" in result.stdout


def test_json_prints_the_record_normalised(records: dict[str, Path], tmp_path: Path):
    written = json.loads(records["name"].read_text(encoding="utf-8"))
    result = explain("--json", records["name"])
    assert result.exit_code == EXIT_OK and json.loads(result.stdout) == written  # a record watcher wrote is normal
    # A record someone edited: an unknown key, a message over its cap, a line number as text.
    edited = tmp_path / "edited.error.json"
    edited.write_text(json.dumps(written | {"fix": "x", "message": "m" * 100_000, "line": "8"}), encoding="utf-8")
    shown = json.loads(explain("--json", edited).stdout)
    assert "fix" not in shown and len(shown["message"]) <= CAPS.message and shown["line"] is None
    assert shown == ErrorRecord.from_dict(shown).to_dict()


def test_control_characters_are_shown_not_obeyed(records: dict[str, Path], tmp_path: Path):
    data = json.loads(records["name"].read_text(encoding="utf-8"))
    esc = "\x1b[2J\x1b]0;owned\x07"
    for key in ("source", "message", "hint", "excerpt", "stderr_tail"):
        data[key] = data[key] + esc + "\rforged"
    data["suggestion"]["with"] = esc
    data["frames"][0]["code"] = esc
    hostile = tmp_path / "hostile.error.json"
    hostile.write_text(json.dumps(data), encoding="utf-8")
    for args in ([hostile], ["--verbose", hostile]):
        result = explain(*args)
        assert result.exit_code == EXIT_OK
        assert not any(c in result.stdout for c in "\x1b\x07\r")
        assert "?[2J?]0;owned??forged" in result.stdout


def test_a_file_that_is_not_a_record_exits_2(records: dict[str, Path], tmp_path: Path):
    meta = tmp_path / "x.meta.json"
    meta.write_text(json.dumps({"schema": 1, "source": "x.py", "key": None, "ok": False}))
    (tmp_path / "list.error.json").write_text("[1, 2]")
    (tmp_path / "text.error.json").write_text("not json")
    (tmp_path / "big.error.json").write_bytes(b" " * (MAX_RECORD_BYTES + 1))
    (tmp_path / "link.error.json").symlink_to(records["name"])
    os.mkfifo(tmp_path / "fifo.error.json")
    expected = {
        "x.meta.json": "x.meta.json is not an error record",
        "list.error.json": "list.error.json does not hold a JSON object",
        "text.error.json": "text.error.json cannot be read: Expecting value",
        "big.error.json": "big.error.json cannot be read: 1048577 bytes, over the 1048576 bytes",
        "link.error.json": "link.error.json cannot be read: is a symbolic link: not followed",
        "fifo.error.json": "fifo.error.json cannot be read: not a regular file",
        "missing.error.json": "missing.error.json cannot be read: [Errno 2]",
    }
    for name, message in expected.items():
        result = explain(tmp_path / name)
        assert result.exit_code == EXIT_USAGE, (name, result.output)
        assert result.stderr.startswith(f"watcher: {message}"), (name, result.stderr)
        assert result.stdout == ""


def test_explain_as_a_subprocess(records: dict[str, Path]):
    run = subprocess.run(
        [sys.executable, "-m", "watcher", "explain", str(records["tex"])],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == EXIT_OK, run.stderr
    assert run.stdout.startswith("tex.py:6:") and "LaTeX:\n  ! Undefined control sequence.\n" in run.stdout
