"""A table of the report page: a title, column names and rows of JSON scalars."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[Any]]
