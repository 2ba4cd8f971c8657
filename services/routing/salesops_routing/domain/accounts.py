"""Which existing account a new lead belongs to, so that its owner keeps the relationship.

The database side fetches the few candidate accounts (same account id, same domain, or a name
sharing :func:`name_key`); :func:`choose_account` decides among them, strongest evidence
first: the CRM's own account link, then the company domain (never a free-mail one: thousands
of unrelated people write from gmail.com), then the exact normalized company name, then a
fuzzy name match above the ruleset's threshold.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal
from uuid import UUID

from rapidfuzz import fuzz

from salesops_common.free_mail import is_free_mail_domain

Method = Literal["account_id", "domain", "name", "fuzzy_name"]

# Legal forms dropped from the end of a name: "Acme Inc." and "ACME Corporation" are one firm.
LEGAL_SUFFIXES = frozenset(
    {"inc", "incorporated", "llc", "llp", "lp", "ltd", "limited", "gmbh", "mbh", "kg", "corp"}
    | {"corporation", "co", "company", "sa", "sas", "sarl", "ag", "plc", "bv", "nv", "srl"}
    | {"spa", "pty", "pte", "pvt", "oy", "ab", "as", "kk", "bhd", "sdn"}
)
# Deleted, not spaced: "A.C.M.E." is "acme", "McDonald's" is "mcdonalds".
_JOINING = re.compile(r"['’.]")
_PUNCTUATION = re.compile(r"[^\w\s]|_")


def normalize_company(name: str | None) -> str | None:
    """Case- and accent-folded, punctuation and trailing legal forms dropped, spaces
    collapsed: ``"Société Générale S.A."`` -> ``"societe generale"``; None when blank."""
    if name is None:
        return None
    decomposed = unicodedata.normalize("NFKD", name)
    text = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()
    text = _PUNCTUATION.sub(" ", _JOINING.sub("", text))
    tokens = text.split()
    if len(tokens) > 1 and tokens[0] == "the":
        tokens.pop(0)
    # A name that is nothing but a legal form ("Company") keeps its last word.
    while len(tokens) > 1 and tokens[-1] in LEGAL_SUFFIXES:
        tokens.pop()
    return " ".join(tokens) or None


def name_key(name: str | None) -> str | None:
    """The first word of the normalized name: what the candidate lookup indexes."""
    normalized = normalize_company(name)
    return None if normalized is None else normalized.split()[0]


def _domain(domain: str | None) -> str | None:
    if domain is None:
        return None
    cleaned = domain.strip().lower().removeprefix("www.")
    return cleaned if cleaned and not is_free_mail_domain(cleaned) else None


@dataclass(frozen=True)
class AccountCandidate:
    id: UUID
    name: str | None
    domain: str | None
    owner_id: UUID | None


@dataclass(frozen=True)
class AccountMatch:
    account: AccountCandidate
    method: Method
    score: float  # 1.0 but for fuzzy names

    def explanation(self) -> dict[str, Any]:
        return {
            "account_id": str(self.account.id),
            "account_name": self.account.name,
            "account_domain": self.account.domain,
            "owner_id": None if self.account.owner_id is None else str(self.account.owner_id),
            "method": self.method,
            "score": round(self.score, 4),
        }


def choose_account(
    *,
    lead_account_id: UUID | None,
    lead_domain: str | None,
    lead_company: str | None,
    candidates: Sequence[AccountCandidate],
    threshold: float,
) -> AccountMatch | None:
    """The account the lead belongs to, by the strongest evidence; ties go to the lowest
    account id, so that a replay decides the same."""
    ordered = sorted(candidates, key=lambda c: str(c.id))
    if lead_account_id is not None:
        for candidate in ordered:
            if candidate.id == lead_account_id:
                return AccountMatch(candidate, "account_id", 1.0)
    domain = _domain(lead_domain)
    if domain is not None:
        for candidate in ordered:
            if _domain(candidate.domain) == domain:
                return AccountMatch(candidate, "domain", 1.0)
    company = normalize_company(lead_company)
    if company is None:
        return None
    names = [(c, normalize_company(c.name)) for c in ordered]
    for candidate, name in names:
        if name == company:
            return AccountMatch(candidate, "name", 1.0)
    return _fuzzy(company, names, threshold)


def _fuzzy(
    company: str, names: list[tuple[AccountCandidate, str | None]], threshold: float
) -> AccountMatch | None:
    best: AccountMatch | None = None
    for candidate, name in names:  # in id order: the first of equal scores stays
        if name is None:
            continue
        # Word order does not matter ("Bank of Foo" / "Foo Bank of"), spelling a little does.
        score = fuzz.token_sort_ratio(company, name) / 100
        if score >= threshold and (best is None or score > best.score):
            best = AccountMatch(candidate, "fuzzy_name", score)
    return best
