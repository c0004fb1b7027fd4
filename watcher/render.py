"""Render one scene in an isolated child process and verify what comes out.

The parent never runs scene code. Each job gets a private directory under the work
folder; the child (`watcher.child`) runs there in its own session with a scrubbed
environment and its own limits, and raises SceneTimeout on SIGALRM. The child is forked
by a warm worker that imported Manim once (`watcher.pool`), or with
`render.warm_workers: false` is a fresh interpreter; everything after the start is the
same. The parent watches the child's pidfd and output pipe, and SIGKILLs the whole
process group once timeout + grace has passed on the wall clock. Success means exit
status 0 AND MP4s that PyAV opens, with at least one frame and a positive duration.

Once scene code has run, the job directory is hostile (the parent is often root): it is
read only through `watcher.jobfs` (no link followed, no FIFO opened, sizes capped, the
child's result.json checked against its shape), the videos are copied out of it before
they are verified, and it is removed in bounded time (`jobfs.discard`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from . import apisnapshot, jobfs, layout, pool, sandbox, texseed
from .config import ENFORCED_SETTINGS, QUALITIES, RESOLUTIONS, Settings, default_settings
from .errors import PHASES, ErrorRecord, InvalidScene, RenderError, RenderTimeout, cap_text, excerpt
from .validate import check_scene, checked_scene, findings_record

log = logging.getLogger(__name__)

# A job whose warm worker died under it runs once more on a new one; losing a second
# worker is reported (a scene that kills its parent must not loop forever).
WORKER_ATTEMPTS = 2
# The child's result.json: records are capped well below this (watcher.errors).
MAX_RESULT_BYTES = 1 << 20


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
    """The outcome of one job. `videos` are verified copies the job cannot reach; they, and
    the job directory, are removed when the `render_job` context exits. A failed job of
    several scenes keeps in `videos` those that rendered before the failure."""

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


@contextlib.contextmanager
def render_job(
    source: bytes,
    filename: str,
    settings: Settings,
    *,
    scenes: list[str] | None = None,
    cancel: threading.Event | None = None,
) -> Iterator[RenderResult]:
    """Validate and render `source` (the bytes of the user's `filename`).

    Yields a RenderResult whose videos are verified copies out of the job's reach; they
    and the job directory are removed when the `with` block ends, on success and on failure. `scenes`, when given,
    skips the static checks (the caller already ran them). Setting `cancel` stops the
    render (the result then has `cancelled=True` and no record).
    """
    started = time.monotonic()
    if scenes is None:
        check = check_scene(source, settings, filename)
        if not check.ok:
            record = findings_record(check, filename)
            _complete(record, settings, started)
            yield RenderResult(filename, ok=False, record=record, duration=record.duration or 0.0)
            return
        scenes = check.selected
        if check.source is not None:  # the code block of a Markdown reply (validation.extract_code)
            lines = f"lines {check.extracted[0]}-{check.extracted[1]}" if check.extracted else "its code block"
            log.info("%s: a Markdown reply: rendering %s", filename, lines)
            source = check.source.encode("utf-8")  # other lines blanked: line numbers still match the file
    expect = sandbox.expected_layers(settings)  # the host check, once per process and settings
    job = jobfs.create(settings.folders.work, "job", Path(filename).stem)
    try:
        result = _run_child(job, source, filename, scenes, settings, cancel, started, expect)
        yield result
    finally:
        jobfs.discard(job.root)


def prewarm(settings: Settings, count: int | None = None) -> None:
    """Start warm workers for `count` renders at once (default workers.count), the shared
    number glyphs (watcher.texseed) and the Manim API snapshot (watcher.apisnapshot), in the background.

    Optional: render_job starts warm workers on demand, but then the first jobs wait for
    Manim's import; without prewarm no job gets the shared glyphs. No warm workers with
    render.warm_workers: false.
    """
    if settings.render.warm_workers:
        pool.get_pool().prewarm(count or settings.worker_count)
    texseed.start(settings)
    if settings.validation.api_check != "off":
        apisnapshot.get(settings)  # starts making the Manim API snapshot in the background if it is missing


def _run_child(
    job: jobfs.JobDir,
    source: bytes,
    filename: str,
    scenes: list[str],
    settings: Settings,
    cancel: threading.Event | None,
    started: float,
    expect: list[str],
) -> RenderResult:
    # Inside the job, outputs have short fixed names: the user's name may be 255 bytes
    # already, and the child decides nothing about what is published under which name.
    outputs = [f"video-{i + 1}" for i in range(len(scenes))]
    spec = {
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
                launcher = _launcher(settings, stack)
                _prepare(job.path, source, filename, {**spec, "parent_pid": launcher.pid})
                proc = launcher.start(job.path, sandbox.child_environment(job.path))
                log.debug("%s: render child %d started (%s)", filename, proc.pid, type(launcher).__name__)
                # render.timeout applies to each scene of the file (the child restarts its alarm).
                deadline = time.monotonic() + settings.render.timeout * len(scenes) + settings.render.grace
                outcome, tail, returncode = supervise(proc, deadline, settings.render.max_log_bytes, cancel)
            break
        except pool.WorkerLost as e:
            outcome, tail, lost = "lost", e.tail, e
            if attempt < WORKER_ATTEMPTS:
                log.warning("%s: %s; running it again on a new warm worker", filename, e)
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
    _complete(rec, settings, started)
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


class Child(Protocol):
    """A started render child: the leader of its own session, writing its output to `out_fd`."""

    pid: int
    pidfd: int
    out_fd: int

    def wait(self) -> int:
        """Reap it; the exit status the way subprocess gives it (negative: killed by that signal)."""
        ...

    def close(self) -> None: ...


class Launcher(Protocol):
    """What starts render children: a fresh interpreter per job, or a warm worker's fork."""

    pid: int  # the parent the child will have, which its PR_SET_PDEATHSIG is tied to

    def start(self, job_dir: Path, env: dict[str, str]) -> Child: ...


class FreshChild:
    """`python -I -m watcher.child JOB_DIR` in a new process of its own."""

    def __init__(self, job_dir: Path, env: dict[str, str]):
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-m", "watcher.child", str(job_dir)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=job_dir,
            env=env,
            start_new_session=True,
            close_fds=True,
        )
        assert self.proc.stdout is not None
        self.pid = self.proc.pid
        self.pidfd = os.pidfd_open(self.pid)
        self.out_fd = self.proc.stdout.fileno()

    def wait(self) -> int:
        return self.proc.wait()

    def close(self) -> None:
        os.close(self.pidfd)
        assert self.proc.stdout is not None
        self.proc.stdout.close()


class FreshLauncher:
    """render.warm_workers: false, or no warm worker could be started."""

    def __init__(self) -> None:
        self.pid = os.getpid()

    def start(self, job_dir: Path, env: dict[str, str]) -> Child:
        return FreshChild(job_dir, env)


def _launcher(settings: Settings, stack: contextlib.ExitStack) -> Launcher:
    if settings.render.warm_workers:
        try:
            return stack.enter_context(pool.get_pool().checkout())
        except pool.PoolError as e:
            log.warning("%s; rendering in a fresh process instead", e)
    return FreshLauncher()


def _prepare(job_dir: Path, source: bytes, filename: str, spec: dict[str, Any]) -> None:
    """Fill a new, empty child directory for one attempt."""
    (job_dir / "tmp").mkdir()
    (job_dir / filename).write_bytes(source)
    (job_dir / "job.json").write_text(json.dumps(spec), encoding="utf-8")
    texseed.copy_into(job_dir / "media" / "Tex")


def supervise(
    child: Child, deadline: float, max_log: int, cancel: threading.Event | None = None
) -> tuple[str, bytes, int]:
    """Wait for `child`, keeping the tail of its output; kill its group at `deadline`.

    Returns ("exited" | "killed" | "cancelled", output tail, exit status). Whatever
    happens, every process left in the child's process group is SIGKILLed before the
    child is reaped (its pgid cannot be reused while it is a zombie).

    Raises:
        WorkerLost: the warm worker that forked the child died; `.tail` holds the output.
    """
    poller = select.poll()
    poller.register(child.out_fd, select.POLLIN)
    poller.register(child.pidfd, select.POLLIN)
    tail = bytearray()
    outcome = "exited"
    returncode: int | None = None
    try:
        while True:
            now = time.monotonic()
            if now >= deadline:
                outcome = "killed"
                break
            if cancel is not None and cancel.is_set():
                outcome = "cancelled"
                break
            wait = deadline - now if cancel is None else min(deadline - now, 0.2)
            events = poller.poll(max(1, int(wait * 1000)))
            exited = False
            for fd, _ in events:
                if fd == child.pidfd:
                    exited = True
                elif not _read_into(child.out_fd, tail, max_log):
                    poller.unregister(child.out_fd)
            if exited:
                break
        _kill(child)
        # Drain to the end of the output: the pipe reads EOF once every process holding it
        # is dead, so this also waits for the job's last descendants to go. With a PID
        # namespace that is at once; without one, a descendant that left the process group
        # keeps it open, so wait at most 2 s.
        until = time.monotonic() + 2.0
        while (left := until - time.monotonic()) > 0 and select.select([child.out_fd], [], [], left)[0]:
            if not _read_into(child.out_fd, tail, max_log):
                break
        returncode = child.wait()
    except pool.WorkerLost as e:
        e.tail = bytes(tail[-max_log:])
        raise
    finally:
        if returncode is None:  # interrupted ourselves, or the worker was lost: never leave the job running
            _kill(child)
            with contextlib.suppress(pool.WorkerLost):
                child.wait()
        child.close()
    return outcome, bytes(tail[-max_log:]), returncode


def _read_into(fd: int, buf: bytearray, cap: int) -> bool:
    data = os.read(fd, 65536)
    buf += data
    if len(buf) > 2 * cap:  # keep memory flat however much the scene prints
        del buf[:-cap]
    return bool(data)


def _kill(child: Child) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signal.SIGKILL)
    # The child itself, through its pidfd: a fork may not have called setsid() yet, and a
    # pid could be reused, a pidfd cannot.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        signal.pidfd_send_signal(child.pidfd, signal.SIGKILL)


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
    """Copy each expected output out of the job into job.results and verify the copy.

    An output is `out/<name>.mp4`, or for a scene that never animates (render.still: png)
    `out/<name>.png`. Fills result.videos, .suffixes and .info; returns why the outputs
    are not acceptable, or None. What is verified is what is published: the copy, which
    the job cannot reach. With `partial` (a failed job), outputs that are missing or do
    not verify are skipped: those that do are kept beside the error record.
    """
    max_bytes = settings.render.max_output_mb * 1024 * 1024
    extensions = (".mp4", ".png") if settings.render.still == "png" else (".mp4",)
    for scene, output in zip(scenes, outputs, strict=True):
        try:
            for extension in extensions:
                suffix = extension if len(scenes) == 1 else f".{scene}{extension}"
                # Named as publish_done reads them, `<stem><suffix>`, the stem shortened to fit in a name.
                copy = job.results / layout.final_name(Path(filename).stem, "", suffix)
                try:
                    jobfs.copy_out(dir_fd, f"out/{output}{extension}", copy, max_bytes=max_bytes, owners=owners)
                    break
                except jobfs.Missing:
                    continue
            else:
                raise ValueError(f"no video or image was written for {scene}")
            try:
                quality = RESOLUTIONS[settings.render.quality]
                info = verify_mp4(copy) if extension == ".mp4" else verify_png(copy, quality)
            except ValueError as e:
                raise ValueError(f"{scene}: {e}") from None
        except (jobfs.UnsafeEntry, ValueError) as e:
            if partial:
                continue
            return str(e)
        result.info.append(info)
        result.videos.append(copy)
        result.suffixes.append(suffix)
    return None


def verify_png(path: Path, size: tuple[int, int]) -> VideoInfo:
    """Open `path` with Pillow and decode it; it must be a PNG of `size` (width, height).

    Raises:
        ValueError: saying what is wrong with the file.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            if image.format != "PNG":
                raise ValueError(f"not a PNG image but {image.format}")
            image.load()
            width, height = image.size
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as e:
        raise ValueError(f"not a valid PNG: {e}") from None
    if (width, height) != size:
        raise ValueError(f"the image is {width}x{height}, not the configured {size[0]}x{size[1]}")
    return VideoInfo(width, height, 0.0, 1, 0.0, kind="image")


def verify_mp4(path: Path) -> VideoInfo:
    """Open `path` with PyAV; require a video stream, one decodable frame and a positive duration.

    Raises:
        ValueError: saying what is wrong with the file.
    """
    import av

    if not path.is_file():
        raise ValueError("no video file was written")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ValueError("the file has no video stream")
            stream = container.streams.video[0]
            first = next(container.decode(stream), None)
            if first is None:
                raise ValueError("the video has no frames")
            duration = 0.0
            if container.duration:
                duration = container.duration / av.time_base
            elif stream.duration and stream.time_base:
                duration = float(stream.duration * stream.time_base)
            if duration <= 0:
                raise ValueError("the video has no duration")
            fps = float(stream.average_rate or 0)
            return VideoInfo(first.width, first.height, round(duration, 3), stream.frames, fps)
    except av.FFmpegError as e:
        raise ValueError(f"not a valid MP4: {e}") from None


def _complete(record: ErrorRecord, settings: Settings, started: float) -> None:
    record.duration = round(time.monotonic() - started, 3)
    record.settings = settings.render_summary()


def _safe(stem: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._")


def execute_animation_code(
    code: str,
    output_name: str,
    output_dir: str | os.PathLike[str],
    quality: str = "low_quality",
    settings: Settings | None = None,
) -> Path:
    """Render the scene in `code` and return the path of `output_dir/<output_name>.mp4`.

    The render runs in an isolated child process; temporary files are always removed. A
    scene that never animates gives its last frame, `output_dir/<output_name>.png`, as
    `manim` does (pass settings with render.still "fail" to refuse such scenes). A
    Markdown reply renders its code block (validation.extract_code).

    Args:
        code: Manim Community scene source.
        output_name: name of the MP4 (".mp4" is added when missing).
        output_dir: created if missing; an existing file of that name is replaced.
        quality: a Manim quality name (low_quality, medium_quality, high_quality,
            production_quality, fourk_quality) or its one-letter flag.
        settings: limits and policy; defaults to the built-in defaults with job
            directories in the system temp folder.

    Returns:
        The path of the verified MP4.

    Raises:
        SyntaxError: the code does not parse.
        ValueError: (InvalidScene) the scene is structurally invalid ("missing ...") or
            breaks the validation policy.
        RenderTimeout: (a RenderError and TimeoutError) the render ran out of time.
        RenderError: (a RuntimeError) the render failed; `.record` says why.
    """
    if quality not in QUALITIES:
        raise ValueError(f"unknown quality {quality!r}; use one of {', '.join(QUALITIES)}")
    if settings is None:
        base = default_settings()
        # /tmp/watcher/work: the API snapshot's cache/ beside it is /tmp/watcher/cache, not /tmp/cache.
        work = Path(tempfile.gettempdir()) / "watcher" / "work"
        settings = dataclasses.replace(base, folders=dataclasses.replace(base.folders, work=work))
    settings = dataclasses.replace(settings, render=dataclasses.replace(settings.render, quality=QUALITIES[quality]))
    name = output_name[:-4] if output_name.endswith(".mp4") else output_name
    if not name or "/" in name or name in (".", ".."):
        raise ValueError(f"output_name must be a plain file name, got {output_name!r}")
    try:
        check = checked_scene(code, settings)
    except (SyntaxError, InvalidScene) as e:
        log.error("%s: invalid scene: %s", name, e)
        raise
    scenes = check.selected
    code = check.source or code  # a Markdown reply: its code block
    out_dir = Path(output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with render_job(code.encode("utf-8"), f"{name}.py", settings, scenes=scenes[:1]) as result:
        if not result.ok:
            assert result.record is not None
            rec = result.record
            log.error("%s: render failed: %s", name, rec.summary())
            exc_type = RenderTimeout if rec.phase == "timeout" else RenderError
            raise exc_type(rec.summary(), rec)
        final = out_dir / f"{name}{result.videos[0].suffix}"  # .png for a still scene (render.still)
        tmp = out_dir / f".{final.name}.tmp-{os.getpid()}"
        shutil.copyfile(result.videos[0], tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, final)
    log.info("%s: rendered %s in %.2f s", name, final, result.duration)
    return final
