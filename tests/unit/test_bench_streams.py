"""The figures bench/streams.py draws from its watchers and timings."""

from __future__ import annotations

from bench.streams import percentile, watcher_summary


def test_watchers_still_open_are_counted_apart_from_those_that_ended_by_status() -> None:
    summary = watcher_summary([5, 5, 0, 4, 0], [None, None, "RESOURCE_EXHAUSTED", None, "RESOURCE_EXHAUSTED"], 5)

    assert summary["asked"] == 5
    assert summary["open"] == 3
    assert summary["ended"] == {"RESOURCE_EXHAUSTED": 2}


def test_changes_per_watcher_are_taken_over_the_open_watchers_against_the_changes_logged() -> None:
    summary = watcher_summary([5, 5, 0, 4], [None, None, "UNAVAILABLE", None], 5)

    assert (summary["changes_min"], summary["changes_median"], summary["changes_max"]) == (4, 5, 5)
    assert summary["complete"] == 2


def test_no_watcher_open_gives_zero_changes_rather_than_an_error() -> None:
    summary = watcher_summary([0, 0], ["RESOURCE_EXHAUSTED", "OK"], 3)

    assert summary["open"] == 0
    assert summary["ended"] == {"RESOURCE_EXHAUSTED": 1, "OK": 1}
    assert (summary["changes_min"], summary["changes_median"], summary["complete"]) == (0, 0, 0)


def test_percentiles_of_sorted_values_and_none_without_values() -> None:
    values = [float(n) for n in range(1, 101)]

    assert percentile(values, 0.5) == 51.0
    assert percentile(values, 0.99) == 100.0
    assert percentile([7.0], 0.99) == 7.0
    assert percentile([], 0.5) is None
