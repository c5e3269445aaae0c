"""Message text formatting as the Telegram server does it: entities, parse modes, UTF-16 offsets.

Telegram measures entity offsets and lengths in UTF-16 code units, detects `/commands` and
`@mentions` in plain text, and turns `parse_mode` markup (HTML, MarkdownV2, Markdown) into plain
text plus entities, refusing malformed markup with "Bad Request: can't parse entities: ...".
`formatted_param` applies all of that to a text or caption parameter of a Bot API call.
"""

from __future__ import annotations

import re
from typing import Any

from bot.sandbox.emulator.errors import ApiError
from bot.sandbox.emulator.params import Params, get_json, get_string

Entity = dict[str, Any]
MAX_TEXT_LENGTH = 4096
MAX_CAPTION_LENGTH = 1024

# Telegram detects a command or mention only where it starts a word and ends one.
_COMMAND_PATTERN = re.compile(r"(?<![\w/@])/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,32})?(?![\w/@])")
_MENTION_PATTERN = re.compile(r"(?<![\w@/])@[A-Za-z0-9_]{5,32}(?![\w@])")


def utf16_length(text: str) -> int:
    """Length of `text` in UTF-16 code units, the unit of Telegram entity offsets."""
    return len(text.encode("utf-16-le")) // 2


def entity_text(text: str, entity: Entity) -> str:
    """The part of `text` an entity covers (offsets in UTF-16 code units)."""
    encoded = text.encode("utf-16-le")
    start = entity["offset"] * 2
    return encoded[start : start + entity["length"] * 2].decode("utf-16-le")


def _sorted(entities: list[Entity]) -> list[Entity]:
    return sorted(entities, key=lambda entity: (entity["offset"], -entity["length"]))


def detect_entities(text: str) -> list[Entity]:
    """The `bot_command` and `mention` entities Telegram finds by itself in plain text."""
    found: list[Entity] = []
    for pattern, kind in ((_COMMAND_PATTERN, "bot_command"), (_MENTION_PATTERN, "mention")):
        for match in pattern.finditer(text):
            found.append(
                {
                    "offset": utf16_length(text[: match.start()]),
                    "length": utf16_length(match.group()),
                    "type": kind,
                }
            )
    return _sorted(found)


def merge_detected(text: str, entities: list[Entity]) -> list[Entity]:
    """`entities` plus the detected commands/mentions that do not overlap any of them."""
    taken = [(entity["offset"], entity["offset"] + entity["length"]) for entity in entities]
    merged = list(entities)
    for detected in detect_entities(text):
        start, end = detected["offset"], detected["offset"] + detected["length"]
        if all(end <= other_start or start >= other_end for other_start, other_end in taken):
            merged.append(detected)
    return _sorted(merged)


def trim_text(text: str, entities: list[Entity]) -> tuple[str, list[Entity]]:
    """Strip leading/trailing whitespace as Telegram does, moving and clipping the entities."""
    left_stripped = text.lstrip()
    removed = utf16_length(text) - utf16_length(left_stripped)
    trimmed = left_stripped.rstrip()
    total = utf16_length(trimmed)
    kept: list[Entity] = []
    for entity in entities:
        start = max(entity["offset"] - removed, 0)
        end = min(entity["offset"] + entity["length"] - removed, total)
        if end > start:
            kept.append({**entity, "offset": start, "length": end - start})
    return trimmed, kept


def format_text(text: str, parse_mode: str | None) -> tuple[str, list[Entity]]:
    """Plain text and entities for `text` sent with `parse_mode` (None: no markup)."""
    if not parse_mode:
        return text, detect_entities(text)
    mode = parse_mode.lower()
    if mode == "html":
        plain, entities = parse_html(text)
    elif mode == "markdownv2":
        plain, entities = parse_markdown(text, version=2)
    elif mode == "markdown":
        plain, entities = parse_markdown(text, version=1)
    else:
        raise ApiError(400, "Bad Request: unsupported parse_mode")
    return plain, merge_detected(plain, entities)


def formatted_param(
    params: Params, text_name: str, entities_name: str, *, what: str
) -> tuple[str, list[Entity]]:
    """Text and entities of a text or caption parameter, honouring parse_mode/entities."""
    text = get_string(params, text_name) or ""
    given = get_json(params, entities_name, "entities")
    if given is not None:
        if not isinstance(given, list) or not all(isinstance(item, dict) for item in given):
            raise ApiError(400, "Bad Request: can't parse entities JSON object")
        plain, entities = text, list(given)
    else:
        plain, entities = format_text(text, get_string(params, "parse_mode"))
    plain, entities = trim_text(plain, entities)
    limit = MAX_TEXT_LENGTH if what == "text" else MAX_CAPTION_LENGTH
    if len(plain) > limit:
        reason = "message is too long" if what == "text" else "message caption is too long"
        raise ApiError(400, f"Bad Request: {reason}")
    return plain, entities


def text_fields(
    text: str, entities: list[Entity], text_key: str, entities_key: str
) -> dict[str, Any]:
    """{"text": ..., "entities": [...]} (or the caption pair), without empty parts."""
    fields: dict[str, Any] = {}
    if text:
        fields[text_key] = text
        if entities:
            fields[entities_key] = entities
    return fields


def _parse_error(message: str) -> ApiError:
    return ApiError(400, f"Bad Request: can't parse entities: {message}")


def _byte_offset(source: str, index: int) -> int:
    return len(source[:index].encode("utf-8"))


# --- HTML -----------------------------------------------------------------------------------

_HTML_TAGS = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
_START_TAG = re.compile(
    r"<([A-Za-z][A-Za-z0-9-]*)((?:\s+[A-Za-z-]+(?:\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s>\"']+))?)*)\s*>"
)
_ATTRIBUTE = re.compile(r"([A-Za-z-]+)(?:\s*=\s*(\"[^\"]*\"|'[^']*'|[^\s>\"']+))?")
_END_TAG = re.compile(r"</([A-Za-z][A-Za-z0-9-]*)?\s*>")
_HTML_ENTITY = re.compile(r"&(#[0-9]{1,7}|#x[0-9A-Fa-f]{1,6}|[A-Za-z]+);")
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}


def _html_attributes(raw: str) -> dict[str, str]:
    attributes: dict[str, str] = {}
    for name, value in _ATTRIBUTE.findall(raw):
        value = value[1:-1] if value[:1] in "\"'" and len(value) >= 2 else value
        attributes[name.lower()] = _unescape_html(value)
    return attributes


def _unescape_html(value: str) -> str:
    def replace(match: re.Match[str]) -> str:
        body = match.group(1)
        if body.startswith("#x"):
            return chr(int(body[2:], 16))
        if body.startswith("#"):
            return chr(int(body[1:]))
        return _NAMED_ENTITIES.get(body.lower(), match.group())

    return _HTML_ENTITY.sub(replace, value)


def parse_html(source: str) -> tuple[str, list[Entity]]:
    """Telegram's HTML parse mode: supported tags become entities, anything else is an error."""
    pieces: list[str] = []
    position16 = 0
    entities: list[Entity] = []
    # Open tags: (tag name, entity, start offset in UTF-16 units, index in source).
    stack: list[tuple[str, Entity, int, int]] = []
    index = 0
    while index < len(source):
        char = source[index]
        if char == "&":
            match = _HTML_ENTITY.match(source, index)
            if match:
                replaced = _unescape_html(match.group())
                pieces.append(replaced)
                position16 += utf16_length(replaced)
                index = match.end()
                continue
        elif char == "<":
            end_match = _END_TAG.match(source, index)
            if end_match:
                name = (end_match.group(1) or "").lower()
                if not stack:
                    raise _parse_error(
                        f"Unexpected end tag at byte offset {_byte_offset(source, index)}"
                    )
                open_name, closed, start16, _ = stack.pop()
                if name and name != open_name:
                    raise _parse_error(
                        f"Unmatched end tag at byte offset {_byte_offset(source, index)}, "
                        f'expected "</{open_name}>", found "</{name}>"'
                    )
                closed["offset"] = start16
                closed["length"] = position16 - start16
                parent = stack[-1] if stack else None
                language = closed.pop("_language", None)
                if (
                    open_name == "code"
                    and parent is not None
                    and parent[0] == "pre"
                    and language
                    and parent[2] == start16
                ):
                    # <pre><code class="language-x"> is one pre entity with a language.
                    parent[1]["language"] = language
                elif closed["length"] > 0:
                    entities.append(closed)
                index = end_match.end()
                continue
            start_match = _START_TAG.match(source, index)
            if not start_match:
                raise _parse_error(
                    f'Unsupported start tag "" at byte offset {_byte_offset(source, index)}'
                )
            name = start_match.group(1).lower()
            attributes = _html_attributes(start_match.group(2))
            kind = _HTML_TAGS.get(name)
            if kind is None:
                raise _parse_error(
                    f'Unsupported start tag "{name}" at byte offset {_byte_offset(source, index)}'
                )
            entity: Entity = {"type": kind}
            if name == "span" and attributes.get("class") != "tg-spoiler":
                raise _parse_error('Tag "span" must have class "tg-spoiler"')
            if name == "a":
                href = attributes.get("href", "")
                if not href:
                    entity["type"] = "_drop"
                entity["url"] = href
            if name == "blockquote" and "expandable" in attributes:
                entity["type"] = "expandable_blockquote"
            if name == "tg-emoji":
                entity["custom_emoji_id"] = attributes.get("emoji-id", "")
            if name == "code" and attributes.get("class", "").startswith("language-"):
                entity["_language"] = attributes["class"].removeprefix("language-")
            stack.append((name, entity, position16, index))
            index = start_match.end()
            continue
        pieces.append(char)
        position16 += utf16_length(char)
        index += 1
    if stack:
        raise _parse_error(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    kept = [entity for entity in entities if entity["type"] != "_drop"]
    return "".join(pieces), _sorted(kept)


# --- Markdown (legacy) and MarkdownV2 --------------------------------------------------------

_RESERVED_V2 = set("_*[]()~`>#+-=|{}.!")


class _MarkdownParser:
    """One parse of Markdown or MarkdownV2 text: the output so far and the open entities."""

    def __init__(self, source: str, version: int) -> None:
        self.source = source
        self.version = version
        self.pieces: list[str] = []
        self.position16 = 0
        self.entities: list[Entity] = []
        # Open entities: (marker, entity type, start offset in UTF-16 units, index in source).
        self.stack: list[tuple[str, str, int, int]] = []

    def emit(self, text: str) -> None:
        self.pieces.append(text)
        self.position16 += utf16_length(text)

    def unclosed(self, index: int) -> ApiError:
        offset = _byte_offset(self.source, index)
        return _parse_error(f"Can't find end of the entity starting at byte offset {offset}")

    def toggle(self, marker: str, kind: str, index: int) -> None:
        open_markers = [item[0] for item in self.stack]
        if marker in open_markers:
            if self.stack[-1][0] != marker:
                raise self.unclosed(self.stack[-1][3])
            _, open_kind, start16, _ = self.stack.pop()
            if self.position16 > start16:
                self.entities.append(
                    {"type": open_kind, "offset": start16, "length": self.position16 - start16}
                )
            return
        if self.version == 1 and self.stack:
            raise self.unclosed(self.stack[-1][3])  # legacy Markdown cannot nest
        self.stack.append((marker, kind, self.position16, index))

    def read_until(self, index: int, closing: str, escapable: str) -> tuple[str, int]:
        """Raw content from `index` to the unescaped `closing`; returns it and the index after."""
        content: list[str] = []
        while index < len(self.source):
            if self.source.startswith(closing, index):
                return "".join(content), index + len(closing)
            char = self.source[index]
            if (
                self.version == 2
                and char == "\\"
                and index + 1 < len(self.source)
                and self.source[index + 1] in escapable
            ):
                content.append(self.source[index + 1])
                index += 2
                continue
            content.append(char)
            index += 1
        raise ApiError(400, "unclosed")

    def parse(self) -> tuple[str, list[Entity]]:
        source = self.source
        index = 0
        while index < len(source):
            char = source[index]
            following = source[index + 1] if index + 1 < len(source) else ""
            if (
                char == "\\"
                and following
                and (
                    (self.version == 2 and 0 < ord(following) < 127)
                    or (self.version == 1 and following in "_*`[")
                )
            ):
                self.emit(following)
                index += 2
                continue
            if char == "`":
                index = self.code(index)
                continue
            if char == "[":
                index = self.link(index)
                continue
            if char == "*":
                self.toggle("*", "bold", index)
                index += 1
                continue
            if char == "_":
                if self.version == 2 and following == "_":
                    self.toggle("__", "underline", index)
                    index += 2
                else:
                    self.toggle("_", "italic", index)
                    index += 1
                continue
            if self.version == 2 and char == "~":
                self.toggle("~", "strikethrough", index)
                index += 1
                continue
            if self.version == 2 and char == "|" and following == "|":
                self.toggle("||", "spoiler", index)
                index += 2
                continue
            if self.version == 2 and char == ">" and (index == 0 or source[index - 1] == "\n"):
                index = self.blockquote(index)
                continue
            if self.version == 2 and char in _RESERVED_V2:
                raise _parse_error(
                    f"Character '{char}' is reserved and must be escaped with the preceding '\\'"
                )
            self.emit(char)
            index += 1
        if self.stack:
            raise self.unclosed(self.stack[-1][3])
        return "".join(self.pieces), _sorted(self.entities)

    def code(self, index: int) -> int:
        start16 = self.position16
        try:
            if self.source.startswith("```", index):
                content, after = self.read_until(index + 3, "```", "`\\")
                language = ""
                first_line, newline, rest = content.partition("\n")
                if newline and first_line and " " not in first_line:
                    language, content = first_line, rest
                self.emit(content)
                entity: Entity = {"type": "pre", "offset": start16, "length": 0}
                if language:
                    entity["language"] = language
            else:
                content, after = self.read_until(index + 1, "`", "`\\")
                self.emit(content)
                entity = {"type": "code", "offset": start16, "length": 0}
        except ApiError:
            raise self.unclosed(index) from None
        entity["length"] = self.position16 - start16
        if entity["length"]:
            self.entities.append(entity)
        return after

    def link(self, index: int) -> int:
        # The link text may itself hold formatting in MarkdownV2; legacy Markdown keeps it raw.
        closing = self.source.find("](", index + 1)
        if closing < 0:
            if self.version == 2:
                raise _parse_error(
                    "Character '[' is reserved and must be escaped with the preceding '\\'"
                )
            self.emit("[")
            return index + 1
        inner = _MarkdownParser(self.source[index + 1 : closing], self.version)
        text, inner_entities = inner.parse()
        try:
            url, after = self.read_until(closing + 2, ")", ")\\")
        except ApiError:
            raise self.unclosed(index) from None
        start16 = self.position16
        for entity in inner_entities:
            self.entities.append({**entity, "offset": entity["offset"] + start16})
        self.emit(text)
        if text:
            self.entities.append(
                {"type": "text_link", "offset": start16, "length": utf16_length(text), "url": url}
            )
        return after

    def blockquote(self, index: int) -> int:
        # Consecutive lines starting with ">" form one blockquote entity.
        start16 = self.position16
        end = index
        lines: list[str] = []
        while end < len(self.source) and self.source[end] == ">":
            newline = self.source.find("\n", end)
            line_end = len(self.source) if newline < 0 else newline
            lines.append(self.source[end + 1 : line_end])
            end = line_end + 1 if newline >= 0 else line_end
        inner = _MarkdownParser("\n".join(lines), self.version)
        text, inner_entities = inner.parse()
        for entity in inner_entities:
            self.entities.append({**entity, "offset": entity["offset"] + start16})
        self.emit(text)
        if text:
            self.entities.append(
                {"type": "blockquote", "offset": start16, "length": utf16_length(text)}
            )
        if end <= len(self.source) and self.source[end - 1 : end] == "\n":
            self.emit("\n")
        return end


def parse_markdown(source: str, *, version: int) -> tuple[str, list[Entity]]:
    """Telegram's Markdown (version 1, legacy) or MarkdownV2 parse mode."""
    return _MarkdownParser(source, version).parse()
