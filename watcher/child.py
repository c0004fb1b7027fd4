"""The render child: runs one job's scene(s) and writes `result.json` in its job directory.

Runs as `python -I -m watcher.child JOB_DIR` (a fresh interpreter per job), or as a fork
of a warm worker (`watcher.pool`) that calls `run_job`, with the environment from
`sandbox.child_environment`. Never imported by the daemon, which trusts nothing written
here: success still needs exit status 0 and an MP4 that verifies.
"""

from __future__ import annotations

import errno
import json
import os
import re
import signal
import sys
import traceback
import types
from pathlib import Path
from typing import Any, NoReturn

from . import sandbox
from .config import ENFORCED_SETTINGS, Render
from .errors import CAPS, cap_text, excerpt

# Programs Manim runs; a FileNotFoundError naming one is the host's fault, not the scene's.
TOOLS = ("latex", "pdflatex", "xelatex", "lualatex", "dvisvgm", "ffmpeg")

EXIT_OK = 0
EXIT_FAILED = 1  # result.json holds the error


class SceneTimeout(BaseException):
    """Raised by SIGALRM. A BaseException so that `except Exception` in a scene cannot swallow it."""


# After the first SIGALRM the timer repeats: a SceneTimeout raised inside a finaliser or a
# __del__ is swallowed ("Exception ignored in ..."), and a one-shot timer would never fire
# again, leaving the wall-clock kill to blame the scene for ignoring the timeout.
ALARM_REPEAT = 0.5
_stopping = False  # set once our own handling of a timeout has begun: no more raises


def _on_alarm(signum: int, frame: Any) -> None:
    if not _stopping:
        raise SceneTimeout()


def _stop_alarm() -> None:
    global _stopping
    _stopping = True
    signal.setitimer(signal.ITIMER_REAL, 0)


def main(job_dir: Path) -> int:
    spec = json.loads((job_dir / "job.json").read_text(encoding="utf-8"))
    render = Render(**spec["render"])
    try:
        # With a PID namespace this returns in a new process (the job's PID 1), and the
        # calling one stays behind as its relay.
        opts = sandbox.options(spec.get("sandbox"))
        sandbox.enter(render, spec["parent_pid"], job_dir, opts, spec.get("expect", ()))
    except sandbox.SandboxError as e:  # less isolation than this job must have: never run the scene
        record = {"phase": "environment", "type": "SandboxError", "message": str(e)}
        record["hint"] = "this host cannot isolate renders as configured: run `watcher doctor`"
        (job_dir / "result.json").write_text(json.dumps({"ok": False, "record": record}), encoding="utf-8")
        return EXIT_FAILED
    job_pid = os.getpid()
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, render.timeout, ALARM_REPEAT)
    os.chdir(job_dir)
    try:
        result = run(spec, job_dir)
    except SceneTimeout:  # the alarm fired between phases
        _stop_alarm()
        result = {"ok": False, "record": _timeout_record(spec, render)}
    _stop_alarm()
    if os.getpid() != job_pid:  # a process the scene forked, unwinding: the result is not its to write
        return EXIT_FAILED
    (job_dir / "result.json").write_text(json.dumps(result), encoding="utf-8")
    return EXIT_OK if result["ok"] else EXIT_FAILED


def run(spec: dict[str, Any], job_dir: Path) -> dict[str, Any]:
    """Import Manim, execute the scene module, render each selected scene."""
    render = Render(**spec["render"])
    scene_path = str(job_dir / spec["filename"])
    phase = "environment"
    current = ""  # the scene being rendered
    outputs: list[dict[str, str]] = []  # those rendered so far
    try:
        import manim
        from manim import tempconfig

        if spec.get("tex_fd") is not None:  # LaTeX through watcher's typesetting service
            from . import texclient

            texclient.install(spec["tex_fd"])
        phase = "import"
        source = Path(scene_path).read_text(encoding="utf-8-sig")
        module = types.ModuleType("scene")
        module.__file__ = scene_path
        sys.modules["scene"] = module
        before = _enforced(manim.config)
        exec(compile(source, scene_path, "exec"), module.__dict__)
        after = _enforced(manim.config)
        # Set at module level, then replaced by the render settings (tempconfig below).
        overridden = {key: value for key, value in after.items() if value != before[key]}

        phase = "render"
        for i, (scene_name, output) in enumerate(zip(spec["scenes"], spec["outputs"], strict=True)):
            current = scene_name
            if i:  # render.timeout applies to each scene of a file, the first one with the import
                signal.setitimer(signal.ITIMER_REAL, render.timeout, ALARM_REPEAT)
            cls = module.__dict__.get(scene_name)
            if not (isinstance(cls, type) and issubclass(cls, manim.Scene)):
                raise TypeError(f"{scene_name} is not a Manim Scene subclass at run time")
            with tempconfig(manim_options(job_dir / "media", job_dir / "out", output, render.quality, render.still)):
                scene = cls()
                scene.render()
                # A scene that never animated leaves its last frame as a PNG (render.still: png).
                kind = "video" if scene.renderer.num_plays else "image"
            outputs.append({"scene": scene_name, "output": output, "kind": kind})
        return {"ok": True, "outputs": outputs, "overridden": overridden}
    except SceneTimeout as exc:
        _stop_alarm()
        # Where the scene was when time ran out is the most useful line to report.
        record = describe(exc, phase, scene_path, spec["filename"], job_dir)
        return {"ok": False, "record": {**record, **_timeout_record(spec, render, current)}, "outputs": outputs}
    except BaseException as exc:  # noqa: BLE001 - everything a scene raises becomes a record
        _stop_alarm()
        record = describe(exc, phase, scene_path, spec["filename"], job_dir)
        if len(spec["scenes"]) > 1 and current:
            record["message"] = f"in scene {current}: {record['message']}"
        return {"ok": False, "record": record, "outputs": outputs}


def _enforced(config: Any) -> dict[str, Any]:
    values = {}
    for key in ENFORCED_SETTINGS:
        value = config[key]
        values[key] = value if isinstance(value, int | float) else str(getattr(value, "value", value))
    return values


def manim_options(media_dir: Path, video_dir: Path, output: str, quality: str, still: str = "png") -> dict[str, Any]:
    """Manim's config for one render: our folders, our output name, no cache, no prompts, no phoning out.

    With `still` png, the format is Manim's automatic one: an MP4, or for a scene with no
    play calls its last frame as `<output>.png`, as `manim` does on the command line.
    """
    return {
        "media_dir": str(media_dir),
        "video_dir": str(video_dir),
        "images_dir": str(video_dir),
        "output_file": output,
        "quality": quality,
        "format": "auto" if still == "png" else "mp4",
        "renderer": "cairo",
        "write_to_movie": True,
        "disable_caching": True,
        "progress_bar": "none",
        "verbosity": "WARNING",
        "preview": False,
        "notify_outdated_version": False,
    }


def _timeout_record(spec: dict[str, Any], render: Render, scene: str = "") -> dict[str, Any]:
    which = f"scene {scene}" if scene and len(spec["scenes"]) > 1 else "the scene"
    return {
        "phase": "timeout",
        "type": "RenderTimeout",
        "message": f"{which} ran longer than render.timeout = {render.timeout:g} s",
        "hint": "shorten the animation (fewer or shorter run_time values) or raise render.timeout",
    }


def describe(exc: BaseException, phase: str, scene_path: str, filename: str, job_dir: Path) -> dict[str, Any]:
    """Turn an exception into record fields, with locations mapped to the user's file."""
    tb = traceback.extract_tb(exc.__traceback__)
    user = [f for f in tb if f.filename == scene_path]
    text = _text(exc)
    record: dict[str, Any] = {
        "phase": phase,
        "type": type(exc).__name__,
        # Messages must not point into the job directory, a temp folder the user never sees.
        "message": cap_text(text or type(exc).__name__, CAPS.message)
        .replace(f"{job_dir}/", "")
        .replace("Use --format=png to save its last frame.", "render.still: png files its last frame as an image."),
        "frames": [{"line": f.lineno, "function": f.name, "code": (f.line or "")[:200]} for f in user],
    }
    if user:
        record["line"] = user[-1].lineno
        colno = getattr(user[-1], "colno", None)
        record["column"] = colno + 1 if colno is not None else None
    if isinstance(exc, SyntaxError) and exc.filename == scene_path:
        record["line"], record["column"] = exc.lineno, exc.offset
    source = ""
    try:
        source = Path(scene_path).read_text(encoding="utf-8-sig")
        record["excerpt"] = excerpt(source, record.get("line"))
    except OSError:
        pass

    if isinstance(exc, SystemExit):
        record["message"] = f"the scene called sys.exit({exc.code!r}) before the video was written"
    elif isinstance(exc, MemoryError):
        record.update(phase="resource", limit="memory", message="the scene ran out of memory (render.memory_limit_mb)")
    elif isinstance(exc, OSError) and exc.errno == errno.EFBIG:
        record.update(phase="resource", limit="file size", message=f"{record['message']} (render.max_output_mb)")
    elif isinstance(exc, OSError) and exc.errno == errno.EMFILE:
        record.update(phase="resource", limit="open files", message=f"{record['message']} (render.max_open_files)")
    elif (isinstance(exc, OSError) and exc.errno == errno.EAGAIN) or (
        isinstance(exc, RuntimeError) and _raised_by(tb, _THREAD_START)
    ):
        # fork() and thread start fail with EAGAIN at RLIMIT_NPROC (a thread's stack can
        # also fail to fit under the memory limit: the same error, much rarer).
        message = f"{record['message']}: the limit on processes and threads (sandbox.max_processes) was hit"
        record.update(phase="resource", limit="processes", message=message)
    elif isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        record.update(phase="resource", limit="disk space", hint="the disk holding folders.work is full")
    elif isinstance(exc, FileNotFoundError) and exc.filename in TOOLS:  # the program itself, not a file named so
        record.update(phase="environment", hint=f"{exc.filename} is not installed on this host")
    elif asset := _missing_asset(exc, text):
        record.update(
            type="MissingAsset",
            message=f"the scene uses the file {asset!r}, which does not exist where the scene runs",
            hint="scenes run in a private directory, without access to the host's files: build the asset in the "
            "scene (an image from a numpy array, Manim shapes instead of an SVG), or leave it out",
        )
    elif phase == "environment":
        record["hint"] = "Manim could not be imported on this host: a system library or package is missing"
    elif _raised_by(tb, _TEX_COMPILE):
        record["type"] = "LaTeXError"
        record["latex"] = latex_details(job_dir)
        if record["latex"] and record["latex"]["errors"]:
            first = record["latex"]["errors"][0].splitlines()[0].lstrip("! ")
            record["message"] = f"LaTeX could not typeset an expression: {first}"
    if "hint" not in record and record["phase"] in ("import", "render"):
        from . import hints  # pure; only here, where a scene failed

        hint, suggestion = hints.explain(exc, phase, hints.scene_namespace(scene_path), record, source)
        if hint:
            record["hint"] = hint
        if suggestion:
            record["suggestion"] = suggestion
    return record


# Where an exception was raised says what failed, whatever its message: a scene may raise
# any text itself. (file name ending, function) of the innermost frame.
# latex (or xelatex ...) failed: run by Manim itself, or by the typesetting service (texclient)
_TEX_COMPILE = (("manim/utils/tex_file_writing.py", "compile_tex"), ("watcher/texclient.py", "compile_tex"))
_THREAD_START = (("/threading.py", "start"),)  # "can't start new thread": RLIMIT_NPROC or memory


def _raised_by(tb: traceback.StackSummary, places: tuple[tuple[str, str], ...]) -> bool:
    """True when the innermost frame of `tb` is one of `places`."""
    if not tb:
        return False
    last = tb[-1]
    return any(last.filename.endswith(path) and last.name == name for path, name in places)


# Manim's message when an ImageMobject, SVGMobject or sound file is not found.
_NOT_FOUND = re.compile(r"could not find (.+?) at either of these locations")


def _missing_asset(exc: BaseException, text: str) -> str | None:
    """The name of a file the scene needs that is not there (an image, SVG, sound, data file)."""
    if isinstance(exc, OSError) and (m := _NOT_FOUND.search(text)):
        return m.group(1)
    if isinstance(exc, FileNotFoundError) and isinstance(exc.filename, str) and exc.filename:
        return os.path.basename(exc.filename)
    return None


def _text(exc: BaseException) -> str:
    """str(exc), or what went wrong making it (a scene's __str__ may raise or loop)."""
    try:
        return str(exc)
    except Exception as e:  # noqa: BLE001
        return f"<the exception's message could not be made: {type(e).__name__}>"


def latex_details(job_dir: Path) -> dict[str, Any] | None:
    """The error lines of the newest LaTeX log, and the TeX source line they point at."""
    logs = sorted((job_dir / "media").rglob("*.log"), key=lambda p: p.stat().st_mtime)
    if not logs:
        return None
    log = logs[-1]
    text = log.read_text(encoding="utf-8", errors="replace")
    lines = text.splitlines()
    # TeX reports "! message", some context, then "l.N <text up to the error>".
    errors: list[str] = []
    for i, line in enumerate(lines):
        if line.startswith("!"):
            block = [line]
            for follow in lines[i + 1 : i + 8]:
                block.append(follow)
                if re.match(r"^l\.\d+", follow):
                    break
            errors.append("\n".join(block))
    details: dict[str, Any] = {"errors": errors[:5]}
    m = re.search(r"^l\.(\d+) ?(.*)$", text, re.MULTILINE)
    tex = log.with_suffix(".tex")
    if m:
        details["tex_line"] = int(m.group(1))
        if tex.exists():
            lines = tex.read_text(encoding="utf-8", errors="replace").splitlines()
            n = int(m.group(1))
            if 0 < n <= len(lines):
                details["tex_source"] = lines[n - 1]
    return details


def run_job(job_dir: Path) -> NoReturn:
    """Run the job and end this process: the entry of a fresh interpreter and of a warm worker's fork."""
    try:
        code = main(job_dir)
    except BaseException:  # noqa: BLE001 - the parent reports the traceback from our output
        traceback.print_exc()
        code = EXIT_FAILED
    sys.stdout.flush()
    sys.stderr.flush()
    # os._exit: a scene's leftover non-daemon threads (Manim's encoder, the scene's own)
    # must not keep a finished job alive until the parent's kill.
    os._exit(code)


if __name__ == "__main__":
    run_job(Path(sys.argv[1]))
