"""Linkage on a CDP-shaped world through the real service: it must not join strangers.

Febrl is half duplicates; a CDP's data is mostly singletons, households sharing surname and
address, namesakes in other towns, and loyalty signups typed badly at the till. A small such
world (bench/cdp_population.py) goes in the way a client sends it (events through Ingest, the
CRM export through ImportRecords), and the profiles come back through LookupProfiles; the
figures are bench/linkage_cdp.py's scoring functions, so the test and the bench agree.

Every test runs on two worlds: a sparse one (about a hundred people per postcode) and a dense
one where half the people share each postcode, as in a regional retailer's customer base,
where the blocks that pair neighbours overflow and a prior read off the candidates would
count neighbours as matches.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from neo4j import Driver

from bench.cdp_population import CdpWorld, generate
from server.identity.linkage.linkage_config import load_linkage_rules
from bench.linkage_cdp import (CRM_TYPES, import_records, lookup_profiles, mixed_profiles, probabilistic_accuracy,
                               profile_accuracy, send_events, summary_figures, wait_for_linkage, wrong_links)

PREFIX = "cdptest-"
pytestmark = pytest.mark.timeout(900)
# (people, people per postcode): the dense world has two postcodes of 500 people each
WORLDS = {"sparse": (600, 100), "dense": (1000, 500)}


@pytest.fixture(scope="module", params=list(WORLDS))
def cdp(request: pytest.FixtureRequest, identity, driver: Driver) -> Iterator[dict[str, Any]]:
    """One world sent once: events, then the CRM export, then online linkage drained.

    Earlier runs of this module sent the same people (same seed, another prefix); they would
    match these, so they stop taking part in linkage first (data kept, labels removed), and
    this run's people stop at the end, so that later modules meet none of them. Other modules'
    records are held out meanwhile and the model current before is current again afterwards:
    the import fits a model of its own on this world alone, as a first import on a fresh graph
    does, and later modules fit and match on the graph as they left it.
    """
    people, per_postcode = WORLDS[request.param]
    retire(driver, PREFIX)
    (held,) = driver.execute_query("MATCH (m:Matchable) REMOVE m:Matchable RETURN collect(elementId(m)) AS ids").records
    (current,) = driver.execute_query("OPTIONAL MATCH (m:LinkageModel {current: true}) SET m.current = false "
                                      "RETURN collect(m.version) AS versions").records
    world = generate(people, seed=5, prefix=f"{PREFIX}{uuid.uuid4().hex[:8]}", per_postcode=per_postcode)
    try:
        acks, rejected = send_events(identity, world.events)
        summary = import_records(identity, world.records)
        drain = wait_for_linkage(identity, deadline_s=300, stall_s=120, report=print)
        predicted = lookup_profiles(identity, list(world.truth.person_of))
        yield {"world": world, "acks": acks, "rejected": rejected, "summary": summary, "drain": drain,
               "predicted": predicted}
    finally:
        retire(driver, world.prefix)
        driver.execute_query("UNWIND $ids AS id MATCH (m) WHERE elementId(m) = id SET m:Matchable", ids=held["ids"])
        driver.execute_query("MATCH (m:LinkageModel {current: true}) SET m.current = false")
        driver.execute_query("MATCH (m:LinkageModel) WHERE m.version IN $versions SET m.current = true",
                             versions=current["versions"])


def retire(driver: Driver, prefix: str) -> None:
    """Takes the identifiers of a world (a loyalty id, an e-mail, a CRM record) out of linkage."""
    driver.execute_query("MATCH (m:Identifier) WHERE (m:Matchable OR m:LinkPending) "
                         "AND (m.value STARTS WITH $prefix OR m.value STARTS WITH 'crm/' + $prefix) "
                         "REMOVE m:Matchable:LinkPending", prefix=prefix)


def _context(cdp: dict[str, Any]) -> str:
    """What a failure message should show: the model, the import and a few wrong joins."""
    model = cdp["drain"].status.model
    wrong = "\n  ".join(wrong_links(cdp["predicted"], cdp["world"]))
    return (f"\nmodel {model.version or 'none'} prior {model.prior:.4g}; import {summary_figures(cdp['summary'])}"
            f"\nwrong joins:\n  {wrong}")


def test_the_first_import_fits_a_model_whose_prior_is_about_one_match_per_signup(cdp: dict[str, Any]) -> None:
    """The truth has one matching pair per person with both a CRM record and a till signup
    (plus the records' matches among themselves, which the world has none of): the prior
    must imply about that many, however many neighbours share a postcode."""
    summary, world = cdp["summary"], cdp["world"]
    assert not summary.model_refusals and summary.model_version, _context(cdp)
    model = cdp["drain"].status.model
    implied = model.prior * model.records * (model.records - 1) / 2
    signed_up = {e.person for e in world.events if e.type == "loyalty_signup"}
    matches = sum(1 for record in world.records if record.person in signed_up)
    assert 0.5 * matches <= implied <= 2.0 * matches, f"{implied:.0f} matching pairs implied, {matches} true" \
                                                      f"{_context(cdp)}"


def test_pairs_compared_per_record_stay_bounded_however_dense(cdp: dict[str, Any]) -> None:
    summary, rules = cdp["summary"], load_linkage_rules()
    bound = len(rules.blocking) * rules.max_block_size
    assert 0 < summary.pairs_compared <= bound * summary.records, _context(cdp)


def test_every_event_and_record_is_accepted(cdp: dict[str, Any]) -> None:
    world: CdpWorld = cdp["world"]
    assert cdp["acks"]["ACK_STATUS_ACCEPTED"] == len(world.events), cdp["rejected"]
    assert cdp["summary"].records == len(world.records) and cdp["summary"].rejected == 0


def test_online_linkage_drains(cdp: dict[str, Any]) -> None:
    drain = cdp["drain"]
    assert drain.outcome == "drained", f"{drain.pending} identifiers still pending after {drain.seconds:.0f} s" \
                                       f" ({drain.outcome}){_context(cdp)}"


def test_no_profile_holds_two_peoples_crm_ids(cdp: dict[str, Any]) -> None:
    world: CdpWorld = cdp["world"]
    mixed = mixed_profiles(cdp["predicted"], world.truth.person_of, CRM_TYPES)
    assert not mixed, f"{len(mixed)} profiles hold CRM ids of different people{_context(cdp)}"


def test_profiles_are_precise(cdp: dict[str, Any]) -> None:
    world: CdpWorld = cdp["world"]
    figures = profile_accuracy(cdp["predicted"], world.truth.person_of, world.truth.linkable_of)
    assert figures["precision"] >= 0.99, f"{figures}{_context(cdp)}"


def test_loyalty_signups_find_their_crm_records(cdp: dict[str, Any]) -> None:
    world: CdpWorld = cdp["world"]
    truth = world.truth
    figures = probabilistic_accuracy(cdp["predicted"], truth.person_of, truth.deterministic_of,
                                     truth.probabilistic_pairs)
    assert figures.true > 20, "the world has pairs that only linkage can join"
    assert figures.recall >= 0.8, f"{figures.as_dict()}{_context(cdp)}"
