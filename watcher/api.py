"""The library call: `execute_animation_code(code, output_name, output_dir, quality)`.

A thin source and sink around the one pipeline (`watcher.pipeline.render_job`): the code
comes as a string, the result goes to a path the caller chose, and a failure is raised
as an exception that carries the error record.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import secrets
import tempfile
from pathlib import Path

from .config import QUALITIES, Settings, default_settings
from .errors import InvalidScene, RenderError, RenderTimeout
from .fsops import stage_output
from .pipeline import render_job
from .validate import checked_scene

log = logging.getLogger(__name__)


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
        # The caller named the file: it replaces what was there, atomically.
        final = out_dir / f"{name}{result.videos[0].suffix}"  # .png for a still scene (render.still)
        tmp = out_dir / f".{final.name}.tmp-{secrets.token_hex(4)}"
        try:
            stage_output(result.videos[0], tmp)  # a plain file with one link, fsynced
            os.replace(tmp, final)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    log.info("%s: rendered %s in %.2f s", name, final, result.duration)
    return final
