"""Inside a render child: Manim's LaTeX step asks watcher's typesetting service instead of running LaTeX.

`install(fd)` replaces `manim.utils.tex_file_writing.compile_tex` and `convert_to_svg`.
Everything else of Manim's path stays: it writes the `.tex` document to media/Tex under
its hash and uses an SVG already there; only a missing SVG goes to the service
(`watcher.texservice`), whose answer is written where dvisvgm would have put it. A LaTeX
error raises Manim's own ValueError, with LaTeX's log beside the document, so the error
record reads as it always did. Runs in the child only, never in the daemon.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import struct
from pathlib import Path
from typing import Any

_HEADER = struct.Struct(">I")
_MAX_REPLY = 8 << 20
_sock: socket.socket | None = None


def install(fd: int) -> None:
    """Route Manim's LaTeX compilation through the service on the inherited socket `fd`."""
    global _sock
    from manim.utils import tex_file_writing

    _sock = socket.socket(fileno=fd)
    tex_file_writing.compile_tex = compile_tex
    tex_file_writing.convert_to_svg = convert_to_svg


def compile_tex(tex_file: Path, tex_compiler: str | list[str], output_format: str) -> Path:
    """Like Manim's: returns the output path (here a name only: the SVG is already beside it).

    Raises:
        ValueError: with Manim's message when LaTeX fails (its log is written beside the .tex).
    """
    svg = tex_file.with_suffix(".svg")
    if not svg.exists():
        reply = _ask({"tex": tex_file.read_text(encoding="utf-8"), "compiler": tex_compiler, "format": output_format})
        if "svg" in reply:
            svg.write_text(reply["svg"], encoding="utf-8")
        elif isinstance(reply.get("missing"), str):  # as Manim's own subprocess.run would raise it
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), reply["missing"])
        else:
            log_file = tex_file.with_suffix(".log")
            log_file.write_text(reply.get("log") or reply.get("error", ""), encoding="utf-8")
            compiler = tex_compiler if isinstance(tex_compiler, str) else tex_compiler[-1]
            raise ValueError(
                f"{compiler} error converting to {output_format[1:]}. See log output above or the log file: "
                f"{log_file}" + ("" if reply.get("log") else f" ({reply.get('error')})")
            )
    return tex_file.with_suffix(output_format)


def convert_to_svg(dvi_file: Path, extension: str, page: int = 1) -> Path:
    """Like Manim's: the SVG `compile_tex` wrote."""
    result = dvi_file.with_suffix(".svg")
    if not result.exists():
        raise ValueError(f"no SVG was made of {dvi_file.with_suffix('.tex').name}")
    return result


def _ask(request: dict[str, Any]) -> dict[str, Any]:
    assert _sock is not None
    data = json.dumps(request).encode()
    _sock.sendall(_HEADER.pack(len(data)) + data)
    (size,) = _HEADER.unpack(_read(_HEADER.size))
    if size > _MAX_REPLY:
        raise ValueError(f"the typesetting service sent {size} bytes")
    reply = json.loads(_read(size))
    if not isinstance(reply, dict):
        raise ValueError("the typesetting service sent no answer")
    return reply


def _read(size: int) -> bytes:
    assert _sock is not None
    chunks = bytearray()
    while len(chunks) < size:
        data = _sock.recv(size - len(chunks))
        if not data:
            raise ValueError("the typesetting service closed the connection")
        chunks += data
    return bytes(chunks)
