"""Self-consistency and best-of-N end to end on the embedded model, and `genlab ttc bench`."""

import json
import subprocess
import sys

import pytest

from genlab.errors import ConfigError
from genlab.search.cot import extract_number, few_shot_cot
from genlab.search.tasks import load_task
from genlab.search.ttc import arithmetic_check, best_of_n, likelihood, self_consistency


@pytest.fixture(scope="module")
def arithmetic():
    return load_task("arithmetic")


def test_self_consistency_votes_over_k_sampled_chains(arithmetic, local):
    item = arithmetic.items[0]
    messages = few_shot_cot(item["question"], arithmetic.worked)
    vote, sampled = self_consistency(local, messages, 3, extract_number, temperature=0.8, max_tokens=96, seed=5)
    assert len(sampled.chains) == 3 and len(set(c.text for c in sampled.chains)) > 1
    assert sum(vote.votes.values()) == sum(a is not None for a in sampled.answers)
    if vote.answer is not None:
        assert vote.confidence == vote.votes[vote.answer] / 3
    again, _ = self_consistency(local, messages, 3, extract_number, temperature=0.8, max_tokens=96, seed=5)
    assert again.answer == vote.answer  # seeded: the same chains, the same vote


def test_self_consistency_refuses_greedy_and_zero_k(local):
    with pytest.raises(ConfigError, match="needs temperature > 0"):
        self_consistency(local, [{"role": "user", "content": "x"}], 3, extract_number, temperature=0)
    with pytest.raises(ConfigError, match="k must be at least 1"):
        self_consistency(local, [{"role": "user", "content": "x"}], 0, extract_number)


@pytest.mark.parametrize("verifier", [likelihood, arithmetic_check])
def test_best_of_n_returns_the_best_with_all_scores(arithmetic, local, verifier):
    item = arithmetic.items[1]
    best, sampled = best_of_n(local, few_shot_cot(item["question"], arithmetic.worked), 4, extract_number, verifier,
                              temperature=0.8, max_tokens=96, seed=9)
    assert len(best.scores) == 4 and best.score == max(best.scores)
    assert best.index == best.scores.index(max(best.scores)) and best.answer == sampled.answers[best.index]
    if verifier is likelihood:
        assert all(s < 0 for s in best.scores)


def test_ttc_bench_cli(tmp_path):
    out = tmp_path / "r.json"
    plot = tmp_path / "r.png"
    result = subprocess.run([sys.executable, "-m", "genlab.cli", "ttc", "bench", "arithmetic", "topics", "--limit", "2",
                             "--ks", "1,3", "--best-of", "2", "--max-tokens", "64", "--json", str(out),
                             "--plot", str(plot)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    data = json.loads(out.read_text())
    names = [r["name"] for r in data["arithmetic"]]
    assert names == ["direct", "cot", "self-consistency@1", "self-consistency@3", "best-of-2 (likelihood)",
                     "best-of-2 (arithmetic check)"]
    assert [r["name"] for r in data["topics"]][-1] == "best-of-2 (likelihood)"
    sc = {r["name"]: r for r in data["arithmetic"]}
    assert sc["self-consistency@3"]["tokens"] > sc["self-consistency@1"]["tokens"] > 0
    assert all(r["items"] == 2 for rs in data.values() for r in rs)
    assert plot.stat().st_size > 5000
