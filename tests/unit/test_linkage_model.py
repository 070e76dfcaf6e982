"""Comparison levels and the Fellegi-Sunter model: what each field's agreement is worth, fitted by EM."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from server.identity.linkage.attributes import PersonAttributes
from server.identity.linkage.compare import LEVEL_MISSING, level_names, levels
from server.identity.linkage.estimation import FitSample
from server.identity.linkage.model import LinkageModel, fit
from server.identity.linkage.linkage_config import FieldRule, FitSettings, LinkageRules, load_linkage_rules

RULES = load_linkage_rules()
NAMES = dict(zip(RULES.field_names, level_names(RULES)))

WILLIAM = PersonAttributes(
    given_name="william", surname="smith", street_number="12", address_1="main street", address_2="rosetta village",
    suburb="springfield", postcode="4223", state="nsw", date_of_birth="19800307", national_id="1234567",
)


def compared(left: PersonAttributes, right: PersonAttributes) -> dict[str, str]:
    """Level names of one pair, by field."""
    row = levels([left], [right], RULES)[0]
    return {field: NAMES[field][level] for field, level in zip(RULES.field_names, row)}


def test_identical_records_agree_exactly_on_every_field() -> None:
    assert set(compared(WILLIAM, WILLIAM).values()) == {"exact"}


def test_a_value_missing_on_either_side_is_level_zero() -> None:
    row = levels([WILLIAM], [dataclasses.replace(WILLIAM, surname=None, postcode=None)], RULES)[0]
    assert row[RULES.field_names.index("surname")] == LEVEL_MISSING
    assert row[RULES.field_names.index("postcode")] == LEVEL_MISSING


def test_swapped_given_name_and_surname_still_agree_exactly() -> None:
    swapped = dataclasses.replace(WILLIAM, given_name="smith", surname="william")
    assert compared(WILLIAM, swapped)["given_name"] == compared(WILLIAM, swapped)["surname"] == "exact"


def test_swapped_address_lines_still_agree_exactly() -> None:
    swapped = dataclasses.replace(WILLIAM, address_1=WILLIAM.address_2, address_2=WILLIAM.address_1)
    assert compared(WILLIAM, swapped)["address_1"] == "exact"


def test_a_nickname_is_close_to_the_formal_name() -> None:
    assert compared(WILLIAM, dataclasses.replace(WILLIAM, given_name="bill"))["given_name"] == "close"


def test_a_stray_space_in_a_name_is_no_difference() -> None:
    assert compared(WILLIAM, dataclasses.replace(WILLIAM, surname="smi th"))["surname"] == "exact"


def test_a_mistyped_nickname_is_similar_but_not_as_close_as_a_nickname() -> None:
    assert compared(WILLIAM, dataclasses.replace(WILLIAM, given_name="bill"))["given_name"] == "close"
    assert compared(WILLIAM, dataclasses.replace(WILLIAM, given_name="billl"))["given_name"] == "similar"


def test_a_short_nickname_one_slip_off_is_a_mistyped_nickname_of_its_own() -> None:
    """One slip leaves a short nickname far by Jaro-Winkler: "tpm" ~ tom 0.80, "wik" ~ will."""
    thomas, donald = dataclasses.replace(WILLIAM, given_name="thomas"), dataclasses.replace(WILLIAM, given_name="donald")
    assert compared(WILLIAM, dataclasses.replace(WILLIAM, given_name="wik"))["given_name"] == "mistyped_nickname"
    assert compared(thomas, dataclasses.replace(thomas, given_name="tpm"))["given_name"] == "mistyped_nickname"
    assert compared(dataclasses.replace(donald, given_name="dno"), donald)["given_name"] == "mistyped_nickname"


def test_a_name_of_its_own_or_two_letters_is_no_mistyped_nickname() -> None:
    """tim is one slip from thomas's tom but is Timothy's name; "tm" is one slip from tim and tom."""
    thomas = dataclasses.replace(WILLIAM, given_name="thomas")
    assert compared(thomas, dataclasses.replace(thomas, given_name="tim"))["given_name"] == "different"
    assert compared(thomas, dataclasses.replace(thomas, given_name="tm"))["given_name"] == "different"
    assert compared(WILLIAM, dataclasses.replace(WILLIAM, given_name="kobe"))["given_name"] == "different"


def test_only_names_have_a_mistyped_nickname_level() -> None:
    assert NAMES["given_name"] == ["missing", "different", "mistyped_nickname", "similar", "close", "exact"]
    assert NAMES["surname"] == NAMES["given_name"]
    assert NAMES["address_1"] == ["missing", "different", "similar", "close", "exact"]


def test_names_are_banded_by_similarity() -> None:
    assert compared(WILLIAM, dataclasses.replace(WILLIAM, given_name="wiliam"))["given_name"] == "close"
    assert compared(WILLIAM, dataclasses.replace(WILLIAM, given_name="kobe"))["given_name"] == "different"


@pytest.mark.parametrize(
    ("other", "expected"),
    [
        ("19800703", "day_month_swapped"),
        ("19810307", "one_part_different"),
        ("19800370", "one_part_different"),
        ("19650912", "different"),
    ],
)
def test_dates_distinguish_transposed_day_and_month_from_typos(other: str, expected: str) -> None:
    assert compared(WILLIAM, dataclasses.replace(WILLIAM, date_of_birth=other))["date_of_birth"] == expected


def test_codes_one_typo_apart_are_one_edit() -> None:
    typos = dataclasses.replace(WILLIAM, national_id="1234576", postcode="4232", street_number="21")
    found = compared(WILLIAM, typos)
    assert found["national_id"] == found["postcode"] == found["street_number"] == "one_edit"
    assert compared(WILLIAM, dataclasses.replace(WILLIAM, postcode="6000"))["postcode"] == "different"


def test_level_names_give_one_name_per_level() -> None:
    names = level_names(RULES)
    assert len(names) == len(RULES.fields)
    assert all(n[0] == "missing" and n[1] == "different" and n[-1] == "exact" for n in names)


SYNTHETIC_RULES = LinkageRules(
    fields=(
        FieldRule("given_name", "string", bands=(0.8, 0.9)),  # four levels (names have five)
        FieldRule("postcode", "postcode"),
        FieldRule("state", "exact"),
        FieldRule("date_of_birth", "date"),
        FieldRule("suburb", "exact"),
    ),
    blocking=("national_id",),  # a pass that fixes none of the compared fields
    max_block_size=50,
    upper=0.9,
    lower=0.5,
    min_fields=1,
    fitting=FitSettings(prior_rules=(("given_name", "date_of_birth"),)),
)
# True distributions over the non-missing levels (different .. exact) of each field.
TRUE_M = ([0.05, 0.1, 0.15, 0.7], [0.1, 0.2, 0.7], [0.05, 0.95], [0.05, 0.1, 0.05, 0.8], [0.2, 0.8])
TRUE_U = ([0.6, 0.25, 0.1, 0.05], [0.8, 0.15, 0.05], [0.9, 0.1], [0.7, 0.2, 0.05, 0.05], [0.5, 0.5])
MATCH_SHARE = 0.15  # of candidate pairs
RECORDS = 10_000


def synthetic_levels(pairs: int, share: float = MATCH_SHARE, seed: int = 7,
                     m: tuple[list[float], ...] = TRUE_M, u: tuple[list[float], ...] = TRUE_U) -> np.ndarray:
    """Level vectors drawn from known m and u, a share of them matches, each value missing one time in ten."""
    rng = np.random.default_rng(seed)
    is_match = rng.random(pairs) < share
    columns = []
    for m_field, u_field in zip(m, u):
        level = np.where(is_match, rng.choice(len(m_field), pairs, p=m_field),
                         rng.choice(len(u_field), pairs, p=u_field)) + 1
        columns.append(np.where(rng.random(pairs) < 0.1, LEVEL_MISSING, level))
    return np.column_stack(columns).astype(np.int8)


def synthetic_sample(candidates: np.ndarray, labelled: np.ndarray | None = None) -> FitSample:
    """All pairs of RECORDS records sampled; random pairs are non-matches drawn from u."""
    return FitSample(candidates=candidates, sessions=np.ones((len(candidates), 1), dtype=bool),
                     random=synthetic_levels(50_000, share=0.0, seed=3), exact_u=(None,) * 5,
                     labelled=labelled if labelled is not None else np.zeros((0, 5), dtype=np.int8),
                     records=RECORDS, sampled=RECORDS)


KNOWN_MATCHES = synthetic_levels(2_000, share=1.0, seed=11)


@pytest.fixture(scope="module")
def synthetic_model() -> LinkageModel:
    return fit(synthetic_sample(synthetic_levels(40_000), KNOWN_MATCHES), SYNTHETIC_RULES, version="synthetic")


def test_u_comes_from_random_pairs_and_m_from_em_with_u_fixed(synthetic_model: LinkageModel) -> None:
    for fitted_m, fitted_u, m, u in zip(synthetic_model.m, synthetic_model.u, TRUE_M, TRUE_U):
        assert np.allclose(fitted_u[1:], u, atol=0.01) and np.allclose(fitted_m[1:], m, atol=0.03)


def test_the_prior_is_the_chance_that_two_random_records_match(synthetic_model: LinkageModel) -> None:
    matching_pairs = 40_000 * MATCH_SHARE
    assert synthetic_model.prior == pytest.approx(matching_pairs / (RECORDS * (RECORDS - 1) / 2), rel=0.1)
    assert synthetic_model.expected_matching_pairs == pytest.approx(matching_pairs, rel=0.1)


def test_the_prior_counts_rule_matches_over_the_rules_recall_on_known_matches(synthetic_model: LinkageModel) -> None:
    """Given name and date of birth both exact: 0.9 * 0.7 * 0.9 * 0.8 of matches (values are
    missing one time in ten), which the known matches measure."""
    assert synthetic_model.prior_recall_from == "known matches"
    assert synthetic_model.prior_recall == pytest.approx(0.9 * 0.7 * 0.9 * 0.8, abs=0.03)
    expected = synthetic_model.prior_rule_pairs / synthetic_model.prior_recall / (RECORDS * (RECORDS - 1) / 2)
    assert synthetic_model.prior == pytest.approx(expected)


def test_without_enough_known_matches_the_configured_recall_is_used() -> None:
    rules = dataclasses.replace(SYNTHETIC_RULES, fitting=dataclasses.replace(SYNTHETIC_RULES.fitting,
                                                                             prior_rules_recall=0.25))
    model = fit(synthetic_sample(synthetic_levels(40_000), KNOWN_MATCHES[:5]), rules, version="few known")
    assert (model.prior_recall_from, model.prior_recall) == ("configured", 0.25)


def test_the_prior_does_not_grow_with_the_neighbours_blocking_pairs() -> None:
    """A dense postcode: the same matches among five or twenty times as many candidate pairs
    of neighbours who agree on where they live. The prior stays the matches' share of all pairs."""
    rules = dataclasses.replace(SYNTHETIC_RULES, blocking=("postcode",))
    neighbours_u = ([0.6, 0.25, 0.1, 0.05], [0.0, 0.0, 1.0], [0.0, 1.0], [0.7, 0.2, 0.05, 0.05], [0.0, 1.0])
    matches = synthetic_levels(1_000, share=1.0, seed=6)
    priors = []
    for neighbours in (5_000, 20_000):
        candidates = np.concatenate([synthetic_levels(neighbours, share=0.0, seed=5, u=neighbours_u), matches])
        priors.append(fit(synthetic_sample(candidates, KNOWN_MATCHES), rules, version="dense").prior)
    true_prior = 1_000 / (RECORDS * (RECORDS - 1) / 2)
    assert priors[0] == pytest.approx(true_prior, rel=0.15) and priors[1] == pytest.approx(true_prior, rel=0.15)


def test_rare_matches_among_strangers_who_share_a_postcode_do_not_invert_the_model() -> None:
    """The failure of a CDP import: candidates that agree on where they live and on nothing
    else outnumber the matches fifty to one. EM left free calls them the match class."""
    rules = dataclasses.replace(SYNTHETIC_RULES, blocking=("postcode",))  # fixes postcode, suburb, state
    neighbours_u = ([0.6, 0.25, 0.1, 0.05], [0.0, 0.0, 1.0], [0.0, 1.0], [0.7, 0.2, 0.05, 0.05], [0.0, 1.0])
    candidates = np.concatenate([synthetic_levels(20_000, share=0.0, seed=5, u=neighbours_u),
                                 synthetic_levels(400, share=1.0, seed=6)])
    model = fit(synthetic_sample(candidates), rules, version="rare")
    assert model.problems(np.zeros((0, 5)), rules) == []
    weights = dict(zip(model.fields, model.weights()))
    assert weights["given_name"][-1] > 2 > 0 > weights["given_name"][1]
    assert weights["date_of_birth"][-1] > 2 > 0 > weights["date_of_birth"][1]


# The model the issue found: fitted on a CDP import by EM over candidates, u left free.
DEGENERATE_WEIGHTS = {"given_name": (1.01, -1.76), "surname": (3.76, -2.27)}


def degenerate(model: LinkageModel) -> LinkageModel:
    """The model with the issue's inverted weights for names (different, exact) and its prior 0.885."""
    m = [list(row) for row in model.m]
    u = [list(row) for row in model.u]
    for f, name in enumerate(model.fields):
        if name in DEGENERATE_WEIGHTS:
            different, exact = DEGENERATE_WEIGHTS[name]
            m[f][1], m[f][-1] = u[f][1] * 2 ** different, u[f][-1] * 2 ** exact
    return dataclasses.replace(model, m=tuple(map(tuple, m)), u=tuple(map(tuple, u)), prior=0.885)


def test_the_issues_inverted_model_fails_its_checks(synthetic_model: LinkageModel) -> None:
    rules = dataclasses.replace(SYNTHETIC_RULES, fields=(FieldRule("given_name", "name", bands=(0.8, 0.9)),
                                                         *SYNTHETIC_RULES.fields[1:]))
    problems = degenerate(synthetic_model).problems(np.zeros((0, 5)), rules)
    assert any(p.startswith("given_name: 'exact' weighs -1.76 bits, not more than 'different' (+1.01") for p in problems)
    assert any("prior 0.885" in p for p in problems)


def test_a_fit_whose_em_did_not_converge_fails_its_checks(synthetic_model: LinkageModel) -> None:
    stalled = dataclasses.replace(synthetic_model, converged=False, iterations=200)
    assert stalled.problems(np.zeros((0, 5)), SYNTHETIC_RULES) == ["EM did not converge within 200 iterations"]


def test_known_matches_that_the_model_scores_against_a_match_fail_its_checks(synthetic_model: LinkageModel) -> None:
    agreeing = np.tile([4, 3, 2, 4, 2], (30, 1))
    disagreeing = np.tile([1, 1, 1, 1, 1], (30, 1))
    assert synthetic_model.problems(agreeing, SYNTHETIC_RULES) == []
    (problem,) = synthetic_model.problems(disagreeing, SYNTHETIC_RULES)
    assert problem.startswith("only 0% of 30 known matches")


def test_a_prior_implying_more_matches_than_records_fails_its_checks(synthetic_model: LinkageModel) -> None:
    crowded = dataclasses.replace(synthetic_model, prior=0.01)
    (problem,) = crowded.problems(np.zeros((0, 5)), SYNTHETIC_RULES)
    assert "matching pairs among 10,000 records, more than 3 per record" in problem


def test_missing_is_neutral_and_no_level_is_impossible(synthetic_model: LinkageModel) -> None:
    assert all(m[0] == u[0] == 1.0 for m, u in zip(synthetic_model.m, synthetic_model.u))
    assert all(p > 0 for row in synthetic_model.m + synthetic_model.u for p in row)


def test_more_agreement_means_a_higher_probability(synthetic_model: LinkageModel) -> None:
    agree = np.array([[4, 3, 2, 4, 2]])
    mostly = np.array([[4, 3, 2, 1, 2]])
    nothing = np.array([[1, 1, 1, 1, 1]])
    p_agree, p_mostly, p_nothing = (synthetic_model.probabilities(x)[0] for x in (agree, mostly, nothing))
    assert p_agree > p_mostly > p_nothing and p_nothing < 1e-6
    assert synthetic_model.bayes_factors(agree)[0] > 10 > 0 > synthetic_model.bayes_factors(nothing)[0]


def test_explained_weights_add_up_to_the_probability(synthetic_model: LinkageModel) -> None:
    row = np.array([4, 0, 2, 3, 1])
    evidence = synthetic_model.explain(row)
    prior_bits = np.log2(synthetic_model.prior / (1 - synthetic_model.prior))
    probability = 1 / (1 + 2 ** -(prior_bits + sum(e.weight for e in evidence)))
    assert probability == pytest.approx(synthetic_model.probabilities(row[None, :])[0])
    assert evidence[1].level == "missing" and evidence[1].weight == 0.0
    assert evidence[0].field == "given_name" and evidence[0].level == "exact" and evidence[0].weight > 0


def test_the_model_survives_a_json_round_trip(synthetic_model: LinkageModel) -> None:
    restored = LinkageModel.from_json(synthetic_model.to_json())
    assert restored == synthetic_model
    sample = synthetic_levels(100, seed=1)
    assert np.array_equal(restored.probabilities(sample), synthetic_model.probabilities(sample))


def test_a_model_that_is_not_json_of_a_model_is_refused() -> None:
    with pytest.raises(ValueError, match="not a linkage model"):
        LinkageModel.from_json('{"version": "x"}')


def test_fitting_needs_candidate_pairs() -> None:
    with pytest.raises(ValueError, match="no candidate pairs"):
        fit(synthetic_sample(np.empty((0, 5), dtype=np.int8)), SYNTHETIC_RULES, version="empty")


def test_a_model_knows_whether_it_fits_the_current_rules(synthetic_model: LinkageModel) -> None:
    assert synthetic_model.compatible_with(SYNTHETIC_RULES)
    assert not synthetic_model.compatible_with(RULES)
    with pytest.raises(ValueError, match="compares 5 fields"):
        synthetic_model.probabilities(np.zeros((1, 3), dtype=np.int8))


def _variants() -> list[PersonAttributes]:
    """Records with swapped, misspelt and missing names and addresses: the pairs whose levels
    depended on which side came first."""
    base = WILLIAM
    return [
        base,
        dataclasses.replace(base, given_name="smith", surname="william"),
        dataclasses.replace(base, given_name="smyth", surname="wiliam"),
        dataclasses.replace(base, given_name="smith", surname="bill"),
        dataclasses.replace(base, given_name="willaim", surname="smith"),
        dataclasses.replace(base, given_name="smith", surname=None),
        dataclasses.replace(base, surname="william"),
        dataclasses.replace(base, address_1="rosetta village", address_2="main street"),
        dataclasses.replace(base, address_1="rosseta vilage", address_2="main st"),
        dataclasses.replace(base, given_name="martha", surname="smithson", address_2=None),
        dataclasses.replace(base, given_name="dwayne", surname="dixon"),
        dataclasses.replace(base, given_name="crate", surname="dixon"),
    ]


def test_levels_do_not_depend_on_which_record_comes_first() -> None:
    """The online linker compares pairs in the order the graph returns them, so a pair must
    get the same levels either way round, swapped names included."""
    records = _variants()
    left = [a for a in records for _ in records]
    right = [b for _ in records for b in records]
    assert (levels(left, right, RULES) == levels(right, left, RULES)).all()


def test_swapped_names_are_recognised_from_either_side() -> None:
    swapped = dataclasses.replace(WILLIAM, given_name="smith", surname="william")
    assert compared(WILLIAM, swapped)["given_name"] == "exact"
    assert compared(swapped, WILLIAM)["surname"] == "exact"
