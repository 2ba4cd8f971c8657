"""The territory model as users write it (YAML or JSON): territories, their rules and members.

A ruleset is imported and exported whole (``GET/PUT /v1/routing/ruleset``); every accepted
change becomes a new version. Precedence when several territories match a lead is
deterministic: the most specific match wins (a named-account rule, then the deeper territory,
then the rule with more conditions), then the higher ``priority``, then the territory id.

A territory's rules narrow its parent's: a lead matches a child territory only if it also
matches one rule of every ancestor that has rules. When no member of a territory can take a
lead, the lead goes up to the parent's members, and only then to the fallback queue.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    field_validator,
    model_validator,
)

Strategy = Literal["round_robin", "weighted_round_robin", "least_loaded"]
STRATEGIES: tuple[Strategy, ...] = ("round_robin", "weighted_round_robin", "least_loaded")

TerritoryId = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _as_number(value: Decimal) -> int | float | str:
    """A band end exported as the number the admin wrote (``1000``, not ``'1000'``); a
    decimal no float holds exactly stays a string, which reads back as the same value."""
    if value == value.to_integral_value():
        return int(value)
    as_float = float(value)
    return as_float if Decimal(repr(as_float)) == value else str(value)


BandEnd = Annotated[Decimal, PlainSerializer(_as_number, when_used="json")]


class Band(_Strict):
    """An inclusive numeric band (employees, annual revenue); an open end is unbounded."""

    min: BandEnd | None = None
    max: BandEnd | None = None

    def contains(self, value: Decimal | int | None) -> bool:
        if value is None:
            return False
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)


class PostalCodes(_Strict):
    """Postal codes by prefix (``"10"`` covers ``10115``) or inclusive range of equal-length
    codes compared as text (``["75001", "75020"]``)."""

    prefixes: list[Annotated[str, Field(min_length=1, max_length=12)]] = []
    ranges: list[tuple[str, str]] = []


class Rule(_Strict):
    """Conditions that must all hold; a list means "any of". A condition left out is not
    checked. ``domains`` names accounts: it matches a lead's (or its account's) company domain.
    """

    id: str | None = Field(None, min_length=1, max_length=100)
    country: list[str] | None = None  # ISO 3166-1 alpha-2
    region: list[str] | None = None  # state / province code or name, compared case-blind
    postal_code: PostalCodes | None = None
    industry: list[str] | None = None  # compared case-blind
    employees: Band | None = None
    annual_revenue: Band | None = None
    lead_source: list[str] | None = None  # compared case-blind
    domains: list[str] | None = None  # named accounts

    @field_validator("country")
    @classmethod
    def _upper(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else [v.strip().upper() for v in value]

    @field_validator("domains")
    @classmethod
    def _domains(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else [v.strip().lower().removeprefix("www.") for v in value]

    def conditions(self) -> int:
        """How many attributes the rule constrains (its specificity among rules)."""
        return sum(
            getattr(self, name) is not None
            for name in (
                "country",
                "region",
                "postal_code",
                "industry",
                "employees",
                "annual_revenue",
                "lead_source",
                "domains",
            )
        )


class Member(_Strict):
    """A rep in a territory, named by canonical id or by e-mail; weight counts in weighted
    round robin and least-loaded (a weight-2 rep takes twice the leads)."""

    rep_id: UUID | None = None
    email: str | None = None
    weight: float = Field(1.0, gt=0, le=1000)

    @model_validator(mode="after")
    def _named(self) -> Member:
        if (self.rep_id is None) == (self.email is None):
            raise ValueError("a member names exactly one of rep_id or email")
        return self


class Sla(_Strict):
    """First-touch SLA: the owner's first outbound activity on the lead must come within
    ``first_touch_minutes`` of the assignment, or the lead moves on, at most
    ``max_reassignments`` times."""

    first_touch_minutes: float = Field(gt=0, le=60 * 24 * 30)
    max_reassignments: int = Field(2, ge=0, le=20)


class Territory(_Strict):
    id: TerritoryId
    name: str | None = None
    priority: int = 0  # higher wins among equally specific matches
    parent: TerritoryId | None = None
    team: str | None = Field(None, max_length=100)  # who is notified of its assignments
    strategy: Strategy = "round_robin"
    # A rep back from absence rejoins the rotation where it stands now; with catch_up they get
    # the leads they missed first.
    catch_up: bool = False
    sla: Sla | None = None
    members: list[Member] = []
    rules: list[Rule] = []


class AccountMatching(_Strict):
    """Lead-to-account matching, tried before any territory rule."""

    enabled: bool = True
    fuzzy_name_threshold: float = Field(0.92, ge=0.5, le=1.0)
    # The owner of a matched account keeps its leads outside working hours (they answer in
    # the morning) but not while out of office or inactive; set true to require hours too.
    require_working_hours: bool = False


class Ruleset(_Strict):
    territories: list[Territory] = []
    account_matching: AccountMatching = AccountMatching()
    # Where leads go that no rule covers; None: the fallback queue (rep_id null).
    fallback_territory: TerritoryId | None = None

    def territory(self, territory_id: str) -> Territory | None:
        return next((t for t in self.territories if t.id == territory_id), None)


class StoredRuleset(BaseModel):
    """A version as stored and exported: the model plus its version number."""

    model_config = ConfigDict(frozen=True)

    version: int
    ruleset: Ruleset
    created_at: Any = None


DEFAULT_TERRITORY = "default"


def implicit_ruleset() -> Ruleset:
    """Version 0, before anyone imports a model: one territory of every rep, round robin."""
    return Ruleset(territories=[Territory(id=DEFAULT_TERRITORY, name="Everyone")])
