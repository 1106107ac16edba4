"""Assemble the self-contained report page: the template with its CSS, JS and data inlined."""

from __future__ import annotations

import html
import json
from importlib import resources
from typing import Any

DATA_MARK = "__DATA__"


def _asset(name: str) -> str:
    return (
        resources.files("research_rl.report").joinpath("assets", name).read_text(encoding="utf-8")
    )


def embed_json(data: Any) -> str:
    """JSON safe inside a ``<script>`` element: ``<`` is escaped, so passages or model text that
    contain ``</script>`` or ``<!--`` cannot end the element early."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False).replace(
        "<", "\\u003c"
    )


def render_html(data: dict[str, Any]) -> str:
    # Split at the data marker first: the run's name (in the title) may contain any text.
    head, sep, tail = _asset("report.html").partition(DATA_MARK)
    if not sep:
        raise RuntimeError("report template has no data marker")
    fills = {
        "/*__CSS__*/": _asset("report.css"),
        "/*__JS__*/": _asset("report.js"),
        "__TITLE__": html.escape(str(data.get("title", ""))),
    }
    parts = [head, tail]
    for marker, text in fills.items():  # each marker is in exactly one part, filled once
        parts = [p.replace(marker, text, 1) if marker in p else p for p in parts]
    return parts[0] + embed_json(data) + parts[1]
