"""The programs database: islands of programs clustered by signature (FunSearch, Methods,
"Programs database"; structure after the reference skeleton's programs_database.py).

Differences from the reference skeleton, on purpose:
- a cluster's score is the mean over inputs (the skeleton used the last input);
- resets happen every ``reset_period`` registered programs, not every 4 hours, so a
  run is reproducible from its seed;
- every random choice draws from a generator seeded by (seed, event, index), so the
  same history gives the same prompts and resets, also after a resume;
- a function whose normalised code is already on the island is not registered twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from genlab.search.funsearch.code import normalized

Signature = tuple  # per-input scores, None where an input failed

_PROMPT_EVENT, _RESET_EVENT = 0, 1


@dataclass(frozen=True)
class DatabaseConfig:
    """Programs-database settings; defaults are the paper's."""

    functions_per_prompt: int = 2          # k: programs shown in a prompt
    num_islands: int = 10                  # m
    reset_period: int = 2000               # registered programs between island resets (paper: 4 h)
    cluster_sampling_temperature_init: float = 0.1   # T0
    cluster_sampling_temperature_period: int = 30_000  # N


@dataclass
class Program:
    """A registered function and its scores."""

    id: int                 # the sample id in the run's store
    code: str               # source of the evolved function, under its original name
    signature: Signature
    score: float

    @property
    def length(self) -> int:
        return len(self.code)


def _softmax(logits: np.ndarray, temperature: float) -> np.ndarray:
    logits = np.asarray(logits, dtype=np.float64) / temperature
    logits -= logits.max()
    probs = np.exp(logits)
    return probs / probs.sum()


@dataclass
class Cluster:
    """Programs with the same signature; shorter ones are preferred."""

    score: float
    programs: list[Program] = field(default_factory=list)

    def sample_program(self, rng: np.random.Generator) -> Program:
        lengths = np.array([p.length for p in self.programs], dtype=np.float64)
        normalized_lengths = (lengths - lengths.min()) / (lengths.max() + 1e-6)
        probs = _softmax(-normalized_lengths, temperature=1.0)
        return self.programs[rng.choice(len(self.programs), p=probs)]


class Island:
    """A sub-population that evolves independently between resets."""

    def __init__(self, config: DatabaseConfig):
        self.config = config
        self.clusters: dict[Signature, Cluster] = {}
        self.num_programs = 0
        self.seen: set[str] = set()

    def register(self, program: Program) -> bool:
        key = _dedup_key(program.code)
        if key in self.seen:
            return False
        self.seen.add(key)
        cluster = self.clusters.setdefault(program.signature, Cluster(program.score))
        cluster.programs.append(program)
        self.num_programs += 1
        return True

    def sample(self, rng: np.random.Generator) -> list[Program]:
        """Pick up to k programs from distinct clusters, ascending by score."""
        signatures = list(self.clusters)
        scores = np.array([self.clusters[s].score for s in signatures])
        period = self.config.cluster_sampling_temperature_period
        # The cooling sawtooth of the paper: T = T0 * (1 - (n mod N) / N).
        temperature = self.config.cluster_sampling_temperature_init * (1 - (self.num_programs % period) / period)
        probs = _softmax(scores, temperature)
        k = min(len(signatures), self.config.functions_per_prompt)
        # Draw distinct clusters; numpy refuses p with fewer non-zero entries than k.
        k = min(k, int(np.count_nonzero(probs)))
        chosen = rng.choice(len(signatures), size=k, replace=False, p=probs)
        picked = [self.clusters[signatures[i]].sample_program(rng) for i in chosen]
        return sorted(picked, key=lambda p: p.score)


def _dedup_key(code: str) -> str:
    try:
        return normalized(code)
    except SyntaxError:
        return code


@dataclass
class PromptPrograms:
    """What a prompt is built from: the island and its programs, ascending by score."""

    index: int
    island_id: int
    programs: list[Program]


class ProgramsDatabase:
    """Islands of programs; hands out programs for prompts and takes back scored samples."""

    def __init__(self, config: DatabaseConfig, seed: int = 0):
        self.config = config
        self.seed = seed
        self.islands = [Island(config) for _ in range(config.num_islands)]
        self.best_score = [-np.inf] * config.num_islands
        self.best_program: list[Program | None] = [None] * config.num_islands
        self.registered = 0      # programs registered through `register` (drives resets)
        self.resets = 0

    def _rng(self, event: int, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, event, index])

    def sample(self, prompt_index: int) -> PromptPrograms:
        """Return the programs for prompt number ``prompt_index`` (deterministic in it)."""
        rng = self._rng(_PROMPT_EVENT, prompt_index)
        island_id = int(rng.integers(len(self.islands)))
        return PromptPrograms(prompt_index, island_id, self.islands[island_id].sample(rng))

    def register(self, program: Program, island_id: int | None) -> bool:
        """Add a scored program to its island (all islands when None, as for the seed).

        Returns whether the program was new to the island. Every ``reset_period``
        registrations, the worse half of the islands is reset.
        """
        added = False
        for i in range(len(self.islands)) if island_id is None else [island_id]:
            added |= self._register_on(program, i)
        if island_id is not None:
            self.registered += 1
            if self.registered % self.config.reset_period == 0:
                self.reset_islands()
        return added

    def _register_on(self, program: Program, island_id: int) -> bool:
        added = self.islands[island_id].register(program)
        if program.score > self.best_score[island_id]:
            self.best_score[island_id] = program.score
            self.best_program[island_id] = program
        return added

    def reset_islands(self) -> None:
        """Wipe the worse half of the islands; reseed each from a random survivor's best."""
        rng = self._rng(_RESET_EVENT, self.resets)
        self.resets += 1
        best = np.array(self.best_score, dtype=np.float64)
        # Tiny noise breaks ties between islands with equal best scores at random.
        order = np.argsort(best + rng.standard_normal(len(best)) * 1e-6)
        half = len(self.islands) // 2
        reset_ids, keep_ids = order[:half], order[half:]
        for island_id in reset_ids:
            self.islands[island_id] = Island(self.config)
            self.best_score[island_id] = -np.inf
            self.best_program[island_id] = None
            founder = self.best_program[int(rng.choice(keep_ids))]
            if founder is not None:
                self._register_on(founder, int(island_id))

    def best(self) -> Program | None:
        """Return the best program over all islands."""
        candidates = [p for p in self.best_program if p is not None]
        return max(candidates, key=lambda p: p.score) if candidates else None
