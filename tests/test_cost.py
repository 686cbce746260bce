"""Prices and budgets."""

import json

import pytest

from genlab.errors import BudgetExceeded, ConfigError
from genlab.models import Budget, Usage, cost_usd, price_table
from genlab.models.cost import _load


def test_shipped_table_has_required_models_and_date():
    table = price_table()
    for name in ("gemini-1.5-flash-8b", "gemini-2.0-flash", "gemini-2.5-flash", "gemini-2.5-flash-lite",
                 "gemini-2.5-pro", "gpt-4o-mini"):
        assert name in table, name
    flash8b = table["gemini-1.5-flash-8b"]
    assert flash8b["input_cost_per_token"] * 1e6 == pytest.approx(0.0375)
    assert flash8b["cache_read_input_token_cost"] * 1e6 == pytest.approx(0.01)
    assert flash8b["output_cost_per_token"] * 1e6 == pytest.approx(0.15)


def test_cost_counts_cached_tokens_at_the_cached_rate():
    # 1M prompt tokens of which 400k cached, 100k completion, on Gemini 1.5 Flash-8B:
    # 600k * 0.0375 + 400k * 0.01 + 100k * 0.15 per 1M = 0.0225 + 0.004 + 0.015
    usage = Usage(prompt_tokens=1_000_000, cached_tokens=400_000, completion_tokens=100_000)
    assert cost_usd("gemini-1.5-flash-8b", usage) == pytest.approx(0.0415)
    assert cost_usd("models/gemini-1.5-flash-8b", usage) == pytest.approx(0.0415)


def test_long_prompt_rates_for_gemini_pro():
    short = cost_usd("gemini-2.5-pro", Usage(100_000, 0, 0))
    long = cost_usd("gemini-2.5-pro", Usage(300_000, 0, 0))
    assert short == pytest.approx(0.125) and long == pytest.approx(0.75)


def test_unknown_model_has_no_cost_and_local_is_free():
    assert cost_usd("no-such-model", Usage(10, 0, 10)) is None
    assert cost_usd("no-such-model", Usage(10, 0, 10), free=True) == 0.0


def test_user_price_file_adds_models(genlab_home):
    genlab_home.mkdir(parents=True, exist_ok=True)
    (genlab_home / "prices.json").write_text(json.dumps({"models": {"my-model": {
        "input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}}}))
    _load.cache_clear()
    assert cost_usd("my-model", Usage(1000, 0, 1000)) == pytest.approx(0.003)


def test_bad_user_price_file_is_named(genlab_home):
    genlab_home.mkdir(parents=True, exist_ok=True)
    (genlab_home / "prices.json").write_text("{not json")
    _load.cache_clear()
    with pytest.raises(ConfigError, match="prices.json is not a price table"):
        price_table()
    # An entry that is not a table, or whose costs are not numbers, was a TypeError at the first priced call.
    for entry in (5, {"input_cost_per_token": "cheap"}):
        (genlab_home / "prices.json").write_text(json.dumps({"models": {"my-model": entry}}))
        _load.cache_clear()
        with pytest.raises(ConfigError, match="the entry for 'my-model' is not a table with numbers for its costs"):
            price_table()
    _load.cache_clear()


def test_budget_stops_calls_once_spent():
    budget = Budget(usd=0.01)
    budget.check("gemini-2.5-flash", free=False)
    budget.add(Usage(0, 0, 4000), 0.01)
    with pytest.raises(BudgetExceeded, match=r"the budget of \$0.01 is spent .*raise it with --budget-usd"):
        budget.check("gemini-2.5-flash", free=False)


def test_token_budget_and_unpriced_models():
    budget = Budget(tokens=100)
    budget.add(Usage(60, 0, 40), None)
    with pytest.raises(BudgetExceeded, match="100 tokens is spent"):
        budget.check("anything", free=True)
    with pytest.raises(ConfigError, match="no price is known for 'mystery'"):
        Budget(usd=1).check("mystery", free=False)
