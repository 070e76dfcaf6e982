"""Whether probabilistic linkage is on, and if not why, in words an operator can act on.

GetLinkageStatus, /readyz and the online worker's warnings say it; Linker.status() reads the
graph and these values and functions put it together, without Neo4j, so that every wording is
tested on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum

from server.identity.linkage.model import LinkageModel
from server.identity.linkage.quality import QualitySummary
from server.tuning import ONLINE_FIT_MIN_RECORDS


@dataclass(frozen=True)
class RefusedFitView:
    """The latest fit that failed its checks, newer than the current model."""

    model: LinkageModel
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class LinkageLag:
    pending: int
    oldest_wait_s: float


class LinkageOff(Enum):
    """Why probabilistic linkage is off: no current model can score pairs."""

    NO_MODEL = "no model"  # none fitted yet (too few records, or nobody asked)
    FIT_REFUSED = "fit refused"  # the last fit failed its checks, and no earlier model is current
    MODEL_INCOMPATIBLE = "model incompatible"  # the stored model was fitted under another config


@dataclass(frozen=True)
class FitSchedule:
    """The online worker's fit attempts, as the graph keeps them (linkage/claim_fit)."""

    attempts: int  # refused (or not fitted) in a row
    attempted_at: datetime | None
    not_before: datetime | None  # the next attempt waits for this
    outcome: str  # what the last attempt did, in words
    claimed_until: datetime | None  # a server is fitting now, under a claim that runs until then


@dataclass(frozen=True)
class LinkageStatusView:
    """Everything GetLinkageStatus shows: the model, the queue, and whether linkage is on."""

    lag: LinkageLag
    model: LinkageModel | None
    current_links: QualitySummary | None  # the links the current model holds in the graph, by band
    refused: RefusedFitView | None
    off: LinkageOff | None  # None: probabilistic linkage is on
    why_off: str
    matchable: int
    next_fit_attempt: datetime | None


def why_off(model: LinkageModel | None, refused: RefusedFitView | None, incompatible: str | None, matchable: int,
            lag: LinkageLag, schedule: FitSchedule | None, now: datetime,
            min_records: int = ONLINE_FIT_MIN_RECORDS) -> tuple[LinkageOff | None, str]:
    """Whether probabilistic linkage is off (None: on, with a current model) and why, in words
    an operator can act on: the cause, who waits, and what happens next (min_records: what the
    online worker waits for before it fits a model itself)."""
    if model is not None:
        return None, ""
    if refused is not None:
        off = LinkageOff.FIT_REFUSED
        why = (f"the last fit ({refused.model.version}, {refused.model.fitted_at}) was refused: "
               f"{'; '.join(refused.reasons)}")
    elif incompatible is not None:
        off = LinkageOff.MODEL_INCOMPATIBLE
        why = f"the stored model {incompatible} was fitted under other fields or levels than config/linkage.yaml has"
    else:
        off = LinkageOff.NO_MODEL
        why = f"no linkage model has been fitted yet ({matchable:,} records with person attributes in the graph)"
        if schedule is not None and schedule.outcome:
            why += f"; the online worker's last attempt: {schedule.outcome}"
        elif matchable < min_records:
            why += f"; the online worker fits one once there are {min_records:,}"
    if lag.pending:
        why += (f"; {lag.pending:,} identifiers wait for a model, the oldest for "
                f"{timedelta(seconds=round(lag.oldest_wait_s))}")
    if schedule is not None and schedule.claimed_until is not None and schedule.claimed_until > now:
        why += "; a server is fitting a model now"
    elif schedule is not None and schedule.not_before is not None and schedule.not_before > now:
        why += (f"; the online worker tries again after {schedule.not_before:%Y-%m-%d %H:%M:%S} UTC "
                f"({schedule.attempts} attempts refused in a row)")
    return off, why + "; import records or call RefitLinkageModel (identity refit) to fit one now"


def moment(epoch_ms: int | None) -> datetime | None:
    """A time the graph keeps in epoch milliseconds."""
    return datetime.fromtimestamp(epoch_ms / 1000, UTC) if epoch_ms is not None else None
