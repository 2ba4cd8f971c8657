"""Field normalization: each rule, table-driven."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from salesops_ingest.domain.normalize import (
    FREE_MAIL_DOMAINS,
    Normalized,
    company_domain,
    normalize_country,
    normalize_fields,
)

pytestmark = pytest.mark.unit


def lead(**fields: Any) -> Normalized:
    return normalize_fields("lead", fields)


# E-mail ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("john@acme.com", "john@acme.com"),
        ("  John.Smith@ACME.com ", "john.smith@acme.com"),
        ("\tjane+crm@Sub.Example.CO.UK\n", "jane+crm@sub.example.co.uk"),
        ("o'neil@example.ie", "o'neil@example.ie"),
    ],
)
def test_email_is_trimmed_and_lower_cased(raw: str, expected: str) -> None:
    result = normalize_fields("rep", {"email": raw})
    assert result.fields == {"email": expected}
    assert result.issues == ()


@pytest.mark.parametrize(
    "raw",
    [
        "john.acme.com",
        "john@@acme.com",
        "john@smith@acme.com",
        "@acme.com",
        "john@",
        "john@localhost",
        "john smith@acme.com",
        "john@acme .com",
        "john@acme..com",
        "john@.acme.com",
        "john@acme.com.",
    ],
)
def test_invalid_email_becomes_none_with_an_issue(raw: str) -> None:
    result = normalize_fields("rep", {"email": raw})
    assert result.fields == {"email": None}
    assert result.issues == ("invalid_email",)


def test_blank_and_none_email_clear_the_field_without_an_issue() -> None:
    assert normalize_fields("rep", {"email": "   "}) == Normalized({"email": None}, ())
    assert normalize_fields("rep", {"email": None}) == Normalized({"email": None}, ())


def test_email_is_not_touched_for_kinds_without_one() -> None:
    assert normalize_fields("deal", {"email": " X@Y "}).fields == {"email": " X@Y "}


# Phone -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"phone": "+1 (415) 555-2671"}, "+14155552671"),
        ({"phone": "+44 20 7946 0958"}, "+442079460958"),
        ({"phone": "0044 20 7946 0958"}, "+442079460958"),
        ({"phone": "0049-30-1234567"}, "+49301234567"),
        ({"phone": "tel:+33-1-42-68-53-00"}, "+33142685300"),
        ({"phone": "+1 415 555 2671 ext. 204"}, "+14155552671"),
        ({"phone": "+1 415-555-2671 x12"}, "+14155552671"),
        # national numbers take the record's country as the region hint
        ({"phone": "(415) 555-2671", "country": "USA"}, "+14155552671"),
        ({"phone": "020 7946 0958", "country": "United Kingdom"}, "+442079460958"),
        ({"phone": "030 1234567", "country": "de"}, "+49301234567"),
        ({"phone": "06 12 34 56 78", "country": "France"}, "+33612345678"),
        ({"phone": "02 1234 5678", "country": "AUS"}, "+61212345678"),
        ({"phone": "+49 30 1234567", "country": "US"}, "+49301234567"),  # + wins over hint
    ],
)
def test_phone_becomes_e164(fields: dict[str, Any], expected: str) -> None:
    result = lead(**fields)
    assert result.fields["phone"] == expected
    assert result.issues == ()


@pytest.mark.parametrize(
    "fields",
    [
        {"phone": "(415) 555-2671"},  # national, no country to hint the region
        {"phone": "020 7946 0958", "country": "Narnia"},  # unknown country: no hint either
        {"phone": "12"},
        {"phone": "+1 23"},
        {"phone": "call me"},
        {"phone": "+999 1234 5678"},  # no such country code
    ],
)
def test_unparseable_phone_keeps_the_trimmed_original_with_an_issue(
    fields: dict[str, Any],
) -> None:
    raw = fields["phone"]
    result = lead(**{**fields, "phone": f"  {raw} "})
    assert result.fields["phone"] == raw
    assert "invalid_phone" in result.issues


def test_country_hint_comes_only_from_the_same_record() -> None:
    without = lead(phone="030 1234567")
    assert without.fields == {"phone": "030 1234567"}
    assert without.issues == ("invalid_phone",)
    assert lead(phone="030 1234567", country="Germany").fields["phone"] == "+49301234567"


def test_phone_is_only_normalized_for_leads() -> None:
    assert normalize_fields("rep", {"phone": " 0301234567 "}).fields == {"phone": " 0301234567 "}


# Country -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("us", "US"),
        ("US", "US"),
        (" de ", "DE"),
        ("USA", "US"),
        ("DEU", "DE"),
        ("gbr", "GB"),
        ("United States", "US"),
        ("united states", "US"),
        ("Germany", "DE"),
        ("GERMANY", "DE"),
        ("U.S.", "US"),
        ("U.S.A.", "US"),
        ("United States of America", "US"),
        ("UK", "GB"),
        ("U.K.", "GB"),
        ("Great Britain", "GB"),
        ("England", "GB"),
        ("Scotland", "GB"),
        ("United Kingdom", "GB"),
        ("South Korea", "KR"),
        ("Korea, Republic of", "KR"),
        ("Republic of Korea", "KR"),
        ("North Korea", "KP"),
        ("Russia", "RU"),
        ("Russian Federation", "RU"),
        ("Czech Republic", "CZ"),
        ("Czechia", "CZ"),
        ("Holland", "NL"),
        ("The Netherlands", "NL"),
        ("Netherlands", "NL"),
        ("Turkey", "TR"),
        ("Türkiye", "TR"),
        ("Viet Nam", "VN"),
        ("Vietnam", "VN"),
        ("Côte d'Ivoire", "CI"),
        ("Cote d'Ivoire", "CI"),
        ("Ivory Coast", "CI"),
        ("St. Lucia", "LC"),
        ("Saint Kitts & Nevis", "KN"),
        ("Trinidad & Tobago", "TT"),
        ("Bosnia and Herzegovina", "BA"),
        ("Iran", "IR"),
        ("Iran, Islamic Republic of", "IR"),
        ("Bolivia", "BO"),
        ("Taiwan", "TW"),
        ("Hong Kong", "HK"),
        ("UAE", "AE"),
        ("United Arab Emirates", "AE"),
        ("Deutschland", "DE"),
        ("España", "ES"),
        ("México", "MX"),
        ("Brasil", "BR"),
        ("Schweiz", "CH"),
        ("Democratic Republic of the Congo", "CD"),
        ("Congo", "CG"),
        ("Åland Islands", "AX"),
        ("Kosovo", "XK"),
        ("Federal Republic of Germany", "DE"),
    ],
)
def test_country_becomes_alpha2(raw: str, expected: str) -> None:
    result = normalize_fields("account", {"country": raw})
    assert result.fields == {"country": expected}
    assert result.issues == ()


@pytest.mark.parametrize("raw", ["Narnia", "Europe", "XX", "ZZZ", "123", "North America"])
def test_unknown_country_keeps_the_trimmed_original_with_an_issue(raw: str) -> None:
    result = lead(country=f" {raw}  ")
    assert result.fields == {"country": raw}
    assert result.issues == ("unknown_country",)


def test_country_table_covers_every_iso_country() -> None:
    for code in ("AD", "AQ", "BV", "CW", "GS", "PN", "SX", "UM", "ZW"):
        assert normalize_country(code.lower()) == (code, True)
    for code3, code in (("AND", "AD"), ("ZWE", "ZW"), ("SRB", "RS"), ("TLS", "TL")):
        assert normalize_country(code3) == (code, True)


# Domain ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("acme.com", "acme.com"),
        ("ACME.COM", "acme.com"),
        ("www.acme.com", "acme.com"),
        ("mail.acme.com", "acme.com"),
        ("https://www.Shop.Example.co.uk/path", "example.co.uk"),
        ("http://acme.com:8080/x?y=1#z", "acme.com"),
        ("acme.com.", "acme.com"),
        ("//cdn.acme.com/lib.js", "acme.com"),
        ("https://user:pw@portal.acme.com/", "acme.com"),
        ("a.b.example.com.au", "example.com.au"),
        ("shop.example.co.jp", "example.co.jp"),
        ("example.com.br/contato", "example.com.br"),
        ("münchen.de", "xn--mnchen-3ya.de"),
        ("https://www.Bücher.example.de/", "example.de"),
        ("jane@sales.acme.co.uk", "acme.co.uk"),
    ],
)
def test_company_domain_is_the_registrable_domain(raw: str, expected: str) -> None:
    assert company_domain(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "co.uk",
        "com",
        "localhost",
        "192.168.0.1",
        "http://10.0.0.1:8080/",
        "[::1]",
        "n/a",
        "not a domain",
        "",
        "https://",
    ],
)
def test_no_company_domain(raw: str) -> None:
    assert company_domain(raw) is None


@pytest.mark.parametrize(
    "raw",
    [
        "gmail.com",
        "googlemail.com",
        "mail.yahoo.co.uk",
        "yahoo.co.jp",
        "hotmail.fr",
        "outlook.com",
        "icloud.com",
        "gmx.de",
        "web.de",
        "mail.ru",
        "yandex.ru",
        "proton.me",
        "qq.com",
        "https://www.163.com/",
    ],
)
def test_free_mail_domains_are_never_company_domains(raw: str) -> None:
    assert company_domain(raw) is None


def test_free_mail_list_is_large_and_clean() -> None:
    assert len(FREE_MAIL_DOMAINS) >= 300
    assert all(d == d.strip().lower() and "." in d for d in FREE_MAIL_DOMAINS)
    assert {"gmail.com", "yahoo.com", "hotmail.com", "aol.com", "hey.com"} <= FREE_MAIL_DOMAINS


@pytest.mark.parametrize(
    ("kind", "fields", "expected"),
    [
        ("lead", {"domain": "Acme.com"}, "acme.com"),
        ("lead", {"website": "https://www.acme.co.uk/about"}, "acme.co.uk"),
        ("lead", {"email": "Jane@Sales.Acme.com"}, "acme.com"),
        ("lead", {"email": "jane@gmail.com"}, None),
        ("lead", {"email": "not an email"}, None),
        ("lead", {"email": None}, None),
        # the first of domain, website, email that has a value
        (
            "lead",
            {"domain": "acme.com", "website": "other.com", "email": "j@third.com"},
            "acme.com",
        ),
        ("lead", {"website": "www.acme.com", "email": "j@third.com"}, "acme.com"),
        ("lead", {"domain": None, "website": "acme.com"}, "acme.com"),
        ("lead", {"domain": "  ", "email": "j@acme.com"}, "acme.com"),
        ("lead", {"website": "gmail.com", "email": "j@acme.com"}, None),
        ("account", {"website": "http://Shop.Example.com.au"}, "example.com.au"),
        ("account", {"domain": "www.acme.de"}, "acme.de"),
        ("account", {"domain": None}, None),
    ],
)
def test_domain_is_derived(kind: str, fields: dict[str, Any], expected: str | None) -> None:
    assert normalize_fields(kind, fields).fields["domain"] == expected


@pytest.mark.parametrize(
    ("kind", "fields"),
    [
        ("lead", {"first_name": "Jane"}),
        ("lead", {"phone": "+14155552671", "country": "US"}),
        ("account", {"name": "Acme", "email": "x@acme.com"}),  # accounts: not from email
        ("rep", {"email": "jane@acme.com"}),
        ("deal", {"website": "acme.com"}),
    ],
)
def test_domain_is_only_added_when_a_source_was_given(kind: str, fields: dict[str, Any]) -> None:
    assert "domain" not in normalize_fields(kind, fields).fields


def test_website_is_only_trimmed() -> None:
    result = lead(website="  https://WWW.Acme.com/Path  ")
    assert result.fields == {"website": "https://WWW.Acme.com/Path", "domain": "acme.com"}


# Names -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Jane   ", "Jane"),
        ("JANE", "Jane"),
        ("jane", "Jane"),
        ("Mary   Ann", "Mary Ann"),
        ("MARY-JANE", "Mary-Jane"),
        ("o'neil", "O'Neil"),
        ("O'NEIL", "O'Neil"),
        ("d'angelo", "D'Angelo"),
        ("mcdonald", "McDonald"),
        ("MCKENZIE", "McKenzie"),
        ("van der berg", "Van der Berg"),
        ("LUDWIG VAN BEETHOVEN", "Ludwig van Beethoven"),
        ("maría josé", "María José"),
        ("JOSÉ DE LA CRUZ", "José de la Cruz"),
        ("ÉLODIE", "Élodie"),
        ("ŁUKASZ", "Łukasz"),
        ("j.", "J."),
        # mixed case is kept as typed
        ("McDonald", "McDonald"),
        ("DeShawn", "DeShawn"),
        ("van Dijk", "van Dijk"),
        ("MacLeod", "MacLeod"),
        ("iPhone", "iPhone"),
    ],
)
def test_person_names(raw: str, expected: str) -> None:
    assert lead(first_name=raw, last_name=raw).fields == {
        "first_name": expected,
        "last_name": expected,
    }
    assert normalize_fields("rep", {"name": raw}).fields == {"name": expected}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Acme   Corp ", "Acme Corp"),
        ("ACME CORP", "Acme Corp"),
        ("acme inc.", "Acme Inc."),
        ("ACME GMBH & CO. KG", "Acme GmbH & Co. KG"),
        ("BANK OF AMERICA", "Bank of America"),
        ("the home depot", "The Home Depot"),
        ("MCDONALD'S CORPORATION", "McDonald's Corporation"),
        ("3M COMPANY", "3M Company"),
        ("IBM", "IBM"),
        ("SAP", "SAP"),
        ("salesforce.com, inc.", "Salesforce.com, Inc."),
        ("eBay Inc.", "eBay Inc."),
        ("ACME plc", "ACME plc"),  # mixed case: kept
    ],
)
def test_organization_names(raw: str, expected: str) -> None:
    assert lead(company=raw).fields == {"company": expected}
    assert normalize_fields("account", {"name": raw}).fields == {"name": expected}


def test_deal_names_are_only_trimmed_and_collapsed() -> None:
    fields = {"name": "  ACME  renewal   2025 "}
    assert normalize_fields("deal", fields).fields == {"name": "ACME renewal 2025"}


def test_blank_names_become_none() -> None:
    assert lead(first_name="   ", last_name="").fields == {"first_name": None, "last_name": None}


# Other fields ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "raw", "expected"),
    [
        ("region", "  California ", "California"),
        ("postal_code", " ec1a 1bb ", "EC1A 1BB"),
        ("postal_code", "94105", "94105"),
        ("industry", " Software ", "Software"),
        ("lead_source", " webinar ", "webinar"),
        ("status", " New ", "New"),
        ("region", "   ", None),
    ],
)
def test_trimmed_fields(field: str, raw: str, expected: str | None) -> None:
    assert lead(**{field: raw}).fields == {field: expected}
    assert normalize_fields("account", {field: raw}).fields == {field: expected}


def test_other_fields_pass_through_unchanged() -> None:
    created = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    fields = {
        "employees": 250,
        "annual_revenue": Decimal("1200000.50"),
        "currency": " eur ",
        "created_at": created,
        "owner_source_id": " 005xx ",
        "generated": False,
        "custom_thing": {"a": 1},
    }
    assert lead(**fields).fields == fields
    deal = {"amount": Decimal("10"), "stage": " Closed Won ", "closed_at": created}
    assert normalize_fields("deal", deal).fields == deal
    activity = {"type": "call", "subject": "  hello  "}
    assert normalize_fields("activity", activity).fields == activity


# Whole records -----------------------------------------------------------------------------


def test_typical_lead() -> None:
    result = lead(
        first_name="  JANE ",
        last_name="van der berg",
        email=" Jane.VanDerBerg@Acme.co.uk ",
        phone="020 7946 0958",
        company="ACME LTD",
        country="England",
        postal_code="ec1a 1bb",
        employees=250,
    )
    assert result == Normalized(
        {
            "first_name": "Jane",
            "last_name": "Van der Berg",
            "email": "jane.vanderberg@acme.co.uk",
            "phone": "+442079460958",
            "company": "Acme Ltd",
            "country": "GB",
            "postal_code": "EC1A 1BB",
            "employees": 250,
            "domain": "acme.co.uk",
        },
        (),
    )


def test_partial_update_stays_partial() -> None:
    assert lead(last_name="SMITH").fields == {"last_name": "Smith"}
    assert lead(status=" open ", employees=3).fields == {"status": "open", "employees": 3}
    assert normalize_fields("account", {"industry": "Retail"}).fields == {"industry": "Retail"}
    assert lead().fields == {}


def test_none_stays_none() -> None:
    fields = {
        "email": None,
        "phone": None,
        "country": None,
        "first_name": None,
        "company": None,
        "postal_code": None,
    }
    result = lead(**fields)
    assert result.fields == {**fields, "domain": None}
    assert result.issues == ()


def test_several_issues_at_once() -> None:
    result = lead(email="nope", phone="12345", country="Atlantis")
    assert result.fields == {"email": None, "phone": "12345", "country": "Atlantis", "domain": None}
    assert set(result.issues) == {"invalid_email", "invalid_phone", "unknown_country"}


def test_input_is_not_mutated() -> None:
    fields = {"email": " A@B.com ", "first_name": "ANN"}
    normalize_fields("lead", fields)
    assert fields == {"email": " A@B.com ", "first_name": "ANN"}


def test_unknown_kind_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown record kind"):
        normalize_fields("opportunity", {})
