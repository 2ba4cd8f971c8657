"""What /metrics shows, with the database faked at its port (the exposition loader)."""

from __future__ import annotations

import math

import pytest
from prometheus_client.parser import text_string_to_metric_families

from salesops_common.events import EVENT_TYPES
from salesops_metrics.adapters.prometheus import groupings, metric_name, render
from salesops_metrics.domain.kpis import KPIS, GroupRow, KpiValue
from salesops_metrics.entrypoints.consumer import dead_letter_handlers, handlers
from salesops_metrics.service_layer.kpis import Exposition

pytestmark = pytest.mark.unit
EMPTY = Exposition({}, {}, {})


def row(value: float | None, **group: str | None) -> GroupRow:
    return GroupRow(dict(group), KpiValue(value, None, None, 1))


SOME = Exposition(
    rows={
        ("win_rate", None): [row(0.75)],
        ("win_rate", "team"): [row(0.5, team="East"), row(1.0, team=None)],
        ("win_rate", "rep"): [row(0.5, rep="4b1d")],
        ("lead_response_p90", None): [row(math.inf)],
        ("sales_cycle_median", None): [row(None)],
        ("pipeline_value", None): [row(150.0, stage="Proposal")],
        ("forecast_accuracy", "team"): [
            row(0.5, period="2026-Q2", team="East"),
            row(0.9, period="2026-Q3", team="East"),
            row(0.7, period="2026-09", team="East"),
        ],
    },
    totals={"deals_won": 3, "deals_lost": 1, "leads_assigned": 2, "dead_letters": 4},
    events_by_type={"deal.won": 3, "deal.lost": 1, "io.elsewhere.thing": 7},
    histograms={
        ("sales_cycle", None): [({}, [0.5, 3.0, 7.0, 40.0])],
        ("sales_cycle", "team"): [({"team": 'Ea"st\\'}, [2.0]), ({"team": None}, [])],
        ("lead_response", "territory"): [({"territory": "north"}, [12.0, 90.0])],
    },
)


async def scrape(exposition: Exposition, *, rep_labels: bool = False) -> str:
    return render(exposition, groupings(rep_labels=rep_labels)).decode()


def test_every_known_event_type_has_a_handler_and_dead_letters_of_any_type_count() -> None:
    assert set(handlers()) == set(EVENT_TYPES)
    assert set(dead_letter_handlers()) == set(EVENT_TYPES) | {"unknown"}


def test_every_gauge_is_named_for_its_kpi_and_unit() -> None:
    names = {metric_name(k) for k in KPIS.values() if not k.counter}
    assert "salesops_metrics_win_rate_ratio" in names
    assert "salesops_metrics_sales_cycle_median_days" in names
    assert "salesops_metrics_lead_response_median_minutes" in names
    assert "salesops_metrics_pipeline_value_amount" in names


async def test_overall_series_has_no_labels_and_groups_have_only_their_own() -> None:
    text = await scrape(SOME)
    assert "salesops_metrics_win_rate_ratio 0.75" in text
    assert 'salesops_metrics_win_rate_ratio{team="East"} 0.5' in text
    assert 'salesops_metrics_win_rate_ratio{team="none"} 1.0' in text  # an unknown team
    assert 'salesops_metrics_pipeline_value_amount{stage="Proposal"} 150.0' in text


async def test_no_data_is_nan_and_an_unbounded_percentile_is_inf() -> None:
    text = await scrape(SOME)
    assert "salesops_metrics_sales_cycle_median_days NaN" in text
    assert "salesops_metrics_lead_response_p90_minutes +Inf" in text


async def test_reps_are_labels_only_when_the_setting_allows() -> None:
    assert 'rep="4b1d"' not in await scrape(SOME)
    assert 'salesops_metrics_win_rate_ratio{rep="4b1d"} 0.5' in await scrape(SOME, rep_labels=True)


async def test_forecasts_show_the_newest_period_of_each_kind() -> None:
    text = await scrape(SOME)
    assert 'salesops_metrics_forecast_accuracy_ratio{period_kind="quarter",team="East"} 0.9' in text
    assert 'salesops_metrics_forecast_accuracy_ratio{period_kind="month",team="East"} 0.7' in text
    assert (
        'salesops_metrics_forecast_accuracy_ratio{period_kind="quarter",team="East"} 0.5'
        not in text
    )


async def test_totals_stay_counters_and_events_count_by_known_type_only() -> None:
    text = await scrape(SOME)
    assert "salesops_metrics_deals_won_total 3.0" in text
    assert "salesops_metrics_deals_lost_total 1.0" in text
    assert "salesops_metrics_leads_assigned_total 2.0" in text
    assert "salesops_metrics_dead_letters_total 4.0" in text
    assert 'salesops_metrics_events_total{type="deal.won"} 3.0' in text
    assert 'salesops_metrics_events_total{type="lead.created"} 0.0' in text
    assert "io.elsewhere.thing" not in text
    assert text.count("salesops_metrics_events_total{") == len(EVENT_TYPES)


async def test_the_text_is_prometheus_text_format() -> None:
    families = {f.name: f for f in text_string_to_metric_families(await scrape(SOME))}
    assert families["salesops_metrics_win_rate_ratio"].type == "gauge"
    assert families["salesops_metrics_deals_won"].type == "counter"
    assert families["salesops_metrics_sales_cycle_days"].type == "histogram"
    labels = {s.labels.get("team") for s in families["salesops_metrics_sales_cycle_days"].samples}
    assert 'Ea"st\\' in labels  # escaped on the way out, read back as it was


async def test_histograms_count_each_bucket_over_the_window() -> None:
    text = await scrape(SOME)
    assert 'salesops_metrics_sales_cycle_days_bucket{le="1.0"} 1.0' in text
    assert 'salesops_metrics_sales_cycle_days_bucket{le="7.0"} 3.0' in text
    assert 'salesops_metrics_sales_cycle_days_bucket{le="+Inf"} 4.0' in text
    assert "salesops_metrics_sales_cycle_days_gcount 4.0" in text
    assert "salesops_metrics_sales_cycle_days_gsum 50.5" in text
    assert 'salesops_metrics_sales_cycle_days_gcount{team="none"} 0.0' in text
    assert 'salesops_metrics_lead_response_minutes_bucket{le="60.0",territory="north"} 1.0' in text
    # segment and source series follow the gauges' groupings; none were given here
    assert "salesops_metrics_speed_to_lead_minutes_bucket" not in text


async def test_an_empty_database_exposes_zero_totals() -> None:
    text = await scrape(EMPTY)
    assert "salesops_metrics_deals_won_total 0.0" in text


async def test_every_gauge_shows_its_company_series_as_nan_when_it_has_no_rows() -> None:
    families = {f.name: f for f in text_string_to_metric_families(await scrape(EMPTY))}
    for kpi in KPIS.values():
        if kpi.counter:
            continue
        samples = families[metric_name(kpi)].samples
        company = [s for s in samples if not set(s.labels) - {"period_kind", "scope"}]
        assert company, kpi.name
        assert all(math.isnan(s.value) for s in samples), kpi.name
    text = await scrape(EMPTY)
    assert "salesops_metrics_pipeline_value_amount NaN" in text
    assert "salesops_metrics_stage_conversion_ratio NaN" in text
    for kind in ("month", "quarter"):
        for family in ("forecast_accuracy_ratio", "pipeline_coverage_ratio"):
            assert f'salesops_metrics_{family}{{period_kind="{kind}"}} NaN' in text
        for scope in ("company", "team", "territory"):  # the scopes are bounded: each shows
            series = f'{{period_kind="{kind}",scope="{scope}"}} NaN'
            assert f"salesops_metrics_forecast_wape_ratio{series}" in text
            assert f"salesops_metrics_forecast_bias_ratio{series}" in text
    assert 'scope="rep"' not in text  # rep-level series only when the setting allows
    assert 'team="' not in text  # no group is made up


async def test_a_kpi_with_rows_of_its_own_keys_shows_no_placeholder_beside_them() -> None:
    text = await scrape(SOME)
    assert "salesops_metrics_pipeline_value_amount NaN" not in text
    assert 'salesops_metrics_pipeline_value_amount{stage="Proposal"} 150.0' in text
    # by team the quarter and the month have rows; the company series have none
    assert 'salesops_metrics_forecast_accuracy_ratio{period_kind="quarter"} NaN' in text
    assert 'salesops_metrics_forecast_accuracy_ratio{period_kind="month",team="none"}' not in text
