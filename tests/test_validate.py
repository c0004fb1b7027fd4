"""Static scene checks: encoding, size, syntax, structure, selection and the call/import policy."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from watcher.config import Settings
from watcher.errors import InvalidScene
from watcher.validate import (
    SCENE_BASES,
    CheckResult,
    Finding,
    check_scene,
    decode_source,
    findings_record,
    validate_scene_code,
)

SIMPLE = """\
from manim import *


class GeneratedAnimation(Scene):
    def construct(self):
        self.play(Create(Circle()))
"""


def settings(scene: str = "auto", enabled: bool = True, max_bytes: int | None = None, **validation) -> Settings:
    s = Settings()
    render = dataclasses.replace(s.render, scene=scene, max_source_bytes=max_bytes or s.render.max_source_bytes)
    return dataclasses.replace(
        s, render=render, validation=dataclasses.replace(s.validation, enabled=enabled, **validation)
    )


def src(body: str) -> str:
    return textwrap.dedent(body).lstrip("\n")


def scene(*names: str, header: str = "from manim import *\n") -> str:
    """A file with one Scene subclass with construct() per name."""
    classes = "".join(f"\nclass {n}(Scene):\n    def construct(self):\n        pass\n" for n in names)
    return header + classes


def codes(result: CheckResult) -> list[str]:
    return [f.code for f in result.findings]


def policy(code: str, **kw) -> list[tuple[str, int | None, int | None]]:
    result = check_scene(code + "\n" + scene("GeneratedAnimation"), settings(**kw))
    return [(f.code, f.line, f.column) for f in result.findings if f.code.startswith("forbidden")]


# --- the seed API -------------------------------------------------------------------------


def test_seed_syntax_error_is_pythons_own():
    with pytest.raises(SyntaxError) as info:
        validate_scene_code("this is not valid python")
    err = info.value
    assert (err.filename, err.lineno) == ("scene.py", 1)
    assert err.offset and err.text == "this is not valid python"
    assert err.record.type == "SyntaxError"


def test_seed_module_without_scene():
    with pytest.raises(ValueError, match="missing"):
        validate_scene_code("from manim import *\n\nx = 1\n")


def test_seed_simple_scene():
    assert validate_scene_code(SIMPLE) == ["GeneratedAnimation"]
    assert validate_scene_code(scene("Squares")) == ["Squares"]


def test_seed_invalid_scene_lists_every_finding():
    with pytest.raises(InvalidScene) as info:
        validate_scene_code("import subprocess\nx = 1\n")
    message = str(info.value)
    assert "missing a Scene subclass" in message
    assert "missing an import from manim" in message
    assert "line 1: import of subprocess" in message
    assert isinstance(info.value, ValueError)
    assert info.value.record.phase == "validate"
    assert len(info.value.record.findings) == 3


# --- bytes: encoding and size ----------------------------------------------------------------


def test_bom_is_accepted_and_stripped():
    result = check_scene(b"\xef\xbb\xbf" + SIMPLE.encode())
    assert result.ok and result.text == SIMPLE
    assert decode_source(b"\xef\xbb\xbfx = 1") == "x = 1"


def test_nul_byte_offset():
    data = b"from manim import *\nx\0 = 1\n"
    with pytest.raises(InvalidScene, match=r"^invalid source: NUL byte at offset 21$") as info:
        decode_source(data, "nul.py")
    record = info.value.record
    assert (record.source, record.phase, record.type) == ("nul.py", "validate", "InvalidSource")
    assert (record.line, record.column) == (2, 2)
    result = check_scene(data)
    assert result.text is None
    assert result.findings == [Finding("encoding", "invalid source: NUL byte at offset 21", 2, 2)]


def test_invalid_byte_offset():
    with pytest.raises(InvalidScene) as info:
        decode_source(b"x =\xff")
    assert str(info.value) == "invalid source: not UTF-8 (byte 0xff at offset 3)"
    assert (info.value.record.line, info.value.record.column) == (1, 4)


def test_offsets_count_the_bom_and_the_first_problem_wins():
    with pytest.raises(InvalidScene, match=r"byte 0xfe at offset 5\)"):
        decode_source(b"\xef\xbb\xbfab\xfe\0")
    with pytest.raises(InvalidScene, match="NUL byte at offset 4$"):
        decode_source(b"\xef\xbb\xbfa\0\xfe")
    # a truncated multi-byte sequence: the offset is its first byte; columns count characters
    with pytest.raises(InvalidScene, match=r"byte 0xe2 at offset 7\)") as info:
        decode_source("é\n€x".encode() + b"\xe2\x82")
    assert (info.value.record.line, info.value.record.column) == (2, 3)


def test_str_input_goes_through_the_same_checks():
    assert codes(check_scene("x = '\0'")) == ["encoding"]
    assert codes(check_scene("x = '\udcff'")) == ["encoding"]


def test_size_cap_applies_before_decoding():
    data = b"\0" * 101  # would be an encoding finding, but the cap comes first
    result = check_scene(data, settings(max_bytes=100))
    assert codes(result) == ["size"] and result.text is None
    assert "101 bytes" in result.findings[0].message and "render.max_source_bytes" in result.findings[0].message
    assert findings_record(result, "big.py").type == "InvalidSource"
    assert check_scene(SIMPLE, settings(max_bytes=len(SIMPLE))).ok
    assert codes(check_scene(SIMPLE, settings(max_bytes=len(SIMPLE) - 1))) == ["size"]


def test_size_cap_counts_bytes_not_characters():
    text = SIMPLE + "# " + "é" * 30
    assert codes(check_scene(text, settings(max_bytes=len(text) + 10))) == ["size"]


# --- the parser --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "code",
    ["(" * 10000, "x = " + "-" * 100_000 + "1", "a" + ".b" * 200_000, "x = " + "[" * 1000],
    ids=["parens", "unary", "attributes", "brackets"],
)
def test_deep_nesting_is_a_finding_not_a_crash(code):
    result = check_scene(code)
    assert codes(result) == ["syntax"]
    with pytest.raises(SyntaxError):
        validate_scene_code(code)


def test_ten_megabyte_line_under_a_larger_cap():
    line = b"x = '" + b"a" * 10_000_000 + b"'\n"
    result = check_scene(b"from manim import *\n" + line, settings(max_bytes=20_000_000))
    assert codes(result) == ["no-scene"]
    broken = check_scene(b"from manim import *\n" + line[:-2] + b"\n", settings(max_bytes=20_000_000))
    assert [(f.code, f.line) for f in broken.findings] == [("syntax", 2)]
    record = findings_record(broken, "long.py")
    assert len(record.excerpt) < 1000 and "> 2 | x = 'aaa" in record.excerpt


def test_compiler_warnings_are_not_ours():
    # "\d" warns at compile time; under pytest's -W error that must not become a SyntaxError
    assert check_scene(SIMPLE + 'x = "\\d"\ny = 1 is 1\n').ok


def test_syntax_finding_location():
    result = check_scene("from manim import *\n\ndef f(:\n    pass\n")
    [finding] = result.findings
    assert (finding.code, finding.line, finding.column) == ("syntax", 3, 7)


# --- structure and selection ------------------------------------------------------------------


@pytest.mark.parametrize("base", sorted(SCENE_BASES))
def test_each_manim_scene_base(base):
    code = f"from manim import *\n\nclass Shot({base}):\n    def construct(self):\n        pass\n"
    assert validate_scene_code(code) == ["Shot"]


@pytest.mark.parametrize(
    "header, base",
    [
        ("import manim", "manim.Scene"),
        ("import manim as mn", "mn.ThreeDScene"),
        ("from manim.scene.scene import Scene", "Scene"),
        ("from manim import MovingCameraScene as MCS, Circle", "MovingCameraScene"),
    ],
)
def test_manim_import_forms(header, base):
    code = f"{header}\n\nclass Shot({base}):\n    def construct(self):\n        pass\n"
    assert validate_scene_code(code) == ["Shot"]


@pytest.mark.parametrize("header", ["", "import numpy as np", "from .manim import Scene"])
def test_missing_manim_import(header):
    result = check_scene(scene("GeneratedAnimation", header=header + "\n"))
    assert codes(result) == ["no-manim-import"]
    assert result.findings[0].message.startswith("missing an import from manim")


def test_manimgl_import_leads_with_the_old_api_finding():
    result = check_scene(scene("GeneratedAnimation", header="from manimlib import *\n"))
    assert codes(result) == ["old-api", "no-manim-import"]
    assert "ManimGL" in result.findings[0].message
    off = check_scene(scene("GeneratedAnimation", header="from manimlib import *\n"), settings(api_check="off"))
    assert codes(off) == ["not-manim", "no-manim-import"]


def test_user_base_class_chain():
    code = src(
        """
        from manim import *

        class Base(Scene):
            def setup_axes(self):
                pass

        class Middle(Base):
            def construct(self):
                pass

        class Leaf(Middle):
            pass
        """
    )
    result = check_scene(code, settings("all"))
    assert result.scenes == ["Base", "Middle", "Leaf"]
    assert result.selected == ["Middle", "Leaf"]  # Leaf inherits construct; Base has none
    assert validate_scene_code(code, settings("Leaf")) == ["Leaf"]
    assert codes(check_scene(code, settings("Base"))) == ["no-construct"]


def test_auto_skips_a_base_without_construct():
    code = (
        "from manim import *\nclass Base(Scene):\n    pass\nclass Main(Base):\n    def construct(self):\n        pass\n"
    )
    assert validate_scene_code(code) == ["Main"]


def test_helper_classes_are_not_scenes():
    code = src(
        """
        from dataclasses import dataclass
        from manim import *

        class Helper:
            def construct(self):
                pass

        class MyMob(VGroup):
            pass

        @dataclass
        class Config:
            n: int = 3

        class Shot(Scene):
            def construct(self):
                self.add(MyMob())
        """
    )
    result = check_scene(code)
    assert result.ok and result.scenes == ["Shot"] and result.selected == ["Shot"]


def test_scenes_nested_in_module_level_blocks_count_but_not_in_functions():
    code = src(
        """
        from manim import *

        if True:
            class A(Scene):
                def construct(self):
                    pass

        def factory():
            class B(Scene):
                def construct(self):
                    pass
            return B
        """
    )
    assert check_scene(code).scenes == ["A"]


def test_generated_animation_is_preferred():
    assert validate_scene_code(scene("Intro", "GeneratedAnimation", "Outro")) == ["GeneratedAnimation"]


def test_ambiguous_lists_candidates():
    result = check_scene(scene("Intro", "Outro"))
    [finding] = result.findings
    assert finding.code == "ambiguous-scene"
    assert "Intro, Outro" in finding.message
    assert (finding.line, finding.column) == (3, 1)
    assert result.selected == []
    hint = findings_record(result, "two.py").hint
    assert "Intro, Outro" in hint and "GeneratedAnimation" in hint and "render.scene" in hint


def test_render_scene_all_and_explicit():
    code = scene("Intro", "GeneratedAnimation", "Outro")
    assert validate_scene_code(code, settings("all")) == ["Intro", "GeneratedAnimation", "Outro"]
    assert validate_scene_code(code, settings("Outro")) == ["Outro"]


def test_unknown_scene_lists_candidates():
    code = scene("Intro", "Outro") + "\nclass Helper:\n    pass\n"
    [finding] = check_scene(code, settings("Nope")).findings
    assert finding.code == "unknown-scene" and "Nope" in finding.message and "Intro, Outro" in finding.message
    assert finding.line is None
    [finding] = check_scene(code, settings("Helper")).findings
    assert finding.code == "unknown-scene" and "not a Scene subclass" in finding.message
    assert finding.line == 11


def test_no_scene():
    result = check_scene("from manim import *\n\nclass Helper:\n    pass\n")
    [finding] = result.findings
    assert finding.code == "no-scene" and finding.message.startswith("missing a Scene subclass")
    assert "GeneratedAnimation(Scene)" in findings_record(result, "x.py").hint


@pytest.mark.parametrize("scene_setting", ["auto", "all", "GeneratedAnimation"])
def test_no_construct(scene_setting):
    code = "from manim import *\n\n\nclass GeneratedAnimation(Scene):\n    def setup(self):\n        pass\n"
    result = check_scene(code, settings(scene_setting))
    assert result.findings == [Finding("no-construct", "missing construct() in class GeneratedAnimation", 4, 1)]
    assert result.selected == []


# --- policy ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "code, expected",
    [
        ("import subprocess", [("forbidden-import", 1, 1)]),
        ("import os, subprocess", [("forbidden-import", 1, 1)]),
        ("import os.path\nos.path.join('a')", []),
        ("import urllib.request as r", [("forbidden-import", 1, 1)]),
        ("from http.client import HTTPConnection", [("forbidden-import", 1, 1)]),
        ("from os import path, getcwd", []),
        ("def f():\n    import socket", [("forbidden-import", 2, 5)]),
        ("import os as o\no.system('ls')", [("forbidden-call", 2, 1)]),
        ("from os import system as s\nx = s('ls')", [("forbidden-call", 2, 5)]),
        ("from os import *\nsystem('ls')", [("forbidden-call", 2, 1)]),
        ("import os\nos.getcwd()\nif 1:\n    os.kill(1, 9)", [("forbidden-call", 4, 5)]),
        ("y = [exec('1')]", [("forbidden-call", 1, 6)]),
        ("eval('1'); __import__('os')", [("forbidden-call", 1, 1), ("forbidden-call", 1, 12)]),
        ("from builtins import eval as e\ne('1')", [("forbidden-import", 1, 1), ("forbidden-call", 2, 1)]),
        ("import importlib\nimportlib.import_module('os')", [("forbidden-import", 1, 1), ("forbidden-call", 2, 1)]),
        ("x = ().__class__.__bases__[0].__subclasses__()", [("forbidden-call", 1, 5)]),
        ("def f():\n    pass\ng = f.__globals__", [("forbidden-call", 3, 5)]),
        ("x = __builtins__", [("forbidden-call", 1, 5)]),
        ("c = (lambda: 0).__code__", [("forbidden-call", 1, 5)]),
        ("print(max(1, 2))", []),
    ],
)
def test_policy_rule(code, expected):
    assert policy(code) == expected


def test_policy_message_names_the_resolved_call():
    result = check_scene("import os as o\no.system('ls')\n" + scene("A"))
    [finding] = result.findings
    assert finding.message == "call to o.system() (= os.system) is not allowed"
    assert findings_record(result, "x.py").type == "PolicyViolation"


def test_all_policy_findings_are_reported_in_file_order():
    code = "import socket\neval('1')\nimport pickle\nexec('2')\n"
    assert [f[1] for f in policy(code)] == [1, 2, 3, 4]


def test_custom_policy_lists():
    assert policy("print(1)\nimport json", forbidden_calls=("print",), forbidden_imports=("json",)) == [
        ("forbidden-call", 1, 1),
        ("forbidden-import", 2, 1),
    ]
    assert policy("import subprocess", forbidden_imports=()) == []


def test_policy_off_still_checks_structure():
    code = "import subprocess\neval('1')\nclass Helper:\n    pass\n"
    result = check_scene(code, settings(enabled=False))
    assert codes(result) == ["no-scene", "no-manim-import"]
    assert check_scene("import subprocess\n" + scene("A"), settings(enabled=False)).ok


# --- records and results ----------------------------------------------------------------------------


def test_findings_record_fields():
    code = "from manim import *\nimport os\n\nos.system('ls')\nexec('x')\n" + scene("A")
    result = check_scene(code)
    record = findings_record(result, "shot.py")
    assert (record.source, record.phase, record.type) == ("shot.py", "validate", "PolicyViolation")
    assert record.message == "call to os.system() is not allowed (and 1 more)"
    assert (record.line, record.column) == (4, 1)
    assert "> 4 | os.system('ls')" in record.excerpt
    assert record.findings == [f.to_dict() for f in result.findings]
    assert record.findings[1] == {
        "code": "forbidden-call",
        "message": "call to exec() is not allowed",
        "line": 5,
        "column": 1,
    }
    assert "remove the call" in record.hint


def test_findings_record_types():
    assert findings_record(check_scene("def (:"), "a.py").type == "SyntaxError"
    assert findings_record(check_scene(b"\xff"), "a.py").type == "InvalidSource"
    assert findings_record(check_scene("x = 1"), "a.py").type == "InvalidScene"
    with pytest.raises(ValueError):
        findings_record(check_scene(SIMPLE), "a.py")


@pytest.mark.parametrize("data", [b"", b"\n", b"\xef\xbb\xbf", b"\r\n" * 3, b"class", b"\x00", "\ufeff", b"\\"])
def test_check_scene_never_raises(data):
    result = check_scene(data)
    assert not result.ok and all(isinstance(f, Finding) for f in result.findings)


def test_validate_does_not_import_manim():
    # Load watcher.validate without the package __init__ (which pulls in the renderer).
    package = Path(__file__).resolve().parents[1] / "watcher"
    code = (
        "import sys, types\n"
        f"pkg = types.ModuleType('watcher'); pkg.__path__ = [{str(package)!r}]; sys.modules['watcher'] = pkg\n"
        "import watcher.validate\n"
        "assert 'manim' not in sys.modules, 'manim imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# --- old Manim names (validation.api_check) ------------------------------------------------------

OLD = src(
    """
    from manim import *

    class GeneratedAnimation(Scene):
        def construct(self):
            axes = Axes(x_min=0, x_max=4)
            curve = axes.get_graph(lambda x: x)
            self.play(ShowCreation(axes), ShowCreation(curve))
    """
)


def test_every_old_name_is_a_finding_with_its_place_and_fix():
    result = check_scene(OLD)
    found = [(f.code, f.line, f.column, f.suggestion and f.suggestion["with"]) for f in result.findings]
    assert found == [
        ("old-api", 5, 21, None),  # x_min: x_range needs both ends, no one-word fix
        ("old-api", 5, 30, None),
        ("old-api", 6, 22, "plot"),
        ("old-api", 7, 19, "Create"),
        ("old-api", 7, 39, "Create"),
    ]
    record = findings_record(result, "old.py")
    assert (record.type, record.line, record.column) == ("OldManimAPI", 5, 21)
    assert "fix all 5" in record.hint and "line 7" in record.hint
    assert record.message.endswith("(and 4 more)")


def test_api_check_warn_and_off():
    warned = check_scene(OLD, settings(api_check="warn"))
    assert warned.ok and len(warned.warnings) == 5
    off = check_scene(OLD, settings(api_check="off"))
    assert off.ok and not off.warnings


def test_the_files_own_names_are_not_old_api():
    code = src(
        """
        from manim import *

        def ShowCreation(m):
            return Create(m)

        class GeneratedAnimation(Scene):
            def get_graph(self, f):
                return f

            def construct(self):
                self.play(ShowCreation(Circle()))
                self.get_graph(None)
        """
    )
    assert check_scene(code).ok


def test_old_import_forms():
    code = "from manim import ShowCreation, Scene\nfrom manim.mobject.numbers import DecimalNumber\n" + scene("A")
    result = check_scene(code)
    assert [(f.line, f.column, f.suggestion["with"]) for f in result.findings] == [
        (1, 19, "Create"),
        (2, 6, "manim.mobject.text.numbers"),
    ]


def test_missing_plugin_is_named():
    result = check_scene("from manim_voiceover import VoiceoverScene\n" + scene("A"))
    assert codes(result)[0] == "plugin" and "not installed" in result.findings[0].message


# --- what code generators send instead of a scene ---------------------------------------------------


def test_markdown_reply_code_is_extracted_with_its_line_numbers():
    reply = "Here is the scene:\n\n```python\n" + SIMPLE + "```\n\nRun it with manim.\n"
    result = check_scene(reply)
    assert result.ok and result.selected == ["GeneratedAnimation"]
    assert result.extracted == (4, 9)
    assert result.source.splitlines()[8] == reply.splitlines()[8]  # same line, same place
    assert result.text == reply


def test_markdown_reply_with_extraction_off():
    reply = "```py\n" + SIMPLE + "```\n"
    result = check_scene(reply, settings(extract_code=False))
    assert codes(result) == ["markdown", "syntax"]
    record = findings_record(result, "r.py")
    assert record.type == "SyntaxError" and "```" in record.hint


def test_prose_around_unfenced_code_is_extracted():
    reply = "Sure, here you go:\n" + SIMPLE + "This draws a circle.\n"
    result = check_scene(reply)
    assert result.ok and result.extracted == (2, 7)


def test_a_syntax_error_in_extracted_code_is_at_the_files_line():
    reply = "```python\n" + SIMPLE.replace("self.play(", "self.play((") + "```\n"
    result = check_scene(reply)
    assert codes(result) == ["syntax"] and result.findings[0].line == 7


def test_prose_reply_and_other_libraries():
    prose = check_scene("I cannot help with that request, but here is an idea for a scene.\n")
    assert codes(prose) == ["not-python", "syntax"]
    with pytest.raises(SyntaxError):  # still Python's own, for execute_animation_code
        validate_scene_code("I cannot help with that request.")
    blender = check_scene("import bpy\nbpy.ops.mesh.primitive_cube_add()\n")
    assert codes(blender)[0] == "not-manim" and "Blender" in blender.findings[0].message


def test_several_code_blocks_are_not_guessed_at():
    reply = "```python\nfrom manim import *\n```\ntext\n```python\n" + scene("A") + "```\n"
    assert codes(check_scene(reply))[0] == "code-blocks"
