"""Where segment changes are delivered: the destinations file, read and validated once at start.

    state_dir: var/delivery
    destinations:
      - name: crm-webhook
        segment: repeat-buyers
        webhook: {url: http://127.0.0.1:8080/hook, batch_size: 100}
      - name: ads-file
        segment: repeat-buyers
        requires_consent: [advertising]
        file: {path: var/delivery/ads.jsonl, format: jsonl}

Relative paths are taken from the working directory of the runner. Every problem of the file
is collected and reported at once, each naming its entry (`destinations[1] (ads-file)`), and
a key this module does not know is an error: a typo such as `batch_sise` would otherwise
silently fall back to a default.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from activation.ad_audiences import AUDIENCE_FORMATS, MATCHED_TYPES
from activation.consent_gate import known_consent_categories
from client.messages import InputError

# A destination's name is part of file names (its position, its dead letters) and of keys.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
FILE_FORMATS = ("jsonl", "csv", *AUDIENCE_FORMATS)
WEBHOOK_FORMATS = ("changes", *AUDIENCE_FORMATS)
# Headers the runner sets itself; a configured value would break the delivery contract.
RESERVED_HEADERS = frozenset({"idempotency-key", "content-type", "content-length"})

DESTINATION_KEYS = ("name", "segment", "identifiers", "requires_consent", "webhook", "file", "kafka", "tracking")
KINDS = ("webhook", "file", "kafka", "tracking")
# Where identifier types are defined when the caller names none: the server's own default file.
IDENTITY_CONFIG = Path(__file__).resolve().parents[1] / "config" / "identity.yaml"
TOP_KEYS = ("state_dir", "destinations")


class DestinationsError(InputError):
    """A destinations file that cannot be used; the message lists every problem, each with its entry."""

    def __init__(self, origin: str, problems: list[str]) -> None:
        super().__init__(f"{origin}: " + "; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Webhook:
    """POSTs batches of changes; retries transient failures, then dead-letters the batch."""

    url: str
    batch_size: int = 100
    batch_seconds: float = 1.0
    max_attempts: int = 5
    backoff_seconds: float = 0.5
    max_backoff_seconds: float = 30.0
    timeout_seconds: float = 10.0
    dead_letter: Path = Path("dead.jsonl")
    headers: Mapping[str, str] = field(default_factory=dict)
    # changes: our JSON; google_customer_match or meta_custom_audience: that platform's operations
    format: str = "changes"


@dataclass(frozen=True)
class ExportFile:
    """Appends changes to a JSON Lines or CSV file, fsynced before the position moves on."""

    path: Path
    format: str = "jsonl"  # jsonl, csv, or an ad platform's operations as JSON Lines
    batch_size: int = 500
    batch_seconds: float = 0.5


@dataclass(frozen=True)
class Kafka:
    """Produces one message per change to a topic, keyed by profile, idempotently with acks=all;
    retries a batch the broker did not acknowledge, then dead-letters it."""

    topic: str
    bootstrap: str = ""  # empty: KAFKA_BOOTSTRAP from the environment, else 127.0.0.1:9092
    audience_key: str = ""  # empty: the segment's name, lower case, words joined by "_"
    batch_size: int = 500
    batch_seconds: float = 0.5
    max_attempts: int = 5
    backoff_seconds: float = 0.5
    max_backoff_seconds: float = 30.0
    timeout_seconds: float = 30.0  # for the broker to acknowledge a batch
    dead_letter: Path = Path("dead.jsonl")
    producer: Mapping[str, Any] = field(default_factory=dict)  # more librdkafka settings (TLS, SASL)


@dataclass(frozen=True)
class Tracking:
    """POSTs each batch to a tracking-API endpoint's /v1/batch (Segment, RudderStack, this
    service's own collector): per change an identify and a track, the write key as HTTP Basic."""

    url: str  # the endpoint's base, e.g. https://api.segment.io or http://127.0.0.1:8088
    write_key: str = ""  # empty: TRACKING_WRITE_KEY from the environment (a secret: keep it off files)
    audience_key: str = ""
    batch_size: int = 100  # changes per request (two messages each)
    batch_seconds: float = 1.0
    max_attempts: int = 8
    backoff_seconds: float = 0.5
    max_backoff_seconds: float = 60.0
    timeout_seconds: float = 10.0
    dead_letter: Path = Path("dead.jsonl")


Target = Webhook | ExportFile | Kafka | Tracking


@dataclass(frozen=True)
class Destination:
    name: str
    segment: str
    target: Target
    # the identifier types that may leave with a change (data minimisation); none by default
    identifiers: tuple[str, ...] = ()
    # consent categories every delivered profile grants (activation/consent_gate.py)
    requires_consent: tuple[str, ...] = ()

    @property
    def batch_size(self) -> int:
        return self.target.batch_size

    @property
    def batch_seconds(self) -> float:
        return self.target.batch_seconds


@dataclass(frozen=True)
class DeliveryConfig:
    state_dir: Path
    destinations: tuple[Destination, ...]


def known_identifier_types(identity_config: Path = IDENTITY_CONFIG) -> frozenset[str]:
    """The identifier types the server defines (identifier_types of its identity config)."""
    try:
        data = yaml.safe_load(identity_config.read_text(encoding="utf-8"))
        return frozenset(data["identifier_types"])
    except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
        raise DestinationsError(str(identity_config), [f"cannot read its identifier_types: {exc}"]) from None


def load_destinations(path: str | Path) -> DeliveryConfig:
    """The destinations file at path, validated; DestinationsError names the file and every bad entry."""
    origin = str(path)
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise DestinationsError(origin, [f"cannot read it: {exc.strerror}"]) from None
    except UnicodeDecodeError as exc:
        raise DestinationsError(origin, [f"not UTF-8 text: {exc.reason} at byte {exc.start}"]) from None
    except yaml.YAMLError as exc:
        raise DestinationsError(origin, ["not valid YAML: " + " ".join(str(exc).split())]) from None
    return parse_destinations(data, origin)


def parse_destinations(data: Any, origin: str = "destinations") -> DeliveryConfig:
    """A DeliveryConfig from the decoded file; origin names the file in messages."""
    problems: list[str] = []
    if not isinstance(data, Mapping):
        raise DestinationsError(origin, [f"must hold a mapping with {' and '.join(TOP_KEYS)}, not {_kind(data)}"])
    problems += _unknown_keys(data, TOP_KEYS, "the file")
    state_dir = Path(_text(data, "state_dir", "the file", problems, default="var/delivery"))
    entries = data.get("destinations")
    if not isinstance(entries, list) or not entries:
        problems.append("destinations must be a non-empty list")
        entries = []
    types, categories = known_identifier_types(), known_categories()
    destinations = [_destination(n, entry, state_dir, types, categories, problems) for n, entry in enumerate(entries)]
    found = [d for d in destinations if d is not None]
    problems += _clashes(found)
    if problems:
        raise DestinationsError(origin, problems)
    return DeliveryConfig(state_dir=state_dir, destinations=tuple(found))


def _destination(number: int, entry: Any, state_dir: Path, types: frozenset[str], categories: frozenset[str],
                 problems: list[str]) -> Destination | None:
    name = entry.get("name") if isinstance(entry, Mapping) else None
    where = f"destinations[{number}]" + (f" ({name})" if isinstance(name, str) and name else "")
    if not isinstance(entry, Mapping):
        problems.append(f"{where} must be a mapping, not {_kind(entry)}")
        return None
    before = len(problems)
    problems += _unknown_keys(entry, DESTINATION_KEYS, where)
    name = _text(entry, "name", where, problems)
    if name and not NAME.fullmatch(name):
        problems.append(f"{where}: name may hold only letters, digits, '.', '_' and '-' (it names files)")
    segment = _text(entry, "segment", where, problems)
    identifiers = _identifier_types(entry.get("identifiers"), where, types, problems)
    requires_consent = _consent_categories(entry.get("requires_consent"), where, categories, problems)
    kinds = [key for key in KINDS if key in entry]
    if len(kinds) != 1:
        problems.append(f"{where} must have exactly one of {', '.join(KINDS)}")
        return None
    dead_letter = state_dir / f"{name}.dead.jsonl"
    target: Target | None
    if kinds == ["webhook"]:
        target = _webhook(entry["webhook"], f"{where} webhook", dead_letter, problems)
    elif kinds == ["kafka"]:
        target = _kafka(entry["kafka"], f"{where} kafka", dead_letter, problems)
    elif kinds == ["tracking"]:
        target = _tracking(entry["tracking"], f"{where} tracking", dead_letter, problems)
    else:
        target = _export_file(entry["file"], f"{where} file", problems)
    if isinstance(target, ExportFile) and target.format == "csv" and identifiers:
        problems.append(f"{where}: a csv file has no column for identifiers; use format jsonl")
    platform = getattr(target, "format", None)
    if platform in AUDIENCE_FORMATS:
        problems += _audience_identifiers(identifiers, str(platform), where)
    if target is None or len(problems) > before:
        return None
    return Destination(name=name, segment=segment, target=target, identifiers=identifiers,
                       requires_consent=requires_consent)


def _audience_identifiers(identifiers: tuple[str, ...], platform: str, where: str) -> list[str]:
    """An ad audience is matched on e-mails, phones and advertising ids only: without one of
    them allowed it would match nobody, and another type would be allowed for nothing."""
    if not identifiers:
        return [f"{where}: format {platform} matches people by identifiers: allow some of "
                f"{', '.join(MATCHED_TYPES)} under identifiers"]
    other = [kind for kind in identifiers if kind not in MATCHED_TYPES]
    if other:
        return [f"{where}: format {platform} matches on {', '.join(MATCHED_TYPES)} only, not "
                f"{', '.join(other)}"]
    return []


def _identifier_types(value: Any, where: str, types: frozenset[str], problems: list[str]) -> tuple[str, ...]:
    return _names(value, types, problems, f"{where}: identifiers", "identifier types", "[email, phone]", "known")


def known_categories(identity_config: Path = IDENTITY_CONFIG) -> frozenset[str]:
    """The consent categories the server configures (consent.categories of its identity config)."""
    try:
        return known_consent_categories(identity_config)
    except (OSError, yaml.YAMLError, AttributeError, TypeError) as exc:
        raise DestinationsError(str(identity_config), [f"cannot read its consent categories: {exc}"]) from None


def _consent_categories(value: Any, where: str, categories: frozenset[str], problems: list[str]) -> tuple[str, ...]:
    if isinstance(value, list) and not value:
        problems.append(f"{where}: requires_consent is empty; name a category, e.g. [advertising], or leave it out")
        return ()
    return _names(value, categories, problems, f"{where}: requires_consent", "consent categories", "[advertising]",
                  "configured")


def _names(value: Any, known: frozenset[str], problems: list[str], key: str, what: str, example: str,
           listed: str) -> tuple[str, ...]:
    """A list of names each of which must be known (identifier types, consent categories), without repeats."""
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        problems.append(f"{key} must be a list of {what}, e.g. {example}")
        return ()
    unknown = [v for v in value if v not in known]
    if unknown:
        problems.append(f"{key} {', '.join(map(repr, unknown))} are not {what} ({listed}: "
                        f"{', '.join(sorted(known)) or 'none'})")
    return tuple(dict.fromkeys(value))


def _tracking(value: Any, where: str, dead_letter: Path, problems: list[str]) -> Tracking | None:
    if not isinstance(value, Mapping):
        problems.append(f"{where} must be a mapping, not {_kind(value)}")
        return None
    before = len(problems)
    problems += _unknown_keys(value, tuple(Tracking.__dataclass_fields__), where)
    url = _text(value, "url", where, problems).rstrip("/")
    parts = urlsplit(url)
    if url and (parts.scheme not in ("http", "https") or not parts.hostname):
        problems.append(f"{where}: url {url!r} is not an http:// or https:// address")
    default = Tracking(url="")
    tracking = Tracking(
        url=url,
        write_key=_text(value, "write_key", where, problems) if "write_key" in value else "",
        audience_key=_audience_key(value, where, problems),
        **_delivery_numbers(value, where, problems, default),
        dead_letter=Path(_text(value, "dead_letter", where, problems, default=str(dead_letter))),
    )
    return tracking if len(problems) == before else None


def _kafka(value: Any, where: str, dead_letter: Path, problems: list[str]) -> Kafka | None:
    if not isinstance(value, Mapping):
        problems.append(f"{where} must be a mapping, not {_kind(value)}")
        return None
    before = len(problems)
    problems += _unknown_keys(value, tuple(Kafka.__dataclass_fields__), where)
    topic = _text(value, "topic", where, problems)
    if topic and not re.fullmatch(r"[A-Za-z0-9._-]{1,249}", topic):
        problems.append(f"{where}: topic {topic!r} is not a Kafka topic name (letters, digits, '.', '_', '-')")
    producer = value.get("producer", {})
    if not isinstance(producer, Mapping) or not all(isinstance(k, str) for k in producer):
        problems.append(f"{where}: producer must map librdkafka settings to values")
        producer = {}
    fixed = sorted(k for k in producer if k in ("enable.idempotence", "acks", "bootstrap.servers"))
    if fixed:
        problems.append(f"{where}: producer may not set {', '.join(fixed)} (the runner sets it)")
    default = Kafka(topic="")
    kafka = Kafka(
        topic=topic,
        bootstrap=_text(value, "bootstrap", where, problems) if "bootstrap" in value else "",
        audience_key=_audience_key(value, where, problems),
        **_delivery_numbers(value, where, problems, default),
        dead_letter=Path(_text(value, "dead_letter", where, problems, default=str(dead_letter))),
        producer=dict(producer),
    )
    return kafka if len(problems) == before else None


def _webhook(value: Any, where: str, dead_letter: Path, problems: list[str]) -> Webhook | None:
    if not isinstance(value, Mapping):
        problems.append(f"{where} must be a mapping, not {_kind(value)}")
        return None
    before = len(problems)
    problems += _unknown_keys(value, tuple(Webhook.__dataclass_fields__), where)
    url = _text(value, "url", where, problems)
    parts = urlsplit(url)
    if url and (parts.scheme not in ("http", "https") or not parts.hostname):
        problems.append(f"{where}: url {url!r} is not an http:// or https:// address")
    default = Webhook(url="")
    webhook = Webhook(
        url=url,
        **_delivery_numbers(value, where, problems, default),
        dead_letter=Path(_text(value, "dead_letter", where, problems, default=str(dead_letter))),
        headers=_headers(value.get("headers"), where, problems),
        format=_text(value, "format", where, problems, default="changes"),
    )
    if webhook.format not in WEBHOOK_FORMATS:
        problems.append(f"{where}: format must be one of {', '.join(WEBHOOK_FORMATS)}, not {webhook.format!r}")
    if webhook.max_backoff_seconds < webhook.backoff_seconds:
        problems.append(f"{where}: max_backoff_seconds must not be below backoff_seconds")
    return webhook if len(problems) == before else None


def _export_file(value: Any, where: str, problems: list[str]) -> ExportFile | None:
    if not isinstance(value, Mapping):
        problems.append(f"{where} must be a mapping, not {_kind(value)}")
        return None
    before = len(problems)
    problems += _unknown_keys(value, tuple(ExportFile.__dataclass_fields__), where)
    path = _text(value, "path", where, problems)
    file_format = _text(value, "format", where, problems, default="jsonl")
    if file_format not in FILE_FORMATS:
        problems.append(f"{where}: format must be one of {', '.join(FILE_FORMATS)}, not {file_format!r}")
    default = ExportFile(path=Path())
    batch_size = _number(value, "batch_size", where, problems, default.batch_size, whole=True, least=1)
    batch_seconds = _number(value, "batch_seconds", where, problems, default.batch_seconds, above=0)
    if len(problems) > before:
        return None
    return ExportFile(path=Path(path), format=file_format, batch_size=batch_size,
                      batch_seconds=batch_seconds)


def _clashes(destinations: list[Destination]) -> list[str]:
    """Two destinations sharing a name would share a position; sharing a file, they would interleave it."""
    problems: list[str] = []
    names: dict[str, int] = {}
    files: dict[Path, str] = {}
    for destination in destinations:
        names[destination.name] = names.get(destination.name, 0) + 1
        target = destination.target
        paths = [target.path] if isinstance(target, ExportFile) else []
        for path in paths:
            key = path.resolve()
            if key in files:
                problems.append(f"destinations {files[key]} and {destination.name} both write {path}")
            files[key] = destination.name
    problems += [f"destination name {name!r} is used {count} times" for name, count in names.items() if count > 1]
    return problems


def _unknown_keys(value: Mapping[Any, Any], known: tuple[str, ...], where: str) -> list[str]:
    unknown = sorted(str(key) for key in value if key not in known)
    if not unknown:
        return []
    return [f"{where}: unknown key {', '.join(map(repr, unknown))} (known keys: {', '.join(known)})"]


def _text(value: Mapping[str, Any], key: str, where: str, problems: list[str], default: str | None = None) -> str:
    item = value.get(key, default)
    if item is None:
        problems.append(f"{where}: {key} is missing")
        return ""
    if not isinstance(item, str):
        problems.append(f"{where}: {key} must be a string, not {_kind(item)}")
        return ""
    if not item.strip():
        problems.append(f"{where}: {key} is empty")
        return ""
    return item


def _number(value: Mapping[str, Any], key: str, where: str, problems: list[str], default: float, *,
            whole: bool = False, least: float | None = None, above: float | None = None) -> Any:
    item = value.get(key, default)
    accepted = (int,) if whole else (int, float)
    if isinstance(item, bool) or not isinstance(item, accepted):
        problems.append(f"{where}: {key} must be {'a whole number' if whole else 'a number'}, not {_kind(item)}")
        return default
    if least is not None and item < least:
        problems.append(f"{where}: {key} must be at least {least}, not {item}")
    if above is not None and item <= above:
        problems.append(f"{where}: {key} must be above {above}, not {item}")
    return item if whole else float(item)


def _headers(value: Any, where: str, problems: list[str]) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        problems.append(f"{where}: headers must map header names to strings")
        return {}
    reserved = sorted(k for k in value if k.lower() in RESERVED_HEADERS)
    if reserved:
        problems.append(f"{where}: headers may not set {', '.join(reserved)} (the runner sets it)")
    return dict(value)


def _audience_key(value: Mapping[str, Any], where: str, problems: list[str]) -> str:
    """The trait and property key of the audience; empty for the segment's own name."""
    key = _text(value, "audience_key", where, problems) if "audience_key" in value else ""
    if key and not re.fullmatch(r"[a-z0-9_]+", key):
        problems.append(f"{where}: audience_key {key!r} may hold only a-z, 0-9 and '_'")
    return key


def _delivery_numbers(value: Mapping[str, Any], where: str, problems: list[str],
                      default: Webhook | Kafka | Tracking) -> dict[str, Any]:
    """The batching and retry settings every sending destination has, each checked, with the
    destination's own defaults."""
    return {
        "batch_size": _number(value, "batch_size", where, problems, default.batch_size, whole=True, least=1),
        "batch_seconds": _number(value, "batch_seconds", where, problems, default.batch_seconds, above=0),
        "max_attempts": _number(value, "max_attempts", where, problems, default.max_attempts, whole=True, least=1),
        "backoff_seconds": _number(value, "backoff_seconds", where, problems, default.backoff_seconds, least=0),
        "max_backoff_seconds": _number(value, "max_backoff_seconds", where, problems, default.max_backoff_seconds,
                                       least=0),
        "timeout_seconds": _number(value, "timeout_seconds", where, problems, default.timeout_seconds, above=0),
    }


def _kind(value: Any) -> str:
    names = {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "a number",
             float: "a number", type(None): "nothing"}
    return names.get(type(value), type(value).__name__)
