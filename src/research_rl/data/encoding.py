"""The text encoding a released file was written in, found by reading its bytes.

Releases are meant to be UTF-8, but spreadsheet exports are not always: Bamboogle's CSV as released
is Windows-1252, and Excel writes a byte-order mark in front of UTF-8 (or writes UTF-16). A file
is read as UTF-8 when every byte decodes; otherwise as Windows-1252 (or Latin-1, which decodes any
byte, where Windows-1252 leaves a byte undefined), with a note naming the first byte that is not
UTF-8, so nothing is lost and nothing is silently guessed.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from pathlib import Path

_CHUNK = 1 << 20
_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig", "UTF-8"),
    (codecs.BOM_UTF16_LE, "utf-16", "UTF-16"),
    (codecs.BOM_UTF16_BE, "utf-16", "UTF-16"),
)


@dataclass(frozen=True)
class TextEncoding:
    name: str  # a codec name for open()
    note: str | None  # what a user should know about how the file was read, if anything


def detect_encoding(path: str | Path) -> TextEncoding:
    """UTF-8 (a leading byte-order mark stripped), UTF-16 with a BOM, else Windows-1252/Latin-1."""
    path = Path(path)
    with path.open("rb") as f:
        head = f.read(4)
    for bom, name, label in _BOMS:
        if head.startswith(bom):
            return TextEncoding(name, f"{path}: {label} with a byte-order mark (stripped)")
    bad = _first_undecodable(path, "utf-8")
    if bad is None:
        return TextEncoding("utf-8", None)
    offset, byte = bad
    fallback, label = ("cp1252", "Windows-1252")
    if _first_undecodable(path, "cp1252") is not None:
        fallback, label = ("latin-1", "Latin-1")
    return TextEncoding(
        fallback, f"{path}: not UTF-8 (byte 0x{byte:02x} at offset {offset}); read as {label}"
    )


def _first_undecodable(path: Path, encoding: str) -> tuple[int, int] | None:
    """(offset, byte) of the first byte that does not decode, streaming (releases can be GBs)."""
    decoder = codecs.getincrementaldecoder(encoding)()
    offset = 0
    with path.open("rb") as f:
        while True:
            chunk = f.read(_CHUNK)
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as err:
                # err.start is relative to the decoder's buffered bytes plus this chunk.
                buffered = len(err.object) - len(chunk)
                at = offset - buffered + err.start
                return at, err.object[err.start]
            if not chunk:
                return None
            offset += len(chunk)
