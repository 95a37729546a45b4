"""An executed notebook as one self-contained HTML page (inline figures), for reviewers.

    python -m initrepro.core.notebook_html executed/zero_init.ipynb reports/notebooks/zero_init.html

A small exporter (markdown-it and pygments, both already installed with jupytext and
IPython) instead of nbconvert, which this environment does not ship.
"""

from __future__ import annotations

import html
import re
import sys
from pathlib import Path

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
CSS = """
body { font-family: -apple-system, Segoe UI, Helvetica, Arial, sans-serif; max-width: 1100px; margin: 2em auto;
       padding: 0 1em; color: #222; line-height: 1.45; }
.cell { margin: 1.2em 0; }
.code { background: #f6f8fa; border: 1px solid #ddd; border-radius: 4px; padding: .6em; overflow-x: auto; }
.code pre, pre.out { margin: 0; font-size: 12.5px; }
pre.out { padding: .4em .6em; white-space: pre-wrap; border-left: 3px solid #ccc; }
pre.err { padding: .4em .6em; white-space: pre-wrap; background: #fdecea; border-left: 3px solid #c00; }
.prompt { color: #888; font-size: 11px; font-family: monospace; }
img { max-width: 100%; }
table { border-collapse: collapse; } td, th { border: 1px solid #ccc; padding: 2px 6px; font-size: 13px; }
"""


def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def _output(out: dict) -> str:
    kind = out.get("output_type")
    if kind == "stream":
        return f'<pre class="out">{html.escape(ANSI.sub("", _text(out.get("text", ""))))}</pre>'
    if kind == "error":
        trace = ANSI.sub("", "\n".join(out.get("traceback", [])) or f"{out.get('ename')}: {out.get('evalue')}")
        return f'<pre class="err">{html.escape(trace)}</pre>'
    data = out.get("data", {})
    if "image/png" in data:
        return f'<img alt="figure" src="data:image/png;base64,{_text(data["image/png"]).strip()}">'
    if "image/svg+xml" in data:
        return _text(data["image/svg+xml"])
    if "text/html" in data:
        return f'<div class="html">{_text(data["text/html"])}</div>'
    if "text/markdown" in data:
        return _markdown(_text(data["text/markdown"]))
    if "text/plain" in data:
        return f'<pre class="out">{html.escape(ANSI.sub("", _text(data["text/plain"])))}</pre>'
    return ""


def _markdown(source: str) -> str:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": True}).enable("table").render(source)


def notebook_to_html(notebook, title: str = "") -> str:
    """``notebook`` (an nbformat node or a path) rendered as a standalone HTML page."""
    import nbformat
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import PythonLexer

    if not hasattr(notebook, "cells"):
        notebook = nbformat.read(str(notebook), as_version=4)
    formatter = HtmlFormatter()
    parts = []
    for cell in notebook.cells:
        source = _text(cell.source)
        if cell.cell_type == "markdown":
            parts.append(f'<div class="cell md">{_markdown(source)}</div>')
        elif cell.cell_type == "code":
            count = cell.get("execution_count")
            tags = cell.get("metadata", {}).get("tags", [])
            label = f"In [{count if count is not None else ' '}]" + (f" ({', '.join(tags)})" if tags else "")
            outputs = "".join(_output(o) for o in cell.get("outputs", []))
            parts.append(f'<div class="cell"><div class="prompt">{html.escape(label)}</div>'
                         f'<div class="code">{highlight(source, PythonLexer(), formatter)}</div>{outputs}</div>')
    style = CSS + formatter.get_style_defs(".highlight")
    return (f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{style}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n")


def main(argv: list[str] | None = None) -> int:
    source, target = (argv or sys.argv[1:])[:2]
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    Path(target).write_text(notebook_to_html(source, Path(source).stem))
    return 0


if __name__ == "__main__":
    sys.exit(main())
