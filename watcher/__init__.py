"""watcher: turns Manim scene files into verified MP4s, safely and without losing anything."""

from .api import execute_animation_code
from .config import Settings, load_config
from .errors import (
    ConfigError,
    ErrorRecord,
    InvalidScene,
    RenderError,
    RenderTimeout,
    WatcherError,
)
from .job import RenderResult
from .pipeline import render_job
from .validate import check_scene, validate_scene_code
from .verify import verify_mp4
from .version import __version__

__all__ = [
    "__version__",
    "ConfigError",
    "ErrorRecord",
    "InvalidScene",
    "RenderError",
    "RenderTimeout",
    "Settings",
    "WatcherError",
    "check_scene",
    "execute_animation_code",
    "load_config",
    "render_job",
    "verify_mp4",
    "RenderResult",
    "validate_scene_code",
]
