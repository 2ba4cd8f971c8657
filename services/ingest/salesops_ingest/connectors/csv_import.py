"""CSV connector: a streamed CSV body (``POST /v1/imports``) as records, one per row.

Use :class:`CsvImport` when the header's columns are needed (the import report lists the
ignored ones), :func:`parse_csv` when only the rows are::

    rows = CsvImport(request.stream(), kind="lead", tenant="default",
                     import_id=import_id, received_at=now)
    await rows.read_header()          # CsvFormatError: answer 400/422, nothing is stored
    async for item in rows:           # SourceRecord | RowError, in file order
        ...
    rows.ignored_columns              # set once the header is read

The body is never held whole: bytes are cut into rows by a quote-aware splitter (a newline
inside a quoted field does not end the row), each row is decoded and parsed by :mod:`csv` on
its own, so a bad row (not UTF-8, over ``max_row_bytes``, no id) becomes a :class:`RowError`
and the next rows parse normally. An oversized row is dropped as it streams in: at most
``max_row_bytes`` of it are ever buffered.

Rows follow RFC 4180 as Python's :mod:`csv` reads it: comma-separated, ``"`` quotes, ``""``
inside a quoted field, CRLF or LF line endings; a UTF-8 BOM is dropped.

Columns: a header name fills the canonical field of the same name (the kind's input fields,
references by source id: ``owner_source_id``, ``account_source_id``...) or one the
``aliases`` of ``mappings/csv.yaml`` give it; names are compared trimmed, case-insensitively,
with runs of spaces, ``_`` and ``-`` counting as one space. ``source_id`` (or an alias: ``id``,
``record id``, ``external id``; else the ``<kind>_source_id`` column, e.g. "Lead ID" in a lead
import) is the record's id and is required. Other columns, and repeats of a filled field, are
ignored and listed in :attr:`CsvImport.ignored_columns`.

Rows: row numbers count data rows from 1 (the header is row 0), blank rows included, so they
point into the file. Blank rows (also rows of empty cells) are skipped without error. Cells are
trimmed and empty ones are omitted: an empty cell means unknown, not cleared. A row with more
non-empty cells than the header has columns is an error (often an unquoted comma). Values are
passed as text: the mapping layer coerces them and reports type errors.

Formulas (CSV injection): a cell beginning with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
return is a formula to a spreadsheet that opens a file the value ends up in. Such a cell is
taken as text with a ``'`` in front (OWASP's advice), so it is never passed on as a formula;
numbers and phone numbers (``-12.5``, ``+1 (415) 555-0100``) are left as they are.
"""

from __future__ import annotations

import csv
import enum
import os
import re
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path

import yaml

from salesops_ingest.domain.model import INPUT_MODELS
from salesops_ingest.domain.records import SourceRecord

SOURCE = "csv"
ORIGIN = "IMPORT"
KINDS = ("lead", "account", "deal", "activity")
MAX_ROW_BYTES = 64 * 1024
MAPPING_PATH = Path(__file__).resolve().parent.parent / "mappings" / "csv.yaml"
ID_FIELD = "source_id"
_BOM = b"\xef\xbb\xbf"
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER_LIKE = re.compile(r"[+-]?[0-9][0-9 ().,/-]*")


@dataclass(frozen=True, slots=True)
class RowError:
    """A data row that cannot become a record; the other rows are unaffected."""

    row: int  # 1-based data row number (header is row 0)
    error: str
    source_id: str | None = None


class CsvFormatError(ValueError):
    """The whole file is unusable (no header, no id column, unknown kind, header not UTF-8)."""


# --- header names ---------------------------------------------------------------------------

_SEPARATORS = re.compile(r"[\s_\-]+")


def normalize_column(name: str) -> str:
    """The form header names and aliases are compared in: "First_Name " -> "first name"."""
    return _SEPARATORS.sub(" ", name.strip().lower()).strip()


def canonical_fields(kind: str) -> tuple[str, ...]:
    """The properties a row of ``kind`` may carry (the kind's input fields minus its id)."""
    return tuple(f for f in INPUT_MODELS[kind].model_fields if f != ID_FIELD)


@lru_cache(maxsize=8)
def _aliases_from(path: str) -> dict[str, tuple[str, ...]]:
    doc = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    raw = doc.get("aliases") or {}
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: 'aliases' must map a field to a list of header names")
    aliases: dict[str, tuple[str, ...]] = {}
    for key, names in raw.items():
        if isinstance(names, str):
            names = [names]
        if not isinstance(names, list):
            raise ValueError(f"{path}: aliases.{key} must be a list of header names")
        aliases[str(key)] = tuple(str(n) for n in names)
    return aliases


def load_aliases(directory: str | None = None) -> dict[str, tuple[str, ...]]:
    """The ``aliases`` section of ``csv.yaml``: from ``directory`` (default
    ``SALESOPS_INGEST_MAPPINGS_DIR``) when it holds a ``csv.yaml``, else the shipped file."""
    override = directory or os.environ.get("SALESOPS_INGEST_MAPPINGS_DIR")
    path = MAPPING_PATH
    if override and (Path(override) / "csv.yaml").is_file():
        path = Path(override) / "csv.yaml"
    return _aliases_from(str(path))


def column_names(kind: str, aliases: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """Normalized header name -> property (or ``source_id``) for ``kind``. Priority, highest
    first: the canonical name, ``<kind>.<field>`` aliases, ``<field>`` aliases; aliases of
    fields the kind does not have are left out."""
    fields = set(canonical_fields(kind)) | {ID_FIELD, f"{kind}_source_id"}
    names: dict[str, str] = {}
    kind_specific: dict[str, str] = {}
    for key, alias_list in aliases.items():
        scope, _, field = key.rpartition(".")
        if field not in fields or (scope and scope != kind):
            continue
        target = kind_specific if scope else names
        for alias in alias_list:
            target[normalize_column(alias)] = field
    names.update(kind_specific)
    names.update({normalize_column(f): f for f in fields})
    return names


# --- rows out of a byte stream ----------------------------------------------------------------


class _Bad(enum.Enum):
    OVERSIZED = "oversized"
    UNTERMINATED = "unterminated"


_Item = bytes | _Bad

# A physical line (no "\n"), read from the start of a row: fullmatch iff the row ends there.
# Possessive quantifiers: a quoted field closes at the first '"' not followed by another.
# After a closing quote, Python's csv keeps any further characters of the field.
_FIELD = rb'(?:"(?:[^"]|"")*+"[^,]*+|[^,"][^,]*+|)'
_CLOSED_LINE = re.compile(_FIELD + rb"(?:," + _FIELD + rb")*+")
# The same from inside a quoted field: the field's end, then the rest of the row.
_QUOTED_END = re.compile(rb'(?:[^"]|"")*+"')
_REST = re.compile(rb"[^,]*+(?:," + _FIELD + rb")*+")
_COMMA_OR_NL = re.compile(rb"[,\n]")

# Scanner states, used only while an oversized row is being skipped.
_START, _UNQUOTED, _QUOTED, _QUOTE = range(4)
_Q, _C, _NL = ord('"'), ord(","), ord("\n")


def _scan(data: bytes, i: int, state: int) -> tuple[int, int]:
    """Follow ``data`` from ``i`` in ``state``: (index after the row's final newline, or -1
    if the row goes on past ``data``; the state there)."""
    n = len(data)
    while i < n:
        if state == _QUOTED:
            j = data.find(b'"', i)
            if j < 0:
                return -1, _QUOTED
            i, state = j + 1, _QUOTE
            continue
        if state == _UNQUOTED:
            m = _COMMA_OR_NL.search(data, i)
            if m is None:
                return -1, _UNQUOTED
            if data[m.start()] == _NL:
                return m.start() + 1, _START
            i, state = m.end(), _START
            continue
        c = data[i]
        i += 1
        if state == _QUOTE and c == _Q:
            state = _QUOTED  # an escaped quote
        elif state == _START and c == _Q:
            state = _QUOTED
        elif c == _C:
            state = _START
        elif c == _NL:
            return i, _START
        else:
            state = _UNQUOTED
    return -1, state


class RowSplitter:
    """Cuts a byte stream into CSV rows: :meth:`feed` chunks, get back complete rows (without
    their line ending) or ``_Bad.OVERSIZED`` for a row of more than ``max_row_bytes`` bytes
    (line ending included), whose bytes are dropped as they come; :meth:`close` at the end."""

    def __init__(self, max_row_bytes: int = MAX_ROW_BYTES) -> None:
        self.max_row_bytes = max_row_bytes
        self._lines: list[bytes] = []  # complete physical lines of the current row
        self._size = 0  # their bytes
        self._open = False  # the current row continues past its last complete line
        self._tail: list[bytes] = []  # the current partial line
        self._tail_size = 0
        self._skipping = False
        self._skip_state = _START

    def feed(self, data: bytes) -> list[_Item]:
        out: list[_Item] = []
        pos = 0
        if self._skipping:
            pos, self._skip_state = _scan(data, 0, self._skip_state)
            if pos < 0:
                return out
            self._skipping = False
            out.append(_Bad.OVERSIZED)
        nl = data.find(b"\n", pos)
        if nl < 0:
            self._add_tail(data, pos, out)
            return out
        if self._tail:
            self._tail.append(data[pos:])
            data = b"".join(self._tail)
            pos, nl = 0, self._tail_size + nl - pos
            self._tail, self._tail_size = [], 0
        limit = self.max_row_bytes
        while nl >= 0:
            self._size += nl + 1 - pos
            if self._open:
                m = _QUOTED_END.match(data, pos, nl)
                closed = m is not None and _REST.fullmatch(data, m.end(), nl) is not None
            else:
                closed = _CLOSED_LINE.fullmatch(data, pos, nl) is not None
            if self._size > limit:
                self._lines, self._size = [], 0
                if not closed:
                    self._open = False
                    end, state = _scan(data, nl + 1, _QUOTED)
                    if end < 0:
                        self._skipping, self._skip_state = True, state
                        return out
                    out.append(_Bad.OVERSIZED)
                    pos = end
                    nl = data.find(b"\n", pos)
                    continue
                out.append(_Bad.OVERSIZED)
                self._open = False
            elif closed:
                end = nl - 1 if nl > pos and data[nl - 1] == 0x0D else nl
                if self._lines:
                    self._lines.append(data[pos:end])
                    out.append(b"".join(self._lines))
                    self._lines = []
                else:
                    out.append(data[pos:end])
                self._size = 0
                self._open = False
            else:
                self._lines.append(data[pos : nl + 1])
                self._open = True
            pos = nl + 1
            nl = data.find(b"\n", pos)
        self._add_tail(data, pos, out)
        return out

    def _add_tail(self, data: bytes, pos: int, out: list[_Item]) -> None:
        if pos >= len(data):
            return
        piece = data[pos:] if pos else data
        self._tail.append(piece)
        self._tail_size += len(piece)
        if self._size + self._tail_size > self.max_row_bytes:
            state = _QUOTED if self._open else _START
            for part in self._tail:
                _, state = _scan(part, 0, state)
            self._lines, self._size, self._open = [], 0, False
            self._tail, self._tail_size = [], 0
            self._skipping, self._skip_state = True, state

    def close(self) -> list[_Item]:
        """The last row when the stream does not end with a newline."""
        if self._skipping:
            self._skipping = False
            return [_Bad.OVERSIZED]
        if not self._tail and not self._lines:
            return []
        self.max_row_bytes += 1  # the newline added here is not the row's
        try:
            out = self.feed(b"\n")
        finally:
            self.max_row_bytes -= 1
        if self._skipping:  # an unterminated row that also went over the limit
            self._skipping = False
            out.append(_Bad.OVERSIZED)
        elif self._lines:
            self._lines, self._size, self._open = [], 0, False
            out.append(_Bad.UNTERMINATED)
        return out


async def _batches(chunks: AsyncIterable[bytes], max_row_bytes: int) -> AsyncIterator[list[_Item]]:
    splitter = RowSplitter(max_row_bytes)
    head = b""
    started = False
    async for chunk in chunks:
        if not chunk:
            continue
        if not started:
            head += chunk
            if len(head) < len(_BOM):
                continue
            chunk, started = head.removeprefix(_BOM), True
        items = splitter.feed(chunk)
        if items:
            yield items
    items = splitter.feed(head.removeprefix(_BOM)) if not started else []
    items += splitter.close()
    if items:
        yield items


def defuse_formula(value: str) -> str:
    """``value`` as text a spreadsheet will not evaluate (see the module's docstring)."""
    if value.startswith(_FORMULA_START) and not _NUMBER_LIKE.fullmatch(value):
        return "'" + value
    return value


def _cells(text: str) -> list[str]:
    return next(csv.reader((text,)))


# --- the import -----------------------------------------------------------------------------


class CsvImport:
    """One CSV import: async-iterate it for ``SourceRecord | RowError`` in row order.

    ``kind`` must be one of :data:`KINDS` (:class:`CsvFormatError` otherwise, at construction).
    :meth:`read_header` reads the header row (iteration calls it first when nobody did) and
    raises :class:`CsvFormatError` when the file is unusable; after it, :attr:`columns`
    (header name -> property, ``source_id`` for the id column), :attr:`id_column` and
    :attr:`ignored_columns` (in file order) are set. :attr:`rows` counts data rows read so far.
    The chunk stream is consumed once: iterate an instance once.
    """

    def __init__(
        self,
        chunks: AsyncIterable[bytes],
        *,
        kind: str,
        tenant: str,
        import_id: str,
        received_at: datetime,
        max_row_bytes: int = MAX_ROW_BYTES,
        aliases: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        if kind not in KINDS:
            raise CsvFormatError(f"unknown kind {kind!r}: expected one of {', '.join(KINDS)}")
        self.kind = kind
        self.tenant = tenant
        self.import_id = import_id
        self.received_at = received_at
        self.max_row_bytes = max_row_bytes
        self.columns: dict[str, str] = {}
        self.id_column: str | None = None
        self.ignored_columns: list[str] = []
        self.rows = 0
        self._names = column_names(kind, load_aliases() if aliases is None else aliases)
        self._batches = _batches(chunks, max_row_bytes)
        self._pending: deque[_Item] = deque()
        self._header_read = False
        self._targets: list[tuple[int, str]] = []
        self._id_index = -1
        self._width = 0

    async def _next_item(self) -> _Item | None:
        while not self._pending:
            batch = await anext(self._batches, None)
            if batch is None:
                return None
            self._pending.extend(batch)
        return self._pending.popleft()

    async def read_header(self) -> None:
        """Read the header row (leading blank lines skipped). Idempotent."""
        if self._header_read:
            return
        while True:
            item = await self._next_item()
            if item is None:
                raise CsvFormatError("the file is empty: no header row")
            if item is _Bad.OVERSIZED:
                raise CsvFormatError(f"the header row is larger than {self.max_row_bytes} bytes")
            if item is _Bad.UNTERMINATED:
                raise CsvFormatError("the header row has an unterminated quoted field")
            assert isinstance(item, bytes)
            try:
                text = item.decode("utf-8")
            except UnicodeDecodeError:
                raise CsvFormatError("the header row is not valid UTF-8") from None
            try:
                header = _cells(text)
            except csv.Error as exc:
                raise CsvFormatError(f"the header row cannot be read: {exc}") from None
            if any(h.strip() for h in header):
                break
        self._set_columns(header)
        self._header_read = True

    def _set_columns(self, header: list[str]) -> None:
        self._width = len(header)
        self_ref = f"{self.kind}_source_id"  # "Lead ID" in a lead import: not a field
        fields = set(canonical_fields(self.kind))
        found: dict[str, int] = {}
        ignored: list[int] = []
        for index, raw in enumerate(header):
            target = self._names.get(normalize_column(raw)) if raw.strip() else None
            if target is None or target in found:
                ignored.append(index)
            else:
                found[target] = index
        id_field = ID_FIELD if ID_FIELD in found else self_ref
        if id_field not in found:
            ids = sorted(a for a, f in self._names.items() if f == ID_FIELD)
            raise CsvFormatError(
                f"no id column: name one {ID_FIELD!r} (or one of {', '.join(map(repr, ids))}, "
                f"or '{self.kind} id')"
            )
        self._id_index = found[id_field]
        self.id_column = header[self._id_index].strip()
        self._targets = sorted((i, f) for f, i in found.items() if f in fields)
        ignored += [i for f, i in found.items() if f != id_field and f not in fields]
        named = sorted([*self._targets, (self._id_index, ID_FIELD)])
        self.columns = {header[i].strip(): f for i, f in named}
        self.ignored_columns = [header[i].strip() for i in sorted(ignored) if header[i].strip()]

    def __aiter__(self) -> AsyncIterator[SourceRecord | RowError]:
        return self._items()

    async def _items(self) -> AsyncIterator[SourceRecord | RowError]:
        await self.read_header()
        while True:
            item = await self._next_item()
            if item is None:
                return
            self.rows += 1
            result = self._row(self.rows, item)
            if result is not None:
                yield result

    def _row(self, row: int, item: _Item) -> SourceRecord | RowError | None:
        if item is _Bad.OVERSIZED:
            return RowError(row, f"row is larger than {self.max_row_bytes} bytes")
        if item is _Bad.UNTERMINATED:
            return RowError(row, "unterminated quoted field at the end of the file")
        assert isinstance(item, bytes)
        try:
            text = item.decode("utf-8")
        except UnicodeDecodeError as exc:
            return RowError(row, f"row is not valid UTF-8 (byte {exc.start + 1} of the row)")
        try:
            cells = _cells(text)
        except csv.Error as exc:
            return RowError(row, f"row cannot be read: {exc}")
        n = len(cells)
        source_id = defuse_formula(cells[self._id_index].strip()) if self._id_index < n else ""
        if not source_id:
            if not any(c.strip() for c in cells):
                return None  # a blank row
            return RowError(row, f"no id ({self.id_column} is empty)")
        if n > self._width and any(c.strip() for c in cells[self._width :]):
            return RowError(
                row,
                f"row has {n} cells but the header has {self._width} columns "
                "(a comma in an unquoted value?)",
                source_id,
            )
        properties: dict[str, str] = {}
        for index, name in self._targets:
            if index < n:
                value = cells[index].strip()
                if value:
                    properties[name] = defuse_formula(value)
        return SourceRecord(
            source=SOURCE,
            tenant=self.tenant,
            object_type=self.kind,
            source_id=source_id,
            action="update",
            occurred_at=self.received_at,
            delivery_key=f"csv:{self.import_id}:{row}",
            properties=properties,
            origin=ORIGIN,
            sequence=row,
        )


async def parse_csv(
    chunks: AsyncIterable[bytes],
    *,
    kind: str,
    tenant: str,
    import_id: str,
    received_at: datetime,
    max_row_bytes: int = MAX_ROW_BYTES,
) -> AsyncIterator[SourceRecord | RowError]:
    """The rows of a CSV body (see :class:`CsvImport`, which also gives the header's columns).
    Raises :class:`CsvFormatError` on the first iteration when the file is unusable."""
    rows = CsvImport(
        chunks,
        kind=kind,
        tenant=tenant,
        import_id=import_id,
        received_at=received_at,
        max_row_bytes=max_row_bytes,
    )
    async for item in rows:
        yield item


def split_rows(data: bytes, max_row_bytes: int = MAX_ROW_BYTES) -> Iterator[bytes | None]:
    """Rows of an in-memory body, ``None`` for oversized or unterminated ones (tests, tools)."""
    splitter = RowSplitter(max_row_bytes)
    for item in [*splitter.feed(data), *splitter.close()]:
        yield item if isinstance(item, bytes) else None
