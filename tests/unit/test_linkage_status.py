"""A refused linkage fit is loud: the status says probabilistic linkage is off and why, the
metrics count it, /readyz mentions it without going unready, and the online worker backs off.
No Neo4j: the pure parts (why_off, the back-off, the conversions, the operator port)."""

from __future__ import annotations

import logging
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest
from identity.v1 import identity_service_pb2 as pb

from server.api import convert
from server.api.metrics import Lag, ServerMetrics, StateSources
from server.api.operator_http import OperatorEndpoints, OperatorHttp
from server.errors import ModelRefused
from server.identity.linkage.compare import level_names
from server.identity.linkage.linkage_config import load_linkage_rules
from server.identity.linkage.linkage_status import (FitSchedule, LinkageLag, LinkageOff, LinkageStatusView,
                                                    RefusedFitView, why_off)
from server.identity.linkage.linker import FIT_TRIGGERS
from server.identity.linkage.model import LinkageModel
from server.identity.linkage.online import FitAttempt, LinkageWorker, OnlineFitting

RULES = load_linkage_rules()
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
REASONS = ("surname: 'exact' weighs -2.27 bits, not more than 'different' (+3.76 bits)",
           "prior 0.885 implies 44,000,000 matching pairs among 100,000 records, more than 3 per record")


def model(version: str) -> LinkageModel:
    names = tuple(tuple(n) for n in level_names(RULES))
    m = tuple((1.0, 0.1, *[0.9 / (len(n) - 2)] * (len(n) - 2)) for n in names)
    u = tuple((1.0, 0.9, *[0.1 / (len(n) - 2)] * (len(n) - 2)) for n in names)
    return LinkageModel(version=version, fields=RULES.field_names, m=m, u=u, prior=1e-5, upper=RULES.upper,
                        lower=RULES.lower, fitted_at=NOW.isoformat(timespec="seconds"), pairs=1000, level_names=names)


def test_with_a_current_model_probabilistic_linkage_is_on_and_nothing_is_said() -> None:
    off, why = why_off(model("v1"), RefusedFitView(model("v2"), REASONS), None, 100_000, LinkageLag(3, 1.0), None,
                       NOW)
    assert (off, why) == (None, "")


def test_a_refused_fit_without_a_model_says_its_reasons_who_waits_and_when_the_worker_tries_again() -> None:
    schedule = FitSchedule(attempts=2, attempted_at=NOW, not_before=NOW + timedelta(minutes=20),
                           outcome="the fit (v2) was refused: ...", claimed_until=None)
    off, why = why_off(None, RefusedFitView(model("v2"), REASONS), None, 100_000, LinkageLag(48_628, 1020.0),
                       schedule, NOW)
    assert off is LinkageOff.FIT_REFUSED
    assert "the last fit (v2" in why and all(reason in why for reason in REASONS)
    assert "48,628 identifiers wait for a model, the oldest for 0:17:00" in why
    assert "tries again after 2025-03-01 12:20:00 UTC (2 attempts refused in a row)" in why
    assert why.endswith("import records or call RefitLinkageModel (identity refit) to fit one now")


def test_no_model_yet_says_how_many_records_there_are_and_the_workers_last_attempt() -> None:
    schedule = FitSchedule(attempts=1, attempted_at=NOW, not_before=None,
                           outcome="not fitted: the records in the graph give 12 candidate pairs", claimed_until=None)
    off, why = why_off(None, None, None, 40, LinkageLag(0, 0.0), schedule, NOW)
    assert off is LinkageOff.NO_MODEL
    assert "no linkage model has been fitted yet (40 records with person attributes" in why
    assert "last attempt: not fitted: the records in the graph give 12 candidate pairs" in why
    assert "wait for a model" not in why, "nobody waits"
    _, before_any_attempt = why_off(None, None, None, 40, LinkageLag(2, 5.0), None, NOW, min_records=1000)
    assert "the online worker fits one once there are 1,000" in before_any_attempt


def test_a_model_of_another_configuration_is_named_and_a_fit_in_progress_is_said() -> None:
    schedule = FitSchedule(attempts=0, attempted_at=None, not_before=None, outcome="",
                           claimed_until=NOW + timedelta(minutes=30))
    off, why = why_off(None, None, "v0", 5000, LinkageLag(7, 30.0), schedule, NOW)
    assert off is LinkageOff.MODEL_INCOMPATIBLE
    assert "stored model v0 was fitted under other fields or levels" in why
    assert "a server is fitting a model now" in why


def test_the_online_worker_backs_off_doubling_per_refusal_up_to_its_cap() -> None:
    fitting = OnlineFitting(retry_s=600, max_retry_s=3600)
    assert [fitting.retry_after(n) for n in (1, 2, 3, 4, 5)] == [600, 1200, 2400, 3600, 3600]


def test_the_status_message_says_off_with_the_reason_code_and_when_the_next_attempt_is() -> None:
    view = LinkageStatusView(lag=LinkageLag(5, 61.0), model=None, current_links=None,
                             refused=RefusedFitView(model("v2"), REASONS), off=LinkageOff.FIT_REFUSED,
                             why_off="the last fit (v2) was refused", matchable=1234,
                             next_fit_attempt=NOW + timedelta(minutes=10))
    status = convert.linkage_status(view, RULES)
    assert not status.probabilistic_linkage_on
    assert status.off_reason == pb.LINKAGE_OFF_REASON_FIT_REFUSED and status.why_off == view.why_off
    assert status.matchable_records == 1234 and status.pending == 5
    assert status.next_fit_attempt.ToDatetime(tzinfo=UTC) == NOW + timedelta(minutes=10)
    assert list(status.last_refused_fit.reasons) == list(REASONS) and not status.HasField("model")


def test_the_status_message_says_on_without_a_reason_when_a_model_is_current() -> None:
    view = LinkageStatusView(lag=LinkageLag(0, 0.0), model=None, current_links=None, refused=None, off=None,
                             why_off="", matchable=10, next_fit_attempt=None)
    status = convert.linkage_status(view, RULES)
    assert status.probabilistic_linkage_on and status.off_reason == pb.LINKAGE_OFF_REASON_UNSPECIFIED
    assert not status.HasField("next_fit_attempt")


def test_an_import_summary_says_how_many_records_were_left_unlinked_and_why() -> None:
    from server.identity.records import ImportSummary

    summary = ImportSummary(records=10, records_left_unlinked=8, why_unlinked="no linkage model is current",
                            model_refusals=list(REASONS))
    message = convert.import_progress(summary).summary
    assert message.records_left_unlinked == 8 and message.why_unlinked == "no linkage model is current"
    assert list(message.model_refusals) == list(REASONS)


def scrape(metrics: ServerMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in metrics.registry.collect() for s in family.samples}


def test_refused_fits_are_counted_by_trigger_from_zero_and_the_gauge_says_whether_linkage_is_on() -> None:
    metrics = ServerMetrics()
    on = [False]
    metrics.watch(StateSources(open_calls=dict, neo4j_sessions_in_use=lambda: 0, neo4j_up=lambda: True,
                               linkage_lag=lambda: Lag(0, 0.0), segment_lag=lambda: Lag(0, 0.0),
                               linkage_on=lambda: on[0]))
    before = scrape(metrics)
    assert {before[("identity_linkage_fit_refusals_total", (("trigger", t),))] for t in FIT_TRIGGERS} == {0.0}
    assert before[("identity_linkage_probabilistic_on", ())] == 0
    metrics.fit_refused("online")
    metrics.fit_refused("online")
    on[0] = True
    after = scrape(metrics)
    assert after[("identity_linkage_fit_refusals_total", (("trigger", "online"),))] == 2
    assert after[("identity_linkage_fit_refusals_total", (("trigger", "import"),))] == 0
    assert after[("identity_linkage_probabilistic_on", ())] == 1


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_readyz_mentions_that_probabilistic_linkage_is_off_and_stays_ready() -> None:
    ready = [(True, "")]
    note = "probabilistic linkage: off: the last fit (v2) was refused: prior 0.885 ..."
    http = OperatorHttp("127.0.0.1:0", OperatorEndpoints(metrics=lambda: b"", ready=lambda: ready[0],
                                                         notes=lambda: [note], assets=lambda path: None))
    try:
        assert get(http.port, "/readyz") == (200, f"ready\n{note}\n")
        ready[0] = (False, "Neo4j did not answer within 3 s")
        assert get(http.port, "/readyz") == (503, f"not ready: Neo4j did not answer within 3 s\n{note}\n")
    finally:
        http.stop()


class QuietGraph:
    def read(self, name: str, **params: object) -> list[dict[str, object]]:
        raise AssertionError(f"no model: the worker reads no queue ({name})")


class NoModelLinker:
    """What the online worker sees of a graph without a model: a queue, some records, a claim."""

    def __init__(self, pending: int, matchable: int, claimable: bool = True) -> None:
        self.graph = QuietGraph()
        self.pending, self.records, self.claimable = pending, matchable, claimable
        self.refits: list[str] = []
        self.released: list[tuple[int, float | None, str]] = []

    def model(self, max_age: float = 5.0) -> None:
        return None

    def lag(self) -> LinkageLag:
        return LinkageLag(self.pending, 300.0)

    def matchable(self) -> int:
        return self.records

    def claim_fit(self, owner: str, lease_s: float) -> int | None:
        return 0 if self.claimable else None

    def release_fit(self, owner: str, attempts: int, retry_after_s: float | None, outcome: str) -> None:
        self.released.append((attempts, retry_after_s, outcome))

    def refit(self, sample_records: int = 0, trigger: str = "refit") -> LinkageModel:
        self.refits.append(trigger)
        raise ModelRefused("v9", list(REASONS))

    def status(self) -> LinkageStatusView:
        off, why = why_off(None, None, None, self.records, self.lag(), None, NOW)
        return LinkageStatusView(lag=self.lag(), model=None, current_links=None, refused=None, off=off, why_off=why,
                                 matchable=self.records, next_fit_attempt=None)


def worker_of(linker: NoModelLinker) -> LinkageWorker:
    return LinkageWorker(linker, fitting=OnlineFitting(min_records=1000, after_s=60, retry_s=600,  # type: ignore[arg-type]
                                                       check_every_s=3600, report_every_s=3600))


def test_without_a_model_and_too_few_records_the_worker_does_not_fit_but_says_why_it_waits(
        caplog: pytest.LogCaptureFixture) -> None:
    linker = NoModelLinker(pending=48_628, matchable=400)
    online = worker_of(linker)
    with caplog.at_level(logging.WARNING, logger="server.identity.linkage.online"):
        assert online.run_once() == 0
        assert online.run_once() == 0  # checked once per check_every_s: the second round only waits
    assert linker.refits == []
    (warning,) = [r.getMessage() for r in caplog.records]
    assert "online linkage is waiting: probabilistic linkage is off: no linkage model has been fitted yet" in warning
    assert "48,628 identifiers wait for a model" in warning and "holds 1000 records" in warning


def test_without_a_model_the_worker_fits_when_due_and_backs_off_after_a_refusal() -> None:
    linker = NoModelLinker(pending=10, matchable=5000)
    assert worker_of(linker).fit_if_due() is FitAttempt.REFUSED
    assert linker.refits == ["online"]
    ((attempts, retry_after, outcome),) = linker.released
    assert (attempts, retry_after) == (1, 600) and outcome.startswith("the fit (v9) was refused: surname")


def test_the_worker_fits_nothing_while_nobody_waits_or_another_server_holds_the_claim() -> None:
    idle, taken = NoModelLinker(pending=0, matchable=5000), NoModelLinker(pending=10, matchable=5000, claimable=False)
    assert worker_of(idle).fit_if_due() is None and worker_of(taken).fit_if_due() is None
    assert idle.refits == taken.refits == [] and taken.released == []
