"""The programs database: clustering, sampling, resets, determinism under a seed."""

import numpy as np

from genlab.search.funsearch.database import Cluster, DatabaseConfig, Program, ProgramsDatabase


def program(i: int, score: float, body: str = "", signature=None) -> Program:
    code = f"def priority(item, bins):\n    return {body or i}\n"
    return Program(i, code, signature if signature is not None else (score,), score)


def filled(seed: int, config: DatabaseConfig | None = None) -> ProgramsDatabase:
    db = ProgramsDatabase(config or DatabaseConfig(num_islands=4, reset_period=10_000), seed=seed)
    db.register(program(0, -10.0), None)
    for i in range(1, 40):
        db.register(program(i, -10.0 + (i % 7)), island_id=i % 4)
    return db


def test_seed_goes_to_every_island_and_sampling_is_deterministic():
    a, b = filled(seed=3), filled(seed=3)
    assert all(island.num_programs >= 1 for island in a.islands)
    picks_a = [(p.island_id, [x.id for x in p.programs]) for p in map(a.sample, range(50))]
    picks_b = [(p.island_id, [x.id for x in p.programs]) for p in map(b.sample, range(50))]
    assert picks_a == picks_b
    other = filled(seed=4)
    assert picks_a != [(p.island_id, [x.id for x in p.programs]) for p in map(other.sample, range(50))]


def test_prompt_programs_are_distinct_clusters_in_ascending_order():
    db = filled(seed=1)
    for index in range(30):
        chosen = db.sample(index).programs
        assert len(chosen) == 2
        assert chosen[0].score <= chosen[1].score
        assert chosen[0].signature != chosen[1].signature


def test_cluster_choice_favours_higher_scores():
    db = ProgramsDatabase(DatabaseConfig(num_islands=1, functions_per_prompt=1), seed=0)
    db.register(program(0, -100.0), None)
    db.register(program(1, -1.0), 0)
    picks = [db.sample(i).programs[0].id for i in range(200)]
    # T = 0.1 at the start: a gap of 99 in score makes the better cluster near certain.
    assert picks.count(1) > 195


def test_shorter_programs_preferred_inside_a_cluster():
    cluster = Cluster(score=1.0, programs=[program(1, 1.0, "0 + " * 40 + "0"), program(2, 1.0, "0")])
    rng = np.random.default_rng(0)
    picks = [cluster.sample_program(rng).id for _ in range(2000)]
    share_short = picks.count(2) / len(picks)
    # softmax over normalised negative lengths with T=1: e^0 / (e^0 + e^-(l1-l2)/(l1+1e-6)).
    assert 0.6 < share_short < 0.8


def test_duplicate_code_is_not_registered_twice():
    db = ProgramsDatabase(DatabaseConfig(num_islands=1), seed=0)
    assert db.register(program(1, -5.0, "bins * 2"), 0)
    formatted_differently = Program(2, "def priority(item, bins):\n    # same thing\n    return (bins * 2)\n", (-5.0,), -5.0)
    assert not db.register(formatted_differently, 0)
    assert db.islands[0].num_programs == 1


def test_reset_every_period_wipes_the_worse_half_deterministically():
    config = DatabaseConfig(num_islands=4, reset_period=8)

    def history(seed):
        db = ProgramsDatabase(config, seed=seed)
        db.register(program(0, -50.0), None)
        for i in range(1, 9):  # the 8th registration triggers a reset
            db.register(program(i, -float(i if i % 4 else 1)), island_id=i % 4)
        return db

    db = history(seed=7)
    assert db.resets == 1
    # Before the reset the islands' best scores were -1 (island 0), -1, -2, -3: islands 2
    # and 3 are wiped and each reseeded with one program, the best of island 0 or 1.
    assert [i.num_programs for i in db.islands[:2]] == [3, 3]
    for island_id in (2, 3):
        founders = [p for c in db.islands[island_id].clusters.values() for p in c.programs]
        assert len(founders) == 1 and founders[0].id in (1, 4) and db.best_score[island_id] == -1.0
    again = history(seed=7)
    assert [i.num_programs for i in again.islands] == [i.num_programs for i in db.islands]
    assert [[p.id for c in i.clusters.values() for p in c.programs] for i in again.islands] == \
        [[p.id for c in i.clusters.values() for p in c.programs] for i in db.islands]


def test_temperature_cools_with_the_island_size():
    config = DatabaseConfig(num_islands=1, functions_per_prompt=1, cluster_sampling_temperature_period=4)
    db = ProgramsDatabase(config, seed=0)
    db.register(program(0, -1.0), None)
    db.register(program(1, -1.2), 0)
    db.register(program(2, -1.1), 0)
    # 3 programs on the island: T = 0.1 * (1 - 3/4) = 0.025, sharper than at the start.
    picks = [db.sample(i).programs[0].id for i in range(300)]
    assert picks.count(0) > picks.count(2) > picks.count(1)


def test_best_program():
    db = filled(seed=0)
    assert db.best().score == max(p.score for i in db.islands for c in i.clusters.values() for p in c.programs)
