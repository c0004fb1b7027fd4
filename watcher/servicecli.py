"""Operations commands: `watcher service` (systemd units) and `watcher worker` (a Celery worker)."""

from __future__ import annotations

import getpass
import shutil
import subprocess
import sys
from pathlib import Path

import click

from .celeryconf import hard_limit
from .clibase import EXIT_FAILED, config_options, load_settings
from .config import Settings
from .errors import WatcherError
from .logs import setup_logging


@click.command()
@click.option(
    "--config",
    "-c",
    type=click.Path(dir_okay=False),
    default="config.yaml",
    show_default=True,
    help="the config file the service runs on",
)
@click.option("--user", "-u", default=None, help="the user the service runs as (default: you)")
@click.option("--worker", "for_worker", is_flag=True, help="a unit for `watcher worker` (watcher-worker.service)")
@click.option("--install", is_flag=True, help="write the unit into /etc/systemd/system and reload systemd")
def service(config: str, user: str | None, for_worker: bool, install: bool) -> None:
    """Print (or install) a hardened systemd unit for the daemon, or a Celery worker, on CONFIG.

    \b
    Example:
        watcher service --config /srv/watcher/config.yaml --user watcher --install
        systemctl enable --now watcher
        watcher service --worker --config /srv/watcher/config.yaml --install
        systemctl enable --now watcher-worker
    """
    settings = load_settings(config, ())
    name = "watcher-worker" if for_worker else "watcher"
    unit = service_unit(settings, Path(config).resolve(), user or getpass.getuser(), worker=for_worker)
    if not install:
        click.echo(unit, nl=False)
        return
    target = Path(f"/etc/systemd/system/{name}.service")
    try:
        target.write_text(unit, encoding="utf-8")
    except OSError as e:
        click.echo(f"watcher: cannot write {target}: {e.strerror} (run as root)", err=True)
        sys.exit(EXIT_FAILED)
    click.echo(f"wrote {target}")
    if shutil.which("systemctl"):
        subprocess.run(["systemctl", "daemon-reload"], check=False)
        click.echo(f"now: systemctl enable --now {name}")


def service_unit(settings: Settings, config: Path, user: str, worker: bool = False) -> str:
    template = (Path(__file__).parent / ("watcher-worker.service" if worker else "watcher.service")).read_text(
        encoding="utf-8"
    )
    f = settings.folders
    paths = {f.work, f.cache_dir}
    if not worker:
        paths |= {f.inbox, f.processing, f.done, f.failed}
    if settings.executor == "celery" or worker:
        paths.add(settings.celery.shared_folder)
    processes = settings.celery.concurrency or settings.worker_count if worker else settings.worker_count
    memory = max(1024, settings.render.memory_limit_mb) * processes + 512
    return template.format(
        config=config,
        user=user,
        inbox=f.inbox,
        readme=Path(__file__).resolve().parent.parent / "README.md",
        workdir=config.parent,
        python=sys.executable,
        stop_timeout=int(
            hard_limit(settings) + 30 if worker else settings.daemon.shutdown_grace + settings.render.grace + 30
        ),
        rw_paths=" ".join(sorted(str(p) for p in paths)),
        # Renders get no network either way (their own namespace); a Celery front must reach its broker.
        network="PrivateNetwork=no" if settings.executor == "celery" else "PrivateNetwork=yes",
        memory_max=f"{memory}M",
        # Every render may hold sandbox.max_processes tasks; the daemon and its threads need some too.
        tasks_max=processes * (settings.sandbox.max_processes + 10) + 64,
    )


@click.command()
@config_options
@click.option(
    "--concurrency",
    "-n",
    type=click.IntRange(min=1),
    default=None,
    help="worker processes (default: celery.concurrency, or one per CPU)",
)
@click.option("--loglevel", "-l", default=None, help="Celery's log level (default: logging.level)")
def worker(config: str | None, overrides: tuple[str, ...], concurrency: int | None, loglevel: str | None) -> None:
    """Run a Celery worker: render the tasks of the queue in celery.queue, on this machine.

    \b
    Each process keeps Manim imported and runs every task exactly as local mode does
    (checks, sandbox, limits, verification) under THIS config's limits: a task that asks
    for more is refused. Outputs go to celery.shared_folder (or back inline).
    SIGTERM finishes the running tasks, then stops (drain); SIGQUIT or a second Ctrl-C stops
    at once (those tasks run again on another worker).
    Example:
        WATCHER_BROKER_URL=redis://:secret@queue-host:6379/0 watcher worker -c config.yaml -n 4
    """
    settings = load_settings(config, overrides)
    setup_logging(settings)
    try:
        from .celeryworker import run_worker
    except ImportError as e:
        click.echo(f"watcher: the worker needs the celery extra (pip install 'watcher[celery]'): {e}", err=True)
        sys.exit(EXIT_FAILED)
    count = concurrency or settings.celery.concurrency or settings.worker_count
    try:
        code = run_worker(settings, count, loglevel or settings.logging.level)
    except WatcherError as e:
        click.echo(f"watcher: {e}", err=True)
        sys.exit(EXIT_FAILED)
    sys.exit(code)
