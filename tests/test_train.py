"""Training on the real embedded model (its transformers copy), a few real steps each:
the weights move, the loss goes down, the result loads as --model hf:DIR."""

from __future__ import annotations

import json
import re
import shutil
from types import SimpleNamespace

import pytest

from genlab.errors import ConfigError
from genlab.ground.evaluation import load_qa
from genlab.train.data import load_rows
from genlab.train.trainer import TrainOptions
from tests.conftest import VELMORA, VELMORA_QA, copy_velmora

QUESTIONS = ["What is 2 + 2?", "What is the capital of France?", "Name a primary colour.", "How many legs has a cat?"]
ANSWERS = ["ANSWER: 4", "ANSWER: Paris", "ANSWER: red", "ANSWER: 4"]


def user(text):
    return [{"role": "user", "content": text}]


def assistant(text):
    return [{"role": "assistant", "content": text}]


def write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def write_sft_data(folder):
    return write(folder / "sft.jsonl", [{"messages": user(q) + assistant(a)} for q, a in zip(QUESTIONS, ANSWERS)])


def write_pairs(folder):
    return write(folder / "pairs.jsonl", [
        {"prompt": user(q), "chosen": assistant(a), "rejected": assistant("I am not sure, maybe you could look it up.")}
        for q, a in zip(QUESTIONS * 2, ANSWERS * 2)])


@pytest.fixture
def sft_data(tmp_path):
    return write_sft_data(tmp_path)


@pytest.fixture
def pairs(tmp_path):
    return write_pairs(tmp_path)


@pytest.fixture(autouse=True)
def free_disk_after_each_test(tmp_path):
    """Each test writes one or two model folders (about 0.5 GB, plus a 1.6 GB checkpoint);
    remove them when the test ends, so a run never holds more than one test's at a time."""
    yield
    shutil.rmtree(tmp_path, ignore_errors=True)


def reply(folder, store, prompt="What is 2 + 2?"):
    """The greedy reply of the model in ``folder``, through genlab's hf: backend (cached)."""
    from genlab.models import get_model

    return get_model(f"hf:{folder}", store=store, source="test").chat(prompt, temperature=0, max_tokens=12,
                                                                      cache=True)


def generates_differently(folder, store) -> bool:
    """The trained weights are the ones that generate: a reply differs from the base model's."""
    from genlab.train.base import base_model_dir

    return reply(folder, store).text != reply(base_model_dir(), store).text


def options(tmp_path, name, **kw):
    """A few steps of batch 2; no checkpoint unless a test asks (writing one takes ~13 s)."""
    return TrainOptions(output=tmp_path / name, max_steps=kw.pop("max_steps", 4), batch_size=2, max_length=64,
                        learning_rate=kw.pop("learning_rate", 1e-4), save_steps=kw.pop("save_steps", 0), **kw)


def write_held_out_suite(folder):
    (folder / "held.jsonl").write_text('{"q": "What is 3 + 4?", "answer": "7"}\n'
                                       '{"q": "Name a month.", "answer": "a"}\n')
    suite = folder / "held.yaml"
    suite.write_text('prompts: ["{{q}}"]\nmodels: [local]\noptions: {temperature: 0, max_tokens: 8}\n'
                     'defaults:\n  assert:\n    - {type: regex, value: "^ANSWER: "}\n'
                     '    - {type: icontains, value: "{{answer}}"}\ntests: held.jsonl\n')
    return suite


@pytest.fixture
def held_out_suite(tmp_path):
    return write_held_out_suite(tmp_path)


@pytest.fixture(scope="module")
def gecko_home(tmp_path_factory, velmora_db):
    """One genlab home for the Gecko tests that run the teacher: the example notebook, and one
    store whose cache of the teacher's greedy replies the later test reuses (the same queries
    and picks; about a minute of the embedded model's time on two cores)."""
    home = tmp_path_factory.mktemp("gecko-home")
    copy_velmora(velmora_db, home)
    return home


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One SFT run (with a held-out suite) and one reward model, trained once for the tests that
    check them and reused, read-only, by the tests that only need a trained model (each run
    takes about half a minute on two cores)."""
    from genlab.train.reward import tune_reward
    from genlab.train.sft import tune_sft

    folder = tmp_path_factory.mktemp("trained")
    with pytest.MonkeyPatch.context() as patch:       # the held-out suite's calls: not the user's home
        patch.setenv("GENLAB_HOME", str(folder / "genlab-home"))
        sft = tune_sft(write_sft_data(folder), options(folder, "sft", held_out=write_held_out_suite(folder)))
        reward = tune_reward(write_pairs(folder), options(folder, "rm", learning_rate=5e-5))
    yield SimpleNamespace(sft=sft, sft_dir=folder / "sft", reward=reward, reward_dir=folder / "rm")
    shutil.rmtree(folder, ignore_errors=True)


def test_sft_moves_the_weights_lowers_the_loss_and_serves(trained, store):
    from genlab.models import get_model

    summary, folder = trained.sft, trained.sft_dir
    assert summary.steps == 4 and len(summary.losses) == 4
    assert summary.loss_last < summary.loss_first
    assert summary.weights.relative_l2_change > 0 and summary.weights.tensors_changed > 0
    assert (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()
    assert not list(folder.glob("checkpoint-*"))                  # save_steps=0: no checkpoint written
    assert json.loads((folder / "genlab-train.json").read_text())["method"] == "sft"
    tuned = get_model(f"hf:{folder}", store=store, source="test")
    response = tuned.chat("What is 3 + 3?", temperature=0, max_tokens=8)
    assert response.text and response.usage.completion_tokens > 0
    assert store.execute("SELECT model FROM calls WHERE source = 'test'")[0]["model"] == f"hf:{folder}"
    assert generates_differently(folder, store)
    # The held-out suite ran on the starting model and on the trained one, rate by rate.
    effect = json.loads((folder / "genlab-train.json").read_text())["held_out_effect"]
    assert effect["rows"] == 2 and set(effect["before"]) == set(effect["after"]) == {"all", "regex", "icontains"}
    for side in ("before", "after"):
        counts = effect[side]["regex"]
        assert counts["n"] == 2 and counts["rate"] == counts["passed"] / 2 and counts["ci95"][0] <= counts["rate"]


def test_the_cache_never_answers_for_other_weights_in_the_same_folder(trained, tmp_path, store):
    """A model retrained into the same folder is a new model: no cached reply, no stale load."""
    from genlab.train.base import base_model_dir

    folder = tmp_path / "model"
    shutil.copytree(base_model_dir(), folder)
    assert reply(folder, store).text == reply(base_model_dir(), store).text
    assert reply(folder, store).cache_hit
    shutil.rmtree(folder)
    shutil.copytree(trained.sft_dir, folder, ignore=shutil.ignore_patterns("checkpoint-*"))
    again = reply(folder, store)
    assert not again.cache_hit and again.text == reply(trained.sft_dir, store).text
    assert again.text != reply(base_model_dir(), store).text


def test_a_base_model_build_that_fails_to_write_leaves_nothing_in_the_cache(tmp_path, monkeypatch):
    """Fault injection: the disk fills while the trainable copy is written."""
    from transformers import PreTrainedTokenizerBase

    from genlab.train.base import base_model_dir

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setenv("GENLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(PreTrainedTokenizerBase, "save_pretrained", disk_full)
    with pytest.raises(OSError, match="No space left"):
        base_model_dir()
    assert list((tmp_path / "cache").iterdir()) == []      # no half-written 0.5 GB folder


def test_sft_resumes_from_its_checkpoint(sft_data, tmp_path):
    from genlab.train.sft import tune_sft

    first = tune_sft(sft_data, options(tmp_path, "run", max_steps=2, save_steps=2))
    assert first.steps == 2 and (tmp_path / "run" / "checkpoint-2").is_dir()
    with pytest.raises(ConfigError, match="already holds a training run; pass --resume"):
        tune_sft(sft_data, options(tmp_path, "run", max_steps=4))
    # A run killed while it wrote checkpoint-4 (13 s of writing, state file last) left it half
    # written, and --resume took it and failed ("Can't find a valid checkpoint"): the one before counts.
    (tmp_path / "run" / "checkpoint-4").mkdir()
    shutil.copy(tmp_path / "run" / "checkpoint-2" / "config.json", tmp_path / "run" / "checkpoint-4")
    second = tune_sft(sft_data, options(tmp_path, "run", max_steps=4, save_steps=2, resume=True))
    assert second.steps == 4 and len(second.losses) == 2          # only steps 3 and 4 ran
    assert (tmp_path / "run" / "checkpoint-4" / "trainer_state.json").is_file()     # written again, whole
    shutil.rmtree(tmp_path / "run" / "checkpoint-2", ignore_errors=True)
    (tmp_path / "run" / "checkpoint-4" / "trainer_state.json").unlink()      # now the only one is cut short
    with pytest.raises(ConfigError, match="the only checkpoint in .*, checkpoint-4, was cut short while it was "
                                          "written; remove it and drop --resume"):
        tune_sft(sft_data, options(tmp_path, "run", max_steps=6, resume=True))


def test_ctrl_c_says_whether_and_how_the_training_goes_on(sft_data, tmp_path):
    """Ctrl-C printed "interrupted", without a word on whether a checkpoint kept the training."""
    from genlab.train.trainer import resumable_checkpoint
    from tests.conftest import interrupted

    def last_line(output, save_steps, ready):
        result = interrupted(["tune", "sft", str(sft_data), "-o", str(output), "--max-steps", "40", "--batch-size", "2",
                              "--max-length", "64", "--save-steps", str(save_steps)], ready)
        assert result.returncode == 130 and "Traceback" not in result.stderr, result.stderr
        return result.stderr.strip().splitlines()[-1]

    early = tmp_path / "early"            # made as training starts; the first checkpoint is 20 steps on
    assert last_line(early, 20, early.is_dir) == (
        "interrupted before the first checkpoint (one every --save-steps steps): nothing to resume")
    output = tmp_path / "run"
    line = last_line(output, 2, lambda: resumable_checkpoint(output) is not None)
    assert line == f"interrupted; to go on from {resumable_checkpoint(output).name}, run the same command with --resume"


def test_a_full_disk_while_training_writes_is_named_with_the_way_to_go_on(tmp_path):
    """safetensors and torch report a full disk in errors of their own (torch's says "unexpected
    pos" or "iostream error"), which ended in tracebacks (control logic: the errors are raised here)."""
    from genlab.errors import GenlabError
    from genlab.train.trainer import disk_space_for

    full = RuntimeError("Error while serializing: I/O error: No space left on device (os error 28)")
    for resumable, fix in ((False, f"remove what was written to {tmp_path} and run the same command again"),
                           (True, "then run the same command with --resume")):
        with pytest.raises(GenlabError) as caught, disk_space_for(tmp_path, lambda: resumable):
            raise full
        assert str(caught.value) == f"{tmp_path}: the disk is full ({full}); free some space, {fix}"
    try:                                   # torch's words for it, in the error it chained
        raise RuntimeError("basic_ios::clear: iostream error") from OSError(28, "No space left on device")
    except RuntimeError as torch_error:
        with pytest.raises(GenlabError, match="the disk is full"), disk_space_for(tmp_path, lambda: False):
            raise torch_error
    with pytest.raises(ValueError, match="a bug"), disk_space_for(tmp_path, lambda: False):
        raise ValueError("a bug")          # with space on the disk, anything else is not told as a full disk


def test_one_training_writes_an_output_folder_at_a_time(sft_data, gecko_home, tmp_path, monkeypatch):
    """Two trainings into one --output both ran, and the folder ended with the weights of one
    and the record (genlab-train.json) of the other; the second is now refused, naming the first."""
    import os

    from genlab.io import hold_folder
    from genlab.train import trainer
    from genlab.train.sft import tune_sft
    from tests.test_cli import genlab

    out = tmp_path / "out"
    out.mkdir()
    hold = hold_folder(out, "trains a model (sft)")       # as a training in this process does
    for command in (("tune", "sft", str(sft_data)), ("distill", "embeddings", "velmora", "--max-passages", "10")):
        result = genlab(*command, "-o", str(out), env={"GENLAB_HOME": str(gecko_home)})
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert f"error: {out} is in use: genlab process {os.getpid()} trains a model (sft) there; wait for it to " \
               "end, or stop it" in result.stderr, result.stderr
        assert sorted(p.name for p in out.iterdir()) == [".genlab.lock"]     # nothing trained, nothing mined
    hold.close()

    # A run that ends in the folder while this one loads its model: refused once held, not overwritten.
    real_snapshot = trainer.snapshot

    def another_run_ends_meanwhile(model):
        (out / trainer.SUMMARY_FILE).write_text("{}")
        return real_snapshot(model)

    monkeypatch.setattr(trainer, "snapshot", another_run_ends_meanwhile)
    with pytest.raises(ConfigError, match="already holds a training run; pass --resume"):
        tune_sft(sft_data, options(tmp_path, "out"))
    assert sorted(p.name for p in out.iterdir()) == [".genlab.lock", trainer.SUMMARY_FILE]


def test_lora_trains_adapters_and_saves_a_merged_model(sft_data, tmp_path):
    from genlab.train.sft import tune_sft

    summary = tune_sft(sft_data, options(tmp_path, "lora", max_steps=3, lora=True, learning_rate=1e-3))
    assert summary.weights.tensors_changed > 0
    assert not (tmp_path / "lora" / "adapter_config.json").exists()
    assert (tmp_path / "lora" / "model.safetensors").is_file()


def test_dpo_moves_the_policy_toward_chosen(pairs, tmp_path, store):
    from genlab.train.preference import tune_preference

    summary = tune_preference("dpo", pairs, options(tmp_path, "dpo", max_steps=3, learning_rate=5e-5))
    assert summary.losses[0] == pytest.approx(0.6931, abs=1e-3)       # log 2: policy == reference at step 1
    assert summary.loss_last < summary.loss_first
    assert summary.weights.relative_l2_change > 0
    assert generates_differently(tmp_path / "dpo", store)


def test_dpo_with_sft_weight_adds_the_chosen_replies_likelihood(pairs, tmp_path):
    from genlab.train.preference import tune_preference

    plain = tune_preference("dpo", pairs, options(tmp_path, "plain", max_steps=1))
    rpo = tune_preference("dpo", pairs, options(tmp_path, "rpo", max_steps=1), sft_weight=1.0)
    # Same first batch, same reference: the added term is the chosen replies' NLL (> 0).
    assert rpo.settings["sft_weight"] == 1.0 and rpo.losses[0] > plain.losses[0] + 0.1


def test_kto_trains_on_thumbs(tmp_path, store):
    from genlab.train.preference import tune_preference

    data = write(tmp_path / "thumbs.jsonl",
                 [{"prompt": user(q), "completion": assistant(a), "label": True} for q, a in zip(QUESTIONS, ANSWERS)]
                 + [{"prompt": user(q), "completion": assistant("No idea."), "label": False} for q in QUESTIONS])
    summary = tune_preference("kto", data, options(tmp_path, "kto", max_steps=3, learning_rate=5e-5))
    assert summary.steps == 3 and summary.weights.relative_l2_change > 0
    assert generates_differently(tmp_path / "kto", store)


def test_reward_model_reports_held_out_accuracy_and_scores(trained, tmp_path):
    from genlab.train.reward import RewardModel

    summary = trained.reward
    assert summary.steps == 4 and summary.pair_accuracy.pairs == 2 and summary.rows == 6
    assert 0 <= summary.pair_accuracy.before.rate <= 1 and 0 <= summary.pair_accuracy.after.rate <= 1
    assert summary.loss_last < summary.loss_first
    model = RewardModel(trained.reward_dir)
    assert isinstance(model.score(user("What is 2 + 2?"), assistant("ANSWER: 4")), float)
    # ... and as a test-time verifier, it scores each sampled chain against its question
    from genlab.search.ttc_bench import ItemRecord, score_chains
    from genlab.train.reward import reward_verifier

    chains = ["2 + 2 = 4. The answer is 4.", "2 + 2 = 5. The answer is 5."]
    record = ItemRecord(id="0", gold="4", direct=None, direct_tokens=0, greedy=None, greedy_tokens=0,
                        answers=["4", "5"], chain_tokens=[9, 9], likelihood=[None, None], checker=None,
                        question="What is 2 + 2?", chains=chains)
    assert score_chains([record], reward_verifier(trained.reward_dir)) == [[model.score(record.question, c)
                                                                         for c in chains]]
    with pytest.raises(ConfigError, match="no reward model in"):
        RewardModel(tmp_path / "no-such-folder")


@pytest.mark.parametrize("rows, kind, message", [
    ([{"text": "x"}], "sft", r"an sft row needs \{messages\} or \{prompt, completion\}; got keys \['text'\]"),
    ([{"messages": user("hi")}] * 2, "sft", "must end with the assistant's message"),
    ([{"prompt": "a", "chosen": "b", "rejected": "c"}], "preference", "1 preference row; this needs at least 2"),
    ([{"prompt": "a", "chosen": "b", "rejected": "c"}] * 2, "sft",   # a file meant for another command
     r"got keys \['chosen', 'prompt', 'rejected'\] \(a preference row, which genlab tune dpo or reward reads\)"),
    ([{"messages": user("a") + assistant("b")}] * 2, "unpaired", r"\(an sft row, which genlab tune sft reads\)"),
    ([{"prompt": "a", "completion": "b", "label": "yes"}] * 2, "unpaired", "\"label\" must be true"),
    ([{"prompt": "a", "completion": "b", "label": True}] * 2, "unpaired", "needs both thumbs up"),
    ([{"messages": user("a") + assistant("b")}, {"prompt": "a", "completion": "b"}], "sft", "rows mix"),
    ([{"prompt": "", "completion": "b"}] * 2, "sft", "\"prompt\" is empty"),
])
def test_malformed_data_is_refused_before_any_work(tmp_path, rows, kind, message):
    with pytest.raises(ConfigError, match=message):
        load_rows(write(tmp_path / "d.jsonl", rows), kind)


@pytest.mark.parametrize("spec, message", [
    ("hf:HuggingFaceTB/SmolLM2-360M", r"no such folder, and genlab downloads no models; fetch it yourself "
                                      r"\(hf download HuggingFaceTB/SmolLM2-360M --local-dir DIR\)"),
    ("hf:/nonexistent-model", "hf:/nonexistent-model: no such folder; train one with genlab tune"),
    ("hf:{tmp}", r"is not a Hugging Face model folder \(no config.json\)"),
    ("gemini:gemini-2.5-flash", "has no weights genlab can train; use local, hf:DIR"),
])
def test_a_starting_model_genlab_cannot_train_is_refused_as_model_specs_are(tmp_path, spec, message):
    from genlab.train.base import resolve_model_dir

    with pytest.raises(ConfigError, match=message):
        resolve_model_dir(spec.format(tmp=tmp_path))


def test_compare_refuses_a_missing_reward_model_before_the_suite_runs(tmp_path):
    from genlab.train.compare import compare_models

    suite = tmp_path / "suite.yaml"
    suite.write_text('prompts: ["Say {{word}}"]\ntests: [{vars: {word: hi}}]\n')
    with pytest.raises(ConfigError, match="no reward model in"):
        compare_models("local", "http://127.0.0.1:9/v1#m", suite, tmp_path / "out", reward_model=tmp_path / "nope")
    assert not (tmp_path / "out").exists()      # nothing ran


def test_distill_data_refuses_a_missing_student_before_the_teacher_writes(tmp_path):
    from genlab.train.distill import distill_data

    prompts = write(tmp_path / "p.jsonl", [{"prompt": "a"}, {"prompt": "b"}])
    teacher = "http://127.0.0.1:9/v1#m"      # nothing listens: asking it first would be a connection error
    with pytest.raises(ConfigError, match="hf:/nonexistent-student: no such folder"):
        distill_data(prompts, teacher, TrainOptions(output=tmp_path / "out", base="hf:/nonexistent-student"))


def test_compare_refuses_a_model_against_itself_before_any_work(tmp_path):
    from genlab.train.compare import compare_models

    with pytest.raises(ConfigError, match="BASE and TUNED are both local; give two different models"):
        compare_models("local", "local", tmp_path / "suite.yaml", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_bad_json_names_the_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"prompt": "a", "completion": "b"}\n{oops\n')
    with pytest.raises(ConfigError, match=r"d.jsonl:2: not valid JSON"):
        load_rows(path, "sft")
    with pytest.raises(ConfigError, match=r"missing.jsonl: cannot read the data file \(No such file"):
        load_rows(tmp_path / "missing.jsonl", "preference")       # a held-out file as much as training data


def test_cli_tune_sft_and_its_errors(sft_data, held_out_suite, tmp_path):
    from tests.test_cli import genlab

    missing = genlab("tune", "sft", str(sft_data), "-o", str(tmp_path / "out"), "--held-out", str(tmp_path / "no.yaml"))
    assert missing.returncode == 1 and "no.yaml" in missing.stderr and "Traceback" not in missing.stderr
    assert not (tmp_path / "out").exists()                   # refused before any training
    result = genlab("tune", "sft", str(sft_data), "-o", str(tmp_path / "out"), "--max-steps", "2", "--batch-size", "2",
                    "--max-length", "64", "--held-out", str(held_out_suite))
    assert result.returncode == 0, result.stderr
    assert "sft: 2 steps on 4 rows" in result.stdout and "loss" in result.stdout and "weights moved" in result.stdout
    assert "held-out (" in result.stdout and "2 rows" in result.stdout and "  regex: " in result.stdout
    again = genlab("tune", "sft", str(sft_data), "-o", str(tmp_path / "out"), "--max-steps", "2")
    assert again.returncode == 1 and "already holds a training run; pass --resume" in again.stderr
    for command in (("tune", "sft", str(sft_data)), ("distill", "embeddings", "velmora")):  # -o names a file
        result = genlab(*command, "-o", str(sft_data))
        assert result.returncode == 1 and f"--output {sft_data} is a file; give a folder" in result.stderr
        assert "Traceback" not in result.stderr
    mine = tmp_path / "mine"                          # -o names a folder of the user's own files
    mine.mkdir()
    (mine / "README.md").write_text("my notes")
    for command in (("tune", "sft", str(sft_data)), ("distill", "embeddings", "velmora")):
        result = genlab(*command, "-o", str(mine))
        assert result.returncode == 1 and f"--output {mine} already holds files (README.md)" in result.stderr
    assert sorted(p.name for p in mine.iterdir()) == ["README.md"] and (mine / "README.md").read_text() == "my notes"
    (mine / "README.md").unlink()
    (mine / "gecko-data.jsonl").write_text('{"passage": 0}\n')      # an interrupted distillation
    result = genlab("distill", "embeddings", "velmora", "-o", str(mine))
    assert result.returncode == 1 and "holds an interrupted distillation; pass --resume" in result.stderr
    bad = write(tmp_path / "bad.jsonl", [{"prompt": "a", "chosen": "b"}] * 3)
    result = genlab("tune", "dpo", str(bad), "-o", str(tmp_path / "dpo"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "bad.jsonl:1: a preference row needs {prompt, chosen, rejected}" in result.stderr
    for flags, message in ((("--lr", "-1"), "--lr must be more than 0 (got -1)"),   # torch's traceback before
                           (("--max-minutes", "0"), "--max-minutes must be more than 0"),
                           (("--held-out", str(sft_data)), "give a genlab eval suite (YAML) whose tests are")):
        result = genlab("tune", "sft", str(sft_data), "-o", str(tmp_path / "refused"), *flags)
        assert result.returncode == 1 and message in result.stderr and "Traceback" not in result.stderr
        assert not (tmp_path / "refused").exists()
    result = genlab("distill", "embeddings", "velmora", "-o", str(tmp_path / "refused"), "--lr", "0")
    assert result.returncode == 1 and "--lr must be more than 0 (got 0)" in result.stderr


def test_grpo_optimises_the_policy_against_a_reward_model(trained, tmp_path):
    from genlab.train.grpo import tune_grpo

    prompts = write(tmp_path / "prompts.jsonl", [{"prompt": user(q)} for q in QUESTIONS])
    summary = tune_grpo(prompts, trained.reward_dir, options(tmp_path, "grpo", max_steps=2, learning_rate=1e-5),
                        num_generations=2, max_completion_length=8)
    assert summary.steps == 2 and len(summary.rewards) == 2
    assert summary.weights.relative_l2_change > 0


def test_grpo_against_a_programmatic_checker_that_reads_the_row(tmp_path, store):
    """RL from a verifiable reward: the checker gets each reply with its prompt row's other
    fields (here the right answer), and the trained weights are the ones that generate."""
    from genlab.train.grpo import tune_grpo

    seen = tmp_path / "seen.jsonl"
    checker = tmp_path / "checks.py"
    checker.write_text(f"""import json
def right(reply, row):
    with open({str(seen)!r}, "a") as f:
        f.write(json.dumps({{"reply": reply, "row": row}}) + "\\n")
    return float(row["answer"].split()[-1] in reply) - len(reply) / 100   # varies within a group
""")
    prompts = write(tmp_path / "prompts.jsonl", [{"prompt": user(q), "answer": a} for q, a in zip(QUESTIONS, ANSWERS)])
    summary = tune_grpo(prompts, f"python:{checker}:right", options(tmp_path, "grpo", max_steps=2, learning_rate=3e-4),
                        num_generations=2, max_completion_length=8)
    assert summary.steps == 2 and summary.settings["reward"].endswith(":right") and len(summary.rewards) == 2
    calls = [json.loads(line) for line in seen.read_text().splitlines()]
    assert len(calls) >= 8 and all(c["row"]["answer"] in ANSWERS and isinstance(c["reply"], str) for c in calls)
    assert generates_differently(tmp_path / "grpo", store)


@pytest.mark.parametrize("spec, message", [
    ("regex:[unclosed", "not a valid regular expression"),
    ("python:nowhere.py:check", "give FILE.py:FUNCTION with an existing file"),
    ("runs/no-such-reward-model", "give a folder from genlab tune reward, regex:PATTERN, or python:FILE.py:FUNCTION"),
])
def test_a_bad_reward_is_refused_before_training(spec, message):
    from genlab.train.grpo import reward_function

    with pytest.raises(ConfigError, match=message):
        reward_function(spec)


def test_a_python_reward_that_raises_names_the_reply_and_the_row(tmp_path, monkeypatch):
    """It surfaced from inside trl's trainer as a traceback, after the model had loaded."""
    from genlab.train.grpo import reward_function

    (tmp_path / "checks.py").write_text("def right(reply, row):\n    return float(reply == row['answer'])\n")
    monkeypatch.chdir(tmp_path)
    reward = reward_function("python:checks.py:right")
    assert reward(["q", "q"], ["4", "5"], answer=["4", "4"]) == [1.0, 0.0]
    with pytest.raises(ConfigError, match=r"--reward 'python:checks.py:right' raised KeyError: 'answer', on the "
                                          r"reply '4' to the row \{'level': 1\}; it must return a number"):
        reward(["q"], ["4"], level=[1])
    (tmp_path / "odd.py").write_text("def none(reply, row):\n    return None\ndef inf(reply, row):\n"
                                     "    return float('inf')\n")
    for name, returned in [("none", "None"), ("inf", "inf")]:    # "raised TypeError", and a loss of NaN
        with pytest.raises(ConfigError, match=rf"--reward 'python:odd.py:{name}' returned {returned} for the reply "
                                              r"'4' to the row \{\}; it must return a finite number for any reply"):
            reward_function(f"python:odd.py:{name}")(["q"], ["4"])


def test_a_regex_reward_scores_chat_and_text_replies():
    from genlab.train.grpo import reward_function

    reward = reward_function(r"regex:^ANSWER: \S")
    assert reward(["q", "q", "q"], [assistant("ANSWER: 4"), assistant("It is 4."), "ANSWER: Paris"]) == [1.0, 0.0, 1.0]


def test_reward_model_on_a_held_out_file(pairs, tmp_path):
    from genlab.train.reward import tune_reward

    held = write(tmp_path / "held.jsonl", [{"prompt": user("What is 3 + 3?"), "chosen": assistant("ANSWER: 6"),
                                            "rejected": assistant("ANSWER: 7")}] * 3)
    summary = tune_reward(pairs, options(tmp_path, "rm", max_steps=2, learning_rate=5e-5), held_out_pairs=held)
    assert summary.rows == 8 and summary.pair_accuracy.pairs == 3       # every pair trains; the file measures
    assert summary.pair_accuracy.before.rate in (0.0, 1.0) and len(summary.pair_accuracy.after.ci95) == 2


@pytest.mark.parametrize("on_policy", [False, True])
def test_logit_and_on_policy_distillation_into_a_two_layer_student(tmp_path, on_policy):
    from genlab.train.distill import distill_logits

    data = write(tmp_path / "d.jsonl", [{"prompt": q, "completion": a} for q, a in zip(QUESTIONS * 2, ANSWERS * 2)])
    summary = distill_logits(data, options(tmp_path, "student", max_steps=3, learning_rate=1e-3), on_policy=on_policy,
                             student_layers=2, max_new_tokens=8)
    assert summary.settings["student_layers"] == 2 and summary.settings["teacher_layers"] == 30
    assert summary.weights.relative_l2_change > 0
    assert summary.loss_last < summary.loss_first
    # The metric is measured for the student before and after, next to the teacher.
    assert summary.reply_nll.student_before > summary.reply_nll.teacher > 0
    assert summary.reply_nll.student_after != summary.reply_nll.student_before
    from transformers import AutoConfig
    assert AutoConfig.from_pretrained(tmp_path / "student").num_hidden_layers == 2


def test_data_distillation_from_the_embedded_teacher(tmp_path):
    from genlab.train.distill import distill_data

    prompts = write(tmp_path / "p.jsonl", [{"prompt": q} for q in QUESTIONS])
    held = write(tmp_path / "held.jsonl", [{"prompt": "What is 1 + 1?", "completion": "ANSWER: 2"}])
    summary = distill_data(prompts, "local", options(tmp_path, "s", max_steps=2), eval_data=held, max_tokens=16)
    assert summary.settings["teacher_replies"] == 4 and summary.steps == 2
    rows = [json.loads(line) for line in (tmp_path / "s" / "teacher-data.jsonl").read_text().splitlines()]
    assert all(r["completion"][0]["content"] for r in rows)
    assert summary.reply_nll.student_after != summary.reply_nll.student_before
    assert summary.reply_nll.teacher == pytest.approx(summary.reply_nll.student_before)   # same model before training


def test_cli_distill_data_reports_the_students_held_out_nll(tmp_path):
    from tests.test_cli import genlab

    prompts = write(tmp_path / "p.jsonl", [{"prompt": q} for q in QUESTIONS])
    held = write(tmp_path / "held.jsonl", [{"prompt": "What is 1 + 1?", "completion": "ANSWER: 2"}])
    result = genlab("distill", "data", str(prompts), "--teacher", "local", "-o", str(tmp_path / "s"),
                    "--max-steps", "1", "--batch-size", "2", "--max-length", "64", "--eval", str(held))
    assert result.returncode == 0, result.stderr
    assert "distill-data: 1 steps on 4 rows" in result.stdout and "held-out reply NLL per token (1 rows" in result.stdout


def test_gecko_style_embedding_distillation_on_a_notebook(gecko_home, monkeypatch, tmp_path):
    from genlab.ground.notebook import Notebook
    from genlab.ground.retrieval import NotebookSearch
    from genlab.train.embeddings import distill_embeddings

    monkeypatch.setenv("GENLAB_HOME", str(gecko_home))
    velmora = Notebook.open("velmora")
    # 10 of the notebook's 14 passages are sampled for the teacher (each costs it about 7 s).
    summary = distill_embeddings("velmora", "local", tmp_path / "emb", epochs=2, batch_size=8, held_out=VELMORA_QA,
                                 max_passages=10)
    assert summary.corpus_passages == velmora.chunk_count() == 14 and summary.mined_passages == 10
    assert summary.training_triples >= 4 and summary.held_out["llm"].queries >= 2
    assert summary.held_out["human"].queries == sum(1 for r in load_qa(VELMORA_QA) if r.answerable)
    for held in summary.held_out.values():
        paired = held.paired_top10
        assert paired.found_only_after + paired.found_only_before <= held.queries and 0 <= paired.p_value <= 1
        for phase in (held.before, held.after):
            assert set(phase) == {"recall@1", "recall@5", "recall@10", "mrr", "ndcg@10"}
            assert all(0 <= value <= 1 for value in phase.values())
    # What was saved is the trained embedder, not the base it started from.
    from sentence_transformers import SentenceTransformer

    from genlab.ground.embed import resolve_embedder

    text = ["Who built the lighthouse?"]
    base = SentenceTransformer(str(resolve_embedder(None)[1]), device="cpu").encode(text)
    trained = SentenceTransformer(str(tmp_path / "emb"), device="cpu").encode(text)
    assert abs(base - trained).max() > 1e-4
    assert summary.steps >= 2 and summary.losses
    picks = summary.teacher_picks
    assert picks.queries == summary.training_triples and 0 <= picks.consistent <= 1
    mined = [json.loads(line) for line in (tmp_path / "emb" / "gecko-data.jsonl").read_text().splitlines()]
    assert len(mined) == summary.mined_passages
    saved = json.loads((tmp_path / "emb" / "gecko-summary.json").read_text())
    assert saved["training_triples"] == summary.training_triples and saved["held_out"]["llm"]["paired_top10"]
    # The tuned embedder serves a notebook.
    tuned = Notebook.create("tuned", embedder=str(tmp_path / "emb"))
    tuned.add([VELMORA])
    assert NotebookSearch(tuned).search("Who built the lighthouse?", 3)[0].similarity is not None


class FakeFirstShownTeacher:
    """Fault injection: a teacher that answers [1] whatever [1] is (the embedded model's habit)."""

    def chat(self, *args, **kwargs):
        return SimpleNamespace(text="1")


class FakeReadingTeacher:
    """A teacher that picks the candidate holding the word 'answer', wherever it is shown."""

    def chat(self, prompt, **kwargs):
        shown = re.findall(r"^\[(\d+)\] (.*)$", prompt, flags=re.M)
        return SimpleNamespace(text=next(n for n, text in shown if "answer" in text))


class FakeSecondOrFourthTeacher:
    """Fault injection: a teacher that answers [2] and [4] by turns, whatever they hold (the
    embedded model's habit with labels scored whole); [4] reversed is the same passage as [2]."""

    def __init__(self):
        self.answers = iter(["2", "4", "2", "4"])

    def chat(self, *args, **kwargs):
        return SimpleNamespace(text=next(self.answers))


def test_a_gecko_pick_that_follows_the_position_is_not_taken_for_a_judgment():
    from genlab.ground.passage import Passage
    from genlab.train.embeddings import pick, triple

    passages = [Passage(text, "s.txt", "s") for text in ("zero", "one", "the answer", "three", "four")]
    top = [3, 1, 2, 0, 4]
    blind = pick(FakeFirstShownTeacher(), "q", top, passages)
    assert blind == {"picks": [3, 4], "pick": None}
    mirrored = pick(FakeSecondOrFourthTeacher(), "q", top, passages)
    assert mirrored == {"picks": [1, 1, 2], "pick": None}      # survives the reversal, not the turn
    reading = pick(FakeReadingTeacher(), "q", top, passages)
    assert reading == {"picks": [2, 2, 2], "pick": 2}
    record = {"passage": 0, "held_out": False, "query": "q", "candidates": top}
    # No consistent pick: the query's own passage, and the lowest-ranked other candidate.
    assert triple(record | blind, "llm") == ("q", 0, 4)
    assert triple(record | reading, "llm") == ("q", 2, 4)
    assert triple(record | reading, "seed") == ("q", 0, 4)
    assert triple(record | {"held_out": True}, "seed") is None


def test_gecko_seed_positives_reuse_the_mined_queries_and_never_ask_the_teacher_to_pick(gecko_home, monkeypatch,
                                                                                           tmp_path):
    from tests.test_cli import genlab

    monkeypatch.setenv("GENLAB_HOME", str(gecko_home))
    first = genlab("distill", "embeddings", "velmora", "-o", str(tmp_path / "emb"), "--positive", "seed",
                   "--max-passages", "10", "--max-steps", "1", "--batch-size", "4")
    assert first.returncode == 0, first.stderr
    assert "(seed positives)" in first.stdout and "LLM-written queries of held-out passages" in first.stdout
    assert "teacher's picks" not in first.stdout
    mined_file = tmp_path / "emb" / "gecko-data.jsonl"
    mined = [json.loads(line) for line in mined_file.read_text().splitlines()]
    assert mined and not any("picks" in record for record in mined)
    mined_file.write_text(mined_file.read_text()[:-20])      # as if killed while writing the last record
    torn = mined.pop()["passage"]
    # Resuming with the teacher's picks adds only the picks: each training query keeps its text,
    # and the torn record's passage gets a query again.
    again = genlab("distill", "embeddings", "velmora", "-o", str(tmp_path / "emb"), "--resume",
                   "--max-passages", "10", "--max-steps", "1", "--batch-size", "4")
    assert again.returncode == 0, again.stderr
    assert "teacher's picks" in again.stdout
    records = [json.loads(line) for line in mined_file.read_text().splitlines()]
    latest = {r["passage"]: r for r in records}
    first_query = {r["passage"]: r["query"] for r in mined}
    assert torn in latest and all(r["query"] == first_query[n] for n, r in latest.items() if n != torn)
    # A third order is asked only when the first two agree.
    assert all(len(r["picks"]) == (3 if r["picks"][0] == r["picks"][1] else 2)
               for r in latest.values() if r.get("candidates"))


def test_gecko_refuses_a_qa_file_whose_evidence_is_not_in_the_corpus_before_any_model_work(velmora, tmp_path):
    from tests.test_cli import genlab

    qa = tmp_path / "qa.jsonl"
    qa.write_text(json.dumps({"question": "Who won?", "evidence": "no passage says this"}) + "\n")
    result = genlab("distill", "embeddings", "velmora", "-o", str(tmp_path / "emb"), "--held-out", str(qa))
    assert result.returncode == 1 and "qa.jsonl:1" in result.stderr and "no passage of velmora contains" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "emb").exists()
    bad = genlab("distill", "embeddings", "velmora", "-o", str(tmp_path / "emb"), "--positive", "best")
    assert bad.returncode == 1 and "--positive must be one of llm, seed" in bad.stderr
    assert bad.stderr.startswith("error:")    # no blank line left by a progress bar in a log


def test_compare_tuned_against_base_with_a_judge_and_a_reward_model(trained, genlab_home, tmp_path):
    from tests.test_cli import genlab

    tuned = f"hf:{trained.sft_dir}"
    suite = tmp_path / "suite.yaml"
    suite.write_text('prompts: ["{{q}}"]\nmodels: [local]\njudge: local\noptions: {temperature: 0, max_tokens: 16}\n'
                     'tests:\n  - vars: {q: "What is 5 + 5?"}\n  - vars: {q: "Name a colour."}\n')
    result = genlab("tune", "compare", "local", tuned, "--suite", str(suite), "--reward", str(trained.reward_dir),
                    "--out", str(tmp_path / "cmp"))
    assert result.returncode == 0, result.stderr
    wins, losses, ties = map(int, re.search(r"(\d+) wins, (\d+) losses, (\d+) ties", result.stdout).groups())
    assert wins + losses + ties == 2                     # one verdict per test, from both orders
    assert re.search(r"^local: \d/2 rows pass", result.stdout, re.M)
    rewards = dict(re.findall(r"^mean reward of (\S+): ([+-]\d+\.\d+)$", result.stdout, re.M))
    assert set(rewards) == {"local", tuned}


def test_the_hf_backend_loads_safely_from_many_threads(store):
    """Eval runs call a model from several threads; the first calls must not race the load."""
    from concurrent.futures import ThreadPoolExecutor

    from genlab.models import get_model
    from genlab.train.base import base_model_dir

    model = get_model(f"hf:{base_model_dir()}", store=store, source="test")
    with ThreadPoolExecutor(4) as pool:
        texts = list(pool.map(lambda _: model.chat("What is the capital of France?", temperature=0,
                                                   max_tokens=8).text, range(4)))
    assert len(set(texts)) == 1 and texts[0]


def test_the_hf_backend_in_enum_mode_returns_the_likeliest_label(store):
    """Enum mode on hf: scores each label whole; checked against scoring each one alone
    (no batch, no padding), with labels that share their first tokens."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from genlab.models import get_model
    from genlab.train.base import base_model_dir

    labels = ["sports", "sport", "weather", "food and drink"]
    model = get_model(f"hf:{base_model_dir()}", store=store, source="test")
    tokenizer = AutoTokenizer.from_pretrained(base_model_dir())
    reference = AutoModelForCausalLM.from_pretrained(base_model_dir())
    for text in ("The striker scored twice.", "Heavy rain tomorrow.", "Whisk the eggs."):
        messages = [{"role": "system", "content": "Classify the text: " + ", ".join(labels)},
                    {"role": "user", "content": text}]
        prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                               return_dict=True)["input_ids"][0].tolist()
        scores = []
        for label in labels:
            tokens = tokenizer(label, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
            with torch.no_grad():
                logits = reference(torch.tensor([prompt + tokens])).logits[0, len(prompt) - 1:-1].log_softmax(-1)
            scores.append(float(logits[torch.arange(len(tokens)), torch.tensor(tokens)].sum()))
        answer = model.chat(messages, temperature=0, response_format={"type": "enum", "enum": labels})
        assert answer.text == labels[scores.index(max(scores))]
        sampled = {model.chat(messages, temperature=1.5, seed=seed,
                              response_format={"type": "enum", "enum": labels}).text for seed in range(6)}
        assert sampled <= set(labels)
    with pytest.raises(ConfigError, match="does not do structured output \\(enum mode it does\\)"):
        model.chat("hi", response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {}}})


def test_the_hf_backend_samples_like_the_embedded_model_where_a_request_sets_nothing(store):
    """A tuned copy is judged against its base; at temperature 1 with no cut (transformers'
    own) the 135M model's long tail made word salad. Each sampled token is checked against
    the model's own ranking (reference logits), so the top-k 40 cut is seen at work."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from genlab.models import Request, get_model
    from genlab.models.hf import SAMPLING_DEFAULTS, sampling_options
    from genlab.train.base import base_model_dir

    assert sampling_options(Request(messages=user("hi"))) == SAMPLING_DEFAULTS == \
        {"temperature": 0.8, "top_k": 40, "top_p": 0.95}
    assert sampling_options(Request(messages=user("hi"), temperature=1.0, top_k=0)) == \
        {"temperature": 1.0, "top_k": 0, "top_p": 0.95}                  # what is given wins; 0 turns top-k off
    model = get_model(f"hf:{base_model_dir()}", store=store, source="test")
    tokenizer = AutoTokenizer.from_pretrained(base_model_dir())
    reference = AutoModelForCausalLM.from_pretrained(base_model_dir())
    messages = user("Tell me about the sea.")
    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                           return_dict=True)["input_ids"][0].tolist()
    for seed in range(4):
        tokens = tokenizer(model.chat(messages, seed=seed, max_tokens=24).text, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logits = reference(torch.tensor([prompt + tokens])).logits[0, len(prompt) - 1:-1]
        ranks = [int((logits[i] > logits[i, token]).sum()) for i, token in enumerate(tokens)]
        assert max(ranks) < 40, (seed, ranks)


def test_held_out_effect_lines_pair_each_assertion_before_and_after():
    from genlab.train.effect import HeldOutEffect, Rate

    effect = HeldOutEffect("suite.yaml", 4, {"all": Rate.of(1, 4)}, {"all": Rate.of(3, 4), "regex": Rate.of(4, 4)})
    line, = effect.lines()                                  # regex has no "before": not compared
    assert line.startswith("  all: 25 % (") and " → 75 % (" in line
    assert Rate.of(1, 4).ci95[0] < 0.25 < Rate.of(1, 4).ci95[1]
    assert str(Rate.of(0, 0)) == "no rows"
