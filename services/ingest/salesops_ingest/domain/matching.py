"""Duplicate leads: which existing lead, if any, a new lead is the same person as.

A new lead matches an existing one on

* ``email``: the same normalized e-mail address (score 1.0);
* ``phone_name``: the same E.164 phone number and a close full name;
* ``domain_name``: the same registrable company domain and a close full name.

Names are compared accent-folded and lower-cased, part by part (first with first, last with
last, or swapped), allowing what re-entering the same person produces: one typo
(substitution, transposition, insertion or deletion) in a name long enough for a typo to be
told from another name, an initial for the first name when the last name is identical,
first and last name swapped. Two people are told apart when their first names differ beyond
one typo ("John" / "Jane"), are too short for a typo to be told from another name (one letter
apart under five letters: "Joan" / "John", "Tom" / "Tim"), or differ only by a gendered ending
("Maria" / "Mario", "Daniel" / "Daniela"); and when they have different mailboxes at the same
mail domain (``john.smith@`` / ``jon.smith@``), which then takes identical names. The
thresholds below are measured by :mod:`salesops_ingest.quality.dedupe_eval`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypeGuard

from rapidfuzz.distance import OSA, Hamming, JaroWinkler

from salesops_ingest.domain.normalize import fold

__all__ = [
    "FIRST_NAME_TYPO_MIN_LEN",
    "INITIAL_SCORE",
    "LAST_NAME_TYPO_MIN_LEN",
    "NAME_THRESHOLD",
    "RULE_WEIGHTS",
    "SWAPPED_SCORE",
    "TRANSPOSITION_MIN_LEN",
    "LeadIdentity",
    "Match",
    "best_match",
    "blocking_keys",
    "name_similarity",
]

# One typo is accepted in a name part when its longer spelling has at least this many letters;
# a transposition ("Jhon") already from TRANSPOSITION_MIN_LEN letters. Shorter names one
# edit apart are usually different names (Joan/John, Lisa/Lina, Tom/Tim, Li/Lu), and
# Jaro-Winkler says little about three-letter strings.
FIRST_NAME_TYPO_MIN_LEN = 5
LAST_NAME_TYPO_MIN_LEN = 4
TRANSPOSITION_MIN_LEN = 4
# Name similarity (mean of the two parts' Jaro-Winkler similarities, after the gates above)
# needed by the phone_name and domain_name rules. One typo in either part always passes (the
# lowest, a first-letter substitution in a four-letter last name, scores 0.917); a typo in
# each part only in long names.
NAME_THRESHOLD = 0.90
# "J." for "John" (only with an identical last name); first and last name swapped.
INITIAL_SCORE = 0.92
SWAPPED_SCORE = 0.98
# A match's score is the name similarity times the weight of the identifier shared.
RULE_WEIGHTS = {"email": 1.0, "phone_name": 0.99, "domain_name": 0.97}

_VOWELS = frozenset("aeiouy")


@dataclass(frozen=True, slots=True)
class LeadIdentity:
    """What identifies a lead, from its normalized fields."""

    email: str | None = None  # normalized
    phone: str | None = None  # E.164 (anything else is ignored)
    domain: str | None = None  # registrable company domain (never free mail)
    first_name: str | None = None
    last_name: str | None = None
    company: str | None = None


@dataclass(frozen=True, slots=True)
class Match:
    lead_id: Any  # whatever the caller passed with the candidate
    rule: str  # "email" | "phone_name" | "domain_name"
    score: float  # 0..1


def _is_e164(phone: str | None) -> TypeGuard[str]:
    """Only a normalized number identifies anyone: normalization keeps an unparseable one as
    typed ("n/a", "0000"), which many unrelated leads share."""
    return phone is not None and phone[:1] == "+" and phone[1:].isdigit()


def blocking_keys(lead: LeadIdentity) -> list[tuple[str, str]]:
    """The keys leads are indexed by to find candidates, in this order, for those present:

    * ``("email", email)``;
    * for an E.164 phone and for a company domain, only when the lead has a first and a last
      name (neither rule matches without both): ``("phone_name", "<phone>/<v>")`` and
      ``("domain_name", "<domain>/<v>")`` for ``v`` the folded last name and, when it is long
      enough for a typo, each spelling of it with one letter left out; and
      ``("phone_names", "<phone>/<a>/<b>")``, ``("domain_names", ...)`` with the two folded
      names in alphabetical order.

    Two leads share a key whenever one of the rules could match them: the same e-mail; or the
    same phone or domain and last names one typo apart (a substitution, a transposition, an
    insertion or a deletion leaves both spellings one deletion from a common string), or the
    same two names swapped. So a lead is compared only with the leads of its phone or its
    company whose last name is close to its own, not with every lead of the company: the
    candidates' number stays bounded as a domain's leads grow (issue 7's soak)."""
    keys: list[tuple[str, str]] = []
    if lead.email:
        keys.append(("email", lead.email))
    names = _name_keys(lead)
    if names is None:
        return keys
    spellings, pair = names
    for rule, value in (
        ("phone", lead.phone if _is_e164(lead.phone) else None),
        ("domain", lead.domain),
    ):
        if value:
            keys.extend((f"{rule}_name", f"{value}/{v}") for v in spellings)
            keys.append((f"{rule}_names", f"{value}/{pair}"))
    return keys


def _name_keys(lead: LeadIdentity) -> tuple[list[str], str] | None:
    """The last name's spellings (itself, and with one letter left out when it is long enough
    for a typo to count), and the two names in order; None without both names (as
    :func:`name_similarity`, which is then 0)."""
    first = _compact(_name_part(lead.first_name))
    last = _compact(_name_part(lead.last_name))
    if not (first and last):
        return None
    spellings = {last}
    if len(last) >= min(LAST_NAME_TYPO_MIN_LEN, TRANSPOSITION_MIN_LEN):
        # One typo is accepted only when the longer spelling has this many letters: shorter
        # names must be identical, and so share their own spelling.
        spellings.update(last[:i] + last[i + 1 :] for i in range(len(last)))
    return sorted(spellings), "/".join(sorted((first, last)))


@lru_cache(maxsize=65536)
def _name_part(raw: str | None) -> str:
    """Folded name part, punctuation as spaces: "O'Neil-Smith" -> "o neil smith"."""
    if not raw:
        return ""
    folded = fold(raw)
    return " ".join("".join(ch if ch.isalnum() else " " for ch in folded).split())


def _compact(part: str) -> str:
    return part.replace(" ", "")


def _gendered(a: str, b: str) -> bool:
    """Whether two first names differ only by a gendered ending: a final vowel for another
    (Mario/Maria), an "a" or "e" after a consonant (Daniel/Daniela, Simon/Simone), or an
    "s" after a vowel (Luca/Lucas)."""
    short, long_ = (a, b) if len(a) <= len(b) else (b, a)
    if len(long_) == len(short) + 1 and long_.startswith(short):
        added, before = long_[-1], short[-1]
        return (added in "ae" and before not in _VOWELS) or (added == "s" and before in _VOWELS)
    return (
        len(long_) == len(short)
        and long_[:-1] == short[:-1]
        and long_[-1] in _VOWELS
        and short[-1] in _VOWELS
    )


def _part_score(a: str, b: str, min_len: int, *, first_name: bool) -> float:
    """Similarity of one name part (spaces aside): 1.0 equal; Jaro-Winkler when one typo
    apart in a long enough name (and, for first names, not a gendered form); else 0.0."""
    a, b = _compact(a), _compact(b)
    if a == b:
        return 1.0
    longest = max(len(a), len(b))
    if longest < TRANSPOSITION_MIN_LEN or OSA.distance(a, b, score_cutoff=1) > 1:
        return 0.0
    transposition = len(a) == len(b) and Hamming.distance(a, b) == 2
    if longest < (TRANSPOSITION_MIN_LEN if transposition else min_len):
        return 0.0
    if first_name and _gendered(a, b):
        return 0.0
    return JaroWinkler.similarity(a, b)


def _oriented(first_a: str, last_a: str, first_b: str, last_b: str) -> float:
    last = _part_score(last_a, last_b, LAST_NAME_TYPO_MIN_LEN, first_name=False)
    if last == 0.0:
        return 0.0
    if last == 1.0 and (len(first_a) == 1 or len(first_b) == 1):
        initial, full = sorted((first_a, first_b), key=len)
        return INITIAL_SCORE if len(initial) == 1 and full.startswith(initial) else 0.0
    first = _part_score(first_a, first_b, FIRST_NAME_TYPO_MIN_LEN, first_name=True)
    return 0.0 if first == 0.0 else (first + last) / 2


def name_similarity(a: LeadIdentity, b: LeadIdentity) -> float:
    """How likely two leads' names are the same person's, 0..1 (0 when a part is missing or
    the names are told apart). Swapped first and last names count only when identical: a
    swap and a typo together are too loose (Roberto Roberts / Roberta Roberts)."""
    first_a, last_a = _name_part(a.first_name), _name_part(a.last_name)
    first_b, last_b = _name_part(b.first_name), _name_part(b.last_name)
    if not (first_a and last_a and first_b and last_b):
        return 0.0
    straight = _oriented(first_a, last_a, first_b, last_b)
    if straight < SWAPPED_SCORE and (
        _compact(first_a) == _compact(last_b) and _compact(last_a) == _compact(first_b)
    ):
        return SWAPPED_SCORE
    return straight


def _distinct_mailboxes(a: LeadIdentity, b: LeadIdentity) -> bool:
    """Different addresses at the same mail domain: two mailboxes, usually two people."""
    if not (a.email and b.email) or a.email == b.email:
        return False
    return a.email.rpartition("@")[2] == b.email.rpartition("@")[2]


def _match(new: LeadIdentity, lead_id: Any, candidate: LeadIdentity) -> Match | None:
    if new.email and new.email == candidate.email:
        return Match(lead_id, "email", RULE_WEIGHTS["email"])
    same_phone = _is_e164(new.phone) and new.phone == candidate.phone
    same_domain = bool(new.domain) and new.domain == candidate.domain
    if not (same_phone or same_domain):
        return None
    similarity = name_similarity(new, candidate)
    if similarity < NAME_THRESHOLD:
        return None
    if similarity < 1.0 and _distinct_mailboxes(new, candidate):
        return None
    rule = "phone_name" if same_phone else "domain_name"
    return Match(lead_id, rule, round(similarity * RULE_WEIGHTS[rule], 4))


def best_match(new: LeadIdentity, candidates: Sequence[tuple[Any, LeadIdentity]]) -> Match | None:
    """The candidate ``(lead_id, identity)`` that ``new`` is a duplicate of, with the highest
    score (the first on ties); None when none matches."""
    best: Match | None = None
    for lead_id, candidate in candidates:
        match = _match(new, lead_id, candidate)
        if match is not None and (best is None or match.score > best.score):
            best = match
            if match.score == 1.0:
                break
    return best
