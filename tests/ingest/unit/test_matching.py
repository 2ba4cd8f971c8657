"""Duplicate-lead matching: each rule, and the people it must keep apart."""

from __future__ import annotations

import pytest

from salesops_ingest.domain.matching import (
    LeadIdentity,
    Match,
    best_match,
    blocking_keys,
    name_similarity,
)

pytestmark = pytest.mark.unit


def person(first: str | None, last: str | None, **ids: str) -> LeadIdentity:
    return LeadIdentity(first_name=first, last_name=last, **ids)


def match(new: LeadIdentity, existing: LeadIdentity) -> Match | None:
    return best_match(new, [("existing", existing)])


# Blocking keys -----------------------------------------------------------------------------


def test_blocking_keys_are_the_present_identifiers_in_order() -> None:
    lead = person("John", "Smith", email="j@acme.com", phone="+14155552671", domain="acme.com")
    last = ["mith", "sith", "smih", "smit", "smith", "smth"]  # itself and one letter left out
    assert blocking_keys(lead) == [
        ("email", "j@acme.com"),
        *[("phone_name", f"+14155552671/{v}") for v in last],
        ("phone_names", "+14155552671/john/smith"),
        *[("domain_name", f"acme.com/{v}") for v in last],
        ("domain_names", "acme.com/john/smith"),
    ]
    assert blocking_keys(LeadIdentity(phone="+14155552671", first_name="J")) == []
    assert blocking_keys(LeadIdentity(first_name="Jane", last_name="Doe", company="Acme")) == []
    assert blocking_keys(lead) == blocking_keys(lead)


def shares_a_key(a: LeadIdentity, b: LeadIdentity) -> bool:
    return not set(blocking_keys(a)).isdisjoint(blocking_keys(b))


def test_phone_and_domain_keys_need_both_names() -> None:
    """Neither phone_name nor domain_name matches without a first and a last name, so a lead
    without them is indexed by its e-mail alone: the leads of a company without names (as the
    soak posts them) are not one growing bucket every new lead is compared with."""
    nameless = LeadIdentity(email="j@acme.com", phone="+14155552671", domain="acme.com")
    assert blocking_keys(nameless) == [("email", "j@acme.com")]
    assert blocking_keys(person("Jane", None, domain="acme.com")) == []
    assert blocking_keys(person(None, "Doe", phone="+14155552671")) == []
    assert blocking_keys(person("Jane", "Doe", domain="acme.com"))  # both names: keyed


def test_a_short_last_name_is_keyed_by_itself_only() -> None:
    """Under four letters a last name takes no typo: only its own spelling is a key."""
    assert [v for t, v in blocking_keys(person("Jane", "Doe", domain="a.com"))] == [
        "a.com/doe",
        "a.com/doe/jane",
    ]


def test_colleagues_with_other_last_names_share_no_key() -> None:
    """What bounds the candidates: a new lead is compared with the leads of its company whose
    last name is one typo from its own (or its names swapped), not with the whole company."""
    new = person("Jane", "Doe", email="jane@acme.com", domain="acme.com")
    for first, last in [("John", "Miller"), ("Jane", "Smith"), ("Ann", "Dorsey"), ("Doe", "X")]:
        assert not shares_a_key(new, person(first, last, email="x@acme.com", domain="acme.com"))
    for first, last in [("John", "Doe"), ("Jane", "Does"), ("Doe", "Jane"), ("J.", "Doe")]:
        assert shares_a_key(new, person(first, last, domain="acme.com"))


_NAME_ALPHABET = "abcdeilmnorstuy"


def _typos(name: str) -> list[str]:
    """Every spelling one substitution, transposition, insertion or deletion away."""
    out = []
    for i in range(len(name) + 1):
        out += [name[:i] + c + name[i:] for c in _NAME_ALPHABET]  # insertion
        if i < len(name):
            out.append(name[:i] + name[i + 1 :])  # deletion
            out += [name[:i] + c + name[i + 1 :] for c in _NAME_ALPHABET]  # substitution
        if i < len(name) - 1:
            out.append(name[:i] + name[i + 1] + name[i] + name[i + 2 :])  # transposition
    return [t for t in out if t]


@pytest.mark.parametrize("rule", ["phone", "domain"])
def test_every_pair_the_rules_match_shares_a_key(rule: str) -> None:
    """Blocking loses no match: for names with every single typo in the first name, the last
    name, both, swapped, as an initial, with accents and case, each pair that phone_name or
    domain_name would match shares a blocking key (checked without blocking, pair by pair)."""
    ident = {"phone": PHONE} if rule == "phone" else {"domain": "acme.com"}
    bases = [
        ("John", "Smith"), ("Ann", "Lee"), ("Mary", "Doe"), ("Jonathan", "Oneil"),
        ("Søren", "Ørsted"), ("Anne", "van der Berg"), ("Li", "Wu"), ("Maria", "Rossi"),
    ]  # fmt: skip
    checked = 0
    for first, last in bases:
        existing = person(first, last, **ident)
        f, lname = first.lower(), last.lower().replace(" ", "")
        variants = [(t, last) for t in _typos(f)] + [(first, t) for t in _typos(lname)]
        variants += [(t, u) for t in _typos(f)[:20] for u in _typos(lname)[:20]]
        variants += [(last, first), (first[0] + ".", last), (first.upper(), last.title())]
        for new_first, new_last in variants:
            new = person(new_first, new_last, **ident)
            found = match(new, existing)
            if found is not None:
                checked += 1
                assert found.rule == f"{rule}_name"
                assert shares_a_key(new, existing), (new, existing)
    assert checked > 300  # the variants do exercise the rules


def test_a_phone_that_is_not_e164_is_no_key_and_no_match() -> None:
    """Normalization keeps an unparseable number as typed: "n/a" identifies nobody."""
    lead = person("Jane", "Doe", phone="n/a")
    assert blocking_keys(lead) == []
    assert match(lead, person("Jane", "Doe", phone="n/a")) is None
    assert blocking_keys(person("Jane", "Doe", phone="+")) == []


# Rule (a): e-mail --------------------------------------------------------------------------


def test_same_email_matches_whatever_the_names() -> None:
    existing = person("Jane", "Doe", email="jane@acme.com")
    new = person("J", None, email="jane@acme.com")
    assert match(new, existing) == Match("existing", "email", 1.0)


def test_different_email_alone_is_no_match() -> None:
    assert (
        match(person("Jane", "Doe", email="a@x.com"), person("Jane", "Doe", email="b@y.com"))
        is None
    )


# Rule (b): phone and a close name -----------------------------------------------------------

PHONE = "+4915123456789"


@pytest.mark.parametrize(
    ("existing", "new"),
    [
        (("Jane", "Doe"), ("Jane", "Doe")),
        (("Jane", "Doe"), ("JANE", "doe")),
        (("José", "Núñez"), ("Jose", "Nunez")),  # accent dropped
        (("Søren", "Ørsted"), ("Soren", "Orsted")),
        (("Jean-Luc", "Picard"), ("Jean Luc", "Picard")),
        (("Anne", "van der Berg"), ("Anne", "Van Der Berg")),
        (("Anne", "van der Berg"), ("Anne", "vanderberg")),
        (("Doe", "Jane"), ("Jane", "Doe")),  # swapped
        (("Jonathan", "Smith"), ("Jonathon", "Smith")),  # substitution
        (("Michael", "Johnson"), ("Micheal", "Johnson")),  # transposition
        (("Christopher", "Davis"), ("Christoper", "Davis")),  # deletion
        (("Sarah", "Connor"), ("Sarah", "Conor")),  # deletion in the last name
        (("Maria", "Gonzalez"), ("Maria", "Gonzales")),  # substitution in the last name
        (("Jhon", "Smith"), ("John", "Smith")),  # transposition in a 4-letter name
        (("J.", "Smith"), ("John", "Smith")),  # initial, identical last name
        (("John", "Smith"), ("J", "Smith")),
    ],
)
def test_phone_and_close_name_match(existing: tuple[str, str], new: tuple[str, str]) -> None:
    result = match(person(*new, phone=PHONE), person(*existing, phone=PHONE))
    assert result is not None
    assert result.rule == "phone_name"
    assert 0.8 < result.score <= 1.0


@pytest.mark.parametrize(
    ("existing", "new"),
    [
        (("John", "Smith"), ("Jane", "Smith")),  # family: other first name
        (("Maria", "Rossi"), ("Mario", "Rossi")),  # gendered forms of one name
        (("Daniel", "Meyer"), ("Daniela", "Meyer")),
        (("Paul", "Martin"), ("Paula", "Martin")),
        (("Luca", "Bianchi"), ("Lucas", "Bianchi")),
        (("Simon", "Dubois"), ("Simone", "Dubois")),
        (("John", "Smith"), ("Joan", "Smith")),  # short names one letter apart
        (("Tom", "Smith"), ("Tim", "Smith")),
        (("Jon", "Smith"), ("John", "Smith")),
        (("Wei", "Li"), ("Wei", "Lu")),
        (("Lisa", "Berg"), ("Lina", "Berg")),
        (("J.", "Smith"), ("Jane", "Smyth")),  # initial needs an identical last name
        (("K.", "Smith"), ("John", "Smith")),
        (("Anna", "Kowalska"), ("Jan", "Kowalski")),
        (("Jane", "Smith"), ("Jane", "Johnson")),
        (("Roberto", "Roberts"), ("Roberta", "Roberts")),  # no swap plus typo
        (("Jane", None), ("Jane", "Doe")),  # a part missing: nothing to confirm
        ((None, None), ("Jane", "Doe")),
    ],
)
def test_phone_and_different_name_do_not_match(
    existing: tuple[str | None, str | None], new: tuple[str | None, str | None]
) -> None:
    assert match(person(*new, phone=PHONE), person(*existing, phone=PHONE)) is None


def test_same_name_with_different_phone_is_no_match() -> None:
    assert (
        match(person("Jane", "Doe", phone="+14155552671"), person("Jane", "Doe", phone=PHONE))
        is None
    )


# Rule (c): company domain and a close full name ---------------------------------------------


def test_personal_and_work_email_match_by_domain_and_name() -> None:
    existing = person("Jane", "Doe", email="jane.doe@acme.com", domain="acme.com")
    new = person("Jane", "Doe", email="janedoe77@gmail.com", domain="acme.com")
    result = match(new, existing)
    assert result is not None
    assert result.rule == "domain_name"
    assert result.score == pytest.approx(0.97)


def test_domain_with_typo_in_name_matches() -> None:
    existing = person("Margaret", "Thompson", domain="acme.com")
    new = person("Margaret", "Tompson", domain="acme.com")
    result = match(new, existing)
    assert result is not None
    assert result.rule == "domain_name"
    assert result.score < 0.97


@pytest.mark.parametrize(
    ("existing", "new"),
    [
        (("John", "Smith"), ("Jane", "Smith")),  # colleagues sharing a last name
        (("John", "Smith"), ("John", "Miller")),  # same first name, other last name
        (("Daniel", "Weber"), ("Daniela", "Weber")),
        (("Mark", "Brown"), ("Karen", "Brown")),
    ],
)
def test_colleagues_do_not_match(existing: tuple[str, str], new: tuple[str, str]) -> None:
    old = person(*existing, domain="acme.com")
    assert match(person(*new, domain="acme.com"), old) is None
    assert match(person(*new, domain="acme.com", email="x@acme.com"), old) is None


def test_near_identical_mailboxes_are_different_people() -> None:
    existing = person("John", "Smith", email="john.smith@acme.com", domain="acme.com")
    new = person("Jon", "Smith", email="jon.smith@acme.com", domain="acme.com")
    assert match(new, existing) is None
    # even where a typo would otherwise be accepted
    existing = person("Catherine", "Jones", email="catherine.jones@acme.com", domain="acme.com")
    new = person("Katherine", "Jones", email="katherine.jones@acme.com", domain="acme.com")
    assert match(new, existing) is None
    new_without_mailbox = person("Katherine", "Jones", domain="acme.com")
    assert match(new_without_mailbox, existing) is not None


def test_two_mailboxes_with_identical_names_still_match() -> None:
    existing = person("Jane", "Doe", email="jane.doe@acme.com", domain="acme.com")
    new = person("Jane", "Doe", email="jdoe@acme.com", domain="acme.com")
    result = match(new, existing)
    assert result is not None
    assert result.rule == "domain_name"


def test_same_name_at_another_company_is_no_match() -> None:
    existing = person("John", "Smith", email="john.smith@acme.com", domain="acme.com")
    new = person("John", "Smith", email="john.smith@globex.com", domain="globex.com")
    assert match(new, existing) is None


# Choosing among candidates ------------------------------------------------------------------


def test_best_score_wins() -> None:
    new = person("Jane", "Doe", email="jane@acme.com", phone=PHONE, domain="acme.com")
    candidates = [
        (1, person("Jane", "Doe", domain="acme.com")),
        (2, person("Jane", "Doe", phone=PHONE)),
        (3, person("Janet", "Doe", email="jane@acme.com")),
        (4, person("Jane", "Doe", phone=PHONE, domain="acme.com")),
    ]
    assert best_match(new, candidates) == Match(3, "email", 1.0)
    assert best_match(new, candidates[:2]) == Match(2, "phone_name", 0.99)


def test_ties_go_to_the_first_candidate() -> None:
    new = person("Jane", "Doe", phone=PHONE)
    candidates = [
        ("a", person("Jane", "Doe", phone=PHONE)),
        ("b", person("JANE", "DOE", phone=PHONE)),
    ]
    assert best_match(new, candidates) == Match("a", "phone_name", 0.99)
    assert best_match(new, candidates[::-1]) == Match("b", "phone_name", 0.99)


def test_a_closer_name_beats_a_typo() -> None:
    new = person("Jonathan", "Smith", phone=PHONE)
    candidates = [
        ("typo", person("Jonathon", "Smith", phone=PHONE)),
        ("exact", person("Jonathan", "Smith", phone=PHONE)),
    ]
    result = best_match(new, candidates)
    assert result is not None
    assert result.lead_id == "exact"


def test_no_candidates_or_no_match() -> None:
    new = person("Jane", "Doe", phone=PHONE)
    assert best_match(new, []) is None
    assert best_match(new, [(1, person("Bob", "Doe", phone=PHONE))]) is None


def test_name_similarity_is_symmetric_and_bounded() -> None:
    pairs = [
        (person("Jonathan", "Smith"), person("Jonathon", "Smith")),
        (person("Jane", "Doe"), person("Doe", "Jane")),
        (person("J.", "Doe"), person("Jane", "Doe")),
        (person("John", "Smith"), person("Jane", "Smith")),
    ]
    for a, b in pairs:
        assert name_similarity(a, b) == name_similarity(b, a)
        assert 0.0 <= name_similarity(a, b) <= 1.0
