"""The Neo4j Browser style and guide (server/operators/browser.py), read the way Browser 5.24
reads them: the guide cleaned by its regular expressions and split into <slide>s, runnable
blocks taken by their text; the style parsed by its GraSS parser, ported below."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

from server.identity.values import identifier_type_label
from server.operators import browser
from server.operators.browser import (
    BROWSER_QUERIES_DIR,
    GUIDE_PATH,
    STYLE_PATH,
    SavedQuery,
    asset,
    guide,
    read_saved_query,
    saved_queries,
    style,
)

REPO = Path(__file__).resolve().parents[2]


def browser_clean_html(text: str) -> str:
    """Browser's cleanHtml (src/shared/services/remoteUtils.ts) for remote guides."""
    text = re.sub(r"""(\s+(on[^\s=]+)[^\s=]*\s*=\s*("[^"]*"|'[^']*'|[\w\-.:]+\s*))""", "", text, flags=re.I)
    text = re.sub(r"<script\b[^<]*(?:(?!</script>)<[^<]*)*(</script>)?", "", text, flags=re.I)
    text = re.sub(r'href=".*javascript:[^"]*"', 'href=""', text, count=1)
    return re.sub(r"href='.*javascript:[^']*'", "href=''", text, count=1)


class _Guide(HTMLParser):
    """Slides (by data-slide) and the text of runnable <pre> blocks (by data-query / data-param)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.slide_tags = 0
        self.slides: list[str] = []
        self.blocks: list[tuple[str, str, str, str]] = []  # slide, kind, name, text
        self._block: tuple[str, str] | None = None
        self._text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "slide":
            self.slide_tags += 1
        if a.get("data-slide"):
            self.slides.append(a["data-slide"] or "")
        if tag == "pre" and "runnable" in (a.get("class") or "").split():
            kind = "query" if "data-query" in a else "param" if "data-param" in a else "?"
            self._block = (kind, a.get(f"data-{kind}") or "")
            self._text = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "pre" and self._block is not None:
            self.blocks.append((self.slides[-1], *self._block, self._text.strip()))  # Browser trims it
            self._block = None

    def handle_data(self, data: str) -> None:
        if self._block is not None:
            self._text += data


def parsed_guide() -> _Guide:
    parser = _Guide()
    parser.feed(browser_clean_html(guide()))
    return parser


def test_the_guide_has_the_model_then_a_slide_per_saved_query_file() -> None:
    files = sorted(path.stem for path in BROWSER_QUERIES_DIR.glob("*.cypher"))
    g = parsed_guide()
    assert g.slides[0] == "model"
    assert sorted(g.slides[1:]) == files
    assert g.slide_tags == len(files) + 1
    assert g.slides[1] == "profile_graph"
    assert guide().lstrip().startswith('<article class="guide">') and "<carousel" in guide()


def test_every_runnable_block_is_its_file_verbatim_or_its_parameters() -> None:
    g = parsed_guide()
    queries = [b for b in g.blocks if b[1] == "query"]
    assert sorted(name for _, _, name, _ in queries) == sorted(p.stem for p in BROWSER_QUERIES_DIR.glob("*.cypher"))
    for slide, kind, name, text in g.blocks:
        assert slide == name, f"block of {name} on slide {slide}"
        saved = read_saved_query(BROWSER_QUERIES_DIR / f"{name}.cypher")
        if kind == "query":
            file_text = (BROWSER_QUERIES_DIR / f"{name}.cypher").read_text()
            assert text == saved.query and text in file_text
        else:
            assert kind == "param" and text == saved.param_command, (name, text)
    assert not [b for b in g.blocks if b[0] == "model"], "the model slide has no runnable block"


def test_every_query_parameter_has_an_example_in_its_header() -> None:
    for saved in saved_queries():
        if saved.parameters:
            example = saved.param_example
            assert example is not None, f"cypher/browser/{saved.name}.cypher: add a `// ... :param {{...}}` line"
            assert set(saved.parameters) <= set(example), (saved.name, saved.parameters, example)


def test_the_guide_covers_the_operators_questions() -> None:
    names = {q.name for q in saved_queries()}
    assert {"profile_graph", "why_linked", "merge_protection", "linkage", "profile_history", "segments"} <= names


def test_a_new_file_needs_no_code_and_text_survives_browsers_cleaning(tmp_path: Path) -> None:
    (tmp_path / "zz_online.cypher").write_text(
        "// Neo4j Browser: profiles online <now> & then, e.g. :param {online: true, name: 'a; b'}\n"
        "MATCH (p:Profile) WHERE p.online = $online AND p.name <> $name\n"
        "WITH p, 1 AS one\nRETURN p, one = 1 AS onx\n"
    )
    parser = _Guide()
    parser.feed(browser_clean_html(guide(tmp_path)))
    blocks = {kind: text for _, kind, _, text in parser.blocks}
    assert blocks["query"] == read_saved_query(tmp_path / "zz_online.cypher").query
    assert blocks["param"] == ":param {online: true, name: 'a; b'}"
    assert "&lt;now&gt; &amp; then" in guide(tmp_path)


@pytest.mark.parametrize(
    ("header", "command"),
    [
        ("e.g. :param {type: 'email', value: 'ann@example.com'}", ":param {type: 'email', value: 'ann@example.com'}"),
        (":param {limit: 50}", ":param {limit: 50}"),
        (":param {since: datetime() - duration('P1D')}", ":param since => datetime() - duration('P1D')"),
        (":param {a: 1, since: datetime({epochMillis: 0})}",
         ":param [{a, since}] => { RETURN 1 AS a, datetime({epochMillis: 0}) AS since }"),
        ("no example", None),
    ],
)
def test_parameter_examples_become_browser_commands(header: str, command: str | None) -> None:
    assert SavedQuery("x", (header,), "RETURN 1").param_command == command


# -- the style -----------------------------------------------------------------------------

def browser_parse_grass(text: str) -> dict[str, dict[str, str]]:
    """Browser's parseGrassCSS (src/shared/services/grassUtils.ts), ported as written."""
    inside_string = inside_props = inside_binding = False
    keyword = props = ""
    rules: dict[str, str] = {}
    for c in text:
        skip = True
        if c == "{":
            if inside_string:
                skip = False
            elif inside_props:
                inside_binding = True
            else:
                inside_props = True
        elif c == "}":
            if inside_string:
                skip = False
            elif inside_binding:
                inside_binding = False
            else:
                inside_props = False
                rules[keyword] = props
                keyword = props = ""
        elif c in "'\"":
            inside_string = not inside_string
        else:
            skip = False
        if skip:
            continue
        if inside_props:
            props += c
        elif not c.isspace():
            keyword += c
    parsed: dict[str, dict[str, str]] = {}
    for key, body in rules.items():
        parsed[key] = {}
        for prop in body.split(";"):
            parts = prop.split(":")
            if len(parts) == 2:
                parsed[key][parts[0].strip()] = parts[1].strip()
    return parsed


def test_browser_reads_every_declaration_of_the_style() -> None:
    text = style()
    parsed = browser_parse_grass(text)
    declared = len(re.findall(r"^\s+[\w-]+:", text, flags=re.M))
    assert sum(len(props) for props in parsed.values()) == declared
    assert list(parsed)[:2] == ["node", "relationship"], "base rules first: a loaded style replaces Browser's"
    for selector in parsed:
        assert re.fullmatch(r"(node|relationship)(\.[A-Za-z_]\w*)?", selector), selector


def test_the_style_names_the_labels_and_relationship_types() -> None:
    parsed = browser_parse_grass(style())
    assert parsed["node.Identifier"]["caption"] == "{type} {value}"
    assert parsed["node.Profile"]["caption"] == "{size} ids {profile_id}"
    assert parsed["node.Flagged"]["border-color"] == browser.FLAG_RING
    assert "{flag}" in parsed["node.Flagged"]["caption"]
    for label in ("Email", "Phone", "UserId", "CrmId", "LoyaltyId", "DeviceId", "Cookie", "AnonymousId", "Record"):
        assert "color" in parsed[f"node.{label}"], label
    colours = {parsed[f"relationship.{t}"]["color"] for t in
               ("LINKED", "REJECTED_LINK", "POSSIBLE_MATCH", "BELONGS_TO", "CARRIED", "MERGED_INTO")}
    assert len(colours) == 6, "relationship types told apart by colour"
    assert "{reason}" in parsed["relationship.REJECTED_LINK"]["caption"]
    assert "{probability}" in parsed["relationship.POSSIBLE_MATCH"]["caption"]
    assert "{kind}" in parsed["relationship.LINKED"]["caption"]
    # Flagged comes after the type labels, so that its ring and caption win over them
    order = list(parsed)
    assert order.index("node.Flagged") > max(order.index(f"node.{t.label}") for t in browser.IDENTIFIER_TYPES)


def test_every_configured_identifier_type_has_a_colour() -> None:
    config = yaml.safe_load((REPO / "config" / "identity.yaml").read_text())
    configured = {name: bool(entry.get("strong")) for name, entry in config["identifier_types"].items()}
    styled = {t.name: t.strong for t in browser.IDENTIFIER_TYPES}
    assert styled == configured
    assert identifier_type_label("anonymous_id") == "AnonymousId"
    assert len({t.color for t in browser.IDENTIFIER_TYPES}) == len(browser.IDENTIFIER_TYPES)


def test_assets_by_path() -> None:
    style_asset, guide_asset = asset(STYLE_PATH), asset(GUIDE_PATH)
    assert style_asset is not None and style_asset[1].decode() == style()
    assert guide_asset is not None and guide_asset[0].startswith("text/html") and guide_asset[1].decode() == guide()
    assert asset("/browser/other") is None
