"""The `watcher` command line. The only place that configures logging and exits."""

from __future__ import annotations

import contextlib
import dataclasses
import getpass
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from . import __version__, sandbox
from .config import Settings, load_config
from .errors import WatcherError
from .validate import check_scene

if TYPE_CHECKING:  # rich and the batch machinery load only in the commands that use them
    from rich.progress import Progress
    from rich.table import Table

    from .batch import BatchSummary, JobOutcome

# Exit statuses.
EXIT_OK = 0  # everything rendered / valid / the daemon stopped cleanly
EXIT_FAILED = 1  # some scene failed, or the daemon could not start on these folders
EXIT_USAGE = 2  # bad command line or config (click uses 2 for usage errors too)
EXIT_INTERRUPTED = 130  # a batch stopped by Ctrl-C or SIGTERM (128 + SIGINT, as shells report it)

CONFIG_HELP = "config file (default: ./config.yaml; built-in defaults if it does not exist)"
SET_HELP = "override a config key, e.g. --set render.timeout=30 (repeatable)"


def main() -> None:
    cli(prog_name="watcher")


def config_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--config and --set, which every command that reads the config takes."""
    f = click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=SET_HELP)(f)
    return click.option("--config", "-c", type=click.Path(dir_okay=False), help=CONFIG_HELP)(f)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="watcher")
def cli() -> None:
    """Turn Manim scene files into verified MP4s, safely and without losing anything.

    \b
    Start the daemon on the folders of ./config.yaml:
        watcher run
    Render some files once, and look at the results:
        watcher render examples/ --out out/ && watcher report out/
    Re-render done/ after a config or Manim upgrade:
        watcher rerender done
    What is the daemon doing? What is wrong with this host?
        watcher status; watcher doctor
    """


def _settings(config: str | None, overrides: tuple[str, ...]) -> Settings:
    """Load the config or exit 2 with one clear line."""
    path = config
    if path is None and Path("config.yaml").exists():
        path = "config.yaml"
    try:
        return load_config(path, list(overrides))
    except WatcherError as e:
        click.echo(f"watcher: config error: {e}", err=True)
        sys.exit(EXIT_USAGE)


def setup_logging(settings: Settings) -> None:
    """Text for people and journald (priority prefixes under systemd), or JSON lines.

    File names and scene messages are untrusted: every format escapes control characters.
    """
    handler = logging.StreamHandler(sys.stderr)
    if settings.logging.format == "json":
        handler.setFormatter(_JsonFormatter())
    elif os.environ.get("JOURNAL_STREAM"):
        handler.setFormatter(_JournalFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(_Formatter("%(asctime)s %(levelname)-7s %(message)s", "%Y-%m-%d %H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("watcher").setLevel(settings.logging.level)


# C0 controls, DEL and C1 controls, as Python escapes them. Newlines and carriage returns
# would let a file named "x\nINFO ..." forge log lines; ESC sequences would colour or
# rewrite the terminal that shows the log.
_CONTROLS = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))}
_CONTROLS.update({ord("\t"): "\\t", ord("\n"): "\\n", ord("\r"): "\\r"})


def escape_controls(text: str) -> str:
    """`text` with every control character escaped (`\\n`, `\\x1b`): one line, no terminal codes."""
    return text.translate(_CONTROLS)


class _Formatter(logging.Formatter):
    """Escapes control characters in the message; a traceback keeps its lines, each indented.

    Indented, no line of a traceback can pass for a record of its own, even when an
    exception message holds a newline.
    """

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape_controls(record.message)
        return super().formatMessage(record)

    def formatException(self, ei: Any) -> str:
        return _indent(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return _indent(super().formatStack(stack_info))


def _indent(text: str) -> str:
    return "\n".join("  " + escape_controls(line) for line in text.split("\n"))


class _JournalFormatter(_Formatter):
    # sd-daemon(3) priority prefixes: journald stores the level, so no timestamp is needed.
    PRIORITY = {"DEBUG": 7, "INFO": 6, "WARNING": 4, "ERROR": 3, "CRITICAL": 2}

    def format(self, record: logging.LogRecord) -> str:
        return f"<{self.PRIORITY.get(record.levelname, 6)}>{super().format(record)}"


class _JsonFormatter(_Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {
            "time": round(record.created, 3),
            "level": record.levelname,
            "logger": record.name,
            "message": escape_controls(record.getMessage()),
        }
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data)


# -- run ------------------------------------------------------------------------------


@cli.command()
@config_options
def run(config: str | None, overrides: tuple[str, ...]) -> None:
    """Run the daemon: watch the inbox and file every scene in done/ or failed/.

    \b
    Stops on SIGTERM or Ctrl-C (a second one forces); SIGHUP reloads the config.
    Example:
        watcher run --config /srv/watcher/config.yaml --set workers.count=4
    """
    from .daemon import Daemon

    settings = _settings(config, overrides)
    setup_logging(settings)
    try:
        code = Daemon(settings, list(overrides)).run()
    except WatcherError as e:
        click.echo(f"watcher: {e}", err=True)
        sys.exit(EXIT_FAILED)
    sys.exit(code)


# -- validate -------------------------------------------------------------------------


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@config_options
@click.option("--json", "as_json", is_flag=True, help="print the findings as JSON")
def validate(files: tuple[str, ...], config: str | None, overrides: tuple[str, ...], as_json: bool) -> None:
    """Check scene files statically, without rendering (or importing Manim).

    \b
    Prints file:line:col: message, the format editors understand; exits 1 if any finding.
    Example:
        watcher validate inbox/*.py
    """
    settings = _settings(config, overrides)
    results = []
    for name in files:
        data = Path(name).read_bytes()
        check = check_scene(data, settings, Path(name).name)
        results.append(
            {"file": name, "ok": check.ok, "scenes": check.selected, "findings": [f.to_dict() for f in check.findings]}
        )
        if not as_json:
            for f in check.findings:
                click.echo(f"{name}:{f.line or 1}:{f.column or 1}: {f.code}: {f.message}")
    if as_json:
        click.echo(json.dumps(results, indent=2))
    sys.exit(EXIT_OK if all(r["ok"] for r in results) else EXIT_FAILED)


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--write", is_flag=True, help="replace each file by its fixed version (atomically, keeping its mode)")
def fix(files: tuple[str, ...], write: bool) -> None:
    """Apply the fixes that are certain (renamed Manim names, Markdown around the code, a
    missing `import math`/`import random`) and print them as a unified diff.

    \b
    Exits 1 when fixes were shown but not written, 0 when none were needed or --write wrote them.
    Example:
        watcher fix inbox/*.py && watcher fix --write inbox/scene.py
    """
    from .fix import fix_file

    status = EXIT_OK
    for name in files:
        result = fix_file(Path(name), write)
        click.echo(result.diff, nl=False)
        if result.note:
            click.echo(f"{name}: {result.note}", err=True)
        if result.error:
            click.echo(f"watcher: {name}: {result.error}", err=True)
            status = EXIT_USAGE
        elif result.diff and not result.written and status == EXIT_OK:
            status = EXIT_FAILED
    sys.exit(status)


# -- render and rerender ---------------------------------------------------------------


def batch_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The options `render` and `rerender` share; they map onto settings and the batch run."""
    options = [
        click.option("--workers", "-w", type=click.IntRange(min=1), help="renders at once (default: workers.count)"),
        click.option("--quality", "-q", help="low_quality, medium_quality, high_quality, ... or l/m/h/p/k"),
        click.option("--timeout", type=click.FloatRange(min=0.1), help="seconds per scene (default: render.timeout)"),
        click.option("--json", "as_json", is_flag=True, help="print a machine-readable summary (and nothing else)"),
        config_options,
    ]
    for option in reversed(options):  # the order of --help
        f = option(f)
    return f


@cli.command()
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


@cli.command()
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
    settings = _settings(config, tuple(extra))
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


_STATUS_WORDS = {"rendered": "ok", "failed": "FAILED", "skipped": "skipped", "cancelled": "cancelled"}


class JobDisplay:
    """Finished jobs as they come: a progress bar on a terminal, else one plain line each."""

    def __init__(self, total: int, verb: str, *, quiet: bool = False):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self.quiet = quiet
        self.console = Console(highlight=False)
        self.bar: Progress | None = None
        if not quiet and self.console.is_terminal:
            self.bar = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=self.console,
                transient=True,
            )
            self.task = self.bar.add_task(verb, total=total)

    def __enter__(self) -> JobDisplay:
        if self.bar is not None:
            self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()

    def show(self, outcome: JobOutcome) -> None:
        if self.quiet:
            return
        line = job_line(outcome)
        if self.bar is None:
            click.echo(line)
            return
        from rich.text import Text

        # Text, not markup: file names and messages come from scene authors.
        self.bar.console.print(Text(line, style="red" if outcome.status == "failed" else ""), soft_wrap=True)
        self.bar.advance(self.task)


def job_line(o: JobOutcome) -> str:
    """`ok   1.35s  examples/x.py -> out/x.mp4`, or the failure's phase, type, line and message."""
    parts = [f"{_STATUS_WORDS.get(o.status, o.status):<7}{o.seconds:6.2f}s ", _shown(o.source)]
    if o.record is not None:
        r = o.record
        where = f" at line {r.line}" if r.line else ""
        message = (r.message.strip().splitlines() or [""])[0][:200]
        parts.append(f"{r.phase}: {r.type}{where}: {message}")
        if o.outputs:
            parts.append(f"-> {_shown(o.outputs[0])}")
    elif videos := [_shown(p) for p in o.outputs if p.suffix in (".mp4", ".png")]:
        parts.append("-> " + ", ".join(videos))
    if o.note:
        parts.append(f"({o.note})")
    return printable(" ".join(parts))


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """`text` with control characters shown as `?`: a scene's name or message must not drive the terminal."""
    return _CONTROL.sub("?", text)


def _shown(path: Path) -> str:
    """A path as short as is still clear: relative to the current folder when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _finish(summary: BatchSummary, title: str, as_json: bool, extra: dict[str, Any] | None = None) -> None:
    """Print the summary (a table, or JSON) and exit with the batch's status."""
    if as_json:
        click.echo(json.dumps({**summary.to_dict(), **(extra or {})}, indent=2))
    else:
        from rich.console import Console

        Console(highlight=False).print(summary_table(summary, title))
    if summary.interrupted:
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(EXIT_OK if summary.ok else EXIT_FAILED)


def summary_table(summary: BatchSummary, title: str) -> Table:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, title_justify="left", show_header=False, box=box.ROUNDED)
    table.add_column()
    table.add_column(justify="right")
    failed = str(summary.count("failed"))
    if summary.failed_by_phase:
        failed += " (" + ", ".join(f"{p} {n}" for p, n in sorted(summary.failed_by_phase.items())) + ")"
    rendered = str(summary.count("rendered"))
    if summary.images:  # still scenes: their last frame as a PNG
        rendered += f" ({summary.videos} MP4, {summary.images} PNG)"
    table.add_row("rendered", rendered)
    table.add_row("failed", Text(failed))
    table.add_row("timed out", str(summary.failed_by_phase.get("timeout", 0)))
    if summary.count("skipped"):
        table.add_row("skipped (unchanged)", str(summary.count("skipped")))
    if summary.interrupted:
        table.add_row("cancelled", str(summary.count("cancelled")))
    table.add_row("total time", f"{summary.seconds:.1f} s")
    table.add_row("scenes per minute", f"{summary.scenes_per_minute:.1f}")
    return table


# -- status, doctor, report ---------------------------------------------------------------


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="print the status as JSON")
@config_options
def status(as_json: bool, config: str | None, overrides: tuple[str, ...]) -> None:
    """Show the folders' counts, what the daemon is rendering, and the latest failures.

    \b
    The daemon's state comes from processing/.watcher.status.json, which it rewrites
    every few seconds. Exit status 0 whether or not a daemon is running.
    Example:
        watcher status --config /srv/watcher/config.yaml
    """
    from .report import folder_status

    settings = _settings(config, overrides)
    data = folder_status(settings)
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    if data["config"]:
        click.echo(f"{'config':<11} {data['config']}")
    for key, count in data["counts"].items():
        click.echo(f"{key:<11} {count:>4}  {data['folders'][key]}")
    d = data["daemon"]
    click.echo(f"{'daemon':<11} {_daemon_text(d)}")
    if d["state"] == "running":
        jobs = ", ".join(f"{j['name']} ({j['seconds']:.0f} s)" for j in d["running"]) or "nothing"
        click.echo(printable(f"{'rendering':<11} {jobs}"))
        click.echo(f"{'queued':<11} {d['queued']}")
    if data["recent_failures"]:
        click.echo("latest failures:")
    for f in data["recent_failures"]:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(f["time"]))
        where = f" at line {f['line']}" if f["line"] else ""
        click.echo(printable(f"  {when}  {Path(f['file']).name}  {f['phase']}: {f['type']}{where}: {f['message']}"))


def _daemon_text(d: dict[str, Any]) -> str:
    pid = d.get("pid")
    updated = d.get("updated")
    last = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(updated)) if updated else "never"
    if d["state"] == "running":
        return f"running, pid {pid}, up {_duration(d['uptime_seconds'] or 0)} (status {d['age_seconds']:.0f} s old)"
    if d["state"] == "stale":
        return f"not responding: pid {pid} is alive but its status was last written {last}"
    if d["state"] == "stopped":
        return f"stopped (pid {pid}, stopped cleanly at {last})"
    if d["state"] == "gone":
        return f"not running: pid {pid} ended without a clean stop (last status {last})"
    return "not running (no daemon has written a status on these folders)" + (
        f"; {d['error']}" if d.get("error") else ""
    )


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s"


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="print the checks as JSON")
@config_options
def doctor(as_json: bool, config: str | None, overrides: tuple[str, ...]) -> None:
    """Check this host: versions, LaTeX (by rendering a MathTex), folders, inotify, isolation.

    \b
    One line per check: OK, WARN or FAIL, and for the last two what to do about it.
    Exit status 1 if any check FAILs.
    Example:
        watcher doctor --config /srv/watcher/config.yaml
    """
    from .doctor import FAIL, WARN, run_checks

    settings = _settings(config, overrides)
    setup_logging(settings)
    checks = run_checks(settings)
    if as_json:
        click.echo(json.dumps([dataclasses.asdict(c) for c in checks], indent=2))
    else:
        colours = {FAIL: "red", WARN: "yellow"}
        for check in checks:
            click.echo(click.style(check.line(), fg=colours.get(check.level)))
    sys.exit(EXIT_FAILED if any(c.level == FAIL for c in checks) else EXIT_OK)


@cli.command()
@click.argument("folders", nargs=-1, type=click.Path(exists=True, file_okay=False))
@click.option(
    "--out",
    "-o",
    type=click.Path(dir_okay=False),
    help="the page to write (default: FOLDER/index.html for one folder, else ./report.html)",
)
@click.option("--json", "as_json", is_flag=True, help="print the counts as JSON")
@config_options
def report(
    folders: tuple[str, ...], out: str | None, as_json: bool, config: str | None, overrides: tuple[str, ...]
) -> None:
    """Write one static HTML page of the results in FOLDERS (default: done/ and failed/).

    \b
    A poster-frame thumbnail, duration, resolution and render time for every MP4 (click
    to play it in place), and every failure with its phase, message and the offending
    lines. Self-contained: no network; videos are linked relative to the page.
    Example:
        watcher report out/          # writes out/index.html
    """
    from .report import write_report

    settings = _settings(config, overrides)
    setup_logging(settings)
    dirs = [Path(f) for f in folders] or [p for p in (settings.folders.done, settings.folders.failed) if p.is_dir()]
    if not dirs:
        click.echo("watcher: no folders to report on (done/ and failed/ do not exist yet)", err=True)
        sys.exit(EXIT_USAGE)
    page = Path(out) if out else (dirs[0] / "index.html" if len(dirs) == 1 else Path("report.html"))
    summary = {**write_report(dirs, page).summary(), "page": str(page)}
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        click.echo(f"wrote {page}: {summary['videos']} videos, {summary['failures']} failures")


@cli.command()
@click.argument("record", type=click.Path(dir_okay=False))
@click.option("--verbose", "-v", is_flag=True, help="show the end of the render's output too")
@click.option("--json", "as_json", is_flag=True, help="print the record, normalised, as JSON")
def explain(record: str, verbose: bool, as_json: bool) -> None:
    """Show an error record (<name>.error.json) for a person: where, what, the offending lines, the fix.

    \b
    Exit status 2 when RECORD is not an error record (or cannot be read).
    Example:
        watcher explain failed/broken_line9.error.json
    """
    from rich.console import Console

    from .explain import explain as explained
    from .explain import load_record

    try:
        rec = load_record(Path(record))
    except WatcherError as e:
        click.echo(printable(f"watcher: {e}"), err=True)
        sys.exit(EXIT_USAGE)
    if as_json:
        click.echo(rec.to_json(), nl=False)
    else:
        Console(highlight=False).print(explained(rec, verbose=verbose), soft_wrap=True)


# -- service --------------------------------------------------------------------------


@cli.command()
@click.option(
    "--config",
    "-c",
    type=click.Path(dir_okay=False),
    default="config.yaml",
    show_default=True,
    help="the config file the service runs on",
)
@click.option("--user", "-u", default=None, help="the user the daemon runs as (default: you)")
@click.option("--install", is_flag=True, help="write /etc/systemd/system/watcher.service and reload systemd")
def service(config: str, user: str | None, install: bool) -> None:
    """Print (or install) a hardened systemd unit for the daemon on CONFIG.

    \b
    Example:
        watcher service --config /srv/watcher/config.yaml --user watcher --install
        systemctl enable --now watcher
    """
    settings = _settings(config, ())
    unit = service_unit(settings, Path(config).resolve(), user or getpass.getuser())
    if not install:
        click.echo(unit, nl=False)
        return
    target = Path("/etc/systemd/system/watcher.service")
    try:
        target.write_text(unit, encoding="utf-8")
    except OSError as e:
        click.echo(f"watcher: cannot write {target}: {e.strerror} (run as root)", err=True)
        sys.exit(EXIT_FAILED)
    click.echo(f"wrote {target}")
    if shutil.which("systemctl"):
        subprocess.run(["systemctl", "daemon-reload"], check=False)
        click.echo("now: systemctl enable --now watcher")


def service_unit(settings: Settings, config: Path, user: str) -> str:
    template = (Path(__file__).parent / "watcher.service").read_text(encoding="utf-8")
    f = settings.folders
    # cache/ beside work/: the Manim API snapshot (watcher.apisnapshot)
    folders = sorted({str(p) for p in (f.inbox, f.processing, f.done, f.failed, f.work, f.work.parent / "cache")})
    memory = max(1024, settings.render.memory_limit_mb) * settings.worker_count + 512
    return template.format(
        config=config,
        user=user,
        inbox=f.inbox,
        readme=Path(__file__).resolve().parent.parent / "README.md",
        workdir=config.parent,
        python=sys.executable,
        stop_timeout=int(settings.daemon.shutdown_grace + settings.render.grace + 30),
        rw_paths=" ".join(folders),
        memory_max=f"{memory}M",
        # Every render may hold sandbox.max_processes tasks; the daemon and its threads need some too.
        tasks_max=settings.worker_count * (settings.sandbox.max_processes + 10) + 64,
    )
