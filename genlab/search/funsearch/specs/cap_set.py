"""Cap sets in Z_3^n (FunSearch, Romera-Paredes et al., Nature 2024, Methods and Suppl.).

A cap set has no three distinct points on a line (a + b + c = 0 mod 3). The skeleton
builds one greedily: it ranks all 3^n vectors by the evolved priority and adds the
best vector still allowed, blocking every vector that would complete a line. The
score is the size of the set, checked to be a cap set outside the sandbox. The
trivial seed gives 2^n; the best known sizes for n = 3..8 are 9, 20, 45, 112, 236, 512.
"""
import itertools

import numpy as np

import funsearch


@funsearch.run
def solve(n: int) -> list:
    """Builds a cap set in dimension n greedily by priority; returns its vectors."""
    all_vectors = np.array(list(itertools.product((0, 1, 2), repeat=n)), dtype=np.int32)
    powers = 3 ** np.arange(n - 1, -1, -1)
    priorities = np.array([priority(tuple(vector), n) for vector in all_vectors], dtype=float)
    capset = np.empty(shape=(0, n), dtype=np.int32)
    while np.any(priorities != -np.inf):
        # Add the vector with the highest priority, then block every vector c with
        # a + b + c = 0 (mod 3) for the new vector a and each chosen b (and a itself).
        max_index = np.argmax(priorities)
        vector = all_vectors[None, max_index]
        blocking = np.einsum("cn,n->c", (-capset - vector) % 3, powers)
        priorities[blocking] = -np.inf
        priorities[max_index] = -np.inf
        capset = np.concatenate([capset, vector], axis=0)
    return capset.tolist()


@funsearch.evolve
def priority(el: tuple, n: int) -> float:
    """Returns the priority with which we want to add `element` to the cap set.

    el is a tuple of length n with values 0-2.
    """
    return 0.0


@funsearch.score
def score(n: int, capset: list) -> float:
    """Checks that the vectors form a cap set in Z_3^n and returns its size."""
    # Shape and size first: a forged result must not make the checker do quadratic work.
    if not isinstance(capset, list) or len(capset) > 3 ** n:
        raise ValueError(f"a cap set in dimension {n} is a list of at most 3^{n} vectors")
    if any(not isinstance(v, list) or len(v) != n for v in capset):
        raise ValueError(f"every vector must be a list of {n} coordinates")
    vectors = np.asarray(capset, dtype=np.int64).reshape(-1, n)
    if vectors.size and (vectors.min() < 0 or vectors.max() > 2):
        raise ValueError("coordinates must be 0, 1 or 2")
    powers = 3 ** np.arange(n - 1, -1, -1)
    codes = vectors @ powers
    if len(np.unique(codes)) != len(codes):
        raise ValueError("a vector appears twice")
    present = np.zeros(3 ** n, dtype=bool)
    present[codes] = True
    # For distinct a, b the third point on their line is c = -(a + b) mod 3 (c differs from
    # both). One row of pairs at a time: memory stays linear in the set's size.
    for i in range(len(vectors) - 1):
        third = ((-(vectors[i] + vectors[i + 1:])) % 3) @ powers
        if present[third].any():
            raise ValueError("three of the vectors lie on a line: not a cap set")
    return float(len(vectors))


@funsearch.inputs
def inputs() -> dict:
    """Dimension 8, as in the paper's headline result."""
    return {"n=8": 8}


@funsearch.test_inputs
def test_inputs() -> dict:
    """Dimensions 3 to 8."""
    return {"n=3..8": {f"n={n}": n for n in range(3, 9)}}
