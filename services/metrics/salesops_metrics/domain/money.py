"""Amounts in the reporting currency, with the exchange rates set over REST."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal


@dataclass(frozen=True)
class Rates:
    """``rates[c]`` is the value of one unit of ``c`` in the reporting currency. An amount
    with no currency is taken to be in the reporting currency; one in a currency with no rate
    cannot be reported (None) and is left out of every amount KPI."""

    reporting: str
    rates: Mapping[str, Decimal] = field(default_factory=dict)

    def convert(self, amount: Decimal | None, currency: str | None) -> Decimal | None:
        if amount is None:
            return None
        code = (currency or self.reporting).upper()
        if code == self.reporting:
            return amount
        rate = self.rates.get(code)
        return amount * rate if rate is not None else None
