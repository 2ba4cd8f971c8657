"""The CSV import parser: a streamed body in arbitrary chunks as records and row errors."""

from __future__ import annotations

import csv
import io
import random
import time
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime

import pytest

from salesops_ingest.connectors.csv_import import (
    KINDS,
    MAPPING_PATH,
    CsvFormatError,
    CsvImport,
    RowError,
    RowSplitter,
    canonical_fields,
    column_names,
    load_aliases,
    parse_csv,
    split_rows,
)
from salesops_ingest.domain.mapping import _load
from salesops_ingest.domain.records import SourceRecord

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 28, 9, 30, tzinfo=UTC)
Item = SourceRecord | RowError


async def stream(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def parse(
    data: bytes | str, kind: str = "lead", *, size: int = 64 * 1024, **kwargs: int
) -> list[Item]:
    body = data.encode() if isinstance(data, str) else data
    gen = parse_csv(
        stream(body, size), kind=kind, tenant="t1", import_id="imp1", received_at=NOW, **kwargs
    )
    return [item async for item in gen]


def records(items: Iterable[Item]) -> list[SourceRecord]:
    return [i for i in items if isinstance(i, SourceRecord)]


def errors(items: Iterable[Item]) -> list[RowError]:
    return [i for i in items if isinstance(i, RowError)]


async def test_a_row_becomes_an_update_record_of_the_import() -> None:
    (rec,) = records(await parse("source_id,email,first_name\nL-1,ann@example.com,Ann\n"))
    assert rec == SourceRecord(
        source="csv",
        tenant="t1",
        object_type="lead",
        source_id="L-1",
        action="update",
        occurred_at=NOW,
        delivery_key="csv:imp1:1",
        properties={"email": "ann@example.com", "first_name": "Ann"},
        origin="IMPORT",
        sequence=1,
    )


async def test_aliases_and_header_case_spacing_and_separators() -> None:
    body = (
        " ID ,E-Mail,First Name,LAST_NAME,company name,Zip Code,Owner ID,Account-ID\n"
        "L-1,a@x.io,Ann,Lee,Acme,75001,R-9,A-3\n"
    )
    (rec,) = records(await parse(body))
    assert rec.source_id == "L-1"
    assert dict(rec.properties) == {
        "email": "a@x.io",
        "first_name": "Ann",
        "last_name": "Lee",
        "company": "Acme",
        "postal_code": "75001",
        "owner_source_id": "R-9",
        "account_source_id": "A-3",
    }


async def test_columns_and_ignored_columns_are_known_after_the_header() -> None:
    body = "Record ID,Email,Shoe Size,email address,,Notes\nL-1,a@x.io,44,b@x.io,,hi\n"
    imp = CsvImport(stream(body.encode()), kind="lead", tenant="t", import_id="i", received_at=NOW)
    await imp.read_header()
    assert imp.id_column == "Record ID"
    assert imp.columns == {"Record ID": "source_id", "Email": "email"}
    # unknown columns, and a second column for a field already filled (first one wins)
    assert imp.ignored_columns == ["Shoe Size", "email address", "Notes"]
    (rec,) = [item async for item in imp]
    assert isinstance(rec, SourceRecord)
    assert dict(rec.properties) == {"email": "a@x.io"}
    assert imp.rows == 1


async def test_reference_columns_of_each_kind() -> None:
    deal = await parse(
        "Opportunity ID,Deal Name,Account ID,Lead ID,Owner ID,Deal Stage,Close Value\n"
        "D-1,Big one,A-1,L-1,R-1,Won,1054\n",
        kind="deal",
    )
    assert records(deal)[0].source_id == "D-1"  # <kind> id is the id column
    assert dict(records(deal)[0].properties) == {
        "name": "Big one",
        "account_source_id": "A-1",
        "lead_source_id": "L-1",
        "owner_source_id": "R-1",
        "stage": "Won",
        "amount": "1054",
    }
    activity = await parse(
        "id,type,rep_source_id,Lead ID,Deal ID,account id,occurred_at\n"
        "X-1,call,R-1,L-1,D-1,A-1,2026-11-01T10:00:00Z\n",
        kind="activity",
    )
    assert dict(records(activity)[0].properties) == {
        "type": "call",
        "rep_source_id": "R-1",
        "lead_source_id": "L-1",
        "deal_source_id": "D-1",
        "account_source_id": "A-1",
        "occurred_at": "2026-11-01T10:00:00Z",
    }
    account = await parse("Account ID,Account Name,Parent ID\nA-1,Acme,A-0\n", kind="account")
    assert records(account)[0].source_id == "A-1"
    assert dict(records(account)[0].properties) == {"name": "Acme", "parent_source_id": "A-0"}


async def test_source_id_wins_over_the_kind_id_column() -> None:
    body = "source_id,Lead ID,email\nS-1,L-1,a@x.io\n"
    imp = CsvImport(stream(body.encode()), kind="lead", tenant="t", import_id="i", received_at=NOW)
    (rec,) = [item async for item in imp]
    assert isinstance(rec, SourceRecord)
    assert rec.source_id == "S-1"
    assert imp.ignored_columns == ["Lead ID"]
    assert "lead_source_id" not in rec.properties


async def test_bom_is_dropped_even_split_across_chunks() -> None:
    body = b"\xef\xbb\xbfsource_id,email\nL-1,a@x.io\n"
    for size in (1, 2, 3, 4, 100):
        (rec,) = records(await parse(body, size=size))
        assert rec.source_id == "L-1"
    # a BOM-only or tiny file
    with pytest.raises(CsvFormatError, match="empty"):
        await parse(b"\xef\xbb\xbf")
    with pytest.raises(CsvFormatError, match="no id column"):
        await parse(b"ab")


async def test_crlf_lf_and_a_missing_final_newline() -> None:
    body = "source_id,email\r\nL-1,a@x.io\r\nL-2,b@x.io\nL-3,c@x.io"
    recs = records(await parse(body))
    assert [(r.source_id, r.properties["email"]) for r in recs] == [
        ("L-1", "a@x.io"),
        ("L-2", "b@x.io"),
        ("L-3", "c@x.io"),
    ]


QUOTED = (
    "source_id,company,status\r\n"
    'L-1,"Acme, Inc.","line one\r\nline two"\r\n'
    'L-2,"Say ""hi""\nand, ""bye""",new\r\n'
    'L-3,"",""\r\n'
)


@pytest.mark.parametrize("size", [1, 7, 64 * 1024])
async def test_quoted_commas_newlines_and_quotes_across_chunk_boundaries(size: int) -> None:
    items = await parse(QUOTED, size=size)
    assert errors(items) == []
    assert [dict(r.properties) for r in records(items)] == [
        {"company": "Acme, Inc.", "status": "line one\r\nline two"},
        {"company": 'Say "hi"\nand, "bye"', "status": "new"},
        {},
    ]
    assert [r.sequence for r in records(items)] == [1, 2, 3]


async def test_empty_cells_are_omitted_and_values_trimmed() -> None:
    (rec,) = records(await parse("source_id,email,first_name,last_name\n L-1 ,, Ann ,   \n"))
    assert rec.source_id == "L-1"
    assert dict(rec.properties) == {"first_name": "Ann"}


async def test_short_rows_are_fine_and_long_rows_with_data_are_errors() -> None:
    items = await parse(
        "source_id,email,company\nL-1,a@x.io\nL-2,b@x.io,Acme,,\nL-3,c@x.io,Acme, Inc\n"
    )
    assert [r.source_id for r in records(items)] == ["L-1", "L-2"]
    (err,) = errors(items)
    assert err.row == 3
    assert err.source_id == "L-3"
    assert "4 cells" in err.error


async def test_no_id_column_is_a_format_error() -> None:
    with pytest.raises(CsvFormatError, match="no id column"):
        await parse("email,first_name\na@x.io,Ann\n")
    # the self reference of another kind is no id: "Account ID" in a lead import
    with pytest.raises(CsvFormatError, match="no id column"):
        await parse("Account ID,email\nA-1,a@x.io\n")


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b"", "empty"),
        (b"\n\r\n\n", "empty"),
        (b"source_id,\xff\xfemail\nL-1,a\n", "UTF-8"),
        (b'source_id,"email\n', "unterminated"),
    ],
)
async def test_unusable_files_are_format_errors(body: bytes, match: str) -> None:
    with pytest.raises(CsvFormatError, match=match):
        await parse(body)


async def test_unknown_kind_is_a_format_error() -> None:
    with pytest.raises(CsvFormatError, match="unknown kind"):
        CsvImport(stream(b""), kind="rep", tenant="t", import_id="i", received_at=NOW)
    with pytest.raises(CsvFormatError, match="unknown kind"):
        await parse("source_id\nX\n", kind="opportunity")


async def test_leading_blank_lines_blank_rows_and_rows_without_id() -> None:
    body = "\n\nsource_id,email\nL-1,a@x.io\n\n,,\n,b@x.io\nL-4,d@x.io\n"
    items = await parse(body)
    assert [(r.source_id, r.sequence) for r in records(items)] == [("L-1", 1), ("L-4", 5)]
    assert errors(items) == [RowError(row=4, error="no id (source_id is empty)")]


@pytest.mark.parametrize("size", [1, 7, 1000, 64 * 1024])
async def test_oversized_rows_are_errors_and_the_next_rows_parse(size: int) -> None:
    big = "x" * 300
    body = (
        "source_id,company,status\n"
        "L-1,Acme,new\n"
        f"L-2,{big},new\n"  # one long line
        f'L-3,"{big[:100]}\n{big[:100]}\n, ""{big[:100]}""",new\r\n'  # many short lines
        f'L-4,"{big}",new'  # the last row, unterminated line
        "\nL-5,Beta,open\n"
    )
    items = await parse(body, size=size, max_row_bytes=200)
    assert [(r.source_id, r.sequence) for r in records(items)] == [("L-1", 1), ("L-5", 5)]
    assert errors(items) == [
        RowError(row=n, error="row is larger than 200 bytes") for n in (2, 3, 4)
    ]


async def test_oversized_row_at_the_end_and_unterminated_quote() -> None:
    items = await parse('source_id,company\nL-1,"' + "y" * 500, max_row_bytes=100)
    assert errors(items) == [RowError(row=1, error="row is larger than 100 bytes")]
    items = await parse('source_id,company\nL-1,ok\nL-2,"open\nstill open')
    assert [r.source_id for r in records(items)] == ["L-1"]
    assert errors(items) == [
        RowError(row=2, error="unterminated quoted field at the end of the file")
    ]


async def test_the_row_limit_counts_the_row_not_the_added_final_newline() -> None:
    row = "L-1," + "z" * 16  # 20 bytes
    assert records(await parse(f"source_id,company\n{row}", max_row_bytes=20))
    assert errors(await parse(f"source_id,company\n{row}\n", max_row_bytes=20))
    assert records(await parse(f"source_id,company\n{row}\n", max_row_bytes=21))


@pytest.mark.parametrize("size", [1, 7, 64 * 1024])
async def test_invalid_utf8_row_is_an_error_and_the_rest_parses(size: int) -> None:
    body = b"source_id,company\nL-1,Caf\xc3\xa9\nL-2,Caf\xe9\nL-3,\xe2\x82\xac ok\n"
    items = await parse(body, size=size)
    assert [(r.source_id, r.properties["company"]) for r in records(items)] == [
        ("L-1", "Café"),
        ("L-3", "€ ok"),
    ]
    (err,) = errors(items)
    assert err.row == 2
    assert "UTF-8" in err.error


async def test_an_unreadable_row_is_an_error() -> None:
    items = await parse("source_id,company\nL-1,a\rb\nL-2,ok\n")
    assert [r.source_id for r in records(items)] == ["L-2"]
    assert errors(items)[0].row == 1


def test_splitter_agrees_with_the_csv_module_on_random_input() -> None:
    rng = random.Random(7)
    tokens = ["a", "bc", ",", '"', '""', "\n", "\r\n", " ", "é"]
    for _ in range(3000):
        text = "".join(rng.choice(tokens) for _ in range(rng.randint(0, 25)))
        expected = list(csv.reader(io.StringIO(text, newline="")))
        data = text.encode()
        size = rng.choice([1, 2, 3, 7, 100])
        splitter = RowSplitter()
        items = []
        for i in range(0, len(data), size):
            items += splitter.feed(data[i : i + size])
        items += splitter.close()
        rows = [r for r in items if isinstance(r, bytes)]
        parsed = [next(csv.reader([r.decode()])) for r in rows]
        if len(rows) < len(items):  # an unterminated last row: csv half-reads it, we report it
            assert len(rows) == len(items) - 1
            assert not isinstance(items[-1], bytes)
            assert parsed == expected[: len(parsed)], text
        else:
            assert parsed == expected, text
    assert list(split_rows(b'a,"b\nc"\nd')) == [b'a,"b\nc"', b"d"]


def test_csv_yaml_is_the_identity_mapping_of_every_kind() -> None:
    mapping = _load(MAPPING_PATH)
    assert mapping.source == "csv"
    for kind in KINDS:
        obj = mapping.object(kind)
        assert obj.kind == kind
        assert dict(obj.fields) == {f: f for f in canonical_fields(kind)}
    assert mapping.object("deal").stage_field == "stage"
    assert mapping.stages["Won"] == ("Won", "won")
    assert mapping.stages["Lost"] == ("Lost", "lost")
    assert mapping.stages["Prospecting"] == ("Prospecting", None)


def test_aliases_name_known_fields_and_do_not_collide() -> None:
    aliases = load_aliases()
    for kind in KINDS:
        fields = set(canonical_fields(kind)) | {"source_id", f"{kind}_source_id"}
        names = column_names(kind, aliases)
        assert set(names.values()) <= fields
        for field in canonical_fields(kind):
            assert names[field.replace("_", " ")] == field  # canonical names always win
    every_field = {f for k in KINDS for f in canonical_fields(k)} | {"source_id"}
    every_field |= {f"{k}_source_id" for k in KINDS}
    seen: dict[tuple[str, str], str] = {}
    for key, names_ in aliases.items():
        scope, _, field = key.rpartition(".")
        assert field in every_field, key
        assert scope in ("", *KINDS), key
        for name in names_:
            assert (scope, name) not in seen, f"{name!r}: {seen.get((scope, name))} and {key}"
            seen[(scope, name)] = key


async def test_parsing_100k_rows_takes_about_a_second() -> None:
    header = "source_id,email,first_name,last_name,company,country,owner_source_id,status\r\n"
    row = 'L-{n},user{n}@example.com,Ann,Lee,"Acme, Inc.",FR,R-{r},new\r\n'
    body = (header + "".join(row.format(n=n, r=n % 50) for n in range(100_000))).encode()
    start = time.perf_counter()
    items = await parse(body, size=64 * 1024)
    elapsed = time.perf_counter() - start
    assert len(records(items)) == 100_000
    print(f"\nCSV import: 100,000 rows ({len(body) / 1e6:.1f} MB) parsed in {elapsed:.2f} s")
