"""What a training run changed in what the model does: an eval suite of held-out rows run
on the starting model and on the trained one (``genlab tune … --eval SUITE``).

A falling loss says the trainer fitted its data; only generations say whether the
behaviour moved. Both models are run by the same engine (transformers, from their
folders), so the difference is the weights', not llama.cpp's against transformers'.
Each assertion of the suite becomes a rate with its 95 % Wilson interval.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from genlab.evaluate.autorater import wilson_interval
from genlab.evaluate.runner import RunOptions, SuiteRunner
from genlab.evaluate.suite import load_suite

EVAL_FOLDER = "held-out-eval"


@dataclass(frozen=True)
class Rate:
    """How many of n rows passed, and the rate with its 95 % Wilson interval."""

    passed: int
    n: int
    rate: float | None                # None when there were no rows
    ci95: tuple[float, float]

    @classmethod
    def of(cls, passed: int, n: int) -> "Rate":
        return cls(passed, n, passed / n if n else None, tuple(wilson_interval(passed, n)))

    def __str__(self) -> str:
        low, high = self.ci95
        return f"{100 * self.rate:.0f} % ({100 * low:.0f}–{100 * high:.0f})" if self.n else "no rows"


@dataclass(frozen=True)
class HeldOutEffect:
    """A suite's rates on the starting model and on the trained one, by assertion ("all": every one passed)."""

    suite: str
    rows: int
    before: dict[str, Rate]
    after: dict[str, Rate]

    def lines(self) -> list[str]:
        """One line per assertion: before → after, with intervals."""
        return [f"  {name}: {self.before[name]} → {self.after[name]}" for name in self.after if name in self.before]


def rates(rows: list[dict]) -> dict[str, Rate]:
    """All assertions passed, and each assertion on its own (named by type, #2… when repeated)."""
    counts: dict[str, int] = {}
    for row in rows:
        seen: dict[str, int] = {}
        for assertion in row.get("assertions", []):
            seen[assertion["type"]] = seen.get(assertion["type"], 0) + 1
            name = assertion["type"] + (f"#{seen[assertion['type']]}" if seen[assertion["type"]] > 1 else "")
            counts[name] = counts.get(name, 0) + int(bool(assertion["passed"]))
    return {"all": Rate.of(sum(bool(r.get("passed")) for r in rows), len(rows)),
            **{name: Rate.of(passed, len(rows)) for name, passed in counts.items()}}


def measure(suite_path: Path, before: Path, after: Path,
            progress: Callable[[int, int], None] | None = None) -> HeldOutEffect:
    """Run the suite on ``before`` and ``after`` (model folders; the rows are kept in
    ``after/held-out-eval``); return both sets of rates."""
    specs = {"before": f"hf:{before}", "after": f"hf:{after}"}
    suite = load_suite(suite_path, {"models": list(specs.values())})
    # One row at a time: two generations at once would share the same two cores.
    runner = SuiteRunner(suite, RunOptions(after / EVAL_FOLDER, concurrency=1))
    runner.run(progress)
    rows = list(runner.store.done().values())
    return HeldOutEffect(str(suite_path), len(suite.tests),
                         *(rates([r for r in rows if r["model"] == spec]) for spec in specs.values()))
