"""The erasure contract's pure parts: which values are a person's, and redaction by value."""

from __future__ import annotations

from salesops_common.erasure import (
    PERSONAL_FIELDS,
    PersonalValues,
    fingerprint,
    nulled,
    redact,
    redact_items,
)

LEAD = {
    "email": "jane.doe@acme-corp.com",
    "first_name": "Jane",
    "last_name": "Doe",
    "phone": "+14155550132",
    "company": "Acme Corp",
    "website": "acme-corp.com",
    "postal_code": "94105",
    "country": "US",
    "industry": "Software",
}
VALUES = PersonalValues.of([LEAD])


def test_values_match_as_crms_send_them() -> None:
    for raw in (
        "  Jane.Doe@Acme-Corp.com ",
        "JANE",
        "doe",
        "Jane Doe",
        "Doe, Jane",
        "(415) 555-0132",
        "415.555.0132",
        "+1 415 555 0132",
        "https://www.acme-corp.com/",
        "ACME CORP",
        "94105",
    ):
        assert VALUES.matches(raw), raw


def test_other_values_and_longer_texts_do_not_match() -> None:
    for other in ("US", "Software", "Janet", "jane.doe@other.example", "Acme Corp deal", "415"):
        assert not VALUES.matches(other), other
    assert not VALUES.matches("(415) 555-0199")  # another number


def test_fingerprint_ignores_case_punctuation_and_url_decoration() -> None:
    assert fingerprint(" HTTPS://www.Acme-Corp.com/ ") == fingerprint("acme-corp.com")
    assert fingerprint("O'Brien") == "obrien"


def test_redact_nulls_the_leaves_that_are_personal_values_at_any_depth() -> None:
    document = {
        "objectId": 101,
        "propertyValue": "(415) 555-0132",
        "nested": [{"name": "Jane Doe", "stage": "won"}, 3, True, None],
    }
    out, changed = redact(document, VALUES)
    assert changed
    assert out == {
        "objectId": 101,
        "propertyValue": None,
        "nested": [{"name": None, "stage": "won"}, 3, True, None],
    }
    assert redact(out, VALUES) == (out, False)  # twice changes nothing


def test_redact_items_touches_only_the_items_naming_the_record() -> None:
    batch = [
        {"objectId": 101, "propertyName": "firstname", "propertyValue": "Jane"},
        {"objectId": 202, "propertyName": "firstname", "propertyValue": "Jane"},
        {"source_id": "101", "properties": {"email": "JANE.DOE@acme-corp.com"}},
    ]
    out, changed = redact_items(batch, VALUES, frozenset({"101"}))
    assert changed
    assert out[0]["propertyValue"] is None
    assert out[1]["propertyValue"] == "Jane"  # another contact of the same delivery
    assert out[2]["properties"]["email"] is None
    single = {"meta": {"id": "7"}, "data": {"email": "jane.doe@acme-corp.com"}}
    assert redact_items(single, VALUES, frozenset({"8"})) == (single, False)
    assert redact_items(single, VALUES, frozenset({"7"}))[0]["data"]["email"] is None


def test_nulled_keeps_every_field_that_is_not_personal() -> None:
    out = nulled({**LEAD, "id": "x", "owner_id": "y"})
    assert {k for k, v in out.items() if v is None} == set(PERSONAL_FIELDS)
    assert (out["country"], out["owner_id"], out["id"]) == ("US", "y", "x")


def test_no_values_match_nothing() -> None:
    empty = PersonalValues.of([{"email": None, "country": "US"}])
    assert not empty
    assert not empty.matches("US")
