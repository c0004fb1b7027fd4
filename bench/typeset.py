"""Typesetting one formula: plain LaTeX against LaTeX with the preamble's precompiled format,
interleaved in one run (the same documents on both sides) so that machine noise hits both alike.

    .venv/bin/python bench/typeset.py [--runs N]

Each side has its own cold cache folder, so every document is typeset (latex + dvisvgm,
in a private directory, as the render user when run as root); the format side builds its
format first (not timed). Prints the whole typeset and the latex and dvisvgm steps.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from watcher.config import load_config  # noqa: E402
from watcher.texcache import TexCache, tool_versions  # noqa: E402
from watcher.texservice import Typesetter  # noqa: E402

# Manim's default template, as MathTex writes a document.
DOCUMENT = (
    "\\documentclass[preview]{standalone}\n\\usepackage[english]{babel}\n\\usepackage{amsmath}\n"
    "\\usepackage{amssymb}\n\\begin{document}\n\\begin{align*}\n%s\n\\end{align*}\n\\end{document}"
)


def timed(typesetter: Typesetter) -> dict[str, list[float]]:
    """Wrap the typesetter's tool runs: seconds per tool (latex, dvisvgm), appended as they run."""
    steps: dict[str, list[float]] = {"latex": [], "dvisvgm": []}
    run = typesetter.run_tool

    def wrapper(argv: list[str], *args: Any, **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
        started = time.perf_counter()
        try:
            return run(argv, *args, **kwargs)
        finally:
            steps.setdefault(argv[0], []).append(time.perf_counter() - started)

    typesetter.run_tool = wrapper  # type: ignore[method-assign]
    return steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=30, help="documents per side")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="watcher-typeset-") as tmp:
        os.chmod(tmp, 0o711)  # the render user passes through to its run directories
        settings = load_config(None, [f"folders.work={tmp}/work"])
        plain = Typesetter(TexCache(Path(tmp) / "plain", 1024), settings, formats=False)
        fast = Typesetter(TexCache(Path(tmp) / "fmt", 1024), settings)
        for warm in ("a", "b"):  # the second document starts building the format
            fast.svg(DOCUMENT % warm, "latex", ".dvi")
            plain.svg(DOCUMENT % warm, "latex", ".dvi")
        fast.close(timeout=120)  # the build is done
        assert fast.formats is not None and fast.formats.entries(), "no format was built"
        steps = {"plain": timed(plain), "format": timed(fast)}
        totals: dict[str, list[float]] = {"plain": [], "format": []}
        for i in range(args.runs):
            document = DOCUMENT % f"x_{{{i}}} = \\frac{{{i}}}{{{i + 1}}}"
            sides = [("plain", plain), ("format", fast)]
            for name, typesetter in sides if i % 2 else reversed(sides):
                started = time.perf_counter()
                svg = typesetter.svg(document, "latex", ".dvi")
                totals[name].append(time.perf_counter() - started)
            assert svg == plain.svg(document, "latex", ".dvi"), "the SVGs differ"
        assert fast.formatted == args.runs
    print(f"{os.cpu_count()} CPUs, Python {platform.python_version()}, {tool_versions()}")
    print(f"{args.runs} distinct one-formula documents per side, interleaved; byte-identical SVGs")
    print(f"    {'':<8} {'typeset':>16} {'latex step':>16} {'dvisvgm step':>16}   (median / mean, ms)")
    for name in ("plain", "format"):
        cells = [totals[name], steps[name]["latex"][-args.runs :], steps[name]["dvisvgm"][-args.runs :]]
        text = "".join(f" {1000 * statistics.median(c):7.0f} /{1000 * statistics.mean(c):5.0f}   " for c in cells)
        print(f"    {name:<8} {text}".rstrip())
    gain = 1 - statistics.mean(totals["format"]) / statistics.mean(totals["plain"])
    print(f"    the format saves {100 * gain:.0f}% of a typeset")


if __name__ == "__main__":
    main()
