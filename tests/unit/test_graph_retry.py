"""A transient error the driver masks as ResultFailedError while it rolls back is retried."""

from __future__ import annotations

from neo4j.exceptions import ResultFailedError, TransientError

from server.graph import _transient_cause


def masked(cause: BaseException) -> ResultFailedError:
    try:
        try:
            raise cause
        except BaseException:
            raise ResultFailedError(None, "The result has failed.")
    except ResultFailedError as exc:
        return exc


def test_a_deadlock_behind_a_failed_result_counts_as_transient() -> None:
    deadlock = TransientError._hydrate_neo4j(code="Neo.TransientError.Transaction.DeadlockDetected",
                                             message="deadlock detected")
    assert _transient_cause(masked(deadlock))


def test_a_failed_result_with_no_transient_cause_is_not_retried() -> None:
    assert not _transient_cause(masked(ValueError("a bug")))
