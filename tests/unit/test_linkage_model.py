"""Comparison levels and the Fellegi-Sunter model: what each field's agreement is worth, fitted by EM."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from server.identity.linkage.attributes import PersonAttributes
from server.identity.linkage.compare import LEVEL_MISSING, level_names, levels
from server.identity.linkage.model import LinkageModel, fit
from server.identity.linkage.rules import FieldRule, LinkageRules, load_linkage_rules

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
        FieldRule("given_name", "name", bands=(0.8, 0.9)),
        FieldRule("postcode", "postcode"),
        FieldRule("state", "exact"),
        FieldRule("date_of_birth", "date"),
        FieldRule("suburb", "exact"),
    ),
    blocking=("postcode",),
    max_block_size=50,
    upper=0.9,
    lower=0.5,
    min_fields=1,
)
# True distributions over the non-missing levels (different .. exact) of each field.
TRUE_M = ([0.05, 0.1, 0.15, 0.7], [0.1, 0.2, 0.7], [0.05, 0.95], [0.05, 0.1, 0.05, 0.8], [0.2, 0.8])
TRUE_U = ([0.6, 0.25, 0.1, 0.05], [0.8, 0.15, 0.05], [0.9, 0.1], [0.7, 0.2, 0.05, 0.05], [0.5, 0.5])
TRUE_PRIOR = 0.15


def synthetic_levels(pairs: int, seed: int = 7) -> np.ndarray:
    """Level vectors drawn from known m, u and prior, each value missing one time in ten."""
    rng = np.random.default_rng(seed)
    is_match = rng.random(pairs) < TRUE_PRIOR
    columns = []
    for m, u in zip(TRUE_M, TRUE_U):
        level = np.where(is_match, rng.choice(len(m), pairs, p=m), rng.choice(len(u), pairs, p=u)) + 1
        columns.append(np.where(rng.random(pairs) < 0.1, LEVEL_MISSING, level))
    return np.column_stack(columns).astype(np.int8)


@pytest.fixture(scope="module")
def synthetic_model() -> LinkageModel:
    return fit(synthetic_levels(40_000), SYNTHETIC_RULES, version="synthetic")


def test_em_recovers_known_m_u_and_prior(synthetic_model: LinkageModel) -> None:
    assert synthetic_model.prior == pytest.approx(TRUE_PRIOR, abs=0.01)
    for fitted_m, fitted_u, m, u in zip(synthetic_model.m, synthetic_model.u, TRUE_M, TRUE_U):
        assert np.allclose(fitted_m[1:], m, atol=0.03) and np.allclose(fitted_u[1:], u, atol=0.03)


def test_missing_is_neutral_and_no_level_is_impossible(synthetic_model: LinkageModel) -> None:
    assert all(m[0] == u[0] == 1.0 for m, u in zip(synthetic_model.m, synthetic_model.u))
    assert all(p > 0 for row in synthetic_model.m + synthetic_model.u for p in row)


def test_more_agreement_means_a_higher_probability(synthetic_model: LinkageModel) -> None:
    agree = np.array([[4, 3, 2, 4, 2]])
    mostly = np.array([[4, 3, 2, 1, 2]])
    nothing = np.array([[1, 1, 1, 1, 1]])
    p_agree, p_mostly, p_nothing = (synthetic_model.probabilities(x)[0] for x in (agree, mostly, nothing))
    assert p_agree > p_mostly > p_nothing and p_agree > 0.99 and p_nothing < 0.01


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
        fit(np.empty((0, 5), dtype=np.int8), SYNTHETIC_RULES, version="empty")


def test_a_model_knows_whether_it_fits_the_current_rules(synthetic_model: LinkageModel) -> None:
    assert synthetic_model.compatible_with(SYNTHETIC_RULES)
    assert not synthetic_model.compatible_with(RULES)
    with pytest.raises(ValueError, match="compares 5 fields"):
        synthetic_model.probabilities(np.zeros((1, 3), dtype=np.int8))
