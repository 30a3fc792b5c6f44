"""Cost per query and TCO from measured tokens / wall time and configs/pricing.yaml."""

from __future__ import annotations

import math

import pytest

from tunebench.report.cost import DAYS_PER_MONTH, cell_cost, load_pricing

PRICING = {
    "currency": "USD",
    "api": {"gpt-x": {"input_per_mtok": 0.5, "output_per_mtok": 4.0}},
    "self_hosted": {"usd_per_hour": {"cpu": 0.10, "cuda": 2.50}, "utilization": 0.5},
    "training": {"usd_per_hour": {"cpu": 0.10, "cuda": 2.50}},
    "tco": {"months": 12, "queries_per_day": 10_000, "trainings": 2},
}


def test_api_cost_is_tokens_times_prices_and_tco_bills_every_query():
    row = cell_cost(model="gpt-x", is_api=True, device="remote", tokens_in_mean=300, tokens_out_mean=5,
                    items_per_s=9.0, pricing=PRICING)
    per_query = (300 * 0.5 + 5 * 4.0) / 1e6
    assert row["pricing"] == "api" and row["cost_per_query_usd"] == pytest.approx(per_query)
    assert row["tco_usd"] == pytest.approx(per_query * 10_000 * 365)


def test_api_cost_is_missing_with_a_reason_when_the_endpoint_reports_no_usage():
    row = cell_cost(model="gpt-x", is_api=True, device="remote", tokens_in_mean=None, tokens_out_mean=None,
                    items_per_s=9.0, pricing=PRICING)
    assert row["cost_per_query_usd"] is None and "usage" in row["why_missing"]


def test_self_hosted_cost_is_wall_time_and_tco_sizes_a_fleet_plus_training():
    train = {"device": "cpu", "train_seconds": 1800}
    row = cell_cost(model="m", is_api=False, device="cpu", tokens_in_mean=300, tokens_out_mean=5,
                    items_per_s=2.0, pricing=PRICING, training=train)
    assert row["cost_per_query_usd"] == pytest.approx(0.10 / 3600 / 2.0)
    assert row["machines"] == 1  # 2 items/s x 86400 s x 0.5 = 86400 a day >= 10000
    serving = 0.10 * 24 * 12 * DAYS_PER_MONTH
    assert row["tco_breakdown"]["training_usd"] == pytest.approx(0.5 * 0.10 * 2)
    assert row["tco_usd"] == pytest.approx(serving + 0.10)
    busy = {**PRICING, "tco": {**PRICING["tco"], "queries_per_day": 1_000_000}}
    row = cell_cost(model="m", is_api=False, device="cuda", tokens_in_mean=1, tokens_out_mean=1,
                    items_per_s=2.0, pricing=busy)
    assert row["machines"] == math.ceil(1_000_000 / 86_400) and row["cost_per_query_usd"] == pytest.approx(2.5 / 7200)


def test_an_unpriced_device_gives_no_cost_and_says_which_price_is_missing():
    row = cell_cost(model="m", is_api=False, device="mps", tokens_in_mean=1, tokens_out_mean=1, items_per_s=1.0,
                    pricing=PRICING)
    assert row["tco_usd"] is None and "usd_per_hour.mps" in row["why_missing"]


def test_the_shipped_pricing_file_is_valid_and_filled_with_defaults(repo_root):
    pricing = load_pricing(repo_root, "configs/pricing.yaml")
    assert pricing["tco"]["months"] == 12 and 0 < pricing["self_hosted"]["utilization"] <= 1
    assert set(pricing["self_hosted"]["usd_per_hour"]) >= {"cpu", "cuda"}
