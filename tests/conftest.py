from __future__ import annotations

import json
import os
from collections.abc import Generator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest


def job_processes(work: Path) -> list[int]:
    """PIDs of live processes that belong to a job under `work` (their HOME is a job dir).

    Every render child, and everything it starts, inherits HOME=<job dir>, so this finds
    descendants even after they changed session or process group.
    """
    marker = f"HOME={work}/".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                env = f.read()
            with open(f"/proc/{entry}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        try:
            cwd = os.readlink(f"/proc/{entry}/cwd")
        except OSError:
            cwd = ""
        # A job forked from a warm worker keeps the worker's original environ block in
        # /proc, so its working directory (the job dir) identifies it too.
        if (marker in env or cwd.startswith(f"{work}/")) and state != b"Z":
            found.append(int(entry))
    return found


@pytest.fixture
def work_dir(tmp_path: Path) -> Path:
    return tmp_path / "work"


@pytest.fixture
def remove_tmp_path(tmp_path: Path):
    """Remove what the test left in tmp_path, however deep: pytest's own clean-up of old temp
    folders (shutil.rmtree) dies with RecursionError on the trees hostile scenes build."""
    yield
    from watcher import jobfs

    if not os.environ.get("WATCHER_KEEP_TMP"):  # set it to look at what a failed test left
        jobfs.remove_tree(tmp_path, budget=60)


# -- every error record and sidecar the tests make is checked against the shipped schemas ------
#
# For the whole session, ErrorRecord.to_dict (to_json and every writer go through it) and
# pipeline.meta_document (the one maker of meta.json) are wrapped so that their output is
# validated; a violation is noted, not raised (code under test catches exceptions: the daemon
# never dies on a job), and the test phase that made it fails. Records made in other
# processes (a daemon or CLI run as a subprocess, the render child) are not seen here.

SCHEMA_VIOLATIONS: list[str] = []


def schema_validator(name: str) -> Any:
    """A validator for `watcher/schemas/<name>.schema.json`, read as the installed package ships it."""
    import jsonschema

    schema = json.loads((resources.files("watcher") / "schemas" / f"{name}.schema.json").read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def _note_violations(validator: Any, what: str, data: Any) -> None:
    from watcher.errors import cap_text

    for error in validator.iter_errors(data):
        # The message quotes the offending value, which can be 300 MB of a hostile scene's text.
        SCHEMA_VIOLATIONS.append(f"{what}: {error.json_path}: {cap_text(error.message, 300)}")


def pytest_configure(config: pytest.Config) -> None:
    from watcher import pipeline
    from watcher.errors import ErrorRecord

    record_schema, meta_schema = schema_validator("error-record"), schema_validator("meta")
    to_dict, meta_document = ErrorRecord.to_dict, pipeline.meta_document

    def checked_to_dict(self: ErrorRecord) -> dict[str, Any]:
        data = to_dict(self)
        _note_violations(record_schema, f"error record of {data['source'][:100]!r}", data)
        return data

    def checked_meta_document(*args: Any, **kwargs: Any) -> bytes:
        data = meta_document(*args, **kwargs)
        _note_violations(meta_schema, "meta.json", json.loads(data))
        return data

    def restore() -> None:
        ErrorRecord.to_dict, pipeline.meta_document = to_dict, meta_document  # type: ignore[method-assign]

    ErrorRecord.to_dict, pipeline.meta_document = checked_to_dict, checked_meta_document  # type: ignore[method-assign]
    config.add_cleanup(restore)


def _fail_on_new_violations() -> Generator[None, object, object]:
    seen = len(SCHEMA_VIOLATIONS)
    result = yield
    if len(SCHEMA_VIOLATIONS) > seen:
        lines = "\n".join(SCHEMA_VIOLATIONS[seen:][:20])
        pytest.fail(f"records that do not match watcher/schemas/:\n{lines}", pytrace=False)
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, object, object]:
    return (yield from _fail_on_new_violations())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    return (yield from _fail_on_new_violations())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, object, object]:
    return (yield from _fail_on_new_violations())
