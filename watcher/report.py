"""`write_report`: one static HTML page of the results in some folders, thumbnails and failures.

Everything read from scene files, error records and sidecars is untrusted: a scene's
file name, its class names and its error messages are the scene author's text. The page
escapes all of it, embeds thumbnails as data: URIs, loads nothing from the network (its
Content-Security-Policy forbids it), and runs only its own script (a per-page nonce).
Whoever can write into a folder can also put links and huge files there: symbolic links
are never followed, a record is read only up to MAX_RECORD_BYTES (`watcher.records`), and
a failure card shows at most a few KB of each field.
"""

from __future__ import annotations

import base64
import contextlib
import html
import io
import logging
import os
import re
import secrets
import stat
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import CAPS, cap_text
from .records import MAX_RECORD_BYTES as MAX_RECORD_BYTES  # tests/test_explain.py imports it from here
from .records import number, read_record, shown_fields
from .sidecar import ERROR_SUFFIX, META_SUFFIX, sidecar_videos
from .verify import verify_mp4

log = logging.getLogger(__name__)

THUMB_WIDTH = 320


@dataclass
class Video:
    path: Path
    width: int = 0
    height: int = 0
    duration: float = 0.0
    fps: float = 0.0
    thumb: str | None = None  # a data: URI
    scene: str | None = None
    render_seconds: float | None = None
    problem: str | None = None  # why it cannot be shown
    kind: str = "video"  # or "image": the PNG of a still scene, its own thumbnail


@dataclass
class Failure:
    path: Path
    record: dict[str, Any]
    kept_video: bool = False  # an earlier MP4 of this source is still beside it


@dataclass
class Report:
    videos: list[Video] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        phases: dict[str, int] = {}
        for f in self.failures:
            phase = str(f.record.get("phase", "?"))
            phases[phase] = phases.get(phase, 0) + 1
        return {
            "videos": len(self.videos),
            "unreadable_videos": sum(v.problem is not None for v in self.videos),
            "failures": len(self.failures),
            "failures_by_phase": phases,
            "video_seconds": round(sum(v.duration for v in self.videos), 1),
        }


def collect(folders: list[Path]) -> Report:
    """Every MP4 and still-scene PNG (with its thumbnail) and every error record in `folders` (not recursive).

    Only regular files count: a symbolic link (to /etc/shadow, or to a video elsewhere) is
    neither read nor linked.
    """
    report = Report()
    for folder in folders:
        names = _regular_files(folder)
        meta = _video_meta(folder, names)
        for name in names:
            path = folder / name
            if name.endswith((".mp4", ".png")):
                report.videos.append(_video(path, meta.get(name)))
            elif name.endswith(ERROR_SUFFIX):
                stem = name[: -len(ERROR_SUFFIX)]
                kept = any(stem + own in names for own in (".mp4", ".png")) or any(
                    s == stem and n in names for n, (s, _, _) in meta.items()
                )
                report.failures.append(Failure(path, shown_fields(read_record(path)), kept))
    return report


def _regular_files(folder: Path) -> list[str]:
    """The names of the regular files in `folder` that are not hidden, sorted; never through a link."""
    names = []
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        for entry in os.scandir(folder):
            if entry.name.startswith("."):
                continue
            if entry.is_file(follow_symlinks=False):
                names.append(entry.name)
            elif entry.is_symlink():
                log.info("%s: a symbolic link, not followed", entry.path)
    return sorted(names)


def write_report(folders: list[Path], out: Path, *, title: str = "watcher report") -> Report:
    """Write the page for `folders` to `out` (atomically); videos are linked relative to it."""
    report = collect(folders)
    page = render_html(report, out.parent, title=title, sources=folders)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{secrets.token_hex(4)}")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, out)
    return report


def poster_frame(path: Path, width: int = THUMB_WIDTH) -> bytes:
    """A JPEG of the frame in the middle of the video (the first is often still empty).

    Raises:
        ValueError: the video has no decodable frame.
    """
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        middle = (container.duration or 0) / av.time_base / 2
        if middle > 0:
            container.seek(int(middle * av.time_base))  # to the keyframe before the middle
        frame = None
        for frame in container.decode(stream):
            if frame.time is None or frame.time >= middle:
                break
        if frame is None:
            raise ValueError("no decodable frame")
        image = frame.to_image()
    image.thumbnail((width, width * 4))
    buf = io.BytesIO()
    image.convert("RGB").save(buf, "JPEG", quality=80)
    return buf.getvalue()


def _video(path: Path, meta: tuple[str, dict[str, Any], dict[str, Any]] | None) -> Video:
    video = Video(path, kind="image" if path.suffix == ".png" else "video")
    try:
        with _opened(path) as opened:
            if video.kind == "image":
                video.width, video.height, thumb = _still(opened)
            else:
                info = verify_mp4(opened)
                video.width, video.height, video.duration, video.fps = info.width, info.height, info.duration, info.fps
                thumb = poster_frame(opened)
            video.thumb = "data:image/jpeg;base64," + base64.b64encode(thumb).decode("ascii")
    except Exception as e:  # a broken MP4 (PyAV raises many types) is shown as such, never fatal
        problem = re.sub(r"/proc/self/fd/\d+", path.name, str(e))  # PyAV names the path it opened
        log.warning("%s: no thumbnail: %s", path, problem)
        video.problem = cap_text(problem, CAPS.hint) or type(e).__name__
    if meta is not None:
        _, sidecar, entry = meta
        video.scene = cap_text(str(entry.get("scene")), CAPS.name) if entry.get("scene") else None
        video.render_seconds = number(sidecar.get("render_seconds"))
    return video


def _still(path: Path, width: int = 320) -> tuple[int, int, bytes]:
    """A still scene's PNG: its size and a JPEG thumbnail of it (the image is its own preview)."""
    from PIL import Image

    with Image.open(path) as image:
        if image.format != "PNG":
            raise ValueError(f"not a PNG image but {image.format}")
        size = image.size
        image.thumbnail((width, width * 4))
        buf = io.BytesIO()
        image.convert("RGB").save(buf, "JPEG", quality=80)
    return size[0], size[1], buf.getvalue()


@contextlib.contextmanager
def _opened(path: Path) -> Iterator[Path]:
    """`path` opened without following a link, as a /proc/self/fd path for PyAV.

    PyAV opens by name; the fd path names the file already opened, so a link swapped in
    after the folder was listed is not followed either.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError("not a regular file")
        yield Path(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)


def _video_meta(folder: Path, names: list[str]) -> dict[str, tuple[str, dict[str, Any], dict[str, Any]]]:
    """MP4 name -> (its source's stem, its batch sidecar, its entry there), for each MP4 a sidecar describes."""
    found: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {}
    for name in names:
        if not name.endswith(META_SUFFIX):
            continue
        data = read_record(folder / name)
        stem = name[: -len(META_SUFFIX)]
        for entry in sidecar_videos(data):
            found[stem + entry["suffix"]] = (stem, data, entry)
    return found


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _href(path: Path, base: Path) -> str:
    # Percent-encoded relative path: no scheme can sneak in (":" is encoded), and it keeps
    # working when the page and the folders are copied together.
    return _e(urllib.parse.quote(os.path.relpath(path, base)))


def render_html(report: Report, base: Path, *, title: str, sources: list[Path]) -> str:
    """The page as a string; `base` is the folder the page will be in."""
    nonce = secrets.token_urlsafe(16)
    s = report.summary()
    phases = ", ".join(f"{_e(p)} {n}" for p, n in sorted(s["failures_by_phase"].items()))
    counts = [
        f"<li><b>{s['videos']}</b> videos</li>",
        f"<li><b>{s['video_seconds']:g}</b> s of video</li>",
        f"<li class='{'bad' if s['failures'] else ''}'><b>{s['failures']}</b> failed"
        + (f" <small>({phases})</small>" if phases else "")
        + "</li>",
    ]
    if s["unreadable_videos"]:
        counts.append(f"<li class='bad'><b>{s['unreadable_videos']}</b> unreadable videos</li>")
    folders = ", ".join(f"<code>{_e(p)}</code>" for p in sources)
    videos = "\n".join(_video_card(v, base) for v in report.videos) or "<p class='none'>No videos.</p>"
    failures = "\n".join(_failure_card(f) for f in report.failures) or "<p class='none'>No failures.</p>"
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; media-src 'self' file:; \
style-src 'nonce-{nonce}'; script-src 'nonce-{nonce}'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title>
<style nonce="{nonce}">{_CSS}</style>
</head>
<body>
<header>
<h1>{_e(title)}</h1>
<ul class="counts">{"".join(counts)}</ul>
<p class="from">{folders} &middot; generated {_e(time.strftime("%Y-%m-%d %H:%M:%S %Z"))}</p>
</header>
<main>
<h2>Videos</h2>
<div class="grid">
{videos}
</div>
<h2>Failures</h2>
{failures}
</main>
<script nonce="{nonce}">{_SCRIPT}</script>
</body>
</html>
"""


def _video_card(v: Video, base: Path) -> str:
    facts = []
    if v.problem is None and v.kind == "image":
        facts += ["still image", f"{v.width}&times;{v.height}"]
    elif v.problem is None:
        facts += [f"{v.duration:.1f} s", f"{v.width}&times;{v.height}", f"{v.fps:g} fps"]
    if v.render_seconds is not None:
        facts.append(f"rendered in {v.render_seconds:.1f} s")
    scene = f"<p class='scene'>{_e(v.scene)}</p>" if v.scene else ""
    if v.thumb is None:
        picture = f"<a class='play broken' href='{_href(v.path, base)}'>{_e(v.problem or 'no preview')}</a>"
    elif v.kind == "image":  # a link to the PNG itself: nothing to play
        picture = (
            f"<a class='still' href='{_href(v.path, base)}' title='open the image'>"
            f"<img class='thumb' src='{_e(v.thumb)}' alt='{_e(v.path.name)}'></a>"
        )
    else:
        picture = (
            f"<a class='play' href='{_href(v.path, base)}' title='play'>"
            f"<img class='thumb' src='{_e(v.thumb)}' alt='{_e(v.path.name)}'></a>"
        )
    return (
        f"<article class='video'>{picture}<h3>{_e(v.path.name)}</h3>{scene}"
        f"<p class='facts'>{' &middot; '.join(facts)}</p></article>"
    )


def _failure_card(f: Failure) -> str:
    r = f.record
    where = f" line {_e(r['line'])}" if isinstance(r.get("line"), int) else ""
    parts = [
        f"<article class='failure'><h3>{_e(f.path.name)} <span class='phase'>{_e(r.get('phase', '?'))}</span></h3>",
        f"<p class='message'><b>{_e(r.get('type', '?'))}</b>{where}: {_e(r.get('message', ''))}</p>",
    ]
    if r.get("excerpt"):
        parts.append(f"<pre class='excerpt'>{_e(r['excerpt'])}</pre>")
    if r.get("hint"):
        parts.append(f"<p class='hint'>{_e(r['hint'])}</p>")
    if f.kept_video:
        parts.append("<p class='kept'>An earlier video of this scene is kept beside this record.</p>")
    if r.get("stderr_tail"):
        parts.append(f"<details><summary>render output</summary><pre>{_e(r['stderr_tail'])}</pre></details>")
    parts.append("</article>")
    return "".join(parts)


_CSS = """
body { font: 15px/1.4 system-ui, sans-serif; margin: 0; color: #222; background: #f4f4f6; }
header { background: #1d2330; color: #eee; padding: 16px 24px; }
h1 { margin: 0 0 8px; font-size: 22px; }
.counts { list-style: none; display: flex; gap: 24px; margin: 0; padding: 0; }
.counts b { font-size: 22px; } .counts .bad b { color: #ff8a80; }
.from { color: #aab; margin: 8px 0 0; font-size: 13px; word-break: break-all; }
main { padding: 8px 24px 32px; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(340px, 1fr)); gap: 16px; }
.video, .failure { background: #fff; border-radius: 8px; padding: 10px; box-shadow: 0 1px 3px #0002; }
.video h3, .failure h3 { font-size: 15px; margin: 8px 0 2px; word-break: break-all; }
.play, .still { display: block; background: #000; border-radius: 4px; line-height: 0; }
.play img, .still img, .video video { width: 100%; height: auto; border-radius: 4px; }
.play.broken { color: #fbb; padding: 40px 8px; line-height: 1.4; text-align: center; }
.facts, .scene { margin: 2px 0; color: #555; font-size: 13px; }
.failure { margin-bottom: 12px; border-left: 4px solid #d33; }
.phase { background: #d33; color: #fff; border-radius: 4px; padding: 1px 6px; font-size: 12px; }
.message { margin: 6px 0; word-break: break-word; }
pre { background: #f6f6f8; padding: 8px; overflow-x: auto; font-size: 13px; }
.hint, .kept { color: #555; font-style: italic; margin: 4px 0; }
.none { color: #777; }
"""

# Click a thumbnail to play the video in its place. After load, mark thumbnails that did
# not decode and record their natural widths on <body> (`data-thumbs`) for checks.
_SCRIPT = """
document.querySelectorAll("a.play:not(.broken)").forEach(function (a) {
  a.addEventListener("click", function (event) {
    event.preventDefault();
    var video = document.createElement("video");
    video.controls = true;
    video.autoplay = true;
    video.poster = a.querySelector("img").src;
    video.src = a.getAttribute("href");
    a.replaceWith(video);
  });
});
window.addEventListener("load", function () {
  var widths = [];
  document.querySelectorAll("img.thumb").forEach(function (img) {
    widths.push(img.naturalWidth);
    if (!img.naturalWidth) { img.closest("a").classList.add("broken"); }
  });
  document.body.dataset.thumbs = widths.join(" ");
});
"""
