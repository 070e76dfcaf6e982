"""Consent: what each person allowed, per category, kept with the profile that holds them.

A consent statement ("advertising: granted") arrives on an event (the gRPC `consent` map,
the tracking spec's `context.consent.categoryPreferences`, RudderStack's
`context.consentManagement`, an imported record's `consent`) and is stored on its
touchpoint, so it keeps its event time and source and goes wherever the touchpoint goes.

A profile's state per category is derived from those statements and kept on the Profile
node, where segment rules read it:
- the latest statement by **event time** wins, not the latest to arrive (an offline export
  can arrive days after a newer online choice); at equal times, denied wins;
- when profiles merge and disagree on a category, the category becomes `conflict` until a
  statement newer than any of theirs arrives; conflict counts as not granted (Segment's
  rule, and the privacy-safe one);
- a split (unlink, repair) recomputes each part from its own statements only;
- a category never stated takes its configured default (`denied` unless the file says
  otherwise).

Categories, their aliases (the names consent tools send: OneTrust's C0004, "ads") and their
defaults are the `consent:` section of config/identity.yaml.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from server.errors import ConfigurationError
from server.graph import Tx, to_datetime
from server.identity.values import ValueWarning
from server.yaml_config import FrozenMapping

GRANTED, DENIED, CONFLICT = "granted", "denied", "conflict"
STATES = (GRANTED, DENIED, CONFLICT)
DEFAULTS = (GRANTED, DENIED)
# How a profile keeps its state: one property per category and field, so that a segment
# rule reads `p['consent.advertising']` with the key as a parameter.
STATE_PREFIX, AT_PREFIX, SOURCE_PREFIX = "consent.", "consent_at.", "consent_source."
PREFIXES = (STATE_PREFIX, AT_PREFIX, SOURCE_PREFIX)
MERGE_SOURCE = "merge"  # the source of a conflict: profiles that disagreed were merged
CATEGORY_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,100}")
MAX_STATEMENTS = 50  # per event: a consent object is a handful of categories, not a dump


@dataclass(frozen=True)
class ConsentCategory:
    name: str
    default: str  # granted | denied
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class ConsentRules:
    """The configured categories; a category that is not configured is still kept, with a warning."""

    categories: Mapping[str, ConsentCategory]
    aliases: Mapping[str, str]  # folded name or alias -> category

    def category_named(self, name: str) -> str | None:
        """The configured category a name stands for (its own name or an alias, any case)."""
        return self.aliases.get(name.strip().lower())

    def default_of(self, category: str) -> str:
        configured = self.categories.get(category)
        return configured.default if configured else DENIED


DEFAULT_CONSENT_RULES = ConsentRules(FrozenMapping({}), FrozenMapping({}))


@dataclass(frozen=True, order=True)
class ConsentStatement:
    """One category granted or denied, by one touchpoint."""

    at: datetime
    category: str
    granted: bool
    source: str


@dataclass(frozen=True)
class ConsentState:
    """A profile's state of one category, and the statement (or merge) it comes from.
    `at` is None and `source` "default" for a category never stated."""

    category: str
    state: str
    at: datetime | None
    source: str

    @property
    def granted(self) -> bool:
        return self.state == GRANTED


# ---------------------------------------------------------------------------------------------
# Configuration


def parse_consent_rules(data: Any, source: str) -> ConsentRules:
    """The `consent:` section: {categories: {name: {default, aliases}}}."""
    if data is None:
        return DEFAULT_CONSENT_RULES
    if not isinstance(data, Mapping):
        raise ConfigurationError(f"{source}: consent must be a mapping with `categories`")
    listed = data.get("categories") or {}
    if not isinstance(listed, Mapping):
        raise ConfigurationError(f"{source}: consent.categories must map category names to their settings")
    categories: dict[str, ConsentCategory] = {}
    aliases: dict[str, str] = {}
    for name, spec in listed.items():
        category = _category(str(name), spec or {}, f"{source}: consent.categories.{name}")
        categories[category.name] = category
        for alias in (category.name, *category.aliases):
            folded = alias.lower()
            if aliases.get(folded, category.name) != category.name:
                raise ConfigurationError(f"{source}: consent.categories.{name}: {alias!r} already names "
                                         f"category {aliases[folded]!r} (names are compared case-blind)")
            aliases[folded] = category.name
    return ConsentRules(FrozenMapping(categories), FrozenMapping(aliases))


def _category(name: str, spec: Any, where: str) -> ConsentCategory:
    if not CATEGORY_PATTERN.fullmatch(name):
        raise ConfigurationError(f"{where}: a category name is 1 to 100 letters, digits, '_', '.', ':' or '-'")
    if not isinstance(spec, Mapping):
        raise ConfigurationError(f"{where} must be a mapping with `default` and `aliases`")
    default = spec.get("default", DENIED)
    if default not in DEFAULTS:
        raise ConfigurationError(f"{where}.default is {default!r}; expected granted or denied")
    aliases = spec.get("aliases") or []
    if not isinstance(aliases, list) or not all(isinstance(a, str) and a.strip() for a in aliases):
        raise ConfigurationError(f"{where}.aliases must be a list of names")
    return ConsentCategory(name, str(default), tuple(a.strip() for a in aliases))


# ---------------------------------------------------------------------------------------------
# Statements as events carry them


def read_statements(raw: Mapping[str, object], rules: ConsentRules,
                    warnings: list[ValueWarning]) -> tuple[dict[str, bool], dict[str, bool]]:
    """The configured categories an event grants (True) or denies (False), by their names, and
    the statements of categories that are not configured, by the names sent.

    Nothing is dropped silently: a category that is not configured is kept on the touchpoint
    as sent, with a warning (it has no default, so no profile state, until it is configured);
    a value that is not true or false is an invalid value, left out with a warning (it states
    nothing)."""
    known: dict[str, bool] = {}
    unknown: dict[str, bool] = {}
    for name, value in list(raw.items())[:MAX_STATEMENTS]:
        field = f"consent.{_shown(name)}"
        if not isinstance(value, bool):
            warnings.append(ValueWarning(field, _shown(repr(value)), "invalid value: a consent choice is true or false"))
            continue
        category = rules.category_named(name)
        if category is None and not CATEGORY_PATTERN.fullmatch(name):
            warnings.append(ValueWarning(field, _shown(name), "invalid value: a category name is 1 to 100 "
                                         "letters, digits, '_', '.', ':' or '-'"))
            continue
        if category is None:
            warnings.append(ValueWarning(field, name, "unknown consent category: kept on the touchpoint as sent; "
                                         "add it to consent.categories in config/identity.yaml to use it"))
        held, key = (known, category) if category is not None else (unknown, name)
        # one event stating a category twice (a name and its alias) denies if either denies
        held[key] = held.get(key, True) and value
    if len(raw) > MAX_STATEMENTS:
        warnings.append(ValueWarning("consent", f"{len(raw)} categories",
                                     f"invalid value: at most {MAX_STATEMENTS} categories are read per event"))
    return known, unknown


def _shown(text: str) -> str:
    """A value as a warning quotes it: control characters escaped, cut short."""
    escaped = text.encode("unicode_escape").decode("ascii") if not text.isprintable() else text
    return escaped if len(escaped) <= 60 else escaped[:60] + "…"


# ---------------------------------------------------------------------------------------------
# A profile's state


def latest(statements: Iterable[ConsentStatement]) -> dict[str, ConsentState]:
    """Per category, the statement with the latest event time (denied at equal times)."""
    states: dict[str, ConsentState] = {}
    for statement in statements:
        current = states.get(statement.category)
        if current is None or _newer(statement, current):
            states[statement.category] = ConsentState(statement.category, GRANTED if statement.granted else DENIED,
                                                      statement.at, statement.source)
    return states


def _newer(statement: ConsentStatement, current: ConsentState) -> bool:
    assert current.at is not None
    return statement.at > current.at or (statement.at == current.at and not statement.granted)


def merged(sides: Iterable[Mapping[str, ConsentState]]) -> dict[str, ConsentState]:
    """The state of profiles merged into one: where they disagree (or one side is already in
    conflict), `conflict`, as of the latest of their times; where they agree, that state."""
    result: dict[str, ConsentState] = {}
    for side in sides:
        for category, state in side.items():
            before = result.get(category)
            if before is None:
                result[category] = state
            elif before.state != state.state or state.state == CONFLICT:
                result[category] = ConsentState(category, CONFLICT, _later(before.at, state.at), MERGE_SOURCE)
            elif _later(before.at, state.at) == state.at:
                result[category] = state
    return result


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None or b is None:
        return a or b
    return max(a, b)


def advanced(base: Mapping[str, ConsentState], statements: Iterable[ConsentStatement]) -> dict[str, ConsentState]:
    """The base state moved on by the statements newer than it: a statement before a
    category's time (an older one arriving late) changes nothing; one at the same time
    changes a grant into a denial only (denied wins a tie), never a conflict."""
    result = dict(base)
    for category, state in latest(statements).items():
        held = result.get(category)
        if held is None or held.at is None or state.at is None or state.at > held.at or (
                state.at == held.at and state.state == DENIED and held.state == GRANTED):
            result[category] = state
    return result


def with_defaults(states: Mapping[str, ConsentState], rules: ConsentRules) -> list[ConsentState]:
    """Every configured category (never stated: its default) and every stated one, by name."""
    shown = {name: ConsentState(name, category.default, None, "default") for name, category in rules.categories.items()}
    shown.update(states)
    return [shown[name] for name in sorted(shown)]


# ---------------------------------------------------------------------------------------------
# As the Profile node keeps it


def to_properties(states: Mapping[str, ConsentState], stored: Mapping[str, object]) -> dict[str, object]:
    """The Profile properties that hold the states; a key held before and not now is set to
    null, so that `SET p += ...` removes it."""
    properties: dict[str, object] = {key: None for key in stored if key.startswith(PREFIXES)}
    for category, state in states.items():
        properties[STATE_PREFIX + category] = state.state
        properties[AT_PREFIX + category] = state.at
        properties[SOURCE_PREFIX + category] = state.source
    return properties


def from_properties(stored: Mapping[str, Any]) -> dict[str, ConsentState]:
    """The states a Profile node holds."""
    states: dict[str, ConsentState] = {}
    for key, value in stored.items():
        if key.startswith(STATE_PREFIX) and value in STATES:
            category = key[len(STATE_PREFIX):]
            states[category] = ConsentState(category, str(value), to_datetime(stored.get(AT_PREFIX + category)),
                                            str(stored.get(SOURCE_PREFIX + category) or ""))
    return states


# ---------------------------------------------------------------------------------------------
# Refresh, in the transaction that evaluates segments for changed profiles

SPLIT_MARK = "consent_split"  # set where a split moved identifiers away: recompute from statements


def recomputed(stored: Mapping[str, ConsentState], absorbed: Iterable[Mapping[str, ConsentState]],
               statements: Iterable[ConsentStatement], split: bool) -> dict[str, ConsentState]:
    """A profile's new state: after a split, from its own statements only; otherwise its
    held state merged with that of the profiles merged into it, moved on by newer statements."""
    if split:
        return latest(statements)
    return advanced(merged([stored, *absorbed]), statements)


def refresh(tx: Tx, profile_ids: list[str]) -> int:
    """Recomputes and stores the consent of these (locked) profiles; returns how many changed.
    The states of merged-away profiles are folded in once, then removed from them.

    Runs where segments are evaluated (the state must be current for rules), and in the
    transaction of every merge, just before it, for both sides: each side's own state is then
    on record, so that the merge can tell a disagreement, however far behind the segment
    worker is. Only statements not read yet (ConsentUnread) are read, except after a split."""
    rows: list[dict[str, object]] = []
    folded: list[str] = []
    read: list[str] = []
    for record in tx.run("consent/of_profiles", profile_ids=profile_ids):
        held = dict(record["held"])
        absorbed = [(profile_id, dict(pairs)) for profile_id, pairs in record["absorbed"]]
        split = bool(held.get(SPLIT_MARK))
        before = from_properties(held)
        new = recomputed(before, [from_properties(a) for _, a in absorbed], _statements(record["statements"]), split)
        if new != before or split:
            properties = to_properties(new, held)
            if split:
                properties[SPLIT_MARK] = None
            rows.append({"profile_id": record["profile_id"], "properties": properties})
        folded.extend(profile_id for profile_id, _ in absorbed)
        if record["statements"]:
            read.append(record["profile_id"])
    if rows or folded or read:
        tx.run("consent/save", rows=rows, read=read, folded=folded)
    return len(rows)


def _statements(rows: Iterable[Any]) -> list[ConsentStatement]:
    statements: list[ConsentStatement] = []
    for at, source, granted, denied in rows:
        moment = to_datetime(at)
        assert moment is not None  # every touchpoint has its time
        statements.extend(ConsentStatement(moment, category, True, source) for category in granted or [])
        statements.extend(ConsentStatement(moment, category, False, source) for category in denied or [])
    return statements
