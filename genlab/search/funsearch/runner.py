"""The FunSearch loop: samplers and evaluators running at once around the programs database.

    samplers (threads, --workers)          evaluators (--eval-workers sandboxes, or Ray tasks)
      database.sample(prompt index)          sandbox: run the program on every input
      → prompt → model (n samples)           → score each solution here (trusted)
      → save prompt + samples (pending)  →   → register in the database + save, one lock

The model never waits on evaluation: drafts go to the evaluators' queue and the
sampler asks for the next prompt at once (bounded, so drafts don't pile up).
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from genlab import __version__
from genlab.errors import BudgetExceeded, ConfigError, GenlabError, ModelError
from genlab.models import Budget, Model, get_model
from genlab.search.funsearch.config import RESUME_MAY_CHANGE, EvolveConfig
from genlab.search.funsearch.database import Program, ProgramsDatabase
from genlab.search.funsearch.evaluator import Evaluation, Evaluator
from genlab.search.funsearch.prompt import build_prompt
from genlab.search.funsearch.runstore import DRAWN, SEED, RunStore, SampleRow
from genlab.search.funsearch.sampler import Sampler, choose_grammar
from genlab.search.funsearch.sandbox import Limits, Sandbox, require_isolation
from genlab.search.funsearch.spec import Spec, SpecError, load_spec, parse_spec
from genlab.search.funsearch.tune import count_literals, tune_constants

#: Consecutive failed model calls after which a run stops (a transient error is retried).
MAX_MODEL_FAILURES = 3


@dataclass
class Progress:
    """A snapshot for the live view."""

    target: int | None        # samples to draw; None: a time or cost limit ends the run
    samples: int = 0          # drawn (saved) samples
    evaluated: int = 0
    valid: int = 0
    pending: int = 0
    best: float | None = None
    seed_score: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    started: float = field(default_factory=time.monotonic)
    evaluated_at_start: int = 0
    tuned: int = 0            # programs registered after tuning a sample's literals
    stopped_because: str | None = None
    failed: bool = False      # stopped by an error (the model's, a setting's), not by a limit

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def samples_per_s(self) -> float:
        return (self.evaluated - self.evaluated_at_start) / max(self.elapsed, 1e-9)

    @property
    def valid_pct(self) -> float:
        return 100.0 * self.valid / self.evaluated if self.evaluated else 0.0


@dataclass(frozen=True)
class Checked:
    """What start() and resume() settle before anything is created, for the Run to use."""

    grammar: str | None              # the body grammar, or None for free sampling
    sampling_notice: str | None      # why a grammar could not be built, for the user
    sandbox: Sandbox
    sandbox_missing: list[str]       # protections missing here (accepted with --unsafe-sandbox)

    @classmethod
    def of(cls, spec: Spec, config: EvolveConfig, model: Model, unsafe_sandbox: bool) -> "Checked":
        """Refuse --constrain where the model takes no grammar, and a sandbox that cannot fully
        isolate unless the user accepted it (consent is given per invocation, never stored)."""
        grammar, notice = choose_grammar(spec, config.constrain, model)
        sandbox = _sandbox(config)
        return cls(grammar, notice, sandbox, require_isolation(sandbox, unsafe_sandbox))


class Run:
    """One run directory, opened for (re)starting the loop."""

    def __init__(self, store: RunStore, spec: Spec, config: EvolveConfig, model: Model, checked: Checked):
        self.store, self.spec, self.config, self.model = store, spec, config, model
        # start() and resume() have checked the sandbox, and any consent to less isolation.
        self.evaluator = Evaluator(spec, sandbox=checked.sandbox, unsafe_sandbox=True)
        self.input_names = list(self.evaluator.inputs)
        #: Protections the sandbox lacks on this machine, accepted with --unsafe-sandbox.
        self.sandbox_missing = checked.sandbox_missing
        self.sampling_notice = checked.sampling_notice
        chat = config.mode == "chat" or (config.mode == "auto" and not model.backend.prefers_completions)
        self.sampler = Sampler(model, chat=chat, samples_per_prompt=config.samples_per_prompt,
                               temperature=config.temperature, top_p=config.top_p,
                               max_tokens=config.max_tokens, seed=config.seed if config.seed_model else None,
                               grammar=checked.grammar)
        self.database = ProgramsDatabase(config.database, seed=config.seed)
        self.lock = threading.Lock()
        self.has_work = threading.Condition(self.lock)
        self.stop = threading.Event()
        self.protections: list[str] = []
        self.progress = Progress(target=config.samples)
        self.next_seq = 0
        self.next_prompt = 0
        self.reserved = 0
        self.in_flight = 0
        self.failure: BaseException | None = None  # a bug in a sampler thread, re-raised by execute()
        #: Behaviours (per-input scores) registered so far: a sample is tuned only when its behaviour is new.
        self.behaviours: set[tuple] = set()
        self.tuner = ThreadPoolExecutor(1, thread_name_prefix="genlab-tune") if config.tune_variants else None

    @property
    def constrained(self) -> bool:
        """True when samples are drawn under the body grammar."""
        return self.sampler.grammar is not None

    # -- opening ------------------------------------------------------------------

    @classmethod
    def start(cls, config: EvolveConfig, run_dir: Path, unsafe_sandbox: bool = False) -> "Run":
        """Check everything, then create a new run directory (before any model call)."""
        spec = load_spec(config.spec)
        if (Path(run_dir) / "run.db").exists():
            raise ConfigError(f"{run_dir} already holds a run; continue it with: genlab evolve --resume {run_dir}")
        spec.seed_program(config.seed_program)  # refuse an unknown seed program before creating anything
        model = get_model(config.model, budget=_budget(config), source="evolve")
        checked = Checked.of(spec, config, model, unsafe_sandbox)
        new_dir = not Path(run_dir).exists()
        store = RunStore(run_dir, create=True, hold=True)
        try:
            store.set_meta({"config": config.to_dict(), "spec_name": spec.name, "spec_path": spec.path,
                            "spec_source": spec.source, "genlab_version": __version__, "created": time.time()})
            run = cls(store, spec, config, model, checked)
            run._evaluate_seed()
        except SpecError:
            # The run holds nothing but a seed that fails: remove it, so that the same
            # command starts again once the spec is fixed (a resume would keep the bad spec).
            store.remove(remove_dir=new_dir)
            raise
        except BaseException:
            store.release()
            raise
        return run

    @classmethod
    def resume(cls, run_dir: Path, unsafe_sandbox: bool = False, **changes: Any) -> "Run":
        """Reopen a run. ``changes`` set what `RESUME_MAY_CHANGE` names (its target, time
        limit, budget and parallelism) and are kept. The run's budget is its total: what it
        spent before counts against it."""
        store = RunStore(run_dir, create=False, hold=True)
        try:
            meta = store.meta()
            refused = sorted(set(changes) - set(RESUME_MAY_CHANGE))
            if refused:
                raise ConfigError(f"a resumed run keeps its {', '.join(refused)}; start a new run to change them")
            config = EvolveConfig.from_dict({**meta["config"], **changes})
            # The spec as it was when the run started, so its scores stay comparable.
            spec = parse_spec(meta["spec_source"], meta["spec_path"], meta["spec_name"])
            model = get_model(config.model, budget=_budget(config, spent_usd=store.counts()["cost_usd"] or 0.0),
                              source="evolve")
            run = cls(store, spec, config, model, Checked.of(spec, config, model, unsafe_sandbox))
            if changes:   # kept once the run is sure to go on
                store.set_meta({"config": config.to_dict()})
            return run
        except BaseException:
            store.release()
            raise

    # -- the loop -------------------------------------------------------------------

    def execute(self, on_progress: Callable[[Progress], None] | None = None) -> Progress:
        """Run until the target sample count, the time limit, the budget, or Ctrl-C; then let
        another process resume the run."""
        try:
            return self._execute(on_progress)
        finally:
            self.store.release()

    def _execute(self, on_progress: Callable[[Progress], None] | None) -> Progress:
        notify = on_progress or (lambda p: None)
        self._restore()
        notify(self.progress)
        deadline = None if self.config.max_minutes is None else time.monotonic() + 60 * self.config.max_minutes
        evaluators = self._executor()
        pending = self.store.samples(f"status='pending' AND {DRAWN}")
        with self.lock:
            self.progress.pending = len(pending)
        for row in pending:
            self._submit(evaluators, row.id, row.code, row.island)
        samplers = [threading.Thread(target=self._sampler, args=(evaluators, deadline, notify),
                                     name=f"genlab-sampler-{i}", daemon=True)
                    for i in range(self.config.workers)]
        for thread in samplers:
            thread.start()
        try:
            while any(t.is_alive() for t in samplers) or self.in_flight:
                with self.has_work:
                    self.has_work.wait(timeout=0.5)
                notify(self.progress)
        except KeyboardInterrupt:
            self.stop.set()
            self.progress.stopped_because = "interrupted (pending samples are evaluated on --resume)"
            evaluators.shutdown(wait=False, cancel_futures=True)
            if self.tuner:  # a tuning cut short is not redone: the sample it started from is kept
                self.tuner.shutdown(wait=False, cancel_futures=True)
            raise
        evaluators.shutdown(wait=True)
        if self.tuner:
            self.tuner.shutdown(wait=True)
        if self.failure is not None:
            raise self.failure
        if self.progress.stopped_because is None:
            self.progress.stopped_because = "target reached"
        notify(self.progress)
        return self.progress

    def _executor(self):
        if self.config.backend == "ray":
            from genlab.search.funsearch.ray_backend import RayExecutor

            return RayExecutor(self.config.eval_workers)
        return ThreadPoolExecutor(self.config.eval_workers, thread_name_prefix="genlab-eval")

    def _evaluate_seed(self) -> SampleRow:
        """The seed's row, evaluated (a new run evaluates it once; SpecError when it fails)."""
        seeds = self.store.samples(SEED)
        if not seeds:
            self.store.add_seed(str(self.spec.seed_program(self.config.seed_program)))
            seeds = self.store.samples(SEED)
        seed = seeds[0]
        if seed.status != "evaluated":
            evaluation = self.evaluator.evaluate(seed.code)
            self.protections = evaluation.protections
            if not evaluation.valid:
                name, error = next(iter(evaluation.errors.items()))  # load_spec refuses an empty inputs()
                raise SpecError(f"{self.spec.path}: the seed function {self.spec.function_name}() fails on "
                                f"{len(evaluation.errors)} of {len(self.evaluator.inputs)} inputs ({name}: {error}); "
                                "every program must score on every input: fix the spec before evolving it")
            self.store.save_evaluation(seed.id, evaluation.scores, evaluation.errors, None, evaluation.score,
                                       evaluation.wall_s, None)
            seed = self.store.samples(SEED)[0]
        return seed

    def _restore(self) -> None:
        """Rebuild the programs database from the store, the seed first."""
        seed = self._evaluate_seed()
        seed_program = self.program(seed)
        self.database.register(seed_program, None)
        self.progress.seed_score = seed.score
        self.behaviours.add(seed_program.signature)
        for row in self.store.samples("registered_seq IS NOT NULL", order="registered_seq"):
            program = self.program(row)
            self.database.register(program, row.island)
            self.behaviours.add(program.signature)
        counts = self.store.counts()
        self.next_seq = 0 if counts["last_seq"] is None else counts["last_seq"] + 1
        self.next_prompt = 0 if counts["last_prompt"] is None else counts["last_prompt"] + 1
        self.reserved = counts["samples"]
        p = self.progress
        p.samples, p.evaluated, p.valid = counts["samples"], counts["evaluated"] or 0, counts["valid"] or 0
        p.evaluated_at_start = p.evaluated
        p.best = max(filter(lambda v: v is not None, [counts["best"], seed.score]))
        p.tuned = counts["tuned"]
        p.prompt_tokens, p.completion_tokens = counts["prompt_tokens"] or 0, counts["completion_tokens"] or 0
        p.cost_usd = counts["cost_usd"] or 0.0

    def program(self, row: SampleRow) -> Program:
        """A stored sample as the programs database holds it."""
        return Program(row.id, row.code, self.signature(row.scores), row.score)

    def signature(self, scores: dict[str, float]) -> tuple:
        """A program's behaviour: its score on each training input, in the spec's order."""
        return tuple(scores.get(name) for name in self.input_names)

    def _sampler(self, evaluators, deadline: float | None, notify) -> None:
        try:
            self._sample_loop(evaluators, deadline, notify)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            with self.has_work:
                self._stop_on(exc)

    def _stop_on(self, exc: BaseException) -> None:
        """Stop the run on an error outside a model call (the lock held). One of genlab's own
        (the store cannot be written: a full disk) ends it as a failed run that resumes once
        that is fixed; anything else is a bug, which `execute` raises."""
        self.stop.set()
        if isinstance(exc, GenlabError):
            if self.progress.stopped_because is None:     # the first reason is the one reported
                self.progress.stopped_because, self.progress.failed = str(exc), True
        else:
            self.failure = self.failure or exc
            self.progress.stopped_because = f"failed: {type(exc).__name__}: {exc}"
        self.has_work.notify_all()

    def _sample_loop(self, evaluators, deadline: float | None, notify) -> None:
        failures = 0
        while not self.stop.is_set():
            with self.has_work:
                # Bounded queue: wait while the evaluators are far behind.
                while self.in_flight >= 2 * self.config.eval_workers and not self.stop.is_set():
                    self.has_work.wait(timeout=0.5)
                if deadline is not None and time.monotonic() > deadline:
                    self.progress.stopped_because = self.progress.stopped_because or "time limit reached"
                    return
                n = self.config.samples_per_prompt
                if self.config.samples is not None:
                    n = min(n, self.config.samples - self.reserved)
                if n <= 0 or self.stop.is_set():
                    return
                self.reserved += n
                prompt_index = self.next_prompt
                self.next_prompt += 1
                chosen = self.database.sample(prompt_index)
            prompt, header = build_prompt(self.spec, chosen.programs)
            try:
                drafts, response = self.sampler.draw(prompt, header, self.spec.function_name, prompt_index, n=n)
                failures = 0
            except BudgetExceeded as exc:
                self._release(n, f"budget spent ({exc})")
                return
            except ModelError as exc:
                failures += 1
                self._release(n, None)
                if failures >= MAX_MODEL_FAILURES:
                    self._release(0, f"model failed {failures} times in a row: {exc}", failed=True)
                    return
                continue
            except GenlabError as exc:
                self._release(n, f"stopped: {exc}", failed=True)
                return
            usage = {"prompt_tokens": response.usage.prompt_tokens, "cached_tokens": response.usage.cached_tokens,
                     "completion_tokens": response.usage.completion_tokens, "cost_usd": response.cost_usd,
                     "latency_s": response.latency_s}
            parent_ids = [p.id for p in chosen.programs]
            ids = self.store.add_prompt(prompt_index, chosen.island_id, parent_ids, prompt, self.config.model, usage,
                                        [vars(d) for d in drafts], constrained=self.constrained)
            with self.has_work:
                p = self.progress
                p.samples += len(drafts)
                p.prompt_tokens += usage["prompt_tokens"]
                p.completion_tokens += usage["completion_tokens"]
                p.cost_usd += usage["cost_usd"] or 0.0
                p.evaluated += sum(1 for d in drafts if d.code is None)  # discarded drafts are done
                p.pending += sum(1 for d in drafts if d.code is not None)
                self.has_work.notify_all()
            for sample_id, draft in zip(ids, drafts):
                if draft.code is not None:
                    self._submit(evaluators, sample_id, draft.code, chosen.island_id)

    def _release(self, n: int, reason: str | None, failed: bool = False) -> None:
        with self.has_work:
            self.reserved -= n
            if reason:
                self.stop.set()
                if self.progress.stopped_because is None:     # the first reason is the one reported
                    self.progress.stopped_because, self.progress.failed = reason, failed
            self.has_work.notify_all()

    def _submit(self, evaluators, sample_id: int, code: str, island: int) -> None:
        with self.lock:
            self.in_flight += 1
        future: Future = evaluators.submit(self.evaluator.evaluate, code)
        future.add_done_callback(lambda f: self._registered(f, sample_id, code, island))

    def _registered(self, future: Future, sample_id: int, code: str, island: int) -> None:
        if future.cancelled():
            with self.has_work:
                self.in_flight -= 1
                self.has_work.notify_all()
            return
        try:
            evaluation: Evaluation = future.result()
        except (OSError, GenlabError) as exc:
            with self.has_work:
                self.in_flight -= 1
                self._stop_on(_not_run(exc))
            return
        except Exception as exc:  # a bug in genlab's evaluator on this program: recorded, the run goes on
            evaluation = Evaluation({}, {"evaluator": f"{type(exc).__name__}: {exc}"}, "evaluator_error")
        with self.has_work:
            try:
                self._register(evaluation, sample_id, code, island)
            except Exception as exc:  # noqa: BLE001 - not saved: the run stops, and --resume evaluates it again
                self.in_flight -= 1
                self._stop_on(exc)

    def _register(self, evaluation: Evaluation, sample_id: int, code: str, island: int) -> None:
        """Register an evaluated sample and save it (the lock held)."""
        seq = None
        tune = False
        if evaluation.valid:
            seq = self.next_seq
            self.next_seq += 1
            signature = self.signature(evaluation.scores)
            self.database.register(Program(sample_id, code, signature, evaluation.score), island)
            tune = (self.tuner is not None and signature not in self.behaviours
                    and evaluation.score >= self.progress.seed_score and count_literals(code) > 0)
            self.behaviours.add(signature)
        # Saved under the same lock as the registration, so the store's order is the database's.
        self.store.save_evaluation(sample_id, evaluation.scores, evaluation.errors, evaluation.error_kind,
                                   evaluation.score, evaluation.wall_s, seq)
        p = self.progress
        p.evaluated += 1
        p.pending -= 1
        if evaluation.valid:
            p.valid += 1
            p.best = evaluation.score if p.best is None else max(p.best, evaluation.score)
        if tune:  # in flight until it is registered, so the run waits for it
            self.tuner.submit(self._tune, sample_id, code, island, evaluation)
        else:
            self.in_flight -= 1
        if evaluation.protections:
            self.protections = evaluation.protections
        self.has_work.notify_all()

    def _tune(self, sample_id: int, code: str, island: int, evaluated: Evaluation) -> None:
        """Tune a new behaviour's literals on the training inputs, and register the best
        variant on the sample's island when it scores above the sample."""
        try:
            tuned = tune_constants(code, self.evaluator, self.config.tune_variants, seed=self.config.seed,
                                   given=evaluated)
            evaluation = tuned.evaluation
            with self.has_work:
                if tuned.code != code:  # a variant scored above the sample: registered beside it
                    seq = self.next_seq
                    self.next_seq += 1
                    tuned_id = self.store.add_tuned(sample_id, island, tuned.code, evaluation.scores,
                                                    evaluation.score, evaluation.wall_s, seq)
                    signature = self.signature(evaluation.scores)
                    self.database.register(Program(tuned_id, tuned.code, signature, evaluation.score), island)
                    self.behaviours.add(signature)
                    self.progress.tuned += 1
                    self.progress.best = max(self.progress.best, evaluation.score)
        except Exception as exc:  # noqa: BLE001 - a bug in genlab's tuning, or the store not written: stop the run
            with self.has_work:
                self._stop_on(_not_run(exc) if isinstance(exc, OSError) else exc)
        finally:
            with self.has_work:
                self.in_flight -= 1
                self.has_work.notify_all()


def _not_run(exc: OSError | GenlabError) -> GenlabError:
    """Why the sandbox could not run a program (no room for its work folder: a full /tmp). It
    is not the program's doing, so nothing is recorded: the run stops, and --resume evaluates it."""
    return exc if isinstance(exc, GenlabError) else GenlabError(
        f"the sandbox could not run a program ({type(exc).__name__}: {exc})")


def _budget(config: EvolveConfig, spent_usd: float = 0.0) -> Budget | None:
    """The run's budget: ``config.budget_usd`` in all, of which ``spent_usd`` is spent already."""
    return None if config.budget_usd is None else Budget(config.budget_usd, spent_usd=spent_usd)


def evolve(config: EvolveConfig, run_dir: Path, *, on_progress=None,
           unsafe_sandbox: bool = False) -> tuple[Run, Progress]:
    """Start a run and execute it (the Python API behind `genlab evolve`)."""
    run = Run.start(config, run_dir, unsafe_sandbox=unsafe_sandbox)
    return run, run.execute(on_progress)


def describe(progress: Progress) -> dict[str, Any]:
    return {"samples": progress.samples, "evaluated": progress.evaluated, "valid": progress.valid,
            "valid_pct": progress.valid_pct, "best": progress.best, "seed_score": progress.seed_score,
            "samples_per_s": progress.samples_per_s, "prompt_tokens": progress.prompt_tokens,
            "completion_tokens": progress.completion_tokens, "cost_usd": progress.cost_usd,
            "elapsed_s": progress.elapsed, "stopped_because": progress.stopped_because}


def _sandbox(config: EvolveConfig) -> Sandbox:
    limits = Limits(timeout_s=config.timeout_s, memory_mb=config.memory_mb)
    if config.backend == "ray":
        from genlab.search.funsearch.ray_backend import RaySandbox, ensure_ray

        ensure_ray(config.eval_workers)
        return RaySandbox(limits)
    return Sandbox(limits)
