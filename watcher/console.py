"""What the commands show people: job lines (with a progress bar on a terminal) while a
batch runs, its summary table, and the daemon's status.

Scene file names and messages are the scene author's text: `printable` keeps them from
driving the terminal, and rich gets them as Text, never as markup. rich loads only when
something is shown with it, so that a command like `watcher validate` starts fast.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from rich.progress import Progress
    from rich.table import Table

    from .batch import BatchSummary, JobOutcome

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


def print_summary(summary: BatchSummary, title: str) -> None:
    """The batch's summary table, on stdout."""
    from rich.console import Console

    Console(highlight=False).print(summary_table(summary, title))


def summary_table(summary: BatchSummary, title: str) -> Table:
    """A batch's counts, failures by phase, time and rate."""
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


def status_lines(data: dict[str, Any]) -> Iterator[str]:
    """`watcher status` for people, from `folderstatus.folder_status`: the folders, the daemon, the latest failures."""
    if data["config"]:
        yield f"{'config':<11} {data['config']}"
    for key, count in data["counts"].items():
        yield f"{key:<11} {count:>4}  {data['folders'][key]}"
    d = data["daemon"]
    yield f"{'daemon':<11} {_daemon_text(d)}"
    if d["state"] == "running":
        jobs = ", ".join(f"{j['name']} ({j['seconds']:.0f} s)" for j in d["running"]) or "nothing"
        yield printable(f"{'rendering':<11} {jobs}")
        yield f"{'queued':<11} {d['queued']}"
    if data["recent_failures"]:
        yield "latest failures:"
    for f in data["recent_failures"]:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(f["time"]))
        where = f" at line {f['line']}" if f["line"] else ""
        yield printable(f"  {when}  {Path(f['file']).name}  {f['phase']}: {f['type']}{where}: {f['message']}")


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
