"""Which existing account a new lead belongs to: id, then domain, then name, then fuzzy name."""

from __future__ import annotations

import json
import uuid
from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st

from salesops_common.free_mail import FREE_MAIL_DOMAINS, is_free_mail_domain
from salesops_routing.domain.accounts import (
    AccountCandidate,
    AccountMatch,
    choose_account,
    name_key,
    normalize_company,
)

pytestmark = pytest.mark.unit

OWNER = uuid.uuid4()


def account(name: str | None, domain: str | None = None, n: int | None = None) -> AccountCandidate:
    ident = uuid.uuid4() if n is None else UUID(int=n)
    return AccountCandidate(id=ident, name=name, domain=domain, owner_id=OWNER)


def choose(
    candidates: list[AccountCandidate],
    *,
    account_id: UUID | None = None,
    domain: str | None = None,
    company: str | None = None,
    threshold: float = 0.92,
) -> AccountMatch | None:
    return choose_account(
        lead_account_id=account_id,
        lead_domain=domain,
        lead_company=company,
        candidates=candidates,
        threshold=threshold,
    )


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("Acme Inc.", "acme"),
        ("ACME Corporation", "acme"),
        ("A.C.M.E. GmbH & Co. KG", "acme"),
        ("Société Générale S.A.", "societe generale"),
        ("The Boring Company", "boring"),
        ("McDonald's Corp", "mcdonalds"),
        ("Co-op Bank Ltd", "co op bank"),
        ("  Acme   Software  Pty Ltd ", "acme software"),
        ("Company", "company"),
        ("  ", None),
        (None, None),
    ],
)
def test_company_names_are_normalized(raw: str | None, normalized: str | None) -> None:
    assert normalize_company(raw) == normalized


def test_the_name_key_is_the_first_word_of_the_normalized_name() -> None:
    assert name_key("The Acme Software Inc") == "acme"
    assert name_key("") is None


def test_acme_inc_matches_acme_corporation() -> None:
    acme = account("ACME Corporation")
    found = choose([account("Acme Tools"), acme], company="Acme Inc.")
    assert found == AccountMatch(acme, "name", 1.0)


def test_the_crm_account_link_wins_over_everything() -> None:
    linked, same_domain = account("Other"), account("Acme", "acme.com")
    found = choose([same_domain, linked], account_id=linked.id, domain="acme.com", company="Acme")
    assert found is not None
    assert (found.account, found.method) == (linked, "account_id")


def test_the_same_domain_wins_over_the_name() -> None:
    by_name, by_domain = account("Acme"), account("Acme Holdings", "acme.com")
    found = choose([by_name, by_domain], domain="WWW.Acme.com ", company="Acme")
    assert found is not None
    assert (found.account, found.method) == (by_domain, "domain")


def test_a_free_mail_domain_never_matches_an_account() -> None:
    gmail = account("Jane's Bakery", "gmail.com")
    assert choose([gmail], domain="gmail.com") is None
    found = choose([gmail], domain="gmail.com", company="Jane's Bakery LLC")
    assert found is not None
    assert found.method == "name"  # the name still counts, the mailbox never does


def test_a_slightly_misspelled_name_matches_above_the_threshold() -> None:
    acme = account("Acme Software GmbH")
    found = choose([acme], company="Acme Sofware Inc", threshold=0.92)
    assert found is not None
    assert (found.account, found.method) == (acme, "fuzzy_name")
    assert 0.92 <= found.score < 1.0
    assert choose([acme], company="Acme Hardware", threshold=0.92) is None


def test_the_best_fuzzy_score_wins_and_ties_go_to_the_lowest_id() -> None:
    close, closer = account("Acme Softwr", n=1), account("Acme Softwares", n=2)
    best = choose([close, closer], company="Acme Software", threshold=0.8)
    assert best is not None
    assert best.account == closer
    first, second = account("Acme Softwarr", n=3), account("Acme Softwarr", n=4)
    found = choose([second, first], company="Acme Software", threshold=0.8)
    assert found is not None
    assert found.account == first


def test_no_company_and_no_link_is_no_match() -> None:
    assert choose([account("Acme", "acme.com")]) is None
    assert choose([], account_id=uuid.uuid4(), domain="acme.com", company="Acme") is None


def test_the_explanation_is_json() -> None:
    acme = account("Acme Inc", "acme.com", n=7)
    found = choose([acme], domain="acme.com")
    assert found is not None
    assert json.loads(json.dumps(found.explanation())) == {
        "account_id": str(UUID(int=7)),
        "account_name": "Acme Inc",
        "account_domain": "acme.com",
        "owner_id": str(OWNER),
        "method": "domain",
        "score": 1.0,
    }


def test_the_free_mail_list_is_shared_from_common() -> None:
    assert {"gmail.com", "yahoo.co.uk", "hotmail.com"} <= FREE_MAIL_DOMAINS
    assert is_free_mail_domain("gmail.com")
    assert not is_free_mail_domain("acme.com")


NAMES = st.sampled_from(
    ["Acme Inc", "ACME Corp", "Acme Software", "Acme Sofware", "Apex", "Apex Ltd", None]
)
CANDIDATES = st.lists(
    st.builds(
        AccountCandidate,
        id=st.integers(0, 50).map(lambda n: UUID(int=n)),
        name=NAMES,
        domain=st.sampled_from(["acme.com", "gmail.com", "apex.io", None]),
        owner_id=st.none(),
    ),
    max_size=6,
    unique_by=lambda c: c.id,
)


@given(
    CANDIDATES,
    st.randoms(use_true_random=False),
    st.sampled_from(["acme.com", "gmail.com", "apex.io", None]),
    NAMES,
)
def test_the_choice_does_not_depend_on_the_order_of_the_candidates(
    candidates: list[AccountCandidate], rng: object, domain: str | None, company: str | None
) -> None:
    shuffled = list(candidates)
    rng.shuffle(shuffled)  # type: ignore[attr-defined]
    assert choose(candidates, domain=domain, company=company, threshold=0.8) == choose(
        shuffled, domain=domain, company=company, threshold=0.8
    )
