"""Greedy 0/1 knapsack: evolve the order in which items are considered.

A worked example of a genlab spec (see docs/specs.md). Each input is a knapsack
instance; the skeleton adds items in order of decreasing priority while they fit.
The score is the total value packed, checked outside the sandbox.
"""
import numpy as np

import funsearch

# Constrained sampling (see docs/specs.md): the model writes the body of priority() in a
# small Python subset built from this file. Here the locals get knapsack names and two
# numpy functions join the default vocabulary.
GRAMMAR = {
    "locals": ["density", "score", "slack"],
    "functions": {"np.log2": 1, "np.hypot": 2},
}


@funsearch.run
def solve(instance: dict) -> list:
    """Returns the indices of the items packed, considering them by priority."""
    values = np.asarray(instance["values"], dtype=float)
    weights = np.asarray(instance["weights"], dtype=float)
    order = np.argsort(-np.asarray(priority(values, weights, instance["capacity"]), dtype=float),
                       kind="stable")
    room, packed = instance["capacity"], []
    for i in order:
        if weights[i] <= room:
            packed.append(int(i))
            room -= weights[i]
    return packed


@funsearch.evolve
def priority(values: np.ndarray, weights: np.ndarray, capacity: float) -> np.ndarray:
    """Returns a priority per item: higher is considered first."""
    return values


@funsearch.score
def score(instance: dict, packed: list) -> float:
    """Checks the packing (distinct items, within capacity) and returns its value."""
    packed = [int(i) for i in packed]
    if len(set(packed)) != len(packed) or any(not 0 <= i < len(instance["values"]) for i in packed):
        raise ValueError("items must be distinct indices of the instance")
    if sum(instance["weights"][i] for i in packed) > instance["capacity"]:
        raise ValueError("the packing is over capacity")
    return float(sum(instance["values"][i] for i in packed))


@funsearch.inputs
def inputs() -> dict:
    """Ten random instances of 50 items, capacity a third of the total weight."""
    rng = np.random.default_rng(7)
    instances = {}
    for k in range(10):
        weights = rng.integers(5, 60, size=50)
        values = (weights * rng.uniform(0.5, 1.5, size=50)).round(1)
        instances[f"k{k}"] = {"values": values.tolist(), "weights": weights.tolist(),
                              "capacity": int(weights.sum() // 3)}
    return instances
