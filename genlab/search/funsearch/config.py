"""Settings of a program-search run; saved with the run so a resume uses the same ones."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from genlab.errors import ConfigError
from genlab.machine import usable_cores
from genlab.search.funsearch.database import DatabaseConfig


def _default_eval_workers() -> int:
    return usable_cores()


#: What `genlab evolve --resume` may change: how long and how widely the run goes on, and what
#: it may spend, never what it searches (the spec, model, prompts, sandbox limits, seeds).
RESUME_MAY_CHANGE = ("samples", "max_minutes", "budget_usd", "workers", "eval_workers")


@dataclass(frozen=True)
class EvolveConfig:
    """One run of `genlab evolve`. Sampling defaults are the paper's (4 per prompt, T=1.0, top-p 0.95)."""

    spec: str                              # built-in name or path of the spec file
    model: str = "local"                   # genlab model spec
    samples: int | None = 200              # samples to draw in total (the seed not counted); None:
                                           # no count, max_minutes or budget_usd ends the run
    samples_per_prompt: int = 4
    temperature: float = 1.0
    top_p: float = 0.95
    max_tokens: int = 384                  # per sample
    mode: str = "auto"                     # completion, chat, or auto (completion on the embedded model)
    constrain: bool | None = None          # sample the body under a grammar built from the spec (every
                                           # sample parses); None: wherever the backend takes grammars
    workers: int = 1                       # model calls in flight at once
    eval_workers: int = field(default_factory=_default_eval_workers)  # sandboxed evaluations at once
    seed: int = 0                          # drives the database's choices (always reproducible)
    seed_program: str | None = None        # start from one of the spec's BASELINES (e.g. best-fit, as the
                                           # paper's bin-packing runs did) instead of the spec's own seed
    seed_model: bool = False               # also seed each model call: reproducible samples on the
                                           # embedded model, but one at a time, without its prompt cache
                                           # (slower; see models/local.py Turns)
    tune_variants: int = 0                 # after a sample that scores at least the seed and behaves in a
                                           # way not seen before, tune its literals with this many variants
                                           # (search/funsearch/tune.py) and register the best; 0: off
    timeout_s: float = 30.0                # per program, all inputs together (paper: 30 s)
    memory_mb: int = 2048                  # per program (paper: 2 GB)
    budget_usd: float | None = None
    max_minutes: float | None = None       # stop drawing new samples after this long
    backend: str = "local"                 # local processes, or ray
    database: DatabaseConfig = field(default_factory=DatabaseConfig)

    def __post_init__(self) -> None:
        checks = [
            (self.samples is None or self.samples >= 1, "--samples must be at least 1"),
            (self.samples is not None or self.max_minutes is not None or self.budget_usd is not None,
             "a run needs an end: --samples, --max-minutes or --budget-usd"),
            (self.samples_per_prompt >= 1, "samples per prompt must be at least 1"),
            (self.workers >= 1, "--workers must be at least 1"),
            (self.eval_workers >= 1, "--eval-workers must be at least 1"),
            (self.max_minutes is None or self.max_minutes > 0, "--max-minutes must be more than 0"),
            (self.max_tokens >= 1, "--max-tokens must be at least 1"),
            (self.tune_variants >= 0, "--tune-variants must be 0 (off) or more"),
            (self.seed >= 0, "--seed must be 0 or more"),
            (self.timeout_s > 0, "--timeout must be more than 0 seconds"),
            (self.memory_mb >= 256, "--memory-mb must be at least 256"),
            (self.mode in ("auto", "completion", "chat"), "--mode must be completion, chat or auto"),
            (self.backend in ("local", "ray"), "--backend must be local or ray"),
            (self.database.num_islands >= 1, "--islands must be at least 1"),
            (self.database.functions_per_prompt >= 1, "functions per prompt must be at least 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "EvolveConfig":
        data = dict(data)
        data["database"] = DatabaseConfig(**data.get("database", {}))
        data.setdefault("constrain", False)  # runs saved before constrained sampling existed sampled freely
        data.setdefault("tune_variants", 0)  # nor did runs saved before tuning tune
        return cls(**data)
