"""`watcher render` and `watcher rerender`: scene files rendered once, as a batch, from the terminal.

The options both take, the config they make from them (checked like the daemon's, sandbox
included), a line per finished job (a progress bar on a terminal), SIGTERM handled like
Ctrl-C, and the summary with the batch's exit status.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from . import sandbox
from .clibase import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, config_options, load_settings
from .config import Settings
from .console import JobDisplay, print_summary
from .errors import WatcherError
from .logs import setup_logging

if TYPE_CHECKING:  # the batch machinery loads only when a batch runs
    from .batch import BatchSummary


def batch_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The options `render` and `rerender` share; they map onto settings and the batch run."""
    options: list[Callable[[Callable[..., Any]], Callable[..., Any]]] = [
        click.option("--workers", "-w", type=click.IntRange(min=1), help="renders at once (default: workers.count)"),
        click.option("--quality", "-q", help="low_quality, medium_quality, high_quality, ... or l/m/h/p/k"),
        click.option("--timeout", type=click.FloatRange(min=0.1), help="seconds per scene (default: render.timeout)"),
        click.option("--json", "as_json", is_flag=True, help="print a machine-readable summary (and nothing else)"),
        config_options,
    ]
    for option in reversed(options):  # the order of --help
        f = option(f)
    return f


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option(
    "--out",
    "-o",
    "out_dir",
    type=click.Path(file_okay=False),
    default="out",
    show_default=True,
    help="folder for <name>.mp4 or <name>.error.json, and <name>.meta.json; nothing there is replaced",
)
@click.option("--recursive", "-r", is_flag=True, help="look for .py files in subfolders too")
@click.option("--move", is_flag=True, help="move each source into --out beside its result")
@batch_options
def render(
    paths: tuple[str, ...],
    out_dir: str,
    recursive: bool,
    move: bool,
    workers: int | None,
    quality: str | None,
    timeout: float | None,
    as_json: bool,
    config: str | None,
    overrides: tuple[str, ...],
) -> None:
    """Render scene files (or folders of them) once; sources stay where they are.

    \b
    Each scene renders with the same isolation, limits and error records as the daemon.
    Exit status: 0 all rendered, 1 some failed, 2 usage or config error, 130 interrupted.
    Example:
        watcher render examples/ --out out/ --quality m
    """
    from .batch import find_sources, run_batch

    settings = _render_settings(config, overrides, quality, timeout)
    out = Path(out_dir)
    files = find_sources(map(Path, paths), recursive=recursive, exclude=out)
    if not files:
        click.echo(f"watcher: no .py files found in {', '.join(paths)}", err=True)
        sys.exit(EXIT_USAGE)
    with _sigterm_interrupts(), JobDisplay(len(files), "rendering", quiet=as_json) as display:
        summary = run_batch(files, settings, out, workers=workers, move=move, on_result=display.show)
    _finish(summary, "watcher render", as_json, {"out": str(out)})


@click.command()
@click.argument("targets", nargs=-1)
@click.option("--force", is_flag=True, help="render even what is unchanged since its last render")
@batch_options
def rerender(
    targets: tuple[str, ...],
    force: bool,
    workers: int | None,
    quality: str | None,
    timeout: float | None,
    as_json: bool,
    config: str | None,
    overrides: tuple[str, ...],
) -> None:
    """Render filed scenes again with the current (or overridden) settings.

    \b
    TARGETS: `done` and `failed` (the configured folders; both when none is given), or
    folders and .py files whose results lie beside them (like `render --move` output).
    A scene whose source, render settings and Manim version are unchanged since its last
    render is skipped (--force renders it anyway). A new MP4 replaces the old one only
    when it rendered; a failure keeps the old MP4 and writes <name>.error.json beside it.
    A scene in failed/ that now renders moves to done/. Exit status as for `render`.
    Examples:
        watcher rerender --set render.quality=medium_quality
        watcher rerender failed --force
    """
    from .batch import rerender_sources, run_rerender

    settings = _render_settings(config, overrides, quality, timeout)
    try:
        sources = rerender_sources(targets or ("done", "failed"), settings)
    except WatcherError as e:
        click.echo(f"watcher: {e}", err=True)
        sys.exit(EXIT_USAGE)
    if not sources:
        click.echo("watcher: nothing to re-render (no .py files in the targets)", err=True)
    with _sigterm_interrupts(), JobDisplay(len(sources), "re-rendering", quiet=as_json) as display:
        summary = run_rerender(sources, settings, force=force, workers=workers, on_result=display.show)
    _finish(summary, "watcher rerender", as_json)


def _render_settings(
    config: str | None, overrides: tuple[str, ...], quality: str | None, timeout: float | None
) -> Settings:
    """Config plus the render flags, logging, and the sandbox check the daemon makes at start."""
    extra = list(overrides)
    if quality:
        extra.append(f"render.quality={quality}")
    if timeout:
        extra.append(f"render.timeout={timeout}")
    settings = load_settings(config, tuple(extra))
    setup_logging(settings)
    try:
        sandbox.prepare(settings)
    except WatcherError as e:
        click.echo(f"watcher: {e}", err=True)
        sys.exit(EXIT_FAILED)
    return settings


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM takes the Ctrl-C path: running renders are stopped and nothing more is filed."""

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _finish(summary: BatchSummary, title: str, as_json: bool, extra: dict[str, Any] | None = None) -> None:
    """Print the summary (a table, or JSON) and exit with the batch's status."""
    if as_json:
        click.echo(json.dumps({**summary.to_dict(), **(extra or {})}, indent=2))
    else:
        print_summary(summary, title)
    if summary.interrupted:
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(EXIT_OK if summary.ok else EXIT_FAILED)
