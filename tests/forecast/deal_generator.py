"""Generated deals whose outcome a known feature decides, for the scoring models' tests and
the scoring benchmark."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

from salesops_forecast.domain.facts import DealFacts

AS_OF = datetime(2026, 11, 16, 12, 0, tzinfo=UTC)
PRODUCTS = ("Basic", "Pro", "Enterprise")
# The true chance to win, by product: what the model must find.
WIN_RATE = {"Basic": 0.15, "Pro": 0.5, "Enterprise": 0.85}
TEAMS = ("East", "West", "Central")


def generated_deals(n_closed: int, n_open: int, *, seed: int = 7) -> list[DealFacts]:
    """Closed deals over the year before AS_OF (won with WIN_RATE[product], taking 10 to
    100 days to win), and open deals created in the last 60 days."""
    rng = random.Random(seed)
    owners = [uuid.uuid4() for _ in range(20)]
    deals = []
    for i in range(n_closed + n_open):
        product = rng.choice(PRODUCTS)
        closed = i < n_closed
        created = AS_OF - timedelta(days=rng.uniform(130, 400) if closed else rng.uniform(0, 60))
        won = rng.random() < WIN_RATE[product]
        days = rng.uniform(10, 100) if won else rng.uniform(5, 120)
        closed_at = created + timedelta(days=days)
        stage = ("Closed Won" if won else "Closed Lost") if closed else "Proposal"
        entered = closed_at if closed else created
        deals.append(
            DealFacts(
                deal_id=uuid.UUID(int=rng.getrandbits(128)),
                outcome=("won" if won else "lost") if closed else "open",
                stage=stage,
                stage_entered_at=entered,
                stages=((stage, entered),),
                amount=rng.choice((500.0, 1000.0, 5000.0)),
                product=product,
                created_at=created,
                closed_at=closed_at if closed else None,
                owner_id=rng.choice(owners),
                team=rng.choice(TEAMS),
                industry=rng.choice(("retail", "software", "medical")),
                employees=rng.randint(10, 5000),
            )
        )
    return deals
