"""Precompiled preambles: the same SVG bytes as plain LaTeX, with real LaTeX, and nothing a document can change."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from watcher.cli import cli
from watcher.config import load_config
from watcher.texcache import TexCache
from watcher.texservice import TexFailure, Typesetter

# Manim's default TexTemplate, as it writes documents (Manim is not imported here: pytest would
# turn its DeprecationWarnings into errors).
DEFAULT = (
    "\\documentclass[preview]{standalone}\n\\usepackage[english]{babel}\n\\usepackage{amsmath}\n\\usepackage{amssymb}\n"
)
TEMPLATES = {
    "default": DEFAULT,
    "custom": DEFAULT + "\\usepackage{xcolor}\n\\newcommand{\\R}{\\mathbb{R}}\n",  # TexTemplate.add_to_preamble
    "makeatletter": DEFAULT + "\\makeatletter\n",  # left on: the body's @ is a letter, with a format too
}
# MathTex (align*) and Tex (center) documents, per template.
DOCUMENTS = {
    "default": [
        ("\\frac{1}{2} + \\sqrt{x}", "align*"),
        ("Hello, \\LaTeX{} world", "center"),
        ("\\special{dvisvgm:raw <g id='unique000'>}7\\special{dvisvgm:raw </g>}", "align*"),  # a number glyph
    ],
    "custom": [("\\R^2 \\to \\mathbb{Z}", "align*"), ("\\textcolor{red}{red} text", "center")],
    "makeatletter": [("\\@firstoftwo{a}{b}", "align*")],
}


def _document(preamble: str, expression: str, environment: str = "align*") -> str:
    """What TexTemplate.get_texcode_for_expression_in_env writes."""
    body = f"\\begin{{{environment}}}\n{expression}\n\\end{{{environment}}}\n"
    return f"{preamble}\\begin{{document}}\n{body}\\end{{document}}"


def _typesetters(tmp_path: Path) -> tuple[Typesetter, Typesetter]:
    """(plain, with formats): each its own cache folder, so that each typesets every document itself."""
    settings = load_config(None, [f"folders.work={tmp_path / 'work'}"])
    plain = Typesetter(TexCache(tmp_path / "plain", 1024), settings, formats=False)
    return plain, Typesetter(TexCache(tmp_path / "fmt", 1024), settings)


def _build_format(typesetter: Typesetter, preamble: str) -> None:
    """Two documents of the preamble: the second starts building its format; wait for the build."""
    for expression in ("a_1", "b_2"):
        typesetter.svg(_document(preamble, expression), "latex", ".dvi")
    assert typesetter.close(timeout=120)


def test_svgs_typeset_with_a_format_are_byte_for_byte_the_plain_ones(tmp_path: Path):
    plain, fast = _typesetters(tmp_path)
    for preamble in TEMPLATES.values():
        _build_format(fast, preamble)
    assert fast.formats is not None and len(fast.formats.entries()) == len(TEMPLATES)  # one per preamble
    documents = [_document(TEMPLATES[name], *d) for name, ds in DOCUMENTS.items() for d in ds]
    for document in documents:
        assert fast.svg(document, "latex", ".dvi") == plain.svg(document, "latex", ".dvi"), document
    assert fast.formatted == len(documents)  # every one of them with its preamble's format

    # Another process on the same cache folder loads the stored format for its first document.
    again = Typesetter(TexCache(tmp_path / "fmt", 1024), fast.settings)
    document = _document(DEFAULT, "\\pi r^2")
    assert again.svg(document, "latex", ".dvi") == plain.svg(document, "latex", ".dvi")
    assert again.formatted == 1


def test_a_latex_error_reads_as_it_does_without_a_format(tmp_path: Path):
    plain, fast = _typesetters(tmp_path)
    _build_format(fast, DEFAULT)
    document = _document(DEFAULT, "\\frac{1}{\\nosuchmacro}")
    errors = []
    for typesetter in (plain, fast):
        with pytest.raises(TexFailure) as failure:
            typesetter.svg(document, "latex", ".dvi")
        errors.append([line for line in failure.value.log.splitlines() if line.startswith(("!", "l."))])
    assert errors[0] == errors[1] and "! Undefined control sequence." in errors[0]
    # A document's error is not the format's: the next document still uses it.
    fast.svg(_document(DEFAULT, "y"), "latex", ".dvi")
    assert fast.formatted == 1


def test_a_preamble_that_cannot_be_dumped_is_typeset_plain_and_not_built_again(tmp_path: Path):
    plain, fast = _typesetters(tmp_path)
    preamble = DEFAULT + "\\begingroup\n"  # LaTeX typesets it; \dump refuses to inside a group
    _build_format(fast, preamble)
    document = _document(preamble, "z")
    assert fast.formats is not None and fast.formats.plan(document, ["latex"], ".dvi") is None  # given up on
    assert fast.svg(document, "latex", ".dvi") == plain.svg(document, "latex", ".dvi")
    assert fast.formatted == 0 and not fast.formats.entries()


def test_a_document_cannot_change_the_format_others_load(tmp_path: Path):
    plain, fast = _typesetters(tmp_path)
    _build_format(fast, DEFAULT)
    assert fast.formats is not None
    [(_, _, stored)] = fast.formats.entries()
    before = hashlib.sha256(stored.read_bytes()).hexdigest()
    # The format is in the run's directory as preamble.fmt: a document that writes there.
    hostile = _document(
        DEFAULT, "x \\immediate\\openout5=preamble.fmt \\immediate\\write5{garbage}\\immediate\\closeout5"
    )
    try:
        fast.svg(hostile, "latex", ".dvi")
    except TexFailure:
        pass  # whether LaTeX minds the failed write or not, the format must be as it was
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == before
    document = _document(DEFAULT, "w")
    assert fast.svg(document, "latex", ".dvi") == plain.svg(document, "latex", ".dvi")
    assert fast.formatted == 1  # the format is still used: the hostile document's failure was its own


def test_cache_stats_counts_the_formats_and_clear_removes_them(tmp_path: Path):
    _, fast = _typesetters(tmp_path)
    _build_format(fast, DEFAULT)
    where = ["--set", f"folders.work={tmp_path / 'work'}", "--set", f"folders.cache={tmp_path / 'fmt'}"]
    stats = CliRunner().invoke(cli, ["cache", "stats", "--json", *where])
    assert stats.exit_code == 0, stats.output
    data = json.loads(stats.output)
    assert data["entries"] == 2 and data["formats"] == 1 and data["formats_mb"] > 1
    cleared = CliRunner().invoke(cli, ["cache", "clear", "--json", *where])
    assert json.loads(cleared.output)["formats_removed"] == 1
    assert fast.formats is not None and not fast.formats.entries()
