"""Charging a model call's usage to the run's budget, for both agent integrations.

Tokens are always charged; dollars are priced by ``genai-prices`` (a price table
kept up to date by its maintainers) where it knows the model, and left at zero
where it does not (an offline test model, a private deployment).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from genai_prices import calc_price
from genai_prices.types import Usage

import durable


def charge_model_call(usage: Mapping[str, Any], model: str | None, provider: str | None) -> None:
    """Charge ``usage`` (``input_tokens``, ``output_tokens`` and the cache and audio
    counts as the model reported them) to the running step's run."""
    tokens = int(usage.get("input_tokens") or 0) + int(usage.get("output_tokens") or 0)
    durable.charge(usd=price(usage, model, provider), tokens=tokens)


def price(usage: Mapping[str, Any], model: str | None, provider: str | None) -> float:
    """What ``usage`` of ``model`` costs in dollars by genai-prices; 0.0 when unknown."""
    if not model:
        return 0.0
    counts = Usage.from_raw(dict(usage))  # the counts genai-prices prices, no others
    try:
        return float(calc_price(counts, model_ref=model, provider_id=provider).total_price)
    except LookupError:
        return 0.0
