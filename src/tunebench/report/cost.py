"""Cost per query and total cost of ownership, from measured tokens and wall time and
configs/pricing.yaml.

- API models: cost per query = mean prompt tokens x input price + mean generated tokens x output
  price (per million tokens), the tokens the endpoint itself reported. A cell answered through the
  Batch API (backend `openai-batch`) pays the model's batch prices: its own batch_*_per_mtok, else
  its prices less `batch_discount`; its row says `pricing: api_batch`.
- Self-hosted models: cost per query = the machine's $/h x the measured generation wall time / items
  (model loading excluded), priced by the device the predictions ran on.
- TCO over `tco.months` at `tco.queries_per_day`: the API bills every query; a self-hosted model
  needs enough dedicated machines to carry the daily volume at `self_hosted.utilization` of its
  measured throughput, running all period, plus its adapter training (measured training wall time x
  the training machine's $/h x `tco.trainings`).

All of it is recomputed at summary time: a price change reruns the summary, never a prediction.
"""

from __future__ import annotations

import math
from pathlib import Path

from tunebench.core.errors import ConfigError
from tunebench.core.schema import check_schema, fill_defaults, load_schema, read_yaml

DAYS_PER_MONTH = 365.0 / 12
BATCH_BACKEND = "openai-batch"  # tunebench.backends.openai_batch.OpenAIBatchBackend.name


def batch_prices(price: dict, discount: float) -> tuple[float, float]:
    """Per-million-token (input, output) prices through the Batch API."""
    return (price.get("batch_input_per_mtok", price["input_per_mtok"] * (1 - discount)),
            price.get("batch_output_per_mtok", price["output_per_mtok"] * (1 - discount)))


def load_pricing(root: str | Path, path: str, config_file: str = "configs/config.yaml") -> dict:
    """The pricing file, checked against its schema (one ConfigError naming file, field and fix)."""
    root = Path(root)
    full = Path(path) if Path(path).is_absolute() else root / path
    if not full.is_file():
        raise ConfigError(f"pricing file {path} does not exist", file=config_file, field="pricing",
                          fix="point `pricing:` at a YAML file like configs/pricing.yaml")
    doc = read_yaml(full, path)
    schema = load_schema(root, "pricing.schema.yaml")
    check_schema(doc, schema, path)
    return fill_defaults(doc, schema)


def check_api_prices(pricing: dict, api_models: list[str], pricing_file: str) -> None:
    """Every API model needs its per-token prices before any request is sent."""
    for name in api_models:
        if name not in pricing["api"]:
            raise ConfigError(f"API model {name!r} has no price", file=pricing_file, field=f"api.{name}",
                              fix=f"add `{name}: {{input_per_mtok: <price>, output_per_mtok: <price>}}` "
                                  "under `api:` (0 for a free local endpoint)")


def _round(value: float | None, digits: int = 8) -> float | None:
    return None if value is None else float(f"{value:.{digits}g}")


def cell_cost(*, model: str, is_api: bool, device: str | None, tokens_in_mean: float | None,
              tokens_out_mean: float | None, items_per_s: float | None, pricing: dict,
              training: dict | None = None, backend: str | None = None) -> dict:
    """Cost per query and TCO for one cell (a system on a task under one prompting); `backend`:
    the cell's, whose `openai-batch` means batch prices."""
    tco = pricing["tco"]
    days = tco["months"] * DAYS_PER_MONTH
    queries = tco["queries_per_day"] * days
    batch = is_api and backend == BATCH_BACKEND
    row: dict = {"pricing": ("api_batch" if batch else "api") if is_api else "self_hosted", "device": device,
                 "months": tco["months"],
                 "queries_per_day": tco["queries_per_day"], "cost_per_query_usd": None, "tco_usd": None,
                 "why_missing": None}
    if is_api:
        price = pricing["api"].get(model)
        if price is None:
            row["why_missing"] = f"no api.{model} price in the pricing file"
            return row
        if tokens_in_mean is None or tokens_out_mean is None:
            row["why_missing"] = "the endpoint reported no token usage"
            return row
        usd_in, usd_out = batch_prices(price, pricing.get("batch_discount", 0.5)) if batch else (
            price["input_per_mtok"], price["output_per_mtok"])
        per_query = (tokens_in_mean * usd_in + tokens_out_mean * usd_out) / 1e6
        row.update(cost_per_query_usd=_round(per_query), usd_per_mtok_in=usd_in,
                   usd_per_mtok_out=usd_out, tco_usd=_round(per_query * queries, 6),
                   tco_breakdown={"queries_usd": _round(per_query * queries, 6)})
        return row
    hourly = pricing["self_hosted"]["usd_per_hour"].get(device or "cpu")
    if hourly is None:
        row["why_missing"] = f"no self_hosted.usd_per_hour.{device} in the pricing file"
        return row
    if not items_per_s:
        row["why_missing"] = "no measured throughput"
        return row
    per_query = hourly / 3600.0 / items_per_s
    capacity_per_day = items_per_s * 86400.0 * pricing["self_hosted"]["utilization"]
    machines = max(1, math.ceil(tco["queries_per_day"] / capacity_per_day))
    serving = machines * hourly * 24.0 * days
    training_usd = 0.0
    if training is not None:
        train_hourly = pricing["training"]["usd_per_hour"].get(training.get("device") or "cpu")
        if train_hourly is None:
            row["why_missing"] = f"no training.usd_per_hour.{training.get('device')} in the pricing file"
            return row
        training_usd = (training.get("train_seconds") or 0.0) / 3600.0 * train_hourly * tco["trainings"]
    row.update(cost_per_query_usd=_round(per_query), usd_per_hour=hourly, items_per_s=items_per_s,
               machines=machines, tco_usd=_round(serving + training_usd, 6),
               tco_breakdown={"serving_usd": _round(serving, 6), "training_usd": _round(training_usd, 6)})
    return row
