"""The local executor's core: run one job spec in an isolated child and hand back its outputs.

The parent never runs scene code. Each job gets a private directory under the work
folder; the child (`watcher.child`) runs there in its own session with a scrubbed
environment and its own limits, and raises SceneTimeout on SIGALRM. The child is forked
by a warm worker that imported Manim once (`watcher.pool`), or with
`render.warm_workers: false` is a fresh interpreter; everything after the start is the
same. `watcher.supervise` watches the child's pidfd and output pipe, and SIGKILLs the
whole process group once timeout + grace has passed on the wall clock.

Once scene code has run, the job directory is hostile (the parent is often root): it is
read only through `watcher.jobfs` (no link followed, no FIFO opened, sizes capped, the
child's result.json checked against its shape), and the outputs are copied out of it
into `results/` before anyone looks at them. Verification (`watcher.verify`) and
publishing happen on the receiving side, as for any executor.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import fsops, jobfs, pool, sandbox
from .config import ENFORCED_SETTINGS, Settings
from .errors import PHASES, ErrorRecord, cap_text, excerpt
from .job import JobSpec, RenderResult, complete
from .supervise import Launcher, supervise
from .texservice import JobService, Typesetter

log = logging.getLogger(__name__)

# A job whose warm worker died under it runs once more on a new one; losing a second
# worker is reported (a scene that kills its parent must not loop forever).
WORKER_ATTEMPTS = 2
# The child's result.json: records are capped well below this (watcher.errors).
MAX_RESULT_BYTES = 1 << 20


def run(
    spec: JobSpec,
    job: jobfs.JobDir,
    launcher: Callable[[contextlib.ExitStack], Launcher],
    glyphs: dict[str, bytes],
    cancel: threading.Event | None = None,
    typesetter: Typesetter | None = None,
) -> RenderResult:
    """Run `spec` in a child in `job` and copy its outputs into `job.results` (unverified).

    `launcher` gives what starts the child (entered on the stack it is given); `glyphs`
    are SVGs every job gets in its media/Tex (`watcher.texseed`); with a `typesetter`,
    the child's LaTeX goes through it (`watcher.texservice`).
    """
    started = time.monotonic()
    source, filename, scenes, settings = spec.source, spec.filename, spec.scenes, spec.settings
    expect = sandbox.expected_layers(settings)  # the host check, once per process and settings
    # Inside the job, outputs have short fixed names: the user's name may be 255 bytes
    # already, and the child decides nothing about what is published under which name.
    outputs = [f"video-{i + 1}" for i in range(len(scenes))]
    child_spec = {
        "filename": filename,
        "scenes": scenes,
        "outputs": outputs,
        "render": dataclasses.asdict(settings.render),
        "sandbox": dataclasses.asdict(settings.sandbox),
        "expect": expect,
    }
    returncode: int | None = None
    for attempt in range(1, WORKER_ATTEMPTS + 1):
        if attempt > 1:
            job = jobfs.renew(job)  # the lost attempt's directory is tainted: a fresh one
        try:
            with contextlib.ExitStack() as stack:
                start = launcher(stack)  # may wait for a warm worker's import: cancel stops the wait
                service = None
                if typesetter is not None:
                    service = JobService(typesetter, filename)
                    stack.callback(service.close)  # at the end of the block: the child is reaped by then
                passed = None if service is None else service.child_fd
                tex_fd = None if passed is None else start.tex_fd or passed  # its number in the child
                _prepare(job.path, source, filename, {**child_spec, "parent_pid": start.pid, "tex_fd": tex_fd}, glyphs)
                proc = start.start(job.path, sandbox.child_environment(job.path), passed)
                if service is not None:
                    service.child_started()
                log.debug("%s: render child %d started (%s)", filename, proc.pid, type(start).__name__)
                # render.timeout applies to each scene of the file (the child restarts its alarm).
                deadline = time.monotonic() + settings.render.timeout * len(scenes) + settings.render.grace
                outcome, tail, returncode = supervise(proc, deadline, settings.render.max_log_bytes, cancel)
            break
        except pool.WorkerLost as e:
            outcome, tail, lost = "lost", e.tail, e
            if attempt < WORKER_ATTEMPTS:
                log.warning("%s: %s; running it again on a new warm worker", filename, e)
        except pool.Cancelled:
            outcome = "cancelled"
            break
    duration = time.monotonic() - started
    result = RenderResult(filename, ok=False, scenes=scenes, duration=duration, workdir=job.path)
    if outcome == "cancelled":
        result.cancelled = True
        return result

    # From here on the job directory is hostile: every read goes through jobfs.
    owners = sandbox.job_owners(settings.sandbox)
    try:
        dir_fd = jobfs.open_dir(job.path)
    except OSError as e:
        record = _unsafe_record(f"the job directory cannot be opened: {e.strerror}")
    else:
        try:
            child = _read_result(dir_fd, owners)
        except jobfs.UnsafeEntry as e:
            record = _unsafe_record(str(e))
        else:
            if outcome == "lost":
                record = {
                    "phase": "internal",
                    "type": "WorkerLost",
                    "message": f"{lost}; it happened {WORKER_ATTEMPTS} times, so the scene was not run again",
                    "hint": "a scene must not signal or kill other processes; if every scene fails like this, "
                    "set render.warm_workers: false and report it",
                }
            elif outcome == "killed":
                record = _killed_record(child, duration, settings)
            elif returncode is not None and returncode < 0:
                record = child.get("record") or _signal_record(-returncode)
            elif returncode == 0 and child.get("ok"):
                problem = _collect_outputs(dir_fd, job, filename, scenes, outputs, settings, owners, result)
                if problem is None:
                    result.ok = True
                    result.overridden = _overridden(child.get("overridden"))
                    return result
                record = {"phase": "render", "type": "InvalidVideo", "message": problem}
            else:
                record = child.get("record") or {
                    "phase": "render",
                    "type": "NoVideo",
                    "message": f"the render process exited with status {returncode} without producing a video",
                    "hint": "do not call sys.exit() or os._exit() in a scene",
                }
            if len(scenes) > 1 and outcome != "lost":  # the scenes that rendered before the failure are kept
                _collect_outputs(dir_fd, job, filename, scenes, outputs, settings, owners, result, partial=True)
        finally:
            os.close(dir_fd)
    record.setdefault("type", "RenderError")
    record.setdefault("message", "")
    rec = ErrorRecord.from_dict({**record, "source": filename})
    rec.stderr_tail = tail.decode("utf-8", errors="replace")
    if returncode is not None and returncode >= 0:
        rec.exit_code = returncode
    elif returncode is not None:
        rec.signal = signal.Signals(-returncode).name
    if rec.excerpt is None and rec.line:
        rec.excerpt = excerpt(source.decode("utf-8-sig", errors="replace"), rec.line)
    _in_user_terms(rec, job, filename, settings)
    complete(rec, settings, started)
    result.record = rec
    return result


def _in_user_terms(rec: ErrorRecord, job: jobfs.JobDir, filename: str, settings: Settings) -> None:
    """Rewrite host paths in the record's text: the user knows their file, not our folders.

    The scene's own copy becomes its file name, other paths in the job `<job>/...`, the
    work folder `<work>`, Python's installation `<python>`.
    """
    replacements = [
        (f"{job.path}/{filename}", filename),
        (str(job.path), "<job>"),
        (str(job.root), "<job>"),
        (str(settings.folders.work), "<work>"),
        *((prefix, "<python>") for prefix in sorted({sys.prefix, sys.base_prefix}, key=len, reverse=True)),
    ]

    def rewrite(text: str) -> str:
        for old, new in replacements:
            if old and len(old) > 1:
                text = text.replace(old, new)
        return text

    rec.message = rewrite(rec.message)
    rec.stderr_tail = rewrite(rec.stderr_tail)
    if rec.hint:
        rec.hint = rewrite(rec.hint)
    if rec.latex:
        rec.latex = {
            key: [rewrite(v) for v in value]
            if isinstance(value, list)
            else rewrite(value)
            if isinstance(value, str)
            else value
            for key, value in rec.latex.items()
        }


def _prepare(job_dir: Path, source: bytes, filename: str, spec: dict[str, Any], glyphs: dict[str, bytes]) -> None:
    """Fill a new, empty child directory for one attempt."""
    (job_dir / "tmp").mkdir()
    (job_dir / filename).write_bytes(source)
    (job_dir / "job.json").write_text(json.dumps(spec), encoding="utf-8")
    if glyphs:  # each job its own copies: no job can tamper with another's
        tex = job_dir / "media" / "Tex"
        tex.mkdir(parents=True)
        for name, data in glyphs.items():
            (tex / name).write_bytes(data)


def _read_result(dir_fd: int, owners: set[int]) -> dict[str, Any]:
    """The child's result.json, checked against its shape; {} when the child wrote none.

    Raises:
        UnsafeEntry: it is not a plain file of the job's, is too large, or is not a result.
    """
    try:
        data = jobfs.read_file(dir_fd, "result.json", max_bytes=MAX_RESULT_BYTES, owners=owners)
    except jobfs.Missing:
        return {}
    try:
        result = json.loads(data)
    except ValueError as e:
        raise jobfs.UnsafeEntry(f"result.json is not JSON ({e})") from None
    if not isinstance(result, dict) or not isinstance(result.get("ok"), bool):
        raise jobfs.UnsafeEntry("result.json does not hold a result (an object with a boolean 'ok')")
    record = result.get("record")
    if record is not None:
        if not isinstance(record, dict) or record.get("phase") not in PHASES:
            raise jobfs.UnsafeEntry("result.json holds a 'record' that is not an error record")
        try:
            ErrorRecord.from_dict({**record, "source": "x"})
        except (TypeError, ValueError) as e:
            raise jobfs.UnsafeEntry(f"result.json holds an invalid error record ({e})") from None
    return result


def _overridden(data: Any) -> dict[str, Any]:
    """The scene's module-level settings that the render settings replaced, as the child saw them."""
    if not isinstance(data, dict):
        return {}
    return {
        key: value if isinstance(value, int | float) else cap_text(str(value), 64)
        for key, value in list(data.items())[:8]
        if isinstance(key, str) and key in ENFORCED_SETTINGS and isinstance(value, int | float | str)
    }


def _killed_record(child: dict[str, Any], duration: float, settings: Settings) -> dict[str, Any]:
    """A job killed on the wall clock: its own timeout record if it wrote one in time."""
    record = child.get("record")
    if record and record.get("phase") == "timeout":
        return record
    return {
        "phase": "timeout",
        "type": "RenderTimeout",
        "message": f"stopped after {duration:.1f} s: the scene ignored the timeout of {settings.render.timeout:g} s "
        f"for {settings.render.grace:g} s more, so the process tree was killed",
        "hint": "do not block or catch SIGALRM; shorten the animation or raise render.timeout",
    }


def _unsafe_record(problem: str) -> dict[str, Any]:
    return {
        "phase": "internal",
        "type": "UnsafeJobOutput",
        "message": f"{problem}; nothing the job left was trusted",
        "hint": "a scene must not replace or tamper with the files watcher reads in its job directory "
        "(result.json, out/)",
    }


def _signal_record(signum: int) -> dict[str, Any]:
    name = signal.Signals(signum).name if signum in signal.Signals._value2member_map_ else f"signal {signum}"
    if signum == signal.SIGXCPU:
        return {"phase": "resource", "type": "CPULimit", "limit": "cpu time", "message": "the CPU time limit was hit"}
    if signum == signal.SIGXFSZ:
        return {"phase": "resource", "type": "FileSizeLimit", "limit": "file size", "message": "a file grew too large"}
    return {"phase": "render", "type": "Crash", "message": f"the render process was killed by {name}"}


def _collect_outputs(
    dir_fd: int,
    job: jobfs.JobDir,
    filename: str,
    scenes: list[str],
    outputs: list[str],
    settings: Settings,
    owners: set[int],
    result: RenderResult,
    partial: bool = False,
) -> str | None:
    """Copy each expected output out of the job into job.results.

    An output is `out/<name>.mp4`, or for a scene that never animates (render.still: png)
    `out/<name>.png`. Fills result.videos and .suffixes; returns why the outputs are not
    acceptable, or None. The copies are what the receiving side verifies and publishes:
    the job cannot reach them. With `partial` (a failed job), outputs that are missing or
    unsafe are skipped.
    """
    max_bytes = settings.render.max_output_mb * 1024 * 1024
    extensions = (".mp4", ".png") if settings.render.still == "png" else (".mp4",)
    for scene, output in zip(scenes, outputs, strict=True):
        try:
            for extension in extensions:
                suffix = extension if len(scenes) == 1 else f".{scene}{extension}"
                # Named as publish_done reads them, `<stem><suffix>`, the stem shortened to fit in a name.
                copy = job.results / fsops.final_name(Path(filename).stem, "", suffix)
                try:
                    jobfs.copy_out(dir_fd, f"out/{output}{extension}", copy, max_bytes=max_bytes, owners=owners)
                    break
                except jobfs.Missing:
                    continue
            else:
                raise ValueError(f"no video or image was written for {scene}")
        except (jobfs.UnsafeEntry, ValueError) as e:
            if partial:
                continue
            return str(e)
        result.videos.append(copy)
        result.suffixes.append(suffix)
    return None
