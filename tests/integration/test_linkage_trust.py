"""Linkage that never merges strangers: a degenerate fit is refused, and a graph that such a
model already linked is repaired by a refit and RescoreLinks.

The world is small and CDP-shaped: customers of a few postcodes (so strangers share a
postcode and a town), each with a CRM record, half of them also with a till record typed with
small typos. Every value embeds this run's id, so earlier runs in the same database stay apart.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from itertools import combinations

import grpc
import numpy as np
import pytest
from identity.v1 import identity_service_pb2 as pb
from neo4j import Driver
from support import by_identifier, identifier, lookup

from server.errors import ModelRefused
from server.graph import Graph
from server.identity.ingest import Ingestor
from server.identity.linkage.compare import level_names
from server.identity.linkage.estimation import FitSample
from server.identity.linkage.model import LinkageModel
from server.identity.linkage.linkage_config import DecisionGuards, LinkageRules, load_linkage_rules
from server.identity.linkage.linker import Linker
from server.identity.records import ImportSummary, RecordImporter, SourceRecord
from server.identity.identity_config import load_rules

RULES = load_linkage_rules()
GIVEN = ("james", "mary", "robert", "patricia", "john", "jennifer", "michael", "linda", "david", "elizabeth",
         "william", "barbara", "richard", "susan", "joseph", "jessica", "thomas", "sarah", "charles", "karen",
         "daniel", "nancy", "matthew", "lisa", "anthony", "betty", "mark", "sandra", "donald", "ashley",
         "steven", "kimberly", "paul", "emily", "andrew", "donna", "joshua", "michelle", "kenneth", "carol")
SURNAMES = ("smith", "johnson", "williams", "brown", "jones", "garcia", "miller", "davis", "rodriguez", "martinez",
            "hernandez", "lopez", "gonzalez", "wilson", "anderson", "thomas", "taylor", "moore", "jackson", "martin",
            "lee", "perez", "thompson", "white", "harris", "sanchez", "clark", "ramirez", "lewis", "robinson",
            "walker", "young", "allen", "king", "wright", "scott", "torres", "nguyen", "hill", "flores")
STREETS = tuple(f"{name} {kind}" for name in ("ridge", "meadow", "cedar", "lincoln", "oak", "pine", "maple", "elm",
                                              "lake", "hill", "park", "washington", "river", "church", "spring")
                for kind in ("st", "ave", "rd"))


def degenerate_model(rules: LinkageRules, version: str) -> LinkageModel:
    """A model like the one the issue found: names inverted (disagreement weighs more than
    agreement), every other agreement worth 3 bits, and a prior of 0.885."""
    m, u = [], []
    for field, names in zip(rules.field_names, level_names(rules)):
        agree = [0.9 / (len(names) - 2)] * (len(names) - 2)
        disagree = [0.1 / (len(names) - 2)] * (len(names) - 2)
        m_field, u_field = [0.1, *agree], [0.9, *disagree]
        if field in ("given_name", "surname"):
            m_field, u_field = u_field, m_field
        m.append((1.0, *m_field))
        u.append((1.0, *u_field))
    return LinkageModel(version=version, fields=rules.field_names, m=tuple(m), u=tuple(u), prior=0.885,
                        upper=rules.upper, lower=rules.lower, fitted_at=datetime.now(UTC).isoformat(timespec="seconds"),
                        pairs=1000, level_names=tuple(tuple(n) for n in level_names(rules)), records=1000)


@dataclass(frozen=True)
class World:
    run: str
    crm: list[pb.SourceRecord]
    pos: list[pb.SourceRecord]
    person_of: dict[str, int]  # record identifier value ("source/id") -> person


def typo(rng: random.Random, value: str) -> str:
    i = rng.randrange(1, len(value) - 1)
    return value[:i] + value[i + 1] + value[i] + value[i + 2:]


def make_world(people: int = 160, postcodes: int = 20, seed: int = 3) -> World:
    rng = random.Random(seed)
    run = uuid.uuid4().hex[:8]
    codes = [f"{rng.randint(10, 99)}{n:03d}" for n in range(postcodes)]
    crm, pos, person_of = [], [], {}
    for n in range(people):
        code = codes[n % postcodes]
        person = {"first_name": rng.choice(GIVEN), "last_name": rng.choice(SURNAMES),
                  "date_of_birth": f"{rng.randint(1945, 2000)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
                  "address": f"{rng.randint(1, 9999)} {rng.choice(STREETS)}", "city": f"town{code}",
                  "postcode": code, "country": "US"}
        # the CRM ids of customers who also shop at the till are missing from this export, so
        # merge protection's limit of one CRM id per profile cannot stop a wrong link
        ids = [identifier(f"crm_id:{run}-c{n}")] if n % 2 else []
        crm.append(pb.SourceRecord(record_id=f"{run}-{n}", source=f"trust-crm-{run}", traits=person, identifiers=ids))
        person_of[f"trust-crm-{run}/{run}-{n}"] = n
        if n % 2 == 0:  # half the customers also signed up at a till, typing a little wrong
            typed = {**person, "first_name": typo(rng, person["first_name"]).lower(),
                     "address": typo(rng, person["address"])}
            pos.append(pb.SourceRecord(record_id=f"{run}-{n}", source=f"trust-pos-{run}", traits=typed))
            person_of[f"trust-pos-{run}/{run}-{n}"] = n
    for n, (given, surname) in enumerate((("quentin", "abernathy"), ("yolanda", "zimmerman"))):
        lone = f"{run}-lone-{n}"  # strangers far from everyone: a reviewer will join them by mistake
        crm.append(pb.SourceRecord(record_id=lone, source=f"trust-crm-{run}", traits={
            "first_name": given, "last_name": surname, "date_of_birth": f"19{60 + n}-0{n + 1}-1{n}",
            "address": f"{n + 1} far away ln", "city": f"nowhere{n}", "postcode": f"0{n}{run[:3]}"}))
        person_of[f"trust-crm-{run}/{lone}"] = people + n
    return World(run, crm, pos, person_of)


def profiles_of(identity, world: World) -> dict[str, str]:
    keys = list(world.person_of)
    results = lookup(identity, *(by_identifier(f"record:{key}") for key in keys))
    return {key: r.profile.profile_id for key, r in zip(keys, results)}


def pairwise(profiles: dict[str, str], truth: dict[str, int]) -> tuple[float, float]:
    """Precision and recall of 'in one profile' against 'one person', over every pair of records."""
    predicted = {frozenset(p) for p in combinations(profiles, 2) if profiles[p[0]] == profiles[p[1]]}
    actual = {frozenset(p) for p in combinations(truth, 2) if truth[p[0]] == truth[p[1]]}
    right = len(predicted & actual)
    return (right / len(predicted) if predicted else 1.0), (right / len(actual) if actual else 1.0)


def wait_for_online_linkage(identity, deadline_s: float = 120) -> None:
    deadline = time.monotonic() + deadline_s
    while identity.GetLinkageStatus(pb.GetLinkageStatusRequest(), timeout=30).pending:
        assert time.monotonic() < deadline, "online linkage did not drain"
        time.sleep(0.2)


@pytest.fixture
def degenerate_current(driver: Driver) -> Iterator[LinkageModel]:
    """Makes a degenerate model current, as a graph linked by an earlier version would hold it;
    earlier runs' records stop taking part in linkage, so this run's world is linked alone."""
    driver.execute_query("MATCH (m:Matchable) WHERE m.value STARTS WITH 'trust-' REMOVE m:Matchable")
    model = degenerate_model(RULES, f"degenerate-{uuid.uuid4().hex[:8]}")
    driver.execute_query("MATCH (m:LinkageModel {current: true}) SET m.current = false")
    driver.execute_query("CREATE (:LinkageModel {version: $version, params: $params, fitted_at: datetime(), "
                         "pairs: 1000, current: true})", version=model.version, params=model.to_json())
    yield model


def test_a_degenerate_fit_is_refused_stored_with_its_reasons_and_the_current_model_stays(
        graph: Graph, identity, driver: Driver) -> None:
    before = identity.GetLinkageStatus(pb.GetLinkageStatusRequest(), timeout=30)
    linker = Linker(graph, load_rules(), RULES)
    degenerate = degenerate_model(RULES, f"refused-{uuid.uuid4().hex[:8]}")
    sample = FitSample(candidates=np.zeros((1, len(RULES.fields)), dtype="int8"),
                       sessions=np.zeros((1, len(RULES.blocking)), dtype=bool),
                       random=np.zeros((0, len(RULES.fields)), dtype="int8"), exact_u=(None,) * 10,
                       labelled=np.zeros((0, len(RULES.fields)), dtype="int8"), records=1000,
                       sampled=1000)
    with pytest.raises(ModelRefused) as refused:
        linker.adopt(degenerate, sample)
    reasons = refused.value.reasons
    assert any(r.startswith("surname: 'exact' weighs") for r in reasons), reasons
    assert any(r.startswith("prior 0.885") for r in reasons), reasons
    after = identity.GetLinkageStatus(pb.GetLinkageStatusRequest(), timeout=30)
    assert after.model.version == before.model.version, "the refused model never became current"
    assert after.last_refused_fit.version == degenerate.version
    assert list(after.last_refused_fit.reasons) == reasons
    (stored,) = driver.execute_query("MATCH (m:LinkageModel {version: $v}) RETURN m.current AS current, "
                                     "m.refused AS refused", v=degenerate.version).records
    assert stored["current"] is False and stored["refused"] is True


def test_an_import_whose_fit_is_refused_reports_why_and_links_nothing_probabilistically(
        graph: Graph, driver: Driver) -> None:
    """The import path: no current model, the import fits one, the fit is degenerate."""
    driver.execute_query("MATCH (m:LinkageModel {current: true}) SET m.current = false")
    world = make_world(people=200)  # enough candidate pairs (>= 200) to fit on, with no other records
    linker = Linker(graph, load_rules(), RULES,
                    fitter=lambda sample, rules, version: degenerate_model(rules, version))
    importer = RecordImporter(graph, Ingestor(graph, load_rules(), "salt"), linker)
    records = [SourceRecord(r.record_id, r.source, traits=dict(r.traits)) for r in world.crm + world.pos]
    *_, summary = importer.run(records)
    assert isinstance(summary, ImportSummary)
    assert any("weighs" in reason for reason in summary.model_refusals), summary.model_refusals
    assert summary.linked_probabilistic == 0 and summary.model_version == ""
    assert summary.records_left_unlinked == len(records) and "was refused" in summary.why_unlinked
    assert not driver.execute_query("MATCH (m:LinkageModel {current: true}) RETURN m").records


def test_a_graph_linked_by_a_degenerate_model_is_repaired_by_a_refit_and_rescoring(
        identity, graph: Graph, driver: Driver, degenerate_current: LinkageModel) -> None:
    world = make_world()
    # linked as an earlier version did: the degenerate model, and no decision guards
    unguarded = replace(RULES, guards=DecisionGuards(False, False, False))
    importer = RecordImporter(graph, Ingestor(graph, load_rules(), "salt"), Linker(graph, load_rules(), unguarded))
    *_, summary = importer.run([SourceRecord(r.record_id, r.source, tuple((i.type, i.value) for i in r.identifiers),
                                             dict(r.traits)) for r in world.crm + world.pos])
    assert isinstance(summary, ImportSummary) and summary.model_version == degenerate_current.version
    polluted, _ = pairwise(profiles_of(identity, world), world.person_of)
    assert polluted < 0.99, f"the degenerate model should have joined strangers (precision {polluted:.3f})"

    # a reviewer confirmed one of the wrong links: re-scoring must leave it alone
    stranger_a, stranger_b = f"trust-crm-{world.run}/{world.run}-lone-0", f"trust-crm-{world.run}/{world.run}-lone-1"
    identity.ReviewMatch(pb.ReviewMatchRequest(a=identifier(f"record:{stranger_a}"),
                                               b=identifier(f"record:{stranger_b}"), confirm=True,
                                               reason="test: a reviewer's mistake stays theirs"), timeout=60)

    refit = identity.RefitLinkageModel(pb.RefitLinkageModelRequest(), timeout=600)
    assert refit.version != degenerate_current.version and refit.prior < 0.01
    progress = list(identity.RescoreLinks(pb.RescoreLinksRequest(page_size=50), timeout=600))
    statuses, rescored = [p.status for p in progress[:-1]], progress[-1].summary
    assert statuses[-1].links_done == statuses[-1].links_total > 0
    assert rescored.model_version == refit.version and rescored.undone + rescored.to_review > 0
    assert rescored.profiles_split > 0
    wait_for_online_linkage(identity)

    profiles = profiles_of(identity, world)
    assert profiles[stranger_a] == profiles[stranger_b], "a confirmed link is not re-scored"
    truth = dict(world.person_of)
    truth[stranger_b] = truth[stranger_a]  # the reviewer made them one
    precision, recall = pairwise(profiles, truth)
    assert precision >= 0.999, f"precision after repair {precision:.4f}"
    assert recall >= 0.9, f"recall after repair {recall:.4f}"

    again = list(identity.RescoreLinks(pb.RescoreLinksRequest(), timeout=600))[-1].summary
    assert again.undone == again.to_review == again.profiles_split == 0, "re-scoring twice changes nothing more"


def test_rescoring_without_a_model_or_with_a_bad_page_size_is_refused(identity, driver: Driver) -> None:
    with pytest.raises(grpc.RpcError) as bad:
        list(identity.RescoreLinks(pb.RescoreLinksRequest(page_size=-1), timeout=60))
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    current = [r["v"] for r in driver.execute_query(
        "MATCH (m:LinkageModel {current: true}) SET m.current = false RETURN m.version AS v").records]
    try:
        with pytest.raises(grpc.RpcError) as none:
            list(identity.RescoreLinks(pb.RescoreLinksRequest(dry_run=True), timeout=60))
        assert none.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "no current linkage model" in none.value.details()
    finally:
        driver.execute_query("MATCH (m:LinkageModel) WHERE m.version IN $v SET m.current = true", v=current)
