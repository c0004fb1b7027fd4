"""A render task on the wire: what a front sends a Celery worker, and what comes back.

Both are plain JSON and both are checked by the side that receives them. Whoever can
write to the broker can forge a task, so a worker takes from one only what its own
config allows: a task may ask for a shorter timeout or stronger isolation, never for a
larger limit or a weaker sandbox (`TaskRefused`). A front takes from a result only
outputs whose size and sha256 match what the result says; it then verifies them as it
verifies local ones.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import re
from typing import Any

from .config import QUALITIES, SANDBOX_STRENGTH, Settings
from .errors import ErrorRecord
from .job import JobSpec, RenderResult

VERSION = 1
TASK_NAME = "watcher.render"
TASK_KEYS = {"v", "filename", "source", "scenes", "render", "validation", "sandbox", "policy"}
RENDER_KEYS = {"quality", "timeout", "grace", "memory_limit_mb", "scene", "still"}
RESULT_KEYS = {"v", "ok", "record", "scenes", "suffixes", "duration", "overridden", "outputs", "worker"}
OUTPUT_KEYS = {"suffix", "size", "sha256", "name", "data"}
_FILENAME = re.compile(r"[^/\x00]{1,255}")
_SUFFIX = re.compile(r"(\.[A-Za-z_][A-Za-z0-9_]*)?\.(mp4|png)")  # ".mp4", ".png" or ".<Scene>.mp4"


class TaskRefused(ValueError):
    """A task a worker will not run: malformed, or asking for more than the worker allows."""


class BadResult(ValueError):
    """A result a front will not file: malformed, or outputs that do not match it."""


def encode_task(spec: JobSpec) -> dict[str, Any]:
    s = spec.settings
    return {
        "v": VERSION,
        "filename": spec.filename,
        "source": base64.b64encode(spec.source).decode("ascii"),
        "scenes": list(spec.scenes),
        "render": {key: getattr(s.render, key) for key in sorted(RENDER_KEYS)},
        "validation": s.validation.enabled,
        "sandbox": s.sandbox.mode,
        "policy": {"calls": list(s.validation.forbidden_calls), "imports": list(s.validation.forbidden_imports)},
    }


def decode_task(payload: Any, own: Settings) -> JobSpec:
    """The job a task asks for, run under the worker's settings `own` bounded as the task asks.

    Raises:
        TaskRefused: naming the first key that is malformed or asks for more than `own` allows.
    """
    task = _mapping(payload, TASK_KEYS, "task", TaskRefused)
    if task["v"] != VERSION:
        raise TaskRefused(f"task version {task['v']!r}; this worker speaks {VERSION}")
    filename = task["filename"]
    if not isinstance(filename, str) or not _FILENAME.fullmatch(filename) or filename in (".", ".."):
        raise TaskRefused(f"filename must be a file name, got {filename!r}")
    try:
        source = base64.b64decode(_str(task["source"], "source"), validate=True)
    except binascii.Error:
        raise TaskRefused("source is not base64") from None
    if len(source) > own.render.max_source_bytes:
        raise TaskRefused(
            f"source is {len(source)} bytes; this worker's render.max_source_bytes is {own.render.max_source_bytes}"
        )
    scenes = task["scenes"]
    if not isinstance(scenes, list) or not scenes or len(scenes) > own.render.max_scenes:
        raise TaskRefused(f"scenes must be a list of 1 to {own.render.max_scenes} class names")
    if not all(isinstance(name, str) and name.isidentifier() for name in scenes):
        raise TaskRefused("scenes must be class names")
    render = _render(_mapping(task["render"], RENDER_KEYS, "render", TaskRefused), own)
    if task["validation"] is not True and own.validation.enabled:
        raise TaskRefused("the task asks for validation off; this worker validates every scene")
    sandbox = task["sandbox"]
    if sandbox not in SANDBOX_STRENGTH:
        raise TaskRefused(f"sandbox must be one of {', '.join(SANDBOX_STRENGTH)}, got {sandbox!r}")
    if SANDBOX_STRENGTH[sandbox] < SANDBOX_STRENGTH[own.sandbox.mode]:
        raise TaskRefused(f"the task asks for sandbox {sandbox}; this worker's sandbox.mode is {own.sandbox.mode}")
    policy = _mapping(task["policy"], {"calls", "imports"}, "policy", TaskRefused)
    calls, imports = _names(policy["calls"], "policy.calls"), _names(policy["imports"], "policy.imports")
    validation = dataclasses.replace(
        own.validation,
        # The worker's own refusals always hold; the front's come on top.
        forbidden_calls=tuple(dict.fromkeys((*own.validation.forbidden_calls, *calls))),
        forbidden_imports=tuple(dict.fromkeys((*own.validation.forbidden_imports, *imports))),
    )
    settings = dataclasses.replace(
        own, render=render, validation=validation, sandbox=dataclasses.replace(own.sandbox, mode=sandbox)
    )
    return JobSpec(source, filename, settings, scenes)


def _render(asked: dict[str, Any], own: Settings) -> Any:
    quality = asked["quality"]
    if quality not in QUALITIES.values():
        raise TaskRefused(f"render.quality must be one of {', '.join(sorted(set(QUALITIES.values())))}")
    numbers = {key: asked[key] for key in ("timeout", "grace", "memory_limit_mb")}
    for key, value in numbers.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise TaskRefused(f"render.{key} must be a number >= 0, got {value!r}")
    for key in ("timeout", "grace"):
        if numbers[key] > getattr(own.render, key):
            raise TaskRefused(f"render.{key} {numbers[key]:g} is above this worker's {getattr(own.render, key):g}")
    if numbers["timeout"] <= 0:
        raise TaskRefused("render.timeout must be above 0")
    memory, own_memory = numbers["memory_limit_mb"], own.render.memory_limit_mb
    if own_memory and (memory == 0 or memory > own_memory):  # 0: no limit
        raise TaskRefused(f"render.memory_limit_mb {memory} is above this worker's {own_memory}")
    scene, still = asked["scene"], asked["still"]
    if not isinstance(scene, str) or not (scene in ("auto", "all") or scene.isidentifier()):
        raise TaskRefused(f"render.scene must be auto, all or a class name, got {scene!r}")
    if still not in ("png", "fail"):
        raise TaskRefused(f"render.still must be png or fail, got {still!r}")
    return dataclasses.replace(
        own.render,
        quality=quality,
        timeout=float(numbers["timeout"]),
        grace=float(numbers["grace"]),
        memory_limit_mb=int(memory),
        scene=scene,
        still=still,
    )


def encode_result(result: RenderResult, outputs: list[dict[str, Any]], worker: str) -> dict[str, Any]:
    """A worker's result: `outputs` are {"suffix", "size", "sha256"} plus "name" (shared) or "data"."""
    return {
        "v": VERSION,
        "ok": result.ok,
        "record": result.record.to_dict() if result.record else None,
        "scenes": result.scenes,
        "suffixes": result.suffixes,
        "duration": result.duration,
        "overridden": result.overridden,
        "outputs": outputs,
        "worker": worker,
    }


def output_entry(suffix: str, data: bytes) -> dict[str, Any]:
    return {"suffix": suffix, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def decode_result(payload: Any, filename: str) -> tuple[RenderResult, list[dict[str, Any]]]:
    """The result a worker returned for `filename`, and its outputs still to fetch and check.

    Raises:
        BadResult: the payload does not have the shape of a result.
    """
    data = _mapping(payload, RESULT_KEYS, "result", BadResult)
    if data["v"] != VERSION or not isinstance(data["ok"], bool):
        raise BadResult(f"result version {data['v']!r} or ok {data['ok']!r}")
    record = None
    if data["record"] is not None:
        record = ErrorRecord.from_dict(data["record"])
        record.source = filename
    elif not data["ok"]:
        raise BadResult("a failed result without a record")
    scenes, suffixes = _names(data["scenes"], "scenes", BadResult), _names(data["suffixes"], "suffixes", BadResult)
    outputs = data["outputs"]
    if not isinstance(outputs, list) or len(outputs) != len(suffixes):
        raise BadResult("outputs do not match suffixes")
    checked = []
    for output, suffix in zip(outputs, suffixes, strict=True):
        if not isinstance(output, dict) or not set(output) <= OUTPUT_KEYS or output.get("suffix") != suffix:
            raise BadResult(f"malformed output entry for {suffix!r}")
        if not _SUFFIX.fullmatch(suffix) or not isinstance(output.get("size"), int) or output["size"] < 0:
            raise BadResult(f"malformed output entry for {suffix!r}")
        if not isinstance(output.get("sha256"), str) or not re.fullmatch(r"[0-9a-f]{64}", output["sha256"]):
            raise BadResult(f"malformed sha256 for {suffix!r}")
        checked.append(output)
    if data["ok"] and len(suffixes) != len(scenes):
        raise BadResult("a successful result has one output per scene")
    duration = data["duration"]
    if isinstance(duration, bool) or not isinstance(duration, (int, float)):
        raise BadResult("duration must be a number")
    overridden = data["overridden"] if isinstance(data["overridden"], dict) else {}
    result = RenderResult(
        filename, ok=data["ok"], record=record, scenes=scenes, duration=float(duration), overridden=overridden
    )
    return result, checked


def _mapping(value: Any, keys: set[str], what: str, error: type[ValueError]) -> dict[str, Any]:
    if not isinstance(value, dict) or set(value) != keys:
        got = sorted(map(str, value)) if isinstance(value, dict) else type(value).__name__
        raise error(f"{what} must have exactly the keys {', '.join(sorted(keys))}; got {got}")
    return value


def _str(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise TaskRefused(f"{what} must be a string")
    return value


def _names(value: Any, what: str, error: type[ValueError] = TaskRefused) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise error(f"{what} must be a list of strings")
    return list(value)
