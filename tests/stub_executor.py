"""A deterministic stand-in for the render executor, for tests about folders and lifecycle.

It runs no scene and no Manim: each job's outputs are copies of one small MP4 made once
with PyAV (a real, decodable video, so the pipeline's verification on the receiving side
is the real one). A source containing `STUB_FAIL` fails with a render record, one
containing `STUB_BLOCK` runs until it is cancelled. Every job is recorded in `started`
and `finished`, so a test waits on those, not on the clock.
"""

from __future__ import annotations

import contextlib
import shutil
import threading
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

from watcher import jobfs
from watcher.errors import ErrorRecord
from watcher.job import JobSpec, RenderResult


def tiny_mp4(path: Path, size: tuple[int, int] = (854, 480)) -> Path:
    """Encode 3 black frames at 15 fps with PyAV."""
    import av
    import numpy as np

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(15))
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        for _ in range(3):
            frame = av.VideoFrame.from_ndarray(np.zeros((size[1], size[0], 3), np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


class StubExecutor:
    """The `watcher.executor.Executor` interface, without rendering anything."""

    def __init__(self, video: Path):
        self.video = video
        self.started: list[str] = []  # file names, in the order jobs started
        self.finished: list[str] = []
        self.closed = 0
        self._lock = threading.Lock()

    def start(self, settings, workers: int) -> None:
        pass

    @contextlib.contextmanager
    def run(self, spec: JobSpec, cancel: threading.Event | None = None) -> Iterator[RenderResult]:
        with self._lock:
            self.started.append(spec.filename)
        job = jobfs.create(spec.settings.folders.work, "job", Path(spec.filename).stem)
        try:
            result = RenderResult(spec.filename, ok=False, scenes=spec.scenes, workdir=job.path)
            if b"STUB_BLOCK" in spec.source:
                assert cancel is not None, "a blocking stub job needs a cancel event"
                cancel.wait()
                result.cancelled = True
            elif b"STUB_FAIL" in spec.source:
                result.record = ErrorRecord(spec.filename, "render", "StubError", "failed on purpose", line=1)
            else:
                for i, scene in enumerate(spec.scenes):
                    suffix = ".mp4" if len(spec.scenes) == 1 else f".{scene}.mp4"
                    copy = job.results / f"out-{i}{suffix}"
                    shutil.copyfile(self.video, copy)
                    result.videos.append(copy)
                    result.suffixes.append(suffix)
                result.ok = True
            with self._lock:
                self.finished.append(spec.filename)
            yield result
        finally:
            jobfs.discard(job.root)

    def close(self, *, cancel: bool = False, timeout: float = 2.0) -> bool:
        self.closed += 1
        return True
