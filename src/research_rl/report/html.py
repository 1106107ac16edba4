"""Assemble the self-contained report page: the template with its CSS, JS and data inlined."""

from __future__ import annotations

import html
import json
from importlib import resources
from typing import Any

DATA_MARK = "__DATA__"


def _asset(name: str) -> str:
    return resources.files("research_rl.report").joinpath("assets", name).read_text(encoding="utf-8")


def embed_json(data: Any) -> str:
    """JSON safe inside a ``<script>`` element: ``<`` is escaped, so passages or model text that
    contain ``</script>`` or ``<!--`` cannot end the element early."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False).replace(
        "<", "\\u003c")


def render_html(data: dict[str, Any]) -> str:
    page = _asset("report.html")
    page = page.replace("/*__CSS__*/", _asset("report.css"))
    page = page.replace("/*__JS__*/", _asset("report.js"))
    page = page.replace("__TITLE__", html.escape(str(data.get("title", ""))))
    head, sep, tail = page.partition(DATA_MARK)  # data last: it may contain any marker text
    if not sep:
        raise RuntimeError("report template has no data marker")
    return head + embed_json(data) + tail
