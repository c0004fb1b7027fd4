"""The error record: every field capped, and a record out of any dict a scene could write."""

from __future__ import annotations

import json
import tracemalloc
from typing import Any

import pytest

from watcher.errors import CAPS, ErrorRecord, Frame, cap_tail, cap_text

HUGE = 1_000_000  # characters: far over every cap, and quick to build


def cut_marker(text: str) -> str:
    return text[text.index(" ... [") : text.rindex("] ... ") + len("] ... ")]


def cut_count(text: str) -> int:
    """The N of "... [N characters cut] ..." in `text`."""
    return int(cut_marker(text).split("[")[1].split()[0])


def test_cap_text_keeps_the_head_and_the_tail_and_says_how_much_was_cut():
    text = "HEAD" + "x" * 10_000 + "TAIL"
    capped = cap_text(text, 100)
    assert len(capped) <= 100 and capped.startswith("HEAD") and capped.endswith("TAIL")
    assert cut_count(capped) == len(text) - (len(capped) - len(cut_marker(capped)))  # the count is exact
    assert cap_text("short", 100) == "short" and cap_text("x" * 100, 100) == "x" * 100
    assert cap_text(text, 10) == text[:10]  # no room for the marker: still within the limit
    assert cap_text(text, 0) == ""


def test_cap_tail_keeps_the_end():
    text = "start\n" + "x" * 10_000 + "\nTraceback: the end"
    capped = cap_tail(text, 200)
    assert len(capped) <= 200 and capped.endswith("\nTraceback: the end")
    assert capped.startswith("... [") and "characters cut" in capped and "start" not in capped
    assert cap_tail("short", 200) == "short"


def test_a_300_mb_message_makes_a_small_record_with_its_head_and_tail():
    # Threat 42: `raise RuntimeError("A" * 300_000_000)` in a scene.
    message = "RuntimeError starts here " + "A" * 300_000_000 + " and ends here"
    tracemalloc.start()
    try:
        direct = ErrorRecord("x.py", "render", "RuntimeError", message)
        parsed = ErrorRecord.from_dict({"source": "x.py", "phase": "render", "type": "E", "message": message})
        text = parsed.to_json()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del message
    assert peak < 5_000_000  # the message was cut, never copied whole
    assert direct.message == parsed.message
    assert len(text.encode()) < 100_000
    assert len(parsed.message) <= CAPS.message
    assert parsed.message.startswith("RuntimeError starts here AAA") and parsed.message.endswith("AAA and ends here")
    assert cut_count(parsed.message) == 300_000_039 - (len(parsed.message) - len(cut_marker(parsed.message)))


def huge_record() -> dict[str, Any]:
    """Every field of a record as big as a scene could make it."""
    big = "x" * HUGE
    return {
        "source": "s" * HUGE + ".py",
        "phase": "render",
        "type": "T" * HUGE,
        "message": big,
        "line": 9,
        "column": 5,
        "excerpt": big,
        "hint": big,
        "findings": [{"code": "c" * HUGE, "message": big, "line": n, "column": 1} for n in range(1, 1001)],
        "frames": [{"line": n, "function": "f" * HUGE, "code": big} for n in range(1, 1001)],
        "latex": {"errors": [big] * 1000, "tex_line": 3, "tex_source": big},
        "limit": big,
        "exit_code": 1,
        "signal": big,
        "stderr_tail": big + "\nthe last line",
        "duration": 1.5,
        "attempts": 1,
        "settings": {f"key{n}" * 1000: big for n in range(1000)},
        "versions": {f"package{n}": big for n in range(1000)},
    }


def test_every_field_is_capped():
    rec = ErrorRecord.from_dict(huge_record())
    assert len(rec.source) <= CAPS.source and len(rec.type) <= CAPS.name
    assert len(rec.message) <= CAPS.message
    assert rec.excerpt is not None and len(rec.excerpt) <= CAPS.excerpt
    assert rec.hint is not None and len(rec.hint) <= CAPS.hint
    assert rec.limit is not None and len(rec.limit) <= CAPS.name
    assert rec.signal is not None and len(rec.signal) <= CAPS.name
    assert len(rec.stderr_tail) <= CAPS.stderr_tail and rec.stderr_tail.endswith("\nthe last line")
    # The first findings (the first leads the record), the innermost frames (the last ones).
    assert [f["line"] for f in rec.findings] == list(range(1, CAPS.findings + 1))
    assert all(len(f["message"]) <= CAPS.finding_message and len(f["code"]) <= CAPS.name for f in rec.findings)
    assert [f.line for f in rec.frames] == list(range(1001 - CAPS.frames, 1001))
    assert all(len(f.code) <= CAPS.code and len(f.function) <= CAPS.name for f in rec.frames)
    assert rec.latex is not None and len(rec.latex["errors"]) == CAPS.latex_errors
    assert all(len(e) <= CAPS.latex_text for e in rec.latex["errors"])
    assert len(rec.latex["tex_source"]) <= CAPS.latex_text and rec.latex["tex_line"] == 3
    for table in (rec.settings, rec.versions):
        assert len(table) == CAPS.entries
        assert all(len(k) <= CAPS.name and len(v) <= CAPS.value for k, v in table.items())
    # With every field full, the whole record stays small (the RecordCaps docstring's bound).
    assert len(rec.to_json().encode()) < 250_000


def test_fields_assigned_after_construction_are_capped_when_written():
    # render.py builds the record, then sets stderr_tail and excerpt on it.
    rec = ErrorRecord("x.py", "render", "E", "m")
    rec.stderr_tail = "y" * HUGE + "END"
    rec.excerpt = "z" * HUGE
    rec.frames.extend(Frame(n, "f", "code") for n in range(1000))
    written = json.loads(rec.to_json())
    assert len(written["stderr_tail"]) <= CAPS.stderr_tail and written["stderr_tail"].endswith("END")
    assert len(written["excerpt"]) <= CAPS.excerpt and len(written["frames"]) == CAPS.frames


def test_a_usual_record_is_left_as_it_is():
    data = {
        "source": "x.py",
        "phase": "render",
        "type": "NameError",
        "message": "name 'Sqare' is not defined",
        "line": 9,
        "column": 13,
        "excerpt": "> 9 | s = Sqare()",
        "hint": "is the name spelled right?",
        "findings": [{"code": "syntax", "message": "m", "line": 1, "column": None}],
        "frames": [{"line": 9, "function": "construct", "code": "s = Sqare()"}],
        "latex": {"errors": ["! Undefined control sequence.\nl.3 \\foo"], "tex_line": 3, "tex_source": "\\foo"},
        "limit": None,
        "exit_code": 1,
        "signal": None,
        "stderr_tail": "Traceback ...",
        "duration": 0.5,
        "attempts": 2,
        "settings": {"quality": "low_quality", "timeout": 60.0, "validation": True, "scene": None},
        "versions": {"watcher": "1", "manim": "0.22.0", "python": "3.11.7"},
        "schema": 1,
    }
    assert ErrorRecord.from_dict(data).to_dict() == data


HOSTILE_DICTS: list[Any] = [
    {},
    None,
    [1, 2, 3],
    "a string",
    {"phase": "nope"},
    {"phase": ["render"]},
    {"phase": {"render": 1}},
    {"message": 5, "type": None, "source": ["x.py"]},
    {"line": "x", "column": 1.5, "exit_code": 10**100, "attempts": True, "duration": "NaN"},
    {"duration": float("inf"), "schema": "2", "signal": 9},
    {"frames": [123, "x", None, [], {"line": "9"}, {"line": 3}, {"line": 4, "function": [1], "code": {"a": 1}}]},
    {"frames": {"line": 3}, "findings": "all", "latex": [1], "settings": [], "versions": "3"},
    {"findings": [1, None, {"message": ["m"], "line": "1"}], "latex": {"errors": "e", "tex_line": "3"}},
    {"latex": {"errors": [1, None, ["x"], "! real"], "tex_source": {"x": 1}}},
    {"settings": {"a": {"nested": [1]}, "b": [1], "c": float("nan"), "d": 1}, "versions": {"manim": 1, "x": None}},
    {"message": {"a": [[[[[]]]]]}, "excerpt": ["x"], "hint": {"h": 1}, "stderr_tail": b"bytes"},
    {"message": "a lone surrogate \udcff and \ud800", "source": "\udcff.py"},
    {1: 2, None: "x", "unknown": "ignored", "phase": "render"},
]


@pytest.mark.parametrize("data", HOSTILE_DICTS, ids=lambda d: repr(d)[:40])
def test_any_dict_makes_a_record_that_can_be_written(data: Any):
    rec = ErrorRecord.from_dict(data)
    raw = rec.to_json().encode("utf-8")  # what layout.py and batch.py write
    again = ErrorRecord.from_dict(json.loads(raw))
    assert again.to_dict() == rec.to_dict()  # cleaning is stable: a written record reads back the same
    assert rec.phase in ("render", "internal")
    assert all(isinstance(f, Frame) and isinstance(f.line, int) for f in rec.frames)


def test_bad_fields_are_coerced_or_dropped():
    rec = ErrorRecord.from_dict({"phase": "nope", "message": 5, "type": None, "line": "x", "column": 1.5})
    assert (rec.phase, rec.type, rec.message, rec.line, rec.column) == ("internal", "Error", "5", None, None)
    rec = ErrorRecord.from_dict({"phase": "render", "exit_code": 10**100, "attempts": True, "duration": "NaN"})
    assert (rec.phase, rec.exit_code, rec.attempts, rec.duration) == ("render", None, None, None)
    frames = [123, None, {"line": "9"}, {"line": 3}, {"line": 4, "function": [1], "code": {"a": 1}}]
    assert ErrorRecord.from_dict({"frames": frames}).frames == [Frame(3, "?", ""), Frame(4, "?", "")]
    rec = ErrorRecord.from_dict({"settings": {"a": {"nested": [1]}, "b": [1], "d": 1}, "versions": {"manim": 1}})
    assert rec.settings == {"d": 1} and rec.versions == {"manim": "1"}
    assert ErrorRecord.from_dict({"latex": {"errors": [1, None, ["x"], "! real"]}}).latex == {"errors": ["1", "! real"]}
    assert ErrorRecord.from_dict({"message": "lone \udcff surrogates \ud800"}).message == "lone ? surrogates ?"


def test_a_record_built_in_code_still_refuses_an_unknown_phase():
    # Only from_dict (fed by files) forgives: in watcher's own code an unknown phase is a bug.
    with pytest.raises(ValueError, match="unknown phase"):
        ErrorRecord("x.py", "rendering", "E", "m")
