"""The HTML report: built from real results and hostile records, then loaded in headless Chromium."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from watcher.batch import run_batch
from watcher.config import load_config
from watcher.errors import CAPS
from watcher.folderstatus import recent_failures
from watcher.records import TAIL_CHARS, read_record
from watcher.report import collect, poster_frame, write_report

from .daemon_helpers import scene

# Scene authors control file names, class names and error messages: all of it must stay text.
HOSTILE = "<img src=x onerror=\"document.body.dataset.pwned='name'\">"
HOSTILE_MESSAGE = "</pre><script>document.body.dataset.pwned = 'message'</script><b>bold?</b>"

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


# Runs while the page is parsed, after the page's own script: a <video> with a src delays the
# load event until it has data, so --dump-dom (which waits for load) sees the metadata.
CLICK_PROBE = """<script nonce="NONCE">
var video = null;
document.querySelector("a.play:not(.broken)").click();
video = document.querySelector("video");
video.muted = true;
video.addEventListener("loadedmetadata", function () {
  document.body.dataset.video = video.videoWidth + "x" + video.videoHeight + " " + video.duration;
});
video.addEventListener("error", function () { document.body.dataset.video = "error"; });
</script>"""


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder as `watcher render` leaves it: one real MP4 (twice), a broken MP4, hostile failures."""
    root = tmp_path_factory.mktemp("report")
    settings = load_config(None, [f"folders.work={root / 'work'}"])
    src = root / "src"
    src.mkdir()
    square = "self.play(FadeIn(Square(color=RED, fill_opacity=1).scale(2)), run_time=0.3)"
    (src / "square.py").write_text(scene(body=square))
    out = root / "out"
    summary = run_batch([src / "square.py"], settings, out)
    assert summary.count("rendered") == 1, summary.to_dict()

    # The same video under a hostile name, with a sidecar naming a hostile scene.
    shutil.copy(out / "square.mp4", out / f"{HOSTILE}.mp4")
    meta = json.loads((out / "square.meta.json").read_text())
    meta["videos"][0]["scene"] = HOSTILE
    (out / f"{HOSTILE}.meta.json").write_text(json.dumps(meta))
    (out / "truncated.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video")
    record = {
        "source": f"{HOSTILE}.py",
        "phase": "render",
        "type": "ValueError",
        "message": HOSTILE_MESSAGE,
        "line": 7,
        "excerpt": f"  6 | x = 1\n> 7 | raise ValueError('{HOSTILE_MESSAGE}')",
        "hint": "<i>hint</i>",
        "stderr_tail": "Traceback ...\n" + HOSTILE_MESSAGE,
    }
    (out / f"{HOSTILE}.error.json").write_text(json.dumps(record))
    (out / "garbage.error.json").write_text("{not json")
    return out


def test_poster_frame_is_a_small_jpeg_of_a_drawn_frame(results: Path):
    image = Image.open(io.BytesIO(poster_frame(results / "square.mp4")))
    assert image.format == "JPEG" and image.size == (320, 180)
    # The middle of a FadeIn: the red square is there, not an empty first frame.
    pixels = np.asarray(image.convert("RGB")).astype(int)
    assert (pixels[..., 0] - pixels[..., 1:].max(axis=-1)).max() > 60


def test_collect_reads_videos_sidecars_and_records(results: Path):
    report = collect([results])
    videos = {v.path.name: v for v in report.videos}
    assert set(videos) == {"square.mp4", f"{HOSTILE}.mp4", "truncated.mp4"}
    square = videos["square.mp4"]
    assert (square.width, square.height, square.scene) == (854, 480, "GeneratedAnimation")
    assert square.render_seconds is not None and square.thumb.startswith("data:image/jpeg;base64,")
    assert videos["truncated.mp4"].problem and videos["truncated.mp4"].thumb is None
    assert "truncated.mp4" in videos["truncated.mp4"].problem and "/proc/" not in videos["truncated.mp4"].problem
    assert report.summary() == {
        "videos": 3,
        "unreadable_videos": 1,
        "failures": 2,
        "failures_by_phase": {"render": 1, "?": 1},
        "video_seconds": round(2 * square.duration, 1),
    }


def test_page_escapes_everything_and_loads_nothing_from_the_network(results: Path, tmp_path: Path):
    page = tmp_path / "page.html"
    write_report([results], page)
    text = page.read_text()
    assert HOSTILE not in text and HOSTILE_MESSAGE not in text and "<i>hint</i>" not in text
    assert html_escape(HOSTILE_MESSAGE) in text
    assert not re.search(r"(src|href)=['\"]?(https?:|//)", text)
    assert "default-src 'none'" in text
    # The video is linked relative to the page, percent-encoded.
    assert f"href='{os.path.relpath(results, tmp_path)}/square.mp4'" in text
    assert "%3Cimg%20src%3Dx" in text


def html_escape(s: str) -> str:
    import html

    return html.escape(s, quote=True)


def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (scripts/setup.sh installs it)")
        pytest.skip("chromium is not installed (scripts/setup.sh installs it)")
    return path


def browse(page: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args, page.as_uri()],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_page_in_headless_chromium(results: Path, tmp_path: Path):
    # Through the real command, as a user runs it.
    done = subprocess.run(
        [sys.executable, "-m", "watcher", "report", str(results), "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    page = Path(summary["page"])
    assert page == results / "index.html" and summary["videos"] == 3 and summary["failures"] == 2

    dom = browse(page, tmp_path, "--dump-dom")
    assert dom.returncode == 0, dom.stderr
    widths = re.search(r'<body data-thumbs="([^"]*)"', dom.stdout)
    assert widths is not None, dom.stdout[:2000]
    assert [int(w) for w in widths.group(1).split()] == [320, 320]  # both thumbnails decoded
    assert "data-pwned" not in dom.stdout  # no injected markup ran
    assert "truncated.mp4" in dom.stdout and "not json" not in dom.stdout

    # Click the first thumbnail: the video plays in its place, from its relative link, under the page's CSP.
    text = page.read_text()
    nonce = re.search(r"script-src 'nonce-([^']+)'", text).group(1)
    probe = page.with_name("probe.html")
    probe.write_text(text.replace("</body>", CLICK_PROBE.replace("NONCE", nonce) + "</body>"))
    dom = browse(probe, tmp_path, "--dump-dom")
    played = re.search(r'data-video="([^"]*)"', dom.stdout)
    assert played is not None and played.group(1).startswith("854x480 "), dom.stdout[-2000:]

    shot = tmp_path / "report.png"
    done = browse(page, tmp_path, f"--screenshot={shot}", "--window-size=1200,900")
    assert done.returncode == 0 and shot.exists(), done.stderr
    image = Image.open(shot).convert("RGB")
    assert image.size == (1200, 900)
    colours = image.getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 50  # a rendered page, not a blank one
    # Kept for a person to look at (the thumbnails, counts and the escaped failure).
    keep = os.environ.get("WATCHER_REPORT_SCREENSHOT")
    if keep:
        shutil.copy(shot, keep)


def test_huge_and_broken_records_make_a_small_page(tmp_path: Path):
    folder = tmp_path / "failed"
    folder.mkdir()
    # 300 MB by its size (sparse: the test writes a few bytes), as a record written by hand could be.
    with open(folder / "huge.error.json", "wb") as f:
        f.write(b'{"phase": "render", "type": "E", "message": "')
        f.truncate(300_000_000)
    # Under the read limit, but every field far longer than a card shows.
    big = {
        "phase": "render" * 1000,
        "type": "T" * 10_000,
        "message": "START " + "M" * 300_000 + " END",
        "excerpt": "E" * 50_000,
        "hint": "H" * 50_000,
        "stderr_tail": "".join(f"output line {n}\n" for n in range(10_000)) + "X" * 100_000 + "\nthe last line",
    }
    (folder / "big.error.json").write_text(json.dumps(big))
    (folder / "nested.error.json").write_text("[" * 100_000)  # json.loads raises RecursionError
    page = tmp_path / "page.html"
    report = write_report([folder], page)

    assert page.stat().st_size < 100_000
    failures = {f.path.name: f.record for f in report.failures}
    assert "300000000 bytes, over the 1048576 bytes the report reads" in failures["huge.error.json"]["message"]
    assert failures["nested.error.json"]["type"] == "UnreadableRecord"
    shown = failures["big.error.json"]
    assert shown["message"].startswith("START MMM") and shown["message"].endswith("MMM END")
    assert len(shown["message"]) <= CAPS.message and len(shown["stderr_tail"]) <= TAIL_CHARS
    assert shown["stderr_tail"].endswith("\nthe last line")
    assert all(len(shown[k]) <= CAPS.excerpt for k in ("phase", "type", "excerpt", "hint"))
    # `watcher status` reads the same records.
    recent = recent_failures(folder, 5)
    assert {r["file"] for r in recent} == {str(folder / n) for n in failures}
    assert all(len(r["message"]) < 300 and len(r["type"]) <= CAPS.name for r in recent)


def test_links_in_the_folders_are_never_followed(results: Path, tmp_path: Path):
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(results / "square.mp4", outside / "square.mp4")
    secret = {"phase": "render", "type": "Secret", "message": "SECRET-OUTSIDE"}
    (outside / "secret.error.json").write_text(json.dumps(secret))
    folder = tmp_path / "done"
    folder.mkdir()
    shutil.copy(results / "square.mp4", folder / "real.mp4")
    (folder / "linked.mp4").symlink_to(outside / "square.mp4")
    (folder / "shadow.mp4").symlink_to("/etc/shadow")
    (folder / "secret.error.json").symlink_to(outside / "secret.error.json")
    (folder / "passwd.error.json").symlink_to("/etc/passwd")
    (folder / "linked.meta.json").symlink_to(outside / "secret.error.json")
    os.mkfifo(folder / "fifo.error.json")  # opening it for reading would wait for a writer

    page = tmp_path / "page.html"
    report = write_report([folder], page)
    assert [v.path.name for v in report.videos] == ["real.mp4"] and report.failures == []
    assert report.videos[0].thumb is not None  # read through the opened file, not its name
    text = page.read_text()
    assert "SECRET-OUTSIDE" not in text and "root:" not in text
    assert not any(name in text for name in ("linked.mp4", "shadow.mp4", "passwd.error", "fifo.error", "linked.meta"))
    # Read directly, a link is refused too (it could be swapped in after the folder was listed).
    refused = read_record(folder / "secret.error.json")
    assert refused["type"] == "UnreadableRecord" and "symbolic link" in refused["message"]
    assert "not a regular file" in read_record(folder / "fifo.error.json")["message"]
