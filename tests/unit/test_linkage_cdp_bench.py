"""The CDP linkage benchmark's runs, costs and verdicts (bench/linkage_cdp.py), without a
service: issue 24 asks for many sizes and densities, and each run's verdict and the import
cost ratio between sizes are read off these functions."""

from __future__ import annotations

from typing import Any

import pytest

from bench.cdp_population import generate
from bench.linkage_cdp import (GOALS, Run, cost_ratios, failed_goals, import_costs, miss_kinds, missed_pairs, parse_run,
                               plan_runs, stop_reason)


def test_the_issues_runs_read_as_people_by_density_with_records_only_marked() -> None:
    assert plan_runs("2000", "100", False, "100000x100,100000x6000,1000000x6000:records") == [
        Run(100000, 100), Run(100000, 6000), Run(1000000, 6000, records_only=True)]
    assert parse_run("5000") == Run(5000, 100)


def test_every_size_runs_at_every_density_asked_for() -> None:
    assert plan_runs("2000,5000", "100,1000", True, None) == [
        Run(2000, 100, True), Run(2000, 1000, True), Run(5000, 100, True), Run(5000, 1000, True)]


@pytest.mark.parametrize("text", ["100000x", "x6000", "100000x6000:web", "1e5x100", "100000x0"])
def test_a_run_spelt_wrong_is_refused_with_the_expected_form(text: str) -> None:
    with pytest.raises(ValueError, match="run"):
        parse_run(text)


def test_runs_of_another_density_or_channel_never_share_a_prefix() -> None:
    runs = [Run(100000, 100), Run(100000, 1000), Run(100000, 1000, True), Run(1000000, 100)]
    assert len({run.prefix(1) for run in runs}) == len(runs)
    assert Run(1000000, 6000, True).label == "1000000x6000:records"


def test_import_cost_counts_pairs_and_seconds_per_record_imported() -> None:
    costs = import_costs({"records": 1000, "rejected": 200, "pairs_compared": 4000}, import_s=8.0)
    assert costs == {"records_imported": 800, "pairs_compared": 4000, "pairs_per_record": 5.0,
                     "import_s_per_record": 0.01}
    assert import_costs({"records": 0}, import_s=1.0)["pairs_per_record"] == 0.0


def row(label: str, s_per_record: float = 0.002, precision: float = 1.0, prob_recall: float = 1.0,
        two_crm: int = 0, outcome: str = "drained") -> dict[str, Any]:
    run = parse_run(label)
    return {"run": {"people": run.people, "per_postcode": run.per_postcode, "records_only": run.records_only,
                    "label": run.label},
            "costs": {"import_s_per_record": s_per_record}, "profiles": {"precision": precision},
            "probabilistic": {"recall": prob_recall}, "profiles_with_two_peoples_crm_ids": two_crm,
            "linkage_wait": {"outcome": outcome, "pending": 0 if outcome == "drained" else 12}}


def test_a_run_meeting_every_goal_fails_none() -> None:
    assert failed_goals(row("100000x6000", precision=GOALS["precision"],
                            prob_recall=GOALS["probabilistic_recall"])) == []


def test_each_missed_goal_is_named() -> None:
    failed = failed_goals(row("100000x6000", precision=0.998, prob_recall=0.95, two_crm=3, outcome="stalled"))
    assert len(failed) == 4
    assert failed[0].startswith("pairwise precision 0.9980")
    assert failed[1].startswith("probabilistic recall 0.9500")
    assert "3 profiles" in failed[2] and "stalled with 12 pending" in failed[3]


def test_one_size_gives_no_cost_ratio() -> None:
    assert cost_ratios([row("100000x100"), row("100000x6000")]) == []


def test_the_largest_size_is_compared_with_the_smallest_at_its_own_density() -> None:
    rows = [row("10000x100", 0.001), row("10000x6000:records", 0.002), row("10000x6000", 0.004),
            row("1000000x6000:records", 0.005)]
    (ratio,) = cost_ratios(rows)
    assert (ratio.large, ratio.small) == ("1000000x6000:records", "10000x6000:records")
    assert ratio.ratio == pytest.approx(2.5) and not ratio.met


def test_without_a_run_at_its_density_the_nearest_density_stands_in() -> None:
    rows = [row("100000x100", 0.004), row("100000x1000", 0.003), row("1000000x6000:records", 0.0045)]
    (ratio,) = cost_ratios(rows)
    assert ratio.small == "100000x1000" and ratio.ratio == pytest.approx(1.5) and ratio.met


CRM = {"first_name": "Donald", "last_name": "Parker", "date_of_birth": "1956-05-11", "address": "8638 Market Blvd"}


def till(**changes: str | None) -> dict[str, str]:
    typed = {"first_name": "donald", "last_name": "parker", "date_of_birth": "1956-05-11",
             "address": "8638 market blvd"} | changes
    return {key: value for key, value in typed.items() if value is not None}


def test_a_missed_signup_is_told_apart_from_its_crm_record_in_words() -> None:
    assert miss_kinds(till(), CRM, in_household=False) == []
    assert miss_kinds(till(first_name="dno", date_of_birth=None), CRM, in_household=True) == [
        "no dob", "mistyped nickname", "household"]
    assert miss_kinds(till(first_name="don", date_of_birth="1956-11-05"), CRM, in_household=False) == [
        "swapped dob", "nickname"]
    assert miss_kinds(till(first_name="donlad", last_name="parler", address="8638 markt blvd"), CRM,
                      in_household=False) == ["given name typo", "surname typo", "address typo"]


def test_every_probabilistic_pair_left_apart_is_counted_as_missed() -> None:
    world = generate(300, seed=3, prefix="t", records_only=True)
    apart = dict(world.truth.deterministic_of)  # stitching alone: every probabilistic pair missed
    missed = missed_pairs(apart, world, limit=3)
    assert missed["count"] == len(world.truth.probabilistic_pairs) > 0
    assert sum(missed["by_combination"].values()) == missed["count"]
    assert len(missed["examples"]) == 3 and "  <->  " in missed["examples"][0]
    together = {identifier: 0 for identifier in apart}
    assert missed_pairs(together, world)["count"] == 0


@pytest.mark.parametrize(("sentence", "reason"), [
    ("a decision guard stops the link (household: same surname and address, another given name, and no matching "
     "date of birth): a possible match for a reviewer at most, never a link", "guard: household"),
    ("the model's score p=0.6123 is below upper 0.95: a possible match for a reviewer at most, never a link",
     "score below upper"),
    ("the model's score p=3.1e-05 is below lower 0.5: the pair is not kept", "score below lower"),
    ("blocking does not pair them: in the blocks they share, neither is among the other's 10 nearest by name",
     "blocking does not pair them"),
    ("a possible match of loyalty_id:t-L1 and record:crm/t-r1 (p=0.7000, model v1) waits for a reviewer",
     "a possible match waits for a reviewer"),
])
def test_explain_links_reasons_are_counted_without_their_figures(sentence: str, reason: str) -> None:
    assert stop_reason(sentence) == reason
