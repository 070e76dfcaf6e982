"""A refused linkage fit is loud and has a way out (issue #24): the fit is tried again on more
records first; a refusal that stands is counted, shown in GetLinkageStatus (probabilistic
linkage off, and why), reported by the import with the records it left unlinked (queued for
later); and the online worker, left without a model, fits one itself and retries a refused
fit after a back-off, instead of waiting in silence.

The fitter is injected: a fit is refused or accepted on purpose, whatever the estimation
makes of the world. The world is loyalty signups sent through Ingest only, every value
embedding the run's id; the session server's own worker is stopped while a test runs, and the
models current before are current again afterwards.
"""

from __future__ import annotations

import logging
import random
import re
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import grpc
import pytest
from identity.v1 import common_pb2, identity_service_pb2 as pb
from neo4j import Driver
from support import event, ingest
from test_linkage_trust import GIVEN, STREETS, SURNAMES, degenerate_model, typo

from server.api.app import RunningServer
from server.errors import ModelRefused
from server.graph import Graph
from server.identity.identity_config import load_rules
from server.identity.ingest import Ingestor
from server.identity.linkage.compare import level_names
from server.identity.linkage.estimation import FitSample
from server.identity.linkage.linkage_config import LinkageRules, load_linkage_rules
from server.identity.linkage.linker import Linker
from server.identity.linkage.model import LinkageModel
from server.identity.linkage.online import FitAttempt, LinkageWorker, OnlineFitting
from server.identity.records import ImportSummary, RecordImporter, SourceRecord

SAMPLE = 300  # records the first fit samples; a refused one is fitted again on 4 times as many
RULES = load_linkage_rules()
SMALL = replace(RULES, fitting=replace(RULES.fitting, sample_records=SAMPLE))


def plausible_model(rules: LinkageRules, version: str, records: int) -> LinkageModel:
    """A model that passes every check: agreement weighs for a match, disagreement against,
    and a prior of one match per record."""
    names = tuple(tuple(n) for n in level_names(rules))
    m = tuple((1.0, 0.1, *[0.9 / (len(n) - 2)] * (len(n) - 2)) for n in names)
    u = tuple((1.0, 0.9, *[0.1 / (len(n) - 2)] * (len(n) - 2)) for n in names)
    return LinkageModel(version=version, fields=rules.field_names, m=m, u=u, prior=1.0 / max(records, 2),
                        upper=rules.upper, lower=rules.lower, fitted_at=datetime.now(UTC).isoformat(timespec="seconds"),
                        pairs=1000, level_names=names, records=records)


@dataclass
class Fitter:
    """Refuses the first `refuse` fits (a degenerate model), accepts the others; keeps what it saw."""

    refuse: int
    sampled: list[int]
    versions: list[str]

    def __call__(self, sample: FitSample, rules: LinkageRules, version: str) -> LinkageModel:
        self.sampled.append(sample.sampled)
        self.versions.append(version)
        if len(self.sampled) <= self.refuse:
            return degenerate_model(rules, version)
        return plausible_model(rules, version, sample.records)


def fitter(refuse: int) -> Fitter:
    return Fitter(refuse, [], [])


def signups(run: str, people: int = 250, seed: int = 11) -> list[pb.Event]:
    """Loyalty signups typed at tills, in three postcodes of this run's own: everyone once, every
    other person twice (with a typo, under another loyalty id)."""
    rng = random.Random(seed)
    tag = "".join(chr(ord("a") + int(c, 16) % 26) for c in run[:5])
    codes = [f"{10000 + (int(run[:4], 16) * 3 + k) % 90000}" for k in range(3)]
    events = []
    for n in range(people):
        person = {"given_name": rng.choice(GIVEN), "surname": rng.choice(SURNAMES) + tag,
                  "date_of_birth": f"{rng.randint(1945, 2000)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
                  "address": f"{rng.randint(1, 999)} {rng.choice(STREETS)}", "postcode": codes[n % 3],
                  "city": f"town{tag}{n % 3}"}
        copies = [person] if n % 2 else [person, {**person, "given_name": typo(rng, person["given_name"])}]
        for k, traits in enumerate(copies):
            events.append(event(f"refusals-{run}-{n}-{k}", f"loyalty_id:refusals-{run}-{n}-{k}",
                                type="loyalty_signup", source="pos", channel=common_pb2.CHANNEL_OFFLINE, **traits))
    return events


@pytest.fixture
def run(driver: Driver) -> Iterator[str]:
    """This test's run id; its identifiers leave linkage afterwards, so later tests meet none."""
    run = uuid.uuid4().hex[:8]
    yield run
    driver.execute_query("MATCH (m:Identifier) WHERE (m:Matchable OR m:LinkPending) AND m.value STARTS WITH $prefix "
                         "REMOVE m:Matchable:LinkPending SET m.pending_since = null", prefix=f"refusals-{run}")


@pytest.fixture
def without_a_model(driver: Driver, grpc_server: RunningServer) -> Iterator[None]:
    """No current model, as on a fresh graph, no fit attempts yet, and only the test fitting:
    the session server's worker is stopped. Afterwards the models current before are current
    again, and the worker runs again."""
    stopped = grpc_server.linkage_worker
    if stopped is not None:
        stopped.stop()
    (record,) = driver.execute_query("OPTIONAL MATCH (m:LinkageModel {current: true}) SET m.current = false "
                                     "RETURN collect(m.version) AS versions").records
    driver.execute_query("MATCH (f:LinkageFitting) DETACH DELETE f")
    try:
        yield
    finally:
        driver.execute_query("MATCH (m:LinkageModel {current: true}) SET m.current = false")
        driver.execute_query("MATCH (m:LinkageModel) WHERE m.version IN $versions SET m.current = true",
                             versions=record["versions"])
        driver.execute_query("MATCH (f:LinkageFitting) DETACH DELETE f")
        if stopped is not None:
            grpc_server.linkage_worker = LinkageWorker(stopped.linker)
            grpc_server.linkage_worker.start()


def send(identity, events: list[pb.Event]) -> None:
    acks = ingest(identity, events)
    assert {a.status for a in acks} == {pb.ACK_STATUS_ACCEPTED}


def status(identity) -> pb.LinkageStatus:
    return identity.GetLinkageStatus(pb.GetLinkageStatusRequest(), timeout=60)


def scrape(server: RunningServer, path: str) -> str:
    assert server.http is not None
    with urllib.request.urlopen(f"http://127.0.0.1:{server.http.port}{path}", timeout=10) as answer:
        assert answer.status == 200, path
        body: str = answer.read().decode()
        return body


def sample(metrics: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{key}="{value}"' for key, value in labels.items())
    pattern = rf"^{name}{{{re.escape(wanted)}}} (\S+)$" if labels else rf"^{name} (\S+)$"
    found = re.search(pattern, metrics, re.M)
    assert found, f"{name} {labels} not exported"
    return float(found.group(1))


# ---- refit with more evidence ------------------------------------------------------------------


def test_a_refused_fit_is_fitted_once_more_on_four_times_the_records_and_the_second_fit_is_adopted(
        identity, graph: Graph, run: str, without_a_model: None) -> None:
    send(identity, signups(run))
    refusals: list[str] = []
    fits = fitter(refuse=1)
    linker = Linker(graph, load_rules(), SMALL, fitter=fits, on_refusal=refusals.append)
    model = linker.refit()
    first, second = fits.sampled
    assert first <= SAMPLE < second <= 4 * SAMPLE, fits.sampled
    assert model.version == fits.versions[1] == linker.model(max_age=0).version  # type: ignore[union-attr]
    assert refusals == [], "a refusal the second fit made good is not a refusal"
    assert linker.status().off is None


def test_a_fit_refused_twice_through_refit_linkage_model_is_counted_once_and_status_says_linkage_is_off(
        identity, grpc_server: RunningServer, driver: Driver, run: str, without_a_model: None) -> None:
    send(identity, signups(run))
    linker = grpc_server.identity.linker
    fits, original = fitter(refuse=2), linker.fitter
    before = sample(scrape(grpc_server, "/metrics"), "identity_linkage_fit_refusals_total", trigger="refit")
    linker.fitter = fits
    try:
        with pytest.raises(grpc.RpcError) as refused:
            identity.RefitLinkageModel(pb.RefitLinkageModelRequest(sample_records=SAMPLE), timeout=600)
    finally:
        linker.fitter = original
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert f"linkage model {fits.versions[1]} was refused" in refused.value.details()
    assert fits.sampled[0] <= SAMPLE < fits.sampled[1], "fitted again on more records before giving up"
    stored = driver.execute_query("MATCH (m:LinkageModel) WHERE m.version IN $v RETURN m.refused AS refused",
                                  v=fits.versions).records
    assert [r["refused"] for r in stored] == [True, True], "both refused fits are kept with their reasons"

    now = status(identity)
    assert not now.probabilistic_linkage_on and now.off_reason == pb.LINKAGE_OFF_REASON_FIT_REFUSED
    assert now.last_refused_fit.version == fits.versions[1]
    assert now.last_refused_fit.reasons and all(r in now.why_off for r in now.last_refused_fit.reasons)
    assert now.pending > 0 and f"{now.pending:,} identifiers wait for a model" in now.why_off
    assert not now.HasField("model") and now.matchable_records >= now.pending

    metrics = scrape(grpc_server, "/metrics")
    assert sample(metrics, "identity_linkage_fit_refusals_total", trigger="refit") == before + 1
    assert sample(metrics, "identity_linkage_probabilistic_on") == 0
    readyz = scrape(grpc_server, "/readyz")  # still ready: ingest and stitching go on
    assert readyz.startswith("ready\n") and f"probabilistic linkage: off: the last fit ({fits.versions[1]})" in readyz


# ---- the import ----------------------------------------------------------------------------------


def test_an_import_whose_fit_is_refused_reports_the_records_it_left_unlinked_and_queues_them(
        graph: Graph, driver: Driver, run: str, without_a_model: None) -> None:
    refusals: list[str] = []
    fits = fitter(refuse=2)
    linker = Linker(graph, load_rules(), SMALL, fitter=fits, on_refusal=refusals.append)
    importer = RecordImporter(graph, Ingestor(graph, load_rules(), "salt"), linker, queue_unlinked=True)
    source = f"refusals-{run}-crm"
    records = [SourceRecord(e.event_id, source, traits=dict(e.traits)) for e in signups(run)]
    *_, summary = importer.run(records)
    assert isinstance(summary, ImportSummary)
    assert summary.model_version == "" and summary.linked_probabilistic == 0
    assert summary.records_left_unlinked == len(records)
    assert summary.why_unlinked.startswith(f"no linkage model is current, and the one fitted ({fits.versions[1]}) "
                                           "was refused")
    assert "online linkage queue" in summary.why_unlinked
    assert any("weighs" in reason for reason in summary.model_refusals), summary.model_refusals
    assert len(fits.sampled) == 2 and refusals == ["import"]
    (queued,) = driver.execute_query("MATCH (m:LinkPending:Matchable) WHERE m.value STARTS WITH $source "
                                     "RETURN count(m) AS n", source=f"{source}/").records
    assert queued["n"] == len(records), "the records wait for a model in the online linkage queue"


def test_an_import_refits_a_model_the_graph_has_outgrown_and_keeps_one_it_has_not(
        graph: Graph, run: str, without_a_model: None) -> None:
    """A model fitted on the first signups (by the online worker) has seen no CRM record: the
    import that brings twice the records fits anew; one that does not, links with it."""
    fits = fitter(refuse=0)
    linker = Linker(graph, load_rules(), SMALL, fitter=fits)
    importer = RecordImporter(graph, Ingestor(graph, load_rules(), "salt"), linker)
    events = signups(run)
    records = [SourceRecord(e.event_id, f"refusals-{run}-crm", traits=dict(e.traits)) for e in events]
    half = len(records) // 2
    matchable = linker.matchable()
    linker.adopt(plausible_model(SMALL, f"early-{run}", records=max(1, matchable // 3)), linker.fit_sample(SAMPLE))
    *_, outgrown = importer.run(records[:half])
    assert isinstance(outgrown, ImportSummary)
    assert outgrown.model_version == fits.versions[0] != f"early-{run}" and len(fits.versions) == 1
    *_, grown_little = importer.run(records[half:])
    assert isinstance(grown_little, ImportSummary)
    assert grown_little.model_version == fits.versions[0] and len(fits.versions) == 1, "no refit: not outgrown"


# ---- the online worker -------------------------------------------------------------------------


def worker(graph: Graph, fits: Fitter, refusals: list[str], retry_s: float = 600.0) -> LinkageWorker:
    """A worker that may fit at once (the defaults wait minutes and want 1,000 records)."""
    linker = Linker(graph, load_rules(), SMALL, fitter=fits, on_refusal=refusals.append)
    return LinkageWorker(linker, fitting=OnlineFitting(min_records=1, after_s=0.0, retry_s=retry_s, check_every_s=0.0))


def test_the_online_worker_fits_a_model_itself_when_identifiers_wait_and_none_is_current(
        identity, graph: Graph, run: str, without_a_model: None) -> None:
    send(identity, signups(run))  # through Ingest only: no import ever fits a model
    waiting = status(identity)
    assert waiting.pending > 0 and not waiting.probabilistic_linkage_on
    assert waiting.off_reason != pb.LINKAGE_OFF_REASON_UNSPECIFIED, "no model yet, or an earlier test's refused fit"
    assert f"{waiting.pending:,} identifiers wait for a model" in waiting.why_off
    fits, refusals = fitter(refuse=0), []
    online = worker(graph, fits, refusals)
    assert online.fit_if_due() is FitAttempt.ADOPTED
    now = status(identity)
    assert now.probabilistic_linkage_on and now.model.version == fits.versions[0] and now.why_off == ""
    assert online.fit_if_due() is None, "with a current model there is nothing to fit"
    assert len(fits.sampled) == 1


def test_the_online_worker_says_a_refused_fit_loudly_and_retries_it_after_its_back_off(
        identity, graph: Graph, run: str, without_a_model: None, caplog: pytest.LogCaptureFixture) -> None:
    send(identity, signups(run))
    fits, refusals = fitter(refuse=2), []
    online = worker(graph, fits, refusals, retry_s=2.0)
    with caplog.at_level(logging.WARNING, logger="server.identity.linkage.online"):
        assert online.fit_if_due() is FitAttempt.REFUSED
    assert refusals == ["online"] and len(fits.sampled) == 2
    (warning,) = [r.getMessage() for r in caplog.records if "stays off" in r.getMessage()]
    assert f"the fit ({fits.versions[1]}) was refused" in warning and "1 attempts refused in a row" in warning

    refused = status(identity)
    assert not refused.probabilistic_linkage_on and refused.off_reason == pb.LINKAGE_OFF_REASON_FIT_REFUSED
    assert refused.HasField("next_fit_attempt") and "the online worker tries again after" in refused.why_off
    assert online.fit_if_due() is None and len(fits.sampled) == 2, "no second attempt before the back-off ends"

    deadline = time.monotonic() + 30
    while (attempt := online.fit_if_due()) is None:
        assert time.monotonic() < deadline, "the worker never tried again"
        time.sleep(0.2)
    assert attempt is FitAttempt.ADOPTED and len(fits.sampled) == 3
    assert status(identity).probabilistic_linkage_on
    schedule = online.linker.fit_schedule()
    assert schedule is not None and schedule.attempts == 0 and schedule.outcome.startswith(f"model {fits.versions[2]}")


def test_with_a_model_current_a_refused_refit_is_shown_but_probabilistic_linkage_stays_on(
        identity, graph: Graph, run: str, without_a_model: None) -> None:
    send(identity, signups(run))
    current = Linker(graph, load_rules(), SMALL, fitter=fitter(refuse=0)).refit()
    refusals: list[str] = []
    refusing = Linker(graph, load_rules(), SMALL, fitter=fitter(refuse=2), on_refusal=refusals.append)
    with pytest.raises(ModelRefused):
        refusing.refit()
    view = refusing.status()
    assert view.off is None and view.why_off == "" and view.model is not None
    assert view.model.version == current.version, "the current model stays current"
    assert view.refused is not None and refusals == ["refit"], "the refusal is still counted and shown"


def test_the_fit_sample_leaves_out_a_record_that_lost_its_person(graph: Graph, driver: Driver, run: str) -> None:
    """A record forgotten while a fit reads its sample comes back without its person; the
    sample leaves it out instead of failing the fit (the online worker's fit once failed on it)."""
    driver.execute_query("CREATE (:Identifier:Matchable {type: 'email', value: $value})",
                         value=f"gone-{run}@example.com")
    rows = graph.read("linkage/sample", share=1.0, limit=10**9)
    assert all(r["person"] for r in rows)
    assert f"gone-{run}@example.com" not in {r["value"] for r in rows}
    driver.execute_query("MATCH (m:Matchable {value: $value}) DETACH DELETE m", value=f"gone-{run}@example.com")
