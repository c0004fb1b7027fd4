"""The `watcher` command line: the command group, its entry point `main`, and every command
but the batch ones (`render` and `rerender`: `watcher.batchcli`).

The command line (this module, `batchcli`, `clibase`) is the only place that configures
logging (`watcher.logs`) and exits; what it shows people is built in `watcher.console`.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import click

from . import __version__
from .batchcli import render, rerender
from .clibase import EXIT_FAILED, EXIT_OK, EXIT_USAGE, config_options, load_settings
from .clibase import EXIT_INTERRUPTED as EXIT_INTERRUPTED  # the exit statuses are imported from here too
from .console import printable, status_lines
from .errors import WatcherError
from .logs import setup_logging
from .servicecli import service, worker
from .validate import check_scene


def main() -> None:
    cli(prog_name="watcher")


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


cli.add_command(render)  # the batch commands, defined in watcher.batchcli
cli.add_command(rerender)
cli.add_command(service)  # operations: watcher.servicecli
cli.add_command(worker)


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

    settings = load_settings(config, overrides)
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
    settings = load_settings(config, overrides)
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
    from .folderstatus import folder_status

    settings = load_settings(config, overrides)
    data = folder_status(settings)
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    for line in status_lines(data):
        click.echo(line)


@cli.command()
@click.argument("action", type=click.Choice(["stats", "clear"]), default="stats")
@click.option("--json", "as_json", is_flag=True, help="print the numbers as JSON")
@config_options
def cache(action: str, as_json: bool, config: str | None, overrides: tuple[str, ...]) -> None:
    """Show the shared LaTeX cache (entries, size, limit), or clear it.

    \b
    Every job's TeX strings are typeset once by watcher and kept in folders.cache
    (default: `cache` beside folders.work), shared by the daemon and the CLI.
    Clearing it is always safe: entries are typeset again when asked for.
    Example:
        watcher cache stats --config /srv/watcher/config.yaml
    """
    from .texcache import TexCache
    from .texformat import Formats

    settings = load_settings(config, overrides)
    store = TexCache(settings.folders.cache_dir, settings.cache.max_mb)
    formats = Formats(settings.folders.cache_dir / "fmt", store.max_bytes // 2)  # precompiled preambles
    if action == "clear":
        data = {"folder": str(store.folder), "removed": store.clear(), "formats_removed": formats.clear()}
    else:
        entries, dumps = store.entries(), formats.entries()
        data = {
            "folder": str(store.folder),
            "entries": len(entries),
            "megabytes": round(sum(size for _, size, _ in entries) / 2**20, 2),
            "max_mb": settings.cache.max_mb,
            "formats": len(dumps),
            "formats_mb": round(sum(size for _, size, _ in dumps) / 2**20, 2),
        }
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        click.echo(", ".join(f"{key}: {value}" for key, value in data.items()))


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

    settings = load_settings(config, overrides)
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

    settings = load_settings(config, overrides)
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
