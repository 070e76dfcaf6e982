"""A destination's required consent (`requires_consent: [advertising]`), enforced twice.

1. **At start, on the segment.** The destination delivers its segment's changes, so the
   segment itself must require each category granted: `consent {category, granted: true}`
   as its rule or as one of the conditions its top-level `all` requires. Then a withdrawal,
   or a merge into `conflict`, makes the profile exit the segment on the server, and that
   EXIT reaches the platform like any other, in position order, exactly as durable. A
   destination whose segment lacks the condition does not start, and says what to add.
2. **Per batch, on each ENTER.** The runner may deliver old changes (a first run from
   position 0, a restart after a long stop). An ENTER whose profile does not grant every
   required category *now* is withheld: its later EXIT is in the feed already, and the
   platform never sees the person in between.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path

import yaml

from client.api import IdentityClient
from client.messages import SegmentChange
from identity.v1 import common_pb2, identity_service_pb2 as pb, segment_service_pb2 as seg

ConsentSource = Callable[[Sequence[str]], Mapping[str, frozenset[str]]]
"""profile ids -> each found profile's granted categories (a profile not found grants none)."""
RuleSource = Callable[[str], seg.Rule]
"""segment name -> its current rule."""

def known_consent_categories(identity_config: Path) -> frozenset[str]:
    """The categories the server configures (consent.categories of its identity config)."""
    data = yaml.safe_load(identity_config.read_text(encoding="utf-8")) or {}
    consent = data.get("consent") or {}
    return frozenset((consent.get("categories") or {}) if isinstance(consent, dict) else ())


def lookup_consent(identity: IdentityClient) -> ConsentSource:
    """Looks the profiles up through LookupProfiles, one stream per batch."""
    def granted_by(profile_ids: Sequence[str]) -> Mapping[str, frozenset[str]]:
        unique = list(dict.fromkeys(profile_ids))
        found: dict[str, frozenset[str]] = {}
        for result in identity.lookup([common_pb2.ProfileRef(profile_id=p) for p in unique]):
            if result.WhichOneof("result") == "profile":
                found[unique[int(result.request_id)]] = frozenset(
                    c.category for c in result.profile.consent if c.status == pb.CONSENT_STATUS_GRANTED)
        return found

    return granted_by


def segment_rules(identity: IdentityClient) -> RuleSource:
    return lambda name: identity.segments.get(name).rule


def required_by_rule(rule: seg.Rule) -> frozenset[str]:
    """The categories a rule requires granted for every member: its own consent condition, or
    those of the conditions an `all` requires (nested `all`s included; never through any/not)."""
    kind = rule.WhichOneof("node")
    if kind == "consent" and rule.consent.granted:
        return frozenset({rule.consent.category})
    if kind == "all":
        return frozenset().union(*(required_by_rule(r) for r in rule.all.rules))
    return frozenset()


def missing_from_segment(segment: str, rule: seg.Rule, required: Collection[str]) -> str | None:
    """Why a destination requiring these categories must not deliver this segment; None if it may."""
    missing = sorted(set(required) - required_by_rule(rule))
    if not missing:
        return None
    conditions = ", ".join(f"{{consent: {{category: {c}, granted: true}}}}" for c in missing)
    return (f"requires consent {', '.join(missing)}, but segment {segment} does not: a withdrawal would not "
            f"make a member exit. Add {conditions} to the conditions of the segment's top-level `all`")


def withheld(changes: Sequence[SegmentChange], granted: Mapping[str, frozenset[str]],
             required: Collection[str]) -> list[SegmentChange]:
    """The ENTERs of profiles that do not grant every required category now."""
    needed = frozenset(required)
    return [c for c in changes
            if c.kind == seg.CHANGE_KIND_ENTER and not needed <= granted.get(c.profile_id, frozenset())]
