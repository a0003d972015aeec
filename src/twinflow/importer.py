"""Reading a file to import: CSV (any column order, UTF-8 with or without BOM, comma or
semicolon) or NDJSON, row by row, each row checked on its own (rowcheck.py) and spilled for the
case checks; a bad header, encoding or line is reported with its line number."""

from __future__ import annotations

import csv
import difflib
import json
import os
from collections.abc import Iterator, Mapping
from itertools import chain, compress
from pathlib import Path
from typing import IO, Any

from twinflow.exchange import COLUMNS, REQUIRED, Problem, Progress
from twinflow.rowcheck import Cells, check
from twinflow.spill import Spill

BOM = b"\xef\xbb\xbf"
READING = "reading"


def read(
    path: Path, fmt: str, spill: Spill, problems: list[Problem], progress: Progress | None
) -> int:
    """Check every row of the file and spill it; returns how many rows were read."""
    size = os.path.getsize(path)
    count = 0
    with path.open("rb") as handle:
        records = _csv(handle, problems) if fmt == "csv" else _ndjson(handle, problems, size)
        done = 0
        for line, cells in records:
            count += 1
            check(line, cells, spill, problems)
            if progress and count % 1000 == 0:
                position = handle.tell()
                progress(READING, position - done, size)
                done = position
        if progress:
            progress(READING, size - done, size)
    return count


# ---------------------------------------------------------------------------- CSV


def _csv(handle: IO[bytes], problems: list[Problem]) -> Iterator[tuple[int, Cells]]:
    lines = _decoded(handle, problems)
    header = next(lines, None)
    if header is None or not header.strip():
        problems.append(
            Problem(1, None, None, "the file is empty: the first line must name the columns")
        )
        return
    delimiter = ";" if header.count(";") > header.count(",") else ","
    reader = csv.reader(chain([header], lines), delimiter=delimiter, strict=True)
    try:
        names = [name.strip().lower() for name in next(reader)]
    except csv.Error as error:
        problems.append(Problem(1, None, None, f"the header cannot be read ({error})"))
        return
    if not _header_ok(names, problems):
        return
    start = reader.line_num + 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            problems.append(
                Problem(start, None, None, f"the row cannot be read as CSV ({error}): check quotes")
            )
            start = reader.line_num + 1
            continue
        line, start = start, reader.line_num + 1
        values = list(map(str.strip, cells))
        if not any(values):
            continue
        if len(cells) > len(names):
            problems.append(
                Problem(
                    line,
                    None,
                    None,
                    f"the row has {len(cells)} cells but the header names {len(names)} columns: "
                    f"quote cells that hold the delimiter {delimiter!r}",
                )
            )
            continue
        # the non-empty cells by column name (no more cells than names: checked above)
        yield line, dict(zip(compress(names, values), filter(None, values), strict=True))


def _decoded(handle: IO[bytes], problems: list[Problem]) -> Iterator[str]:
    """The file's lines as text, each undecodable line reported with its number."""
    for number, raw in enumerate(handle, 1):
        if number == 1:
            raw = raw.removeprefix(BOM)
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as error:
            problems.append(_not_utf8(number, raw, error))
            yield raw.decode("utf-8", "replace")


def _not_utf8(number: int, raw: bytes, error: UnicodeDecodeError) -> Problem:
    context = raw[max(0, error.start - 20) : error.end + 20].decode("utf-8", "replace")
    return Problem(
        number,
        None,
        None,
        f"the line is not UTF-8 (byte 0x{raw[error.start]:02x} in {context.strip()!r}): save "
        "the file as UTF-8 (in a spreadsheet: CSV UTF-8) and import it again",
    )


def _header_ok(names: list[str], problems: list[Problem]) -> bool:
    known = [n for n in names if n in COLUMNS]
    if not known:
        problems.append(
            Problem(
                1,
                None,
                None,
                "the first line is not a header: it must name the columns, e.g. "
                + ",".join(REQUIRED)
                + f" (columns: {', '.join(COLUMNS)})",
            )
        )
        return False
    before = len(problems)
    for index, name in enumerate(names):
        if not name:
            problems.append(Problem(1, None, None, f"column {index + 1} has no name: name it"))
        elif name in names[:index]:
            problems.append(Problem(1, name, None, "is named twice in the header: keep one"))
        elif name not in COLUMNS:
            problems.append(Problem(1, "column", name, _unknown(name)))
    missing = [n for n in REQUIRED if n not in names]
    if missing:
        problems.append(
            Problem(1, None, None, f"the header lacks the column(s) {', '.join(missing)}: add them")
        )
    return len(problems) == before


def _unknown(name: str) -> str:
    close = difflib.get_close_matches(name, COLUMNS, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"is not a twinflow column: {hint}columns: {', '.join(COLUMNS)}"


# ---------------------------------------------------------------------------- NDJSON


def _ndjson(handle: IO[bytes], problems: list[Problem], size: int) -> Iterator[tuple[int, Cells]]:
    for number, raw in enumerate(handle, 1):
        if number == 1:
            raw = raw.removeprefix(BOM)
        try:
            text = raw.decode("utf-8").strip()
        except UnicodeDecodeError as error:
            problems.append(_not_utf8(number, raw, error))
            continue
        if not text:
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as error:
            cut = not raw.endswith(b"\n")  # only the last line can lack its newline
            hint = "; the file looks truncated" if cut else ""
            problems.append(
                Problem(
                    number,
                    None,
                    None,
                    f"the line is not a complete JSON object ({error.msg}, column {error.colno})"
                    f"{hint}: each line must be one JSON object with the import columns as keys",
                )
            )
            continue
        if isinstance(value, dict) and {"position", "topic", "hash"} <= value.keys():
            problems.append(
                Problem(
                    number,
                    None,
                    None,
                    "the file is a backup (twinflow export --format ndjson), not rows to "
                    "import: put it back with `twinflow restore`",
                )
            )
            return
        if not isinstance(value, dict):
            problems.append(
                Problem(number, None, None, 'the line is not a JSON object: write {"case": ...}')
            )
            continue
        cells = _json_cells(number, value, problems)
        if cells is not None:
            yield number, cells


def _json_cells(number: int, value: Mapping[str, Any], problems: list[Problem]) -> Cells | None:
    cells: Cells = {}
    ok = True
    for key, item in value.items():
        if key not in COLUMNS:
            problems.append(Problem(number, "key", key, _unknown(key)))
            ok = False
        elif item is None or item == "" or item == []:
            continue
        elif isinstance(item, str):
            if _half_pair(number, key, item, problems):
                ok = False
            else:
                cells[key] = item.strip()
        elif isinstance(item, int) and not isinstance(item, bool) and key.endswith("_on"):
            cells[key] = str(item)  # a year written as a number
        elif isinstance(item, list) and key in ("source", "parties"):
            if not all(isinstance(i, str) for i in item):
                problems.append(Problem(number, key, str(item), "must list strings only"))
                ok = False
            elif any([_half_pair(number, key, i, problems) for i in item]):
                ok = False
            else:
                cells[key] = [i.strip() for i in item if i.strip()]
        else:
            problems.append(
                Problem(number, key, json.dumps(item), "must be a string (or null: not given)")
            )
            ok = False
    return cells if ok else None


def _half_pair(number: int, key: str, text: str, problems: list[Problem]) -> bool:
    """Report a string holding half of a UTF-16 surrogate pair (JSON's \\ud800 escape makes
    one), which is no character: nothing could store or hash it."""
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        half = ord(text[error.start])
        problems.append(
            Problem(
                number,
                key,
                text,
                f"holds \\u{half:04x}, half of a UTF-16 surrogate pair, which is no character: "
                "write the character itself, or both halves of its \\u pair",
            )
        )
        return True
    return False
