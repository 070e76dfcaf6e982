"""The identifiers a change may carry: looked up per batch, of the types the destination allows.

A segment change names a profile by id only. A destination that must reach the person (an ad
platform matches hashed e-mails and phones, a messaging tool a user id) gets, per batch, the
profile's identifiers of the types it lists under `identifiers`, and nothing else (data
minimisation). A profile merged since the change resolves to the one it merged into; one
forgotten since has none left, and its change goes with the profile id alone.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence

from client.api import IdentityClient
from identity.v1 import common_pb2

IdentifierSource = Callable[[Sequence[str]], Mapping[str, tuple[tuple[str, str], ...]]]
"""profile ids -> each found profile's identifiers as (type, value), every type."""


def lookup_identifiers(identity: IdentityClient) -> IdentifierSource:
    """Looks the profiles up through LookupProfiles, one stream per batch."""
    def identifiers_of(profile_ids: Sequence[str]) -> Mapping[str, tuple[tuple[str, str], ...]]:
        unique = list(dict.fromkeys(profile_ids))
        refs = [common_pb2.ProfileRef(profile_id=profile_id) for profile_id in unique]
        found: dict[str, tuple[tuple[str, str], ...]] = {}
        for result in identity.lookup(refs):
            if result.WhichOneof("result") == "profile":
                found[unique[int(result.request_id)]] = tuple(
                    (i.identifier.type, i.identifier.value) for i in result.profile.identifiers)
        return found

    return identifiers_of


def allowed(identifiers: Mapping[str, tuple[tuple[str, str], ...]],
            types: Collection[str]) -> dict[str, tuple[tuple[str, str], ...]]:
    """Only the identifiers of the allowed types, in the order of `types` (the first e-mail the
    destination lists first), sorted within a type so that a repeat sends the same message."""
    order = {kind: n for n, kind in enumerate(types)}
    return {profile_id: tuple(sorted(((kind, value) for kind, value in found if kind in order),
                                     key=lambda item: (order[item[0]], item[1])))
            for profile_id, found in identifiers.items()}
