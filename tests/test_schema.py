"""The JSON Schemas of the error record and of meta.json: shipped, in step with the writers, able to say no.

That every record the suite makes matches them is checked by tests/conftest.py, for every test.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from watcher import pipeline
from watcher.config import load_config
from watcher.errors import CAPS, PHASES, SCHEMA_VERSION, ErrorRecord
from watcher.job import RenderResult
from watcher.sidecar import META_SCHEMA

from .conftest import schema_validator

RECORD = schema_validator("error-record")
META = schema_validator("meta")

HUGE = 100_000  # characters: over every cap

A_RECORD: dict[str, Any] = ErrorRecord(
    "x.py",
    "render",
    "NameError",
    "name 'Sqare' is not defined",
    line=9,
    column=13,
    excerpt="> 9 | s = Sqare()",
    hint="did you mean Square?",
    suggestion={"line": 9, "column": 13, "replace": "Sqare", "with": "Square"},
    findings=[{"code": "renamed", "message": "m", "line": 1, "column": None}],
    frames=[{"line": 9, "function": "construct", "code": "s = Sqare()"}],
    latex={"errors": ["! Undefined control sequence."], "tex_line": 3, "tex_source": "\\foo"},
    exit_code=1,
    stderr_tail="Traceback ...",
    duration=0.5,
    attempts=1,
    settings={"quality": "low_quality", "timeout": 60.0, "validation": True, "scene": None},
).to_dict()

A_META: dict[str, Any] = {
    "schema": 1,
    "source": "x.py",
    "key": "0" * 64,
    "ok": True,
    "rendered_at": "2026-11-26T10:15:00Z",
    "render_seconds": 1.25,
    "settings": {"quality": "low_quality"},
    "overridden": {"pixel_width": 1920},
    "versions": {"manim": "0.22.0"},
    "videos": [
        {
            "suffix": ".mp4",
            "scene": "S",
            "width": 854,
            "height": 480,
            "duration": 1.0,
            "frames": 15,
            "fps": 15.0,
            "kind": "video",
        }
    ],
}


def test_the_schemas_ship_with_the_package_and_carry_the_format_versions():
    # schema_validator reads them through importlib.resources and checks each against the draft 2020-12 meta-schema.
    for validator, version in ((RECORD, SCHEMA_VERSION), (META, META_SCHEMA)):
        assert validator.schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert validator.schema["$id"].endswith(f":{version}")
        assert validator.schema["properties"]["schema"]["const"] == version
    assert RECORD.is_valid(A_RECORD) and META.is_valid(A_META)


def test_the_record_schema_names_exactly_the_fields_of_the_record_and_its_caps():
    fields = {f.name for f in dataclasses.fields(ErrorRecord)}
    properties = RECORD.schema["properties"]
    assert set(properties) == fields
    assert set(RECORD.schema["required"]) == fields - {"suggestion"}  # to_dict leaves out a suggestion of None
    assert properties["phase"]["enum"] == list(PHASES)
    caps = {"message": CAPS.message, "excerpt": CAPS.excerpt, "hint": CAPS.hint, "stderr_tail": CAPS.stderr_tail}
    caps |= {"source": CAPS.source, "type": CAPS.name, "limit": CAPS.name, "signal": CAPS.name}
    assert {name: properties[name]["maxLength"] for name in caps} == caps
    assert properties["frames"]["maxItems"] == CAPS.frames and properties["findings"]["maxItems"] == CAPS.findings


def test_a_record_with_every_field_over_its_cap_comes_out_valid():
    text = "x" * HUGE
    rec = ErrorRecord.from_dict(
        {
            "source": text,
            "phase": "render",
            "type": text,
            "message": text,
            "line": 1,
            "excerpt": text,
            "hint": text,
            "suggestion": {"line": 1, "replace": text, "with": text},
            "findings": [{"code": text, "message": text, "line": 2}] * 100,
            "frames": [{"line": 3, "function": text, "code": text}] * 100,
            "latex": {"errors": [text] * 100, "tex_line": 4, "tex_source": text},
            "limit": text,
            "signal": text,
            "stderr_tail": text * 10,
            "settings": {f"{i}{text}": text for i in range(100)},
            "versions": {f"{i}{text}": text for i in range(100)},
        }
    )
    assert list(RECORD.iter_errors(rec.to_dict())) == []


MALFORMED: dict[str, Any] = {
    "an unknown phase": {"phase": "rendering"},
    "a line as text": {"line": "9"},
    "line 0": {"line": 0},
    "a float column": {"column": 1.5},
    "an unknown field": {"fix": "Square"},
    "a message over its cap": {"message": "x" * (CAPS.message + 1)},
    "schema 2": {"schema": 2},
    "an empty type": {"type": ""},
    "a suggestion without its replacement": {"suggestion": {"line": 9, "column": 1, "replace": "Sqare"}},
    "a frame without a line": {"frames": [{"function": "construct", "code": ""}]},
    "a nested setting": {"settings": {"quality": {"pixel_width": 1}}},
    "51 findings": {"findings": [{"code": "c", "message": "m", "line": 1, "column": 1}] * 51},
}


@pytest.mark.parametrize("change", MALFORMED.values(), ids=MALFORMED.keys())
def test_the_record_schema_rejects_a_malformed_record(change: dict[str, Any]):
    assert not RECORD.is_valid(A_RECORD | change)


@pytest.mark.parametrize("field", ["source", "phase", "type", "message", "line", "findings", "stderr_tail", "schema"])
def test_the_record_schema_rejects_a_record_missing_a_field(field: str):
    record = copy.deepcopy(A_RECORD)
    del record[field]
    assert not RECORD.is_valid(record)


META_MALFORMED: dict[str, Any] = {
    "a key that is no sha256": {"key": "abc"},
    "ok without its videos": {"videos": []},
    "ok with an error": {"error": ".error.json", "failed_at": "2026-11-26T10:15:00Z"},
    "a local time": {"rendered_at": "2026-11-26 10:15:00"},
    "a video of an unknown kind": {"videos": [A_META["videos"][0] | {"kind": "gif"}]},
    "a suffix with a slash": {"videos": [A_META["videos"][0] | {"suffix": "/../x.mp4"}]},
    "failed without its record": {"ok": False},
}


@pytest.mark.parametrize("change", META_MALFORMED.values(), ids=META_MALFORMED.keys())
def test_the_meta_schema_rejects_a_malformed_sidecar(change: dict[str, Any]):
    assert not META.is_valid(A_META | change)


def test_a_failed_attempt_keeps_the_previous_render_in_its_sidecar():
    failed = A_META | {"ok": False, "error": ".error.json", "failed_at": "2026-11-26T10:16:00Z"}
    assert META.is_valid(failed)  # the MP4s of the render before stay in place, and described
    assert META.is_valid({"schema": 1, "source": "x.py", "key": None, "ok": False} | failed)


def test_a_hostile_child_cannot_give_a_line_the_schema_refuses():
    # The child writes its record where the scene can rewrite it; the schema promises 1-based positions.
    ErrorRecord.from_dict({"phase": "render", "line": 0, "frames": [{"line": -1}]}).to_dict()


def test_a_hostile_previous_sidecar_cannot_make_a_sidecar_the_schema_refuses():
    # Anyone who can write into a folder that is re-rendered can write its <name>.meta.json.
    result = RenderResult("x.py", ok=False, record=ErrorRecord("x.py", "render", "E", "m"))
    pipeline.meta_document(result, "0" * 64, "x.py", load_config(None), {"videos": "not a list"})


INNER_TESTS = """
from watcher import pipeline
from watcher.config import load_config
from watcher.errors import ErrorRecord
from watcher.job import RenderResult


class Uncapped(ErrorRecord):
    def _clean(self):  # a writer that forgot the caps
        pass


def test_a_valid_record():
    ErrorRecord("x.py", "render", "E", "m").to_json()


def test_an_invalid_record():
    Uncapped("x.py", "render", "E", "m" * 10_000).to_json()


def test_an_invalid_meta():
    result = RenderResult("x.py", ok=False, record=ErrorRecord("x.py", "render", "E", "m"))
    pipeline.meta_document(result, "not-a-sha256", "x.py", load_config(None), None)
"""


def test_a_test_that_makes_an_invalid_record_or_sidecar_fails(tmp_path: Path):
    # The conftest of this suite, in a pytest run of its own: the check can fail, and fails the right test.
    (tmp_path / "conftest.py").write_text(Path(__file__).with_name("conftest.py").read_text(encoding="utf-8"))
    (tmp_path / "test_inner.py").write_text(INNER_TESTS)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "2 failed, 1 passed" in run.stdout, run.stdout + run.stderr
    assert "FAILED test_inner.py::test_an_invalid_record - Failed: records that do not" in run.stdout
    assert "FAILED test_inner.py::test_an_invalid_meta - Failed: records that do not" in run.stdout
    # The violations, each with where it is in the document.
    assert re.search(
        r"error record of 'x.py': \$\.message: 'm+ \.\.\. \[\d+ characters cut\] \.\.\. m+' is too long", run.stdout
    )
    assert "meta.json: $.key: 'not-a-sha256' does not match" in run.stdout
