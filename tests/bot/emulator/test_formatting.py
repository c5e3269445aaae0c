"""Tests of the emulator's text formatting: entity detection, parse modes, UTF-16 offsets."""

from __future__ import annotations

import pytest

from bot.sandbox.emulator.errors import ApiError
from bot.sandbox.emulator.formatting import detect_entities, entity_text, format_text, trim_text


def test_detects_commands_and_mentions_only_at_word_boundaries() -> None:
    text = "/start@digitbot_test_bot hi @ann_1 a/b mail@example.com @abc"
    entities = detect_entities(text)
    assert [(entity["type"], entity_text(text, entity)) for entity in entities] == [
        ("bot_command", "/start@digitbot_test_bot"),
        ("mention", "@ann_1"),
    ]


def test_offsets_count_utf16_code_units() -> None:
    text, entities = format_text("👍 <b>7</b>", "HTML")
    assert text == "👍 7"
    # The thumbs-up is two UTF-16 code units, so "7" starts at 3, not 2.
    assert entities == [{"type": "bold", "offset": 3, "length": 1}]
    assert entity_text(text, entities[0]) == "7"


def test_html_entities_links_and_pre_with_language() -> None:
    text, entities = format_text("&lt;ok&gt; <a href='https://x.y/?a=1&amp;b=2'>link</a>", "HTML")
    assert text == "<ok> link"
    assert entities == [
        {"type": "text_link", "url": "https://x.y/?a=1&b=2", "offset": 5, "length": 4}
    ]
    text, entities = format_text('<pre><code class="language-python">x = 1</code></pre>', "HTML")
    assert (text, entities) == (
        "x = 1",
        [{"type": "pre", "language": "python", "offset": 0, "length": 5}],
    )


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("<b>x", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<b>x</i>", 'Unmatched end tag at byte offset 4, expected "</b>", found "</i>"'),
        ("<foo>x</foo>", 'Unsupported start tag "foo" at byte offset 0'),
        ("1 < 2", 'Unsupported start tag "" at byte offset 2'),
        ("</b>", "Unexpected end tag at byte offset 0"),
    ],
)
def test_bad_html_is_refused_like_telegram(source: str, message: str) -> None:
    with pytest.raises(ApiError) as raised:
        format_text(source, "HTML")
    assert raised.value.error_code == 400
    assert raised.value.description == f"Bad Request: can't parse entities: {message}"


def test_markdown_v2_entities_and_escapes() -> None:
    text, entities = format_text(
        "*bold _it_* __u__ ~s~ ||sp|| `c\\`ode` [t](https://e.x/a\\)b) 1\\.5", "MarkdownV2"
    )
    assert text == "bold it u s sp c`ode t 1.5"
    assert [(entity["type"], entity_text(text, entity)) for entity in entities] == [
        ("bold", "bold it"),
        ("italic", "it"),
        ("underline", "u"),
        ("strikethrough", "s"),
        ("spoiler", "sp"),
        ("code", "c`ode"),
        ("text_link", "t"),
    ]
    assert entities[-1]["url"] == "https://e.x/a)b"


def test_markdown_v2_pre_block_and_blockquote() -> None:
    text, entities = format_text("```python\nprint(1)\n```", "MarkdownV2")
    assert text == "print(1)\n"
    assert entities == [{"type": "pre", "offset": 0, "length": 9, "language": "python"}]
    text, entities = format_text(">quote\n>more\nafter", "MarkdownV2")
    assert text == "quote\nmore\nafter"
    assert entities == [{"type": "blockquote", "offset": 0, "length": 10}]


@pytest.mark.parametrize(
    ("source", "mode", "message"),
    [
        ("Accuracy 99.1%", "MarkdownV2", "Character '.' is reserved"),
        ("*open", "MarkdownV2", "Can't find end of the entity starting at byte offset 0"),
        ("*a _b* c_", "MarkdownV2", "Can't find end of the entity starting at byte offset 3"),
        ("*open", "Markdown", "Can't find end of the entity starting at byte offset 0"),
    ],
)
def test_bad_markdown_is_refused(source: str, mode: str, message: str) -> None:
    with pytest.raises(ApiError, match="can't parse entities") as raised:
        format_text(source, mode)
    assert message in raised.value.description


def test_legacy_markdown_leaves_other_characters_alone() -> None:
    text, entities = format_text("*7* (99.1%) _sure_", "Markdown")
    assert text == "7 (99.1%) sure"
    assert [entity["type"] for entity in entities] == ["bold", "italic"]


def test_unknown_parse_mode_is_refused() -> None:
    with pytest.raises(ApiError, match="unsupported parse_mode"):
        format_text("x", "BBCode")


def test_trim_moves_and_clips_entities() -> None:
    text, entities = trim_text("  /start  ", detect_entities("  /start  "))
    assert (text, entities) == ("/start", [{"offset": 0, "length": 6, "type": "bot_command"}])
    text, entities = trim_text("ab \n", [{"type": "bold", "offset": 0, "length": 4}])
    assert (text, entities) == ("ab", [{"type": "bold", "offset": 0, "length": 2}])
