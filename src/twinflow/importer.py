"""Reading a file to import: CSV (any column order, UTF-8 with or without BOM, comma or
semicolon) or NDJSON, row by row, each row checked on its own (rowcheck.py) and spilled for the
case checks; a bad header, encoding or line is reported with its line number."""

from __future__ import annotations

import csv
import difflib
import itertools
import json
import mmap
import os
import stat
from collections.abc import Callable, Iterator, Mapping
from itertools import chain, compress
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NamedTuple

from twinflow import backfill, fanout
from twinflow.errors import ConflictError
from twinflow.exchange import COLUMNS, REQUIRED, ROW_BYTES, Problem, Progress
from twinflow.rowcheck import Cells, check
from twinflow.spill import Spill

if TYPE_CHECKING:
    from twinflow.application import Register

BOM = b"\xef\xbb\xbf"
READING = "reading"
# The widths of the spans a shared read cuts a file into: this process's, then each other's
# (which starts a fifth of a second later, loading twinflow).
SHARES = (3, 2)
CHUNK = 1 << 20  # bytes counted at a time


class Span(NamedTuple):
    """A run of a file's records for one process to read (read_part): its bytes from start
    up to end, the first of them on line `line`; a CSV file's column names and delimiter
    (its header's); and the spill file to read the rows into."""

    path: str
    fmt: str
    start: int
    end: int
    line: int
    names: tuple[str, ...]
    delimiter: str
    out: str
    identity: tuple[int, int, int, int]  # the file's device, inode, size and time (`_identity`)
    given: str  # the file's name as the user gave it


def read(
    path: Path,
    fmt: str,
    spill: Spill,
    problems: list[Problem],
    progress: Progress | None,
    span: Span | None = None,
) -> int:
    """Check every row of the file (or of a span of it) and spill it; returns how many rows
    were read."""
    size = os.path.getsize(path)
    count = 0
    with path.open("rb") as handle:
        if span is None:
            numbered = enumerate(handle, 1)
            records = _csv(numbered, problems) if fmt == "csv" else _ndjson(numbered, problems)
            done, end = 0, size
        else:
            if _identity(handle) != span.identity:
                raise ConflictError(
                    f"{Path(span.given).name} was replaced or changed while it was imported; "
                    "nothing was imported: import it again once it is complete"
                )
            handle.seek(span.start)
            numbered = enumerate(_within(handle, span.end - span.start), span.line)
            records = (
                _csv_span(numbered, span, problems) if fmt == "csv" else _ndjson(numbered, problems)
            )
            done, end = span.start, span.end
        for line, cells in records:
            count += 1
            check(line, cells, spill, problems)
            if progress and count % 1000 == 0:
                position = handle.tell()
                progress(READING, position - done, size)
                done = position
        if progress:
            progress(READING, end - done, size)
    return count


def read_shared(
    register: Register,
    path: Path,
    fmt: str,
    spill: Spill,
    problems: list[Problem],
    progress: Progress | None,
    *,
    folder: Path,
    started: list[fanout.Started],
) -> int:
    """`read`, with a large file shared among processes (fanout.py) by spans of its records,
    this one reading the first into `spill` and each other one into a spill file of its
    own, added to `spill` after it, in order. Where any process finds a problem, this one
    reads the whole file again alone: the problems are then listed exactly as one reading
    finds them (a stray quote can also make a span start inside a quoted cell: the span
    before it then ends inside quotes, which the CSV reader reports)."""
    size = os.path.getsize(path)
    real = shareable(path)
    spans = _spans(real, fmt, processes(path), folder, path) if real else []
    if len(spans) < 2:
        return read(path, fmt, spill, problems, progress)

    def reading(step: int) -> None:
        if progress:
            progress(READING, step, size)

    def here(span: Span, told: Callable[[int], None]) -> tuple[int, list[Problem]]:
        mine: list[Problem] = []
        count = read(Path(span.path), fmt, spill, mine, lambda _, step, __: told(step), span)
        return count, mine

    reading(spans[0].start)  # the header
    found: list[tuple[int, list[Problem]]] = fanout.results(
        register.location,
        "twinflow.importer:read_part",
        spans,
        reading,
        here=here,
        started=started,
        doing="reading the file",
    )
    if any(mine for _, mine in found):
        spill.clear()
        return read(path, fmt, spill, problems, None)  # its progress is shown already
    for span in spans[1:]:
        spill.merge(Path(span.out))
    return sum(count for count, _ in found)


def read_part(
    register: Register, span: Span, emit: Callable[[Any], None], progress: Callable[[int], None]
) -> None:
    """A worker process's span of a file (fanout.py): how many rows, and the problems."""
    problems: list[Problem] = []
    with Spill(Path(span.out)) as spill:
        count = read(Path(span.path), span.fmt, spill, problems, lambda _, s, __: progress(s), span)
        spill.share()
    emit((count, problems))


def processes(path: Path) -> int:
    """How many processes read the file at `path` (fanout.workers, by a guess at its rows; no
    more than check its cases, backfill.processes): one unless the others can open it by
    name as this one does (`shareable`)."""
    real = shareable(path)
    return backfill.processes(os.path.getsize(real) // ROW_BYTES) if real else 1


def shareable(path: Path) -> Path | None:
    """The name under which other processes open the file this one reads at `path`: a
    regular file's real path, never one under /dev or /proc (/dev/stdin is each process's
    own standard input); None where there is none (a pipe)."""
    try:
        real = Path(os.path.realpath(path))
        if real.parts[1:2] in (("dev",), ("proc",)) or not stat.S_ISREG(os.stat(real).st_mode):
            return None
        return real if os.path.samefile(real, path) else None
    except OSError:
        return None


def _spans(path: Path, fmt: str, parts: int, folder: Path, given: Path) -> list[Span]:
    """The file's records cut into `parts` spans at line ends outside quotes, this
    process's wider (SHARES); none where the header is not a plain line of names."""
    if parts < 2 or not os.path.getsize(path):
        return []
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        identity = _identity(handle)  # each process reads the very file cut here
        body, names, delimiter = 0, tuple[str, ...](), ""
        if fmt == "csv":
            body = data.find(b"\n") + 1
            found = _plain_header(data[:body])
            if not body or found is None:
                return []
            names, delimiter = found
        widths = [SHARES[0], *[SHARES[1]] * (parts - 1)]
        cuts, reached = [body], 0
        for width in widths[:-1]:
            reached += width
            near = body + (len(data) - body) * reached // sum(widths)
            if near <= cuts[-1]:
                break
            # the last cut ends a record, outside quotes: the count goes on from there
            cut = _record_end(data, cuts[-1], near, quoted=fmt == "csv")
            if cut is None:
                break
            cuts.append(cut)
        cuts.append(len(data))
        file, as_given = str(path), str(given)
        spans, line = list[Span](), _count(data, b"\n", 0, body) + 1
        for start, end in itertools.pairwise(cuts):
            if end > start:
                out = str(folder / f"read-{len(spans)}.db")
                span = Span(file, fmt, start, end, line, names, delimiter, out, identity, as_given)
                spans.append(span)
            line += _count(data, b"\n", start, end)
        return spans


def _identity(handle: IO[bytes]) -> tuple[int, int, int, int]:
    found = os.fstat(handle.fileno())
    return found.st_dev, found.st_ino, found.st_size, found.st_mtime_ns


def _record_end(data: mmap.mmap, start: int, near: int, *, quoted: bool = True) -> int | None:
    """The first line end at or after `near` outside quotes (an even number of them since
    `start`, a record's start: CSV's; NDJSON has no line end within a record), as the
    position after it."""
    end = data.find(b"\n", near)
    if end < 0:
        return None
    odd = _count(data, b'"', start, end) % 2 if quoted else 0
    while odd:
        after = data.find(b"\n", end + 1)
        if after < 0:
            return None
        odd ^= _count(data, b'"', end, after) % 2
        end = after
    return end + 1


def _count(data: mmap.mmap, byte: bytes, start: int, end: int) -> int:
    """How many times `byte` occurs from start up to end, a megabyte at a time."""
    return sum(data[at : min(at + CHUNK, end)].count(byte) for at in range(start, end, CHUNK))


def _plain_header(line: bytes) -> tuple[tuple[str, ...], str] | None:
    """A CSV header's names and delimiter, where it is one line of known, distinct names
    without quotes; None for any other, which `read` alone checks and reports."""
    try:
        text = line.removeprefix(BOM).decode("utf-8")
    except UnicodeDecodeError:
        return None
    if '"' in text:
        return None
    delimiter = _delimiter(text)
    names = [name.strip().lower() for name in text.rstrip("\r\n").split(delimiter)]
    if not _header_ok(names, []):
        return None
    return tuple(names), delimiter


def _within(handle: IO[bytes], length: int) -> Iterator[bytes]:
    """The lines of the next `length` bytes (which end with a line)."""
    for raw in handle:
        yield raw
        length -= len(raw)
        if length <= 0:
            return


# ---------------------------------------------------------------------------- CSV


def _delimiter(header: str) -> str:
    return ";" if header.count(";") > header.count(",") else ","


def _csv(
    numbered: Iterator[tuple[int, bytes]], problems: list[Problem]
) -> Iterator[tuple[int, Cells]]:
    lines = _decoded(numbered, problems)
    header = next(lines, None)
    if header is None or not header.strip():
        problems.append(
            Problem(1, None, None, "the file is empty: the first line must name the columns")
        )
        return
    delimiter = _delimiter(header)
    reader = csv.reader(chain([header], lines), delimiter=delimiter, strict=True)
    try:
        names = [name.strip().lower() for name in next(reader)]
    except csv.Error as error:
        problems.append(Problem(1, None, None, f"the header cannot be read ({error})"))
        return
    if not _header_ok(names, problems):
        return
    yield from _records(reader, names, delimiter, 0, problems)


def _csv_span(
    numbered: Iterator[tuple[int, bytes]], span: Span, problems: list[Problem]
) -> Iterator[tuple[int, Cells]]:
    reader = csv.reader(_decoded(numbered, problems), delimiter=span.delimiter, strict=True)
    yield from _records(reader, list(span.names), span.delimiter, span.line - 1, problems)


def _records(
    reader: Any, names: list[str], delimiter: str, offset: int, problems: list[Problem]
) -> Iterator[tuple[int, Cells]]:
    """The rows after the header, each with its line number (the reader's, after `offset`)."""
    start = offset + reader.line_num + 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            problems.append(
                Problem(start, None, None, f"the row cannot be read as CSV ({error}): check quotes")
            )
            start = offset + reader.line_num + 1
            continue
        line, start = start, offset + reader.line_num + 1
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


def _decoded(numbered: Iterator[tuple[int, bytes]], problems: list[Problem]) -> Iterator[str]:
    """The file's lines as text, each undecodable line reported with its number."""
    for number, raw in numbered:
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


def _ndjson(
    numbered: Iterator[tuple[int, bytes]], problems: list[Problem]
) -> Iterator[tuple[int, Cells]]:
    for number, raw in numbered:
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
