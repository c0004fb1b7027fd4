"""The scene inside a code generator's reply: Markdown fences or prose around the code.

A generator asked for a scene often answers with a sentence, a ```python fence and maybe
a closing remark, and the reply is saved as the .py file. When the file does not parse,
`watcher.validate` asks here whether it is such a reply: one Python code block (or code
after a sentence) is extracted, with every other line blanked so that line numbers stay
the file's; several blocks, or prose with no code at all, become findings that say so.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

from .findings import Finding, parse

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})\s*([\w+.-]*)")
_PYTHON_LANGS = frozenset({"", "python", "py", "python3", "py3", "manim"})
# A line that only Python has at its start; a file with none is not a program.
_PYTHON_LINE = re.compile(r"^\s*(from\s+[\w.]+\s+import\b|import\s+\w|class\s+\w+\s*[(:]|def\s+\w+\s*\(|@\w)")
# Past this size a reply is not tried line by line for where its code ends.
_PROSE_TRIES = 200_000


@dataclass(frozen=True)
class Code:
    """The code of a reply."""

    source: str  # every line outside the code blanked, so line numbers stay the file's
    first: int
    last: int
    fenced: bool


def parse_reply(
    text: str, failure: Finding, extract: bool, filename: str
) -> tuple[ast.Module | None, list[Finding], Code | None]:
    """The AST of the code inside a generator's reply (Markdown fences, prose around it), or findings.

    Args:
        text: the file, which does not parse as a whole.
        failure: the syntax finding of the whole file, reported along with any other.
        extract: validation.extract_code: whether the code of a reply may be used at all.

    Returns:
        (tree, findings, code): the AST of the extracted code (None: see the findings), and
        the code it was parsed from when one was extracted.
    """
    blocks = _fenced_blocks(text)
    if len(blocks) > 1:
        where = ", ".join(str(b.first - 1) for b in blocks)
        msg = f"the file is a Markdown reply with {len(blocks)} Python code blocks (fences at lines {where}), not one"
        return None, [Finding("code-blocks", msg, blocks[0].first - 1, 1), failure], None
    code = blocks[0] if blocks else _unfenced(text, filename)
    if code is None:
        found: list[Finding] = []
        if _reads_as_prose(text):
            first = next((line.strip() for line in text.splitlines() if line.strip()), "")[:80]
            msg = f"the file is not Python code: it reads as prose, e.g. a reply saved as .py ({first!r})"
            found.append(Finding("not-python", msg, 1, 1))
        return None, [*found, failure], None
    if not extract:
        what = "a Markdown reply: the code is fenced" if code.fenced else "prose around the code"
        msg = f"the file is {what} (lines {code.first}-{code.last}); validation.extract_code is off"
        return None, [Finding("markdown", msg, code.first, 1), failure], None
    tree = parse(code.source, filename)
    if isinstance(tree, Finding):
        return None, [tree], code
    return tree, [], code


def _reads_as_prose(text: str) -> bool:
    """Words and no Python statement: a reply about code, or no code at all."""
    if any(_PYTHON_LINE.match(line) for line in text.splitlines()):
        return False
    words = re.findall(r"[^\W\d_]{2,}", text)
    visible = len(text) - sum(map(len, re.findall(r"\s+", text)))
    return len(words) >= 3 and sum(map(len, words)) >= 0.6 * visible


def _fenced_blocks(text: str) -> list[Code]:
    """The Python code blocks of a Markdown text (an unclosed last fence runs to the end)."""
    lines = text.splitlines()
    blocks: list[Code] = []
    opened: tuple[int, str, str] | None = None  # line index, marker, language
    for i, line in enumerate(lines):
        m = _FENCE.match(line)
        if not m:
            continue
        if opened is None:
            opened = (i, m.group(1), m.group(2).lower())
        elif m.group(1).startswith(opened[1]) and not m.group(2):
            blocks.append(_block(lines, opened[0] + 1, i, opened[2]))
            opened = None
    if opened is not None:
        blocks.append(_block(lines, opened[0] + 1, len(lines), opened[2]))
    return [b for b in blocks if b.fenced and b.last >= b.first]


def _block(lines: list[str], start: int, end: int, lang: str) -> Code:
    """Lines [start, end) kept, every other one blank; `fenced` False for a block that is not Python."""
    kept = ["" if not start <= n < end else line for n, line in enumerate(lines)]
    return Code("\n".join(kept) + "\n", start + 1, end, lang in _PYTHON_LANGS)


def _unfenced(text: str, filename: str) -> Code | None:
    """Code with a sentence before it ("Here is the scene:") and maybe after it, without fences."""
    lines = text.splitlines()
    start = next((n for n, line in enumerate(lines) if _PYTHON_LINE.match(line) and not line[0].isspace()), None)
    if start is None or start == 0 or len(text) > _PROSE_TRIES:
        return None
    end = len(lines)
    for _ in range(2):  # a sentence after the code is the one other thing a reply adds
        code = _block(lines, start, end, "")
        tree = parse(code.source, filename)
        if not isinstance(tree, Finding):
            return code
        bad = (tree.line or 0) - 1
        if not start < bad < end or any(line[:1].isspace() for line in lines[bad:end]):
            return None
        end = bad
    return None
