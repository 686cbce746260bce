"""Test-time compute: self-consistency, best-of-N, the checker, and `genlab ttc bench`
(one prompt for every method, curves with intervals, records that resume)."""

import json
import subprocess
import sys

import pytest
from fake_backend import FakeBackend

from genlab.errors import ConfigError
from genlab.models import Choice, Chunk, Model, Usage
from genlab.models.local import LocalBackend
from genlab.search.cot import extract_number
from genlab.search.tasks import load_task
from genlab.search.ttc import arithmetic_check, autorater, best_of_n, likelihood, self_consistency
from genlab.search.ttc_bench import (BenchConfig, ItemRecord, curves, read_records, run_item, run_task,
                                    score_chains)


@pytest.fixture(scope="module")
def arithmetic():
    return load_task("arithmetic")


def test_self_consistency_votes_over_k_sampled_chains(arithmetic, local):
    item = arithmetic.items[0]
    messages = arithmetic.messages(item["question"])
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
    best, sampled = best_of_n(local, arithmetic.messages(item["question"]), 4, extract_number, verifier,
                              temperature=0.8, max_tokens=96, seed=9)
    assert len(best.scores) == 4 and best.score == max(best.scores)
    assert best.index == best.scores.index(max(best.scores)) and best.answer == sampled.answers[best.index]
    if verifier is likelihood:
        assert all(s < 0 for s in best.scores)


# -- the checker ---------------------------------------------------------------------------

@pytest.mark.parametrize("chain, expected", [
    ("31 - 9 = 22. 22 + 4 = 26. The answer is 26.", 1.0),   # a derivation that checks out
    ("31 - 9 = 22. 22 + 4 = 26. The answer is 27.", 0.5),   # answer is not the last result
    ("31 - 9 = 21. 21 + 4 = 25. The answer is 25.", 0.5),   # first step wrong, second right on it
    ("30 - 9 = 21. The answer is 21.", 0.0),                # 30 is not a number of the question
    ("The answer is 26.", 0.0),                             # nothing to re-compute
])
def test_the_checker_recomputes_the_chain_from_the_question_numbers(chain, expected):
    assert arithmetic_check("What is 31 - 9 + 4?", Choice(0, chain, "stop")) == expected


class ScriptedChains(FakeBackend):
    """Scripted replies for the bench's control logic: the direct answer, the greedy chain,
    then n sampled chains in one call."""

    supports_n = supports_enum = True

    def __init__(self, direct: str, greedy: str, chains: list[str]):
        super().__init__()
        self.direct, self.greedy, self.chains = direct, greedy, chains

    def execute(self, request, stream):
        self.calls.append(request)
        texts = ([self.direct] if request.response_format else
                 [self.greedy] if request.n in (None, 1) else self.chains[: request.n])
        for i, text in enumerate(texts):
            yield Chunk(i, text, "stop", [{"token": "x", "logprob": -0.1 * (i + 1)}] * 3)
        yield Usage(prompt_tokens=40 * len(texts), completion_tokens=3 * len(texts))


def test_no_verifier_reads_the_gold_answer():
    task = load_task("arith-2", "dev")
    chains = ["31 - 9 = 22. 22 + 4 = 26. The answer is 26.", "31 - 9 = 20. The answer is 20.",
              "The answer is 26.", "31 + 9 = 40. 40 + 4 = 44. The answer is 44."]
    item = {"id": "x", "question": "What is 31 - 9 + 4?", "answer": 26}
    config = BenchConfig(ks=(1, 2, 4))
    results = []
    for gold in (26, 44):  # the right gold answer, then a wrong one
        model = Model("scripted", ScriptedChains('{"answer": 26}', chains[0], chains))
        results.append(run_item(model, task, {**item, "answer": gold}, config, {}))
    right, wrong = results
    assert right.checker == wrong.checker == [1.0, 0.0, 0.0, 1.0]
    assert right.likelihood == wrong.likelihood and right.answers == wrong.answers
    # ... while what counts as correct follows the gold answer
    best = {r["method"]: r["correct"] for r in curves([right], (4,)) if r["k"] == 4}
    best_wrong = {r["method"]: r["correct"] for r in curves([wrong], (4,)) if r["k"] == 4}
    assert best["best-of (checker)"] == 1 and best_wrong["best-of (checker)"] == 0


def test_every_method_sends_the_same_prompt_to_the_real_model(store):
    class RecordingBackend(LocalBackend):
        """The embedded model, keeping each request it is sent."""

        def __init__(self):
            super().__init__()
            self.requests = []

        def execute(self, request, stream):
            self.requests.append(request)
            return super().execute(request, stream)

    backend = RecordingBackend()
    model = Model("local", backend, store=store)
    for name in ("arith-1", "topics"):
        task = load_task(name, "dev")
        backend.requests.clear()
        record = run_item(model, task, task.items[0], BenchConfig(ks=(1, 3), max_tokens=64), {})
        sent = [[m.model_dump(exclude_none=True) for m in r.messages] for r in backend.requests]
        prompt = task.messages(task.question(task.items[0]))
        assert sent and all(messages == prompt for messages in sent)
        # direct (under the answer format), the greedy chain, then the sampled chains (one call
        # each: llama.cpp's usage for n > 1 is unreliable, so genlab asks n times)
        direct, greedy, *sampled = backend.requests
        assert direct.response_format is not None and direct.temperature == 0
        assert greedy.response_format is None and greedy.temperature == 0
        assert sum(r.n or 1 for r in sampled) == 3
        assert all(r.response_format is None and r.temperature == 0.7 for r in sampled)
        assert all(r.grammar == task.chain_grammar() for r in [greedy, *sampled])  # None for numbers
        assert len(record.answers) == 3 and all(t > 0 for t in record.chain_tokens)
        if name == "topics":  # enum mode and the chain grammar: always a label, unless cut off
            assert record.direct in task.labels
            assert all(a in task.labels for a in record.answers + [record.greedy] if a is not None)


# -- curves and records --------------------------------------------------------------------

def _record(i: int, gold: str, answers: list, checker: list, likelihood: list) -> ItemRecord:
    return ItemRecord(id=str(i), gold=gold, direct=None, direct_tokens=10, greedy=answers[0], greedy_tokens=20,
                      answers=answers, chain_tokens=[20] * len(answers), likelihood=likelihood, checker=checker,
                      question=f"What is {i} + {gold}?", chains=[f"The answer is {a}." for a in answers])


def test_curves_select_among_the_first_k_chains_with_wilson_intervals():
    records = [_record(0, "5", ["4", "5", "5", "6"], [0.0, 1.0, 1.0, 0.5], [-1, -2, -3, -0.5]),
               _record(1, "7", ["1", "2", "7", None], [0.0, 0.5, 1.0, 0.0], [-0.1, -2, -3, -4])]
    rows = {(r["method"], r["k"]): r for r in curves(records, (1, 2, 4))}
    assert rows[("self-consistency", 1)]["correct"] == 0
    assert rows[("pass@k (oracle)", 2)]["correct"] == 1 and rows[("pass@k (oracle)", 4)]["correct"] == 2
    assert rows[("best-of (checker)", 4)]["correct"] == 2     # the checker's full marks pick 5 and 7
    assert rows[("best-of (likelihood)", 4)]["correct"] == 0  # the likeliest chains are 6 and 1
    assert rows[("self-consistency", 4)]["correct"] == 1      # 5 wins 2-1; item 1 ties and 1 came first
    assert rows[("self-consistency", 4)]["tokens_per_item"] == 80
    low, high = rows[("pass@k (oracle)", 4)]["ci95"]
    assert low < 1.0 == rows[("pass@k (oracle)", 4)]["accuracy"] and high == 1.0
    for method in ("self-consistency", "best-of (checker)", "best-of (likelihood)"):
        assert all(rows[(method, k)]["correct"] <= rows[("pass@k (oracle)", k)]["correct"] for k in (1, 2, 4))


def test_curves_add_a_best_of_row_per_model_verifier_up_to_the_chains_it_scored():
    records = [_record(0, "5", ["4", "5", "5", "6"], [0.0, 1.0, 1.0, 0.5], [-1, -2, -3, -0.5]),
               _record(1, "7", ["1", "2", "7", None], [0.0, 0.5, 1.0, 0.0], [-0.1, -2, -3, -4])]
    scores = {"reward model": [[0.1, 0.9, 0.2, 0.3], [0.5, None, 0.4, 0.9]], "autorater": [[0.0, 1.0], [1.0, 1.0]]}
    rows = {(r["method"], r["k"]): r for r in curves(records, (1, 2, 4), scores)}
    assert rows[("best-of (reward model)", 2)]["correct"] == 1   # picks 5, and 1 over a missing score
    assert rows[("best-of (reward model)", 4)]["correct"] == 1   # 0.9 picks the chain without an answer
    assert rows[("best-of (autorater)", 2)]["correct"] == 1      # a tie goes to the first chain
    assert ("best-of (autorater)", 4) not in rows                # it scored only two chains an item


def test_score_chains_resumes_and_scores_again_only_chains_it_has_not_seen(tmp_path):
    seen = []

    def counting_verifier(question, chain):  # a fake verifier: control logic only
        seen.append((question, chain.text))
        return float(len(chain.text))

    records = [_record(i, "5", ["4", "5", "15"], None, [0.0] * 3) for i in range(3)]
    path = tmp_path / "scores.jsonl"
    first = score_chains(records, counting_verifier, chains=2, path=path, settings={"verifier": "len"})
    assert first == [[16.0, 16.0]] * 3 and len(seen) == 6
    assert seen[0] == ("What is 0 + 5?", "The answer is 4.")   # the question and the chain, never the gold
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:2]) + "\n" + lines[2][:20])  # killed while writing the third
    seen.clear()
    records[1].chains[0] = "The answer is 40."                      # item 1 was sampled again
    again = score_chains(records, counting_verifier, chains=2, path=path, settings={"verifier": "len"})
    assert [q for q, _ in seen] == ["What is 1 + 5?"] * 2 + ["What is 2 + 5?"] * 2 and again[1] == [17.0, 16.0]
    with pytest.raises(ConfigError, match="other settings"):
        score_chains(records, counting_verifier, chains=2, path=path, settings={"verifier": "other"})
    records[2].chains = []
    with pytest.raises(ConfigError, match="no chain texts"):
        score_chains(records, counting_verifier)


def test_the_autorater_verifier_rates_chains_with_the_real_model_and_never_the_gold(local):
    verify = autorater(local)
    right = [_record(0, "53", ["53", "43"], None, [0.0] * 2)]
    wrong_gold = [_record(0, "43", ["53", "43"], None, [0.0] * 2)]
    wrong_gold[0].question = right[0].question
    scores = score_chains(right, verify)
    assert scores == score_chains(wrong_gold, verify)   # a greedy, seeded judge: the gold changes nothing
    assert all(s is None or 0.0 <= s <= 1.0 for s in scores[0])
    with pytest.raises(ConfigError, match="needs context, which a verifier is not shown"):
        autorater(local, "groundedness")


def test_records_resume_drop_a_torn_line_and_refuse_other_settings(tmp_path):
    task = load_task("arith-1", "dev")
    task.items = task.items[:3]
    chains = ["12 + 41 = 53. The answer is 53."] * 2
    model = Model("scripted", ScriptedChains('{"answer": 53}', chains[0], chains))
    path = tmp_path / "records.jsonl"
    config = BenchConfig(ks=(1, 2))
    run_task(model, task, config, records=path)
    assert len(model.backend.calls) == 9
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:2]) + "\n" + lines[2][:30])  # killed while writing the third
    model.backend.calls.clear()
    again = run_task(model, task, config, records=path)
    assert len(model.backend.calls) == 3 and [r.id for r in again] == [i["id"] for i in task.items]
    assert len(read_records(path, config.fingerprint(model, task))) == 3
    with pytest.raises(ConfigError, match="other settings.*delete this one"):
        run_task(model, task, BenchConfig(ks=(1, 4)), records=path)


def test_ttc_bench_cli(tmp_path):
    out, plot = tmp_path / "r.json", tmp_path / "r.png"
    result = subprocess.run([sys.executable, "-m", "genlab.cli", "ttc", "bench", "arith-1", "topics", "--split", "dev",
                             "--limit", "2", "--ks", "1,2", "--max-tokens", "32", "--json", str(out),
                             "--plot", str(plot), "--records", str(tmp_path / "rec"), "--autorater", "local",
                             "--verify-chains", "1"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    data = json.loads(out.read_text())
    rows = data["tasks"]["arith-1"]
    assert [(r["method"], r["k"]) for r in rows[:7]] == [
        ("direct", None), ("chain of thought", None), ("self-consistency", 1), ("best-of (likelihood)", 1),
        ("best-of (checker)", 1), ("best-of (autorater)", 1), ("pass@k (oracle)", 1)]
    assert ("best-of (autorater)", 2) not in {(r["method"], r["k"]) for r in rows}  # it scored one chain an item
    assert len((tmp_path / "rec" / "arith-1-dev.autorater.jsonl").read_text().splitlines()) == 2
    assert not any(r["method"] == "best-of (checker)" for r in data["tasks"]["topics"])  # nothing to re-compute
    by = {(r["method"], r["k"]): r for r in rows}
    assert by[("self-consistency", 2)]["tokens_per_item"] > by[("self-consistency", 1)]["tokens_per_item"] > 0
    assert all(r["items"] == 2 and 0 <= r["ci95"][0] <= r["accuracy"] <= r["ci95"][1] <= 1 for r in rows)
    assert plot.stat().st_size > 5000
    assert len((tmp_path / "rec" / "arith-1-dev.jsonl").read_text().splitlines()) == 2
    assert "self-consistency" in result.stdout and "95 % CI" in result.stdout


@pytest.mark.parametrize("args, message", [
    (("arith-1", "--ks", "0,2"), "every k in --ks must be at least 1"),
    (("nope",), "no task 'nope'"),
    (("topics", "--split", "train"), "no split 'train'"),
    (("arithmetic", "--split", "dev"), "has no dev items"),
    (("arith-1", "--temperature", "0"), "sampled chains need --temperature > 0"),
    (("arith-1", "--reward-model", "/nonexistent"), "no reward model in /nonexistent"),
    (("arith-1", "--autorater", "nope:x"), "unknown model spec 'nope:x'"),
])
def test_ttc_bench_refuses_bad_input_before_any_model_work(args, message):
    result = subprocess.run([sys.executable, "-m", "genlab.cli", "ttc", "bench", *args, "--limit", "1"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and message in result.stderr and "Traceback" not in result.stderr


def test_ttc_variance_sweeps_the_sampling_controls(tmp_path):
    out, plot = tmp_path / "v.json", tmp_path / "v.png"
    result = subprocess.run([sys.executable, "-m", "genlab.cli", "ttc", "variance", "arith-1", "--split", "dev",
                             "--limit", "3", "--samples", "3", "--temperatures", "0.2,1.5", "--top-p", "1.0",
                             "--top-k", "0,5", "--json", str(out), "--plot", str(plot)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    grid = json.loads(out.read_text())["grid"]
    assert [(r["temperature"], r["top_k"]) for r in grid] == [(0.2, 0), (0.2, 5), (1.5, 0), (1.5, 5)]
    for r in grid:
        assert r["items"] == 3 and 0 <= r["distinct_answers"] <= 3 and 0 <= r["no_answer"] <= 1
        assert r["sample_accuracy"] <= r["pass_at_samples"] and r["self_consistency"] <= r["pass_at_samples"]
    assert plot.stat().st_size > 5000 and "distinct answers / item" in result.stdout


@pytest.mark.parametrize("args, message", [
    (("--temperatures", "0,1"), "every temperature must be > 0"),
    (("--samples", "1"), "--samples must be at least 2"),
    (("--top-p", "1.5"), "every top-p must be in (0, 1]"),
    (("--top-k", "x"), "--top-k must be comma-separated integers"),
])
def test_ttc_variance_refuses_bad_grids(args, message):
    result = subprocess.run([sys.executable, "-m", "genlab.cli", "ttc", "variance", "arith-1", *args],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and message in result.stderr and "Traceback" not in result.stderr
