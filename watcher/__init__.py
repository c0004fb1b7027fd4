"""watcher: turns Manim scene files into verified MP4s, safely and without losing anything."""

__version__ = "0.1.0"

from .config import Settings, load_config  # noqa: E402
from .errors import (  # noqa: E402
    ConfigError,
    ErrorRecord,
    InvalidScene,
    RenderError,
    RenderTimeout,
    WatcherError,
)
from .render import RenderResult, execute_animation_code, render_job, verify_mp4  # noqa: E402
from .validate import check_scene, validate_scene_code  # noqa: E402

__all__ = [
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
