"""Verification, on the receiving side: an output is published only once it decodes.

An MP4 must open with PyAV and have a video stream, a decodable frame and a positive
duration; the PNG of a still scene must decode with Pillow at the configured size. The
files checked are the copies that will be published, out of any job's reach.
"""

from __future__ import annotations

from pathlib import Path

from .config import RESOLUTIONS, Settings
from .job import RenderResult, VideoInfo


def verify_result(result: RenderResult, settings: Settings) -> str | None:
    """Verify each output of `result`, filling `result.info`; returns why they are not acceptable.

    A failed result keeps only the outputs that verify (those go beside its error record);
    for a successful one, any output that does not verify is the problem returned.
    """
    size = RESOLUTIONS[settings.render.quality]
    kept: list[tuple[Path, str, VideoInfo]] = []
    for i, (video, suffix) in enumerate(zip(result.videos, result.suffixes, strict=True)):
        try:
            info = verify_mp4(video) if video.suffix == ".mp4" else verify_png(video, size)
        except ValueError as e:
            if not result.ok:
                continue
            return f"{result.scenes[i]}: {e}"  # a successful result has one output per scene
        kept.append((video, suffix, info))
    result.videos = [v for v, _, _ in kept]
    result.suffixes = [s for _, s, _ in kept]
    result.info = [i for _, _, i in kept]
    return None


def verify_png(path: Path, size: tuple[int, int]) -> VideoInfo:
    """Open `path` with Pillow and decode it; it must be a PNG of `size` (width, height).

    Raises:
        ValueError: saying what is wrong with the file.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            if image.format != "PNG":
                raise ValueError(f"not a PNG image but {image.format}")
            image.load()
            width, height = image.size
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as e:
        raise ValueError(f"not a valid PNG: {e}") from None
    if (width, height) != size:
        raise ValueError(f"the image is {width}x{height}, not the configured {size[0]}x{size[1]}")
    return VideoInfo(width, height, 0.0, 1, 0.0, kind="image")


def verify_mp4(path: Path) -> VideoInfo:
    """Open `path` with PyAV; require a video stream, one decodable frame and a positive duration.

    Raises:
        ValueError: saying what is wrong with the file.
    """
    import av

    if not path.is_file():
        raise ValueError("no video file was written")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ValueError("the file has no video stream")
            stream = container.streams.video[0]
            first = next(container.decode(stream), None)
            if first is None:
                raise ValueError("the video has no frames")
            duration = 0.0
            if container.duration:
                duration = container.duration / av.time_base
            elif stream.duration and stream.time_base:
                duration = float(stream.duration * stream.time_base)
            if duration <= 0:
                raise ValueError("the video has no duration")
            fps = float(stream.average_rate or 0)
            return VideoInfo(first.width, first.height, round(duration, 3), stream.frames, fps)
    except av.FFmpegError as e:
        raise ValueError(f"not a valid MP4: {e}") from None
