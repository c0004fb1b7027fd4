"""The `watcher` command line. The only place that configures logging and exits."""

from __future__ import annotations

import getpass
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import click

from . import __version__
from .config import Settings, load_config
from .errors import WatcherError
from .validate import check_scene

# Exit statuses.
EXIT_OK = 0  # everything rendered / valid / the daemon stopped cleanly
EXIT_FAILED = 1  # some scene failed, or the daemon could not start on these folders
EXIT_USAGE = 2  # bad command line or config (click uses 2 for usage errors too)

CONFIG_HELP = "config file (default: ./config.yaml; built-in defaults if it does not exist)"
SET_HELP = "override a config key, e.g. --set render.timeout=30 (repeatable)"


def main() -> None:
    cli(prog_name="watcher")


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="watcher")
def cli() -> None:
    """Turn Manim scene files into verified MP4s, safely and without losing anything.

    \b
    Start the daemon on the folders of ./config.yaml:
        watcher run
    Render some files once:
        watcher render examples/ --out out/
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
    """Text for people and journald (priority prefixes under systemd), or JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    if settings.logging.format == "json":
        handler.setFormatter(_JsonFormatter())
    elif os.environ.get("JOURNAL_STREAM"):
        handler.setFormatter(_JournalFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", "%Y-%m-%d %H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("watcher").setLevel(settings.logging.level)


class _JournalFormatter(logging.Formatter):
    # sd-daemon(3) priority prefixes: journald stores the level, so no timestamp is needed.
    PRIORITY = {"DEBUG": 7, "INFO": 6, "WARNING": 4, "ERROR": 3, "CRITICAL": 2}

    def format(self, record: logging.LogRecord) -> str:
        return f"<{self.PRIORITY.get(record.levelname, 6)}>{super().format(record)}"


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {
            "time": round(record.created, 3),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data)


# -- run ------------------------------------------------------------------------------


@cli.command()
@click.option("--config", "-c", type=click.Path(dir_okay=False), help=CONFIG_HELP)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
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
@click.option("--config", "-c", type=click.Path(dir_okay=False), help=CONFIG_HELP)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
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


# -- render ---------------------------------------------------------------------------


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option(
    "--out",
    "-o",
    "out_dir",
    type=click.Path(file_okay=False),
    default="out",
    show_default=True,
    help="folder for <name>.mp4 and <name>.error.json",
)
@click.option("--workers", "-w", type=click.IntRange(min=1), help="renders at once (default: workers.count)")
@click.option("--quality", "-q", help="low_quality, medium_quality, high_quality, ... or l/m/h/p/k")
@click.option("--timeout", type=click.FloatRange(min=0.1), help="seconds per scene (default: render.timeout)")
@click.option("--config", "-c", type=click.Path(dir_okay=False), help=CONFIG_HELP)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
@click.option("--json", "as_json", is_flag=True, help="print a machine-readable summary")
def render(
    paths: tuple[str, ...],
    out_dir: str,
    workers: int | None,
    quality: str | None,
    timeout: float | None,
    config: str | None,
    overrides: tuple[str, ...],
    as_json: bool,
) -> None:
    """Render scene files (or folders of them) once; sources stay where they are.

    \b
    Each scene renders with the same isolation and limits as the daemon. Exit status:
    0 all rendered, 1 some failed, 2 usage or config error.
    Example:
        watcher render examples/ --out out/ --quality m
    """
    from .render import render_job

    extra = list(overrides)
    if quality:
        extra.append(f"render.quality={quality}")
    if timeout:
        extra.append(f"render.timeout={timeout}")
    settings = _settings(config, tuple(extra))
    setup_logging(settings)
    files = _scene_files(paths)
    if not files:
        click.echo("watcher: no .py files found", err=True)
        sys.exit(EXIT_USAGE)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    def one(path: Path) -> dict[str, Any]:
        with render_job(path.read_bytes(), path.name, settings) as result:
            entry: dict[str, Any] = {"file": str(path), "ok": result.ok, "seconds": round(result.duration, 2)}
            if result.ok:
                entry["videos"] = []
                for video in result.videos:
                    target = out / video.name
                    shutil.move(video, target)
                    entry["videos"].append(str(target))
            else:
                assert result.record is not None
                target = out / f"{path.stem}.error.json"
                target.write_text(result.record.to_json(), encoding="utf-8")
                entry.update(phase=result.record.phase, error=result.record.summary(), record=str(target))
        if not as_json:
            status = "ok    " if result.ok else "FAILED"
            detail = ", ".join(entry.get("videos", [])) or entry.get("error", "")
            click.echo(f"{status} {entry['seconds']:6.2f}s  {path}  {detail}")
        return entry

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=workers or settings.worker_count) as pool:
        entries = list(pool.map(one, files))
    elapsed = time.monotonic() - started
    failed = [e for e in entries if not e["ok"]]
    summary = {
        "rendered": len(entries) - len(failed),
        "failed": len(failed),
        "seconds": round(elapsed, 2),
        "scenes_per_minute": round(60 * len(entries) / elapsed, 1),
        "jobs": entries,
    }
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        click.echo(
            f"{summary['rendered']} rendered, {summary['failed']} failed in {elapsed:.1f} s "
            f"({summary['scenes_per_minute']} scenes/min)"
        )
    sys.exit(EXIT_FAILED if failed else EXIT_OK)


def _scene_files(paths: tuple[str, ...]) -> list[Path]:
    files: list[Path] = []
    for p in map(Path, paths):
        files.extend(sorted(p.glob("*.py")) if p.is_dir() else [p])
    return files


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
    folders = sorted({str(p) for p in (f.inbox, f.processing, f.done, f.failed, f.work)})
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
    )
