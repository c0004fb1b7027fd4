"""What every `watcher` command shares: the exit statuses, --config and --set, and loading
the config they name (a bad one is a usage error: one clear line, exit 2).

Apart from `watcher.cli` so that the commands defined elsewhere (`watcher.batchcli`)
can use them without importing the command group.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from .config import Settings, load_config
from .errors import WatcherError

# Exit statuses.
EXIT_OK = 0  # everything rendered / valid / the daemon stopped cleanly
EXIT_FAILED = 1  # some scene failed, or the daemon could not start on these folders
EXIT_USAGE = 2  # bad command line or config (click uses 2 for usage errors too)
EXIT_INTERRUPTED = 130  # a batch stopped by Ctrl-C or SIGTERM (128 + SIGINT, as shells report it)

CONFIG_HELP = "config file (default: ./config.yaml; built-in defaults if it does not exist)"
SET_HELP = "override a config key, e.g. --set render.timeout=30 (repeatable)"


def config_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--config and --set, which every command that reads the config takes."""
    f = click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=SET_HELP)(f)
    return click.option("--config", "-c", type=click.Path(dir_okay=False), help=CONFIG_HELP)(f)


def load_settings(config: str | None, overrides: tuple[str, ...]) -> Settings:
    """Load the config or exit 2 with one clear line."""
    path = config
    if path is None and Path("config.yaml").exists():
        path = "config.yaml"
    try:
        settings = load_config(path, list(overrides))
    except WatcherError as e:
        click.echo(f"watcher: config error: {e}", err=True)
        sys.exit(EXIT_USAGE)
    if settings.executor == "celery" and not _installed("celery"):
        click.echo(
            "watcher: config error: executor: celery needs the celery extra: pip install 'watcher[celery]'", err=True
        )
        sys.exit(EXIT_USAGE)
    return settings


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # ValueError: blocked in sys.modules
        return False
