"""Dates a spreadsheet re-typed: ``29-May-32`` is what it shows for May 29, 1932.

Bamboogle's CSV was exported from a spreadsheet that turned 13 typed dates into date cells and
wrote them back as ``D-Mon-YY``: the century is gone. The readable forms are kept as extra golden
answers next to the released text. Which century: a date can be no later than the release, so a
two-digit year above the release year's (``32`` with a 2022 release) can only be ``19YY``; one at
or below it can be either (the release has both: ``6-Nov-05`` is 1905, ``9-May-05`` is 2005), so
both readings are kept.
"""

from __future__ import annotations

import datetime as dt
import re

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# Spelt out here, not with strftime("%B"), which follows the process locale.
_MONTH_NAMES = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_MANGLED = re.compile(r"^(\d{1,2})-(" + "|".join(_MONTHS) + r")-(\d{2})$", re.IGNORECASE)


def readable_dates(text: str, latest_year: int) -> list[str]:
    """``["May 29, 1932", "29 May 1932"]`` for ``29-May-32``; ``[]`` for anything else.

    ``latest_year``: the release's year; every reading of the two-digit year that is not after it
    is given, in both of the release's own date styles ("April 30, 1789" and "20 June 1837").
    """
    match = _MANGLED.match(text.strip())
    if not match:
        return []
    day, month = int(match[1]), _MONTHS.index(match[2].title()) + 1
    yy = int(match[3])
    out = []
    for century in (1900, 2000):
        year = century + yy
        if year > latest_year:
            continue
        try:
            date = dt.date(year, month, day)
        except ValueError:  # 31-Feb-20: not a date the spreadsheet could have written
            continue
        name = _MONTH_NAMES[date.month - 1]
        out.append(f"{name} {date.day}, {date.year}")
        out.append(f"{date.day} {name} {date.year}")
    return out
