"""`<stem>.meta.json`, the sidecar beside every filed result: what its last render attempt was.

    key          sha256 of source bytes + effective render settings + Manim version
    ok           whether that attempt rendered (false: `<stem>.error.json` says why)
    videos       [{suffix, scene, width, height, duration, frames, fps, kind}]: the MP4s
                 (kind "video") and still scenes' PNGs (kind "image") in
                 place, `<stem><suffix>` (absent until a render succeeds)
    render_seconds, rendered_at, settings, versions: the render that made those MP4s

The pipeline writes it for every job (`watcher.pipeline.meta_document`); a re-render
reads it to skip what is current. A sidecar sits in a shared folder, so anyone who can
write there can write it: only well-formed fields are ever carried forward
(watcher/schemas/meta.schema.json).
"""

from __future__ import annotations

import json
import logging
import re
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

META_SCHEMA = 1
META_SUFFIX = ".meta.json"  # `<stem>.meta.json`
ERROR_SUFFIX = ".error.json"  # `<stem>.error.json`: why the last attempt failed

# A result to file: `<stem><suffix>`, from a file to move in or from bytes to write.
Item = tuple[str, Path | bytes]


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def previous_render(previous: dict[str, Any] | None) -> dict[str, Any]:
    """What a sidecar says of the render whose outputs are in place, checked field by field.

    The sidecar sits in a shared folder: anyone who can write there can write it, so only
    well-formed fields are carried into the new one (watcher/schemas/meta.schema.json).
    """
    if not previous:
        return {}
    kept: dict[str, Any] = {}
    if isinstance(at := previous.get("rendered_at"), str) and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", at):
        kept["rendered_at"] = at
    if _number(previous.get("render_seconds")) is not None:
        kept["render_seconds"] = previous["render_seconds"]
    for key in ("settings", "versions", "overridden"):
        if isinstance(value := previous.get(key), dict) and len(value) <= 32:
            kept[key] = {
                str(k)[:64]: v if isinstance(v, int | float | bool) else str(v)[:64]
                for k, v in value.items()
                if v is None or isinstance(v, str | int | float | bool)
            }
    if "versions" in kept:
        kept["versions"] = {k: str(v) for k, v in kept["versions"].items()}
    if "overridden" in kept:
        kept["overridden"] = {
            k: v for k, v in list(kept["overridden"].items())[:8] if isinstance(v, str | int | float) and v is not True
        }
    videos = [_video_entry(v) for v in sidecar_videos(previous)]
    if (good := [v for v in videos if v is not None]) or "videos" in previous:
        kept["videos"] = good
    return kept


def _video_entry(entry: dict[str, Any]) -> dict[str, Any] | None:
    """A sidecar's description of one output in place, or None when it is not one."""
    kind = entry.get("kind", "video")  # sidecars written before still scenes had no kind
    ints = {k: entry.get(k) for k in ("width", "height", "frames")}
    numbers = {k: entry.get(k) for k in ("duration", "fps")}
    if not (
        re.fullmatch(r"[^/]*\.(mp4|png)", entry["suffix"])
        and isinstance(entry.get("scene"), str)
        and entry["scene"]
        and kind in ("video", "image")
        and all(
            isinstance(v, int) and not isinstance(v, bool) and v >= (k == "frames" and 0 or 1) for k, v in ints.items()
        )
        and all(_number(v) is not None for v in numbers.values())
    ):
        return None
    return {"suffix": entry["suffix"], "scene": entry["scene"], **ints, **numbers, "kind": kind}


def _number(value: Any) -> float | None:
    """A finite number of at least 0, or None."""
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < float("inf"):
        return float(value)
    return None


def up_to_date(folder: Path, stem: str, meta: dict[str, Any] | None, key: str) -> bool:
    """True when the last attempt had this key and its files are still there."""
    if not meta or meta.get("key") != key:
        return False
    if not meta.get("ok"):
        return (folder / (stem + ERROR_SUFFIX)).is_file()
    suffixes = [v["suffix"] for v in sidecar_videos(meta)]
    return bool(suffixes) and all((folder / (stem + s)).is_file() for s in suffixes)


def has_video(folder: Path, stem: str, meta: dict[str, Any] | None) -> bool:
    """Whether an MP4 (or a still's PNG) of this source is in place (the sidecar names them; the daemon
    files `<stem>.mp4` or `<stem>.png`)."""
    suffixes = {".mp4", ".png", *(v["suffix"] for v in sidecar_videos(meta))}
    return any((folder / (stem + s)).is_file() for s in suffixes)


def sidecar_videos(meta: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The well-formed `videos` entries of a sidecar (it sits in a shared folder: trust nothing)."""
    videos = (meta or {}).get("videos")
    return [
        v
        for v in (videos if isinstance(videos, list) else [])
        if isinstance(v, dict) and isinstance(v.get("suffix"), str) and "/" not in v["suffix"]
    ]


def read_meta(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        log.warning("%s: unreadable, ignored: %s", path, e)
        return None
    return data if isinstance(data, dict) else None
