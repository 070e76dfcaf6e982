"""Neo4j Browser assets for operators: a GraSS style for identity graphs and a guide generated
from the saved queries in cypher/browser/, served by the operators' HTTP port at STYLE_PATH
and GUIDE_PATH (localneo4j/neo4j.conf has Browser apply both on connect).

Pure functions: nothing here talks to Neo4j or listens on a port. The guide is built from
the .cypher files each time it is asked for, so it cannot drift from them: one slide per file,
the header comment as prose, the query verbatim as a runnable block, and the `:param {...}`
example of the header as a runnable block of its own.

What the style relies on (Browser styles by label and relationship type, never by property):
- every (:Identifier) is captioned `{type} {value}` from the properties it has today;
- its colour comes from the second label ingest writes per identifier type (IDENTIFIER_TYPES:
  `:Email`, `:Cookie`, ...; server.identity.values.identifier_type_label);
- a flagged identifier (i.flag set: blocklisted, shared) carries FLAGGED_LABEL (`:Flagged`),
  written with the flag: it is ringed in red and captioned `{flag} {type} {value}`.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from server.identity.values import FLAGGED_LABEL, identifier_type_label

STYLE_PATH = "/browser/style.grass"
GUIDE_PATH = "/browser/guide.html"

BROWSER_QUERIES_DIR = Path(__file__).resolve().parent.parent.parent / "cypher" / "browser"

STYLE_CONTENT_TYPE = "text/plain; charset=utf-8"
GUIDE_CONTENT_TYPE = "text/html; charset=utf-8"

IDENTIFIER_LABEL = "Identifier"
PROFILE_LABEL = "Profile"


@dataclass(frozen=True)
class IdentifierType:
    """An identifier type of config/identity.yaml, the label that colours it, and its colours."""

    name: str
    strong: bool
    color: str
    border: str
    text: str

    @property
    def label(self) -> str:
        return identifier_type_label(self.name)


# Strong types (one known person) in saturated blues, greens and purple; weak ones (a device,
# a browser, a record) in pale, warm colours.
IDENTIFIER_TYPES: tuple[IdentifierType, ...] = (
    IdentifierType("email", True, "#4C8EDA", "#2870C2", "#FFFFFF"),
    IdentifierType("phone", True, "#57C7E3", "#23B3D7", "#2A2C34"),
    IdentifierType("user_id", True, "#8DCC93", "#5DB665", "#2A2C34"),
    IdentifierType("crm_id", True, "#569480", "#447666", "#FFFFFF"),
    IdentifierType("loyalty_id", True, "#C990C0", "#B261A5", "#FFFFFF"),
    IdentifierType("device_id", False, "#D9C8AE", "#C0A378", "#2A2C34"),
    IdentifierType("advertising_id", False, "#DFD0C2", "#C9AC8E", "#2A2C34"),
    IdentifierType("cookie", False, "#ECB5C9", "#DA7298", "#2A2C34"),
    IdentifierType("anonymous_id", False, "#FFC454", "#D7A013", "#2A2C34"),
    IdentifierType("record", False, "#F79767", "#F36924", "#2A2C34"),
)

FLAG_RING = "#E0262B"


@dataclass(frozen=True)
class RelationshipStyle:
    type: str
    color: str
    width: str
    caption: str
    meaning: str


RELATIONSHIP_STYLES: tuple[RelationshipStyle, ...] = (
    RelationshipStyle("BELONGS_TO", "#A5ABB6", "1px", "<type>",
                      "an identifier is a member of a profile (each identifier of one at most)"),
    RelationshipStyle("LINKED", "#2E9E3E", "3px", "LINKED {kind} {probability}",
                      "an accepted link between two identifiers: seen together (no kind), or "
                      "scored by the linkage model (kind probabilistic, with its probability) "
                      "or confirmed by a reviewer"),
    RelationshipStyle("REJECTED_LINK", "#E0262B", "3px", "REJECTED {reason}",
                      "a link merge protection (or an operator) refused, with its reason: "
                      "the two profiles stay apart"),
    RelationshipStyle("POSSIBLE_MATCH", "#F79767", "2px", "POSSIBLE {probability}",
                      "a probabilistic match waiting for review"),
    RelationshipStyle("CARRIED", "#D0D3D9", "1px", "<type>",
                      "a touchpoint (an event or record) carried an identifier"),
    RelationshipStyle("MERGED_INTO", "#8E44AD", "3px", "MERGED_INTO {at}",
                      "an absorbed (inactive) profile points to the profile it merged into"),
    RelationshipStyle("SPLIT_FROM", "#16A085", "3px", "SPLIT_FROM {at}",
                      "a profile split off another one"),
    RelationshipStyle("IN_SEGMENT", "#6C7A89", "2px", "IN_SEGMENT {since}",
                      "a profile is a member of a segment"),
)

# Other nodes the saved queries return: (label, colour, border, text colour, diameter, caption).
OTHER_NODE_STYLES: tuple[tuple[str, str, str, str, str, str], ...] = (
    ("Touchpoint", "#E8E8E8", "#B8BCC4", "#2A2C34", "40px", "{type} {source}"),
    ("Segment", "#6C7A89", "#4E5A66", "#FFFFFF", "70px", "{name}"),
    ("LinkageModel", "#B0E0E6", "#7FB8C0", "#2A2C34", "50px", "{version}"),
)


def _rule(selector: str, props: Sequence[tuple[str, str]]) -> str:
    lines = []
    for key, value in props:
        if key == "caption":
            # GraSS drops a declaration holding ':' or ';', and a quote ends the string
            if any(c in value for c in ":;'\""):
                raise ValueError(f"caption {value!r} of {selector} cannot be written in GraSS")
            value = f"'{value}'"
        lines.append(f"  {key}: {value};")
    return selector + " {\n" + "\n".join(lines) + "\n}\n"


def style() -> str:
    """The GraSS stylesheet for `:style <url>`: rules in order, a later matching rule wins."""
    rules = [
        # Loading a style replaces Browser's defaults, so nodes and relationships of any other
        # label or type need these to be drawn at all.
        _rule("node", [("diameter", "50px"), ("color", "#A5ABB6"), ("border-color", "#9AA1AC"),
                       ("border-width", "2px"), ("text-color-internal", "#FFFFFF"), ("font-size", "10px")]),
        _rule("relationship", [("color", "#A5ABB6"), ("shaft-width", "1px"), ("font-size", "8px"),
                               ("padding", "3px"), ("text-color-external", "#000000"),
                               ("text-color-internal", "#FFFFFF"), ("caption", "<type>")]),
        # Browser captions interpolate every {property} of the template: type and value both. A
        # caption word wider than the circle is cut with an ellipsis; 90px and 9px fit ~18 chars.
        _rule(f"node.{IDENTIFIER_LABEL}", [("diameter", "90px"), ("color", "#A5ABB6"), ("border-color", "#8A909B"),
                                           ("border-width", "2px"), ("text-color-internal", "#FFFFFF"),
                                           ("font-size", "9px"), ("caption", "{type} {value}")]),
    ]
    for t in IDENTIFIER_TYPES:
        rules.append(_rule(f"node.{t.label}", [("color", t.color), ("border-color", t.border),
                                               ("text-color-internal", t.text)]))
    rules.append(_rule(f"node.{FLAGGED_LABEL}", [("border-color", FLAG_RING), ("border-width", "6px"),
                                                 ("caption", "{flag} {type} {value}")]))
    rules.append(_rule(f"node.{PROFILE_LABEL}", [("diameter", "90px"), ("color", "#2A2C34"), ("border-color", "#000000"),
                                                 ("border-width", "3px"), ("text-color-internal", "#FFFFFF"),
                                                 ("font-size", "9px"), ("caption", "{size} ids {profile_id}")]))
    for label, color, border, text, diameter, caption in OTHER_NODE_STYLES:
        rules.append(_rule(f"node.{label}", [("diameter", diameter), ("color", color), ("border-color", border),
                                             ("text-color-internal", text), ("caption", caption)]))
    for r in RELATIONSHIP_STYLES:
        rules.append(_rule(f"relationship.{r.type}", [("color", r.color), ("shaft-width", r.width),
                                                      ("caption", r.caption)]))
    # No comment at the top: Browser's GraSS parser knows none, it would join the selector.
    return "\n".join(rules)


# -- the guide -------------------------------------------------------------------------------

# The slides come in this order; files not listed follow, alphabetically.
SLIDE_ORDER = (
    "profile_graph",
    "why_linked",
    "merge_protection",
    "linkage",
    "profile_history",
    "consent",
    "segments",
)

_PARAM_EXAMPLE = re.compile(r":params?\s*(?=\{)")
_LITERAL = re.compile(r"""^(?:'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?|true|false|null)$""", re.I)
_PARAMETER = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


@dataclass(frozen=True)
class SavedQuery:
    """One file of cypher/browser/: its header comment and its query, as written."""

    name: str
    header: tuple[str, ...]  # the comment lines, without `//`
    query: str

    @property
    def title(self) -> str:
        return self.name.replace("_", " ").capitalize()

    @property
    def prose(self) -> str:
        text = re.sub(r"^(?:Neo4j )?Browser:\s*", "", " ".join(line for line in self.header if line))
        return text[:1].upper() + text[1:]

    @property
    def parameters(self) -> list[str]:
        """The $parameters the query uses, in order of first use."""
        return list(dict.fromkeys(_PARAMETER.findall(_without_strings(self.query))))

    @property
    def param_example(self) -> dict[str, str] | None:
        """The `:param {...}` example of the header, as parameter name to Cypher expression."""
        text = " ".join(self.header)
        found = _PARAM_EXAMPLE.search(text)
        if found is None:
            return None
        body = _balanced(text, found.end())
        entries: dict[str, str] = {}
        for part in _split_top_level(body[1:-1], ","):
            key, sep, value = part.partition(":")
            if not sep or not key.strip() or not value.strip():
                raise ValueError(f"cypher/browser/{self.name}.cypher: bad :param example {body}")
            entries[key.strip().strip("`")] = value.strip()
        return entries

    @property
    def param_command(self) -> str | None:
        """A Browser command setting the example parameters, or None when there are none.

        Literal values go in a `:param {...}` map as the header writes it; an expression
        (`datetime() - duration('P1D')`) must be evaluated by Neo4j, which `:param x => ...`
        does (a map would keep it as a string)."""
        example = self.param_example
        if not example:
            return None
        if all(_LITERAL.match(value) for value in example.values()):
            return ":param {" + ", ".join(f"{key}: {value}" for key, value in example.items()) + "}"
        if len(example) == 1:
            ((key, value),) = example.items()
            return f":param {key} => {value}"
        names = ", ".join(example)
        returns = ", ".join(f"{value} AS {key}" for key, value in example.items())
        return f":param [{{{names}}}] => {{ RETURN {returns} }}"


def _without_strings(query: str) -> str:
    return re.sub(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|//[^\n]*", "", query)


def _depths(text: str) -> Iterator[tuple[str, int]]:
    """Each character with the bracket depth after it; quoted text neither opens nor closes."""
    depth, quote = 0, ""
    for c in text:
        if quote:
            quote = "" if c == quote else quote
        elif c in "'\"":
            quote = c
        elif c in "{[(":
            depth += 1
        elif c in "}])":
            depth -= 1
        yield c, depth if not quote else depth + 1  # inside quotes: never at the top level


def _balanced(text: str, start: int) -> str:
    """The {...} starting at text[start], quotes and nesting respected."""
    for length, (_, depth) in enumerate(_depths(text[start:]), 1):
        if depth == 0:
            return text[start:start + length]
    raise ValueError(f"unbalanced :param example: {text[start:]}")


def _split_top_level(text: str, separator: str) -> list[str]:
    parts, current = [], ""
    for c, depth in _depths(text):
        if c == separator and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += c
    if current.strip():
        parts.append(current)
    return parts


def read_saved_query(path: Path) -> SavedQuery:
    lines = path.read_text(encoding="utf-8").strip().splitlines()
    header: list[str] = []
    while lines and lines[0].lstrip().startswith("//"):
        header.append(re.sub(r"^\s*//\s?", "", lines.pop(0)).rstrip())
    query = "\n".join(lines).strip()
    if not query:
        raise ValueError(f"{path} has no query")
    return SavedQuery(path.stem, tuple(header), query)


def saved_queries(directory: Path = BROWSER_QUERIES_DIR) -> list[SavedQuery]:
    """The saved queries of cypher/browser/, in slide order."""
    found = {path.stem: read_saved_query(path) for path in sorted(directory.glob("*.cypher"))}
    ordered = [found.pop(name) for name in SLIDE_ORDER if name in found]
    return ordered + [found[name] for name in sorted(found)]


def _code_block(text: str, kind: str, name: str) -> str:
    """A runnable block: a click puts its text in Browser's editor, its play icon runs it."""
    return f'<pre class="pre-scrollable code runnable" data-{kind}="{name}">{_escape_code(text)}</pre>'


def _escape_code(text: str) -> str:
    # Browser cleans a remote guide of on...= attributes by a regular expression over the whole
    # HTML, text included (` ONLINE = 1` would vanish); an entity for the `o` keeps such text.
    return _escape_on(html.escape(text, quote=False))


def _prose_html(text: str) -> str:
    escaped = html.escape(text, quote=False)
    escaped = re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)
    escaped = re.sub(r"(?<![\w<])(\$[A-Za-z_]\w*)", r"<code>\1</code>", escaped)
    return _escape_on(escaped)


def _escape_on(escaped_html: str) -> str:
    return re.sub(r"(\s)([oO])([nN])", lambda m: f"{m[1]}&#{ord(m[2])};{m[3]}", escaped_html)


def _swatch(color: str, border: str, text: str, label: str) -> str:
    return (f'<span style="display:inline-block;margin:2px;padding:2px 8px;border-radius:10px;'
            f'background:{color};border:2px solid {border};color:{text}">{html.escape(label)}</span>')


def _model_slide() -> str:
    strong = " ".join(_swatch(t.color, t.border, t.text, f"{t.name} :{t.label}") for t in IDENTIFIER_TYPES if t.strong)
    weak = " ".join(_swatch(t.color, t.border, t.text, f"{t.name} :{t.label}") for t in IDENTIFIER_TYPES if not t.strong)
    flagged = _swatch("#A5ABB6", FLAG_RING, "#FFFFFF", f"flagged :{FLAGGED_LABEL}")
    rels = "\n".join(
        f'<li><span style="color:{r.color};font-weight:bold">{r.type}</span>: {html.escape(r.meaning)}</li>'
        for r in RELATIONSHIP_STYLES
    )
    return f"""<slide class="row-fluid">
  <div class="col-sm-12" data-slide="model">
    <h3>The identity model</h3>
    <p>An <b>identifier</b> <code>(:Identifier {{type, value}})</code> belongs to at most one
    <b>profile</b> <code>(:Profile {{profile_id, active}})</code>, a person as far as the
    service can tell. Each event is a <b>touchpoint</b> that carried its identifiers. Identifiers
    seen together are linked, unless merge protection refuses the link (per-profile limits,
    flagged values): the refusal is kept, with its reason, and the profiles stay apart. A merge
    keeps the absorbed profile, inactive, pointing to the survivor.</p>
    <p>Strong identifiers (one known person): {strong}</p>
    <p>Weak identifiers (a device, a browser, a record): {weak}</p>
    <p>A flagged identifier (<code>flag</code>: blocklisted junk, or shared by several people)
    links no more: {flagged}. Identifiers are captioned with their type and value.</p>
    <ul>
{rels}
    </ul>
    <p>Each next slide is a saved query of <code>cypher/browser/</code>: set its parameters with
    the first block, then run the query (click a block to edit it, its &#9654; icon to run it).</p>
  </div>
</slide>"""


def _query_slide(saved: SavedQuery) -> str:
    parts = [f'<h3>{html.escape(saved.title)}</h3>', f"<p>{_prose_html(saved.prose)}</p>"]
    command = saved.param_command
    if command is not None:
        parts.append("<p>Parameters, for example:</p>")
        parts.append(_code_block(command, "param", saved.name))
    elif saved.parameters:
        names = ", ".join(f"${name}" for name in saved.parameters)
        parts.append(f"<p>Set {html.escape(names)} with <code>:param</code> first.</p>")
    parts.append(_code_block(saved.query, "query", saved.name))
    parts.append(f'<p><small>cypher/browser/{html.escape(saved.name)}.cypher</small></p>')
    body = "\n    ".join(parts)
    return f"""<slide class="row-fluid">
  <div class="col-sm-12" data-slide="{html.escape(saved.name)}">
    {body}
  </div>
</slide>"""


def guide(directory: Path = BROWSER_QUERIES_DIR) -> str:
    """The Browser guide for `:play <url>`: the model, then one slide per saved query."""
    slides: Iterable[str] = [_model_slide(), *(_query_slide(q) for q in saved_queries(directory))]
    joined = "\n".join(slides)
    return f"""<article class="guide">
<carousel class="deck container-fluid">
{joined}
</carousel>
</article>
"""


def asset(path: str) -> tuple[str, bytes] | None:
    """The content type and body served at a path of the operators' HTTP port, or None."""
    if path == STYLE_PATH:
        return STYLE_CONTENT_TYPE, style().encode("utf-8")
    if path == GUIDE_PATH:
        return GUIDE_CONTENT_TYPE, guide().encode("utf-8")
    return None
