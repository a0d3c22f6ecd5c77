"""Random search in the oracle: no completed point is drawn again, across a restart too."""

from __future__ import annotations

from hpsearch.oracle import AskStatus, Oracle
from hpsearch.space import StudyConfig
from hpsearch.store import Store


def _six_point_study() -> StudyConfig:
    return StudyConfig.from_dict(
        {
            "name": "six",
            "metric": {"name": "score", "goal": "maximize"},
            "parameters": {
                "opt": {"type": "categorical", "values": ["a", "b"]},
                "n": {"type": "integer", "min": 1, "max": 3},
            },
            "budget": {"max_trials": 6, "parallel_trials": 1},
            "algorithm": "random",
            "seed": 1,
        }
    )


def _run(oracle: Oracle, trials: int) -> list[tuple[str, int]]:
    drawn = []
    for _ in range(trials):
        answer = oracle.ask("six", "w0", 1, wait=30)
        assert answer.status is AskStatus.TRIALS, answer
        trial = answer.trials[0]
        drawn.append((str(trial.params["opt"]), int(trial.params["n"])))
        oracle.complete("six", trial.number, trial.attempt, value=float(trial.number))
    return drawn


def test_random_search_draws_no_completed_point_again_across_a_restart(
    storage_url: str,
) -> None:
    """The oracle keeps the keys of the completed points (it no longer hands random search
    the whole history on every refill); a restarted oracle rebuilds them from the store."""
    with Store(storage_url) as store:
        first = Oracle(store)
        first.start()
        try:
            first.create_study(_six_point_study())
            drawn = _run(first, 3)
        finally:
            first.stop()
        second = Oracle(store)
        second.start()
        try:
            drawn += _run(second, 3)
            assert second.ask("six", "w0", 1, wait=5).status is AskStatus.DONE
        finally:
            second.stop()
    assert sorted(drawn) == [(o, n) for o in ("a", "b") for n in (1, 2, 3)]
