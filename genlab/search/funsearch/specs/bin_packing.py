"""Online 1-D bin packing (FunSearch, Romera-Paredes et al., Nature 2024, Suppl. E).

Items arrive one at a time; each goes into the valid bin (remaining capacity
>= item) with the highest priority, ties to the lowest index. The priority
function is what evolves. Fitness is minus the number of bins used.

Evolution runs on generated OR-style instances (sizes 20..100, capacity 150, like
OR-Library's binpack1-4): five each of 120, 250, 500 and 1000 items, because a heuristic's
gain over Best Fit grows with the number of items, and on 120 items alone it is smaller
than the luck of the draw. OR1-OR4 and Weibull 5k are held out.
"""
import numpy as np

import funsearch

# For `genlab evolve baselines` and reports only; never shown in prompts.
BASELINES = {
    "First Fit": "def priority(item, bins):\n    return 0.0\n",
    "Best Fit": "def priority(item, bins):\n    return -(bins - item)\n",
}
PUBLISHED = {  # excess bins %, paper Table 1
    "FunSearch (paper)": {"OR1": 5.30, "OR2": 4.19, "OR3": 3.11, "OR4": 2.47, "Weibull 5k": 0.68},
}


@funsearch.run
def solve(instance: dict) -> list:
    """Packs the items online and returns the bin index chosen for each item."""
    capacity = instance["capacity"]
    items = instance["items"]
    bins = np.full(len(items), capacity, dtype=np.int64)  # one bin per item, all empty
    chosen = np.empty(len(items), dtype=np.int64)
    for i, item in enumerate(items):
        valid = np.nonzero((bins - item) >= 0)[0]
        priorities = priority(item, bins[valid])
        best = valid[np.argmax(priorities)]  # ties (and a scalar priority) go to the lowest index
        bins[best] -= item
        chosen[i] = best
    return chosen.tolist()


@funsearch.evolve
def priority(item: float, bins: np.ndarray) -> np.ndarray:
    """Returns priority with which we want to add item to each bin.

    Args:
      item: Size of item to be added to the bin.
      bins: Array of capacities for each bin.

    Return:
      Array of same size as bins with priority score of each bin.
    """
    return 0.0


@funsearch.score
def score(instance: dict, chosen: list) -> float:
    """Checks the packing and returns minus the number of bins used."""
    items = np.asarray(instance["items"], dtype=np.int64)
    chosen = np.asarray(chosen)
    if chosen.shape != items.shape or chosen.dtype.kind not in "iu":
        raise ValueError("the solution must give one integer bin index per item")
    if len(chosen) and (chosen.min() < 0 or chosen.max() >= len(items)):
        raise ValueError("a bin index is out of range")
    loads = np.bincount(chosen, weights=items, minlength=len(items))
    if loads.max(initial=0) > instance["capacity"]:
        raise ValueError("a bin is over capacity")
    return -float(np.count_nonzero(loads))


@funsearch.inputs
def inputs() -> dict:
    """Twenty generated OR-style instances (seeded, so every run evolves on the same set)."""
    rng = np.random.default_rng(20240101)
    return {f"train_{n}_{i}": {"capacity": 150, "items": rng.integers(20, 101, size=n).tolist()}
            for n in (120, 250, 500, 1000) for i in range(5)}


@funsearch.test_inputs
def test_inputs() -> dict:
    """The held-out sets of the paper's Table 1 (shipped with genlab, see data/README.md)."""
    import json
    import pathlib

    data = pathlib.Path(__file__).parent / "data"
    names = {"OR1": "or1.json", "OR2": "or2.json", "OR3": "or3.json", "OR4": "or4.json",
             "Weibull 5k": "weibull_5k.json"}
    return {name: json.loads((data / file).read_text()) for name, file in names.items()}


@funsearch.metric
def excess_bins_percent(instances: dict, scores: dict) -> float:
    """Fraction of excess bins over the L1 bound, in % (the paper's Table 1 figure)."""
    l1 = np.mean([np.ceil(sum(v["items"]) / v["capacity"]) for v in instances.values()])
    used = np.mean([-scores[name] for name in instances])
    return 100.0 * (used - l1) / l1
