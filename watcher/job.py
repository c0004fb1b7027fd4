"""One job as plain data: what an executor is asked to run, and what comes back.

A `JobSpec` holds everything a render needs and nothing of where the job came from (an
inbox claim, a file of a batch, a filed result, a library call), so that any executor,
local or on another machine, can run it. A `RenderResult` is what comes back: the outputs
as files the job cannot reach any more, or the error record.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import Settings
from .errors import ErrorRecord, versions


@dataclass
class JobSpec:
    """A render to run: the bytes of the user's `filename`, the scenes to render, the settings."""

    source: bytes
    filename: str
    settings: Settings
    scenes: list[str]


@dataclass
class VideoInfo:
    """What verification found in one output: a video, or the image of a still scene."""

    width: int
    height: int
    duration: float
    frames: int
    fps: float
    kind: str = "video"  # "video" (.mp4) or "image" (.png: a scene that never animates)


@dataclass
class RenderResult:
    """The outcome of one job. `videos` are copies the job cannot reach (an executor hands
    them over unverified; `watcher.verify` fills `info`); they, and the job directory, are
    removed when the executor's context exits. A failed job of several scenes keeps in
    `videos` those that rendered before the failure."""

    filename: str
    ok: bool
    videos: list[Path] = field(default_factory=list)
    info: list[VideoInfo] = field(default_factory=list)
    record: ErrorRecord | None = None
    scenes: list[str] = field(default_factory=list)
    suffixes: list[str] = field(default_factory=list)  # of each video: ".mp4", or ".<Scene>.mp4" for several
    duration: float = 0.0
    cancelled: bool = False
    workdir: Path | None = None  # the child's directory (hostile: read it only through watcher.jobfs)
    overridden: dict[str, Any] = field(default_factory=dict)  # scene settings replaced by the render settings


def content_key(source: bytes, settings: Settings) -> str:
    """What identifies a render's result: source bytes + effective render settings + Manim version."""
    effective = {
        **settings.render_summary(),
        "forbidden_calls": sorted(settings.validation.forbidden_calls),
        "forbidden_imports": sorted(settings.validation.forbidden_imports),
    }
    doc = {"source": hashlib.sha256(source).hexdigest(), "settings": effective, "manim": versions()["manim"]}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def complete(record: ErrorRecord, settings: Settings, started: float) -> None:
    """Stamp a finished job's record with its duration (from `started`, monotonic) and settings."""
    record.duration = round(time.monotonic() - started, 3)
    record.settings = settings.render_summary()
