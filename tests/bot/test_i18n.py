"""Replies in the user's language: the catalogs are complete and consistent, and the bot uses them.

The texts are extracted from the code afresh (Babel, as `make messages` does), so a text added
without a translation fails here, in every language, until each catalog has it.
"""

from __future__ import annotations

import re
import string
from typing import Any

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from bot import admin_replies, i18n, replies
from bot.sandbox.emulator import BotApiEmulator
from core.serving import Classification
from tests.bot.conftest import BOT_USERNAME, GROUP_ID, OPEN_GROUP_ID
from tests.bot.test_bot_e2e import calls_named
from tests.conftest import ROOT, digit_photo

TRANSLATED = [language for language in i18n.LANGUAGES if language != i18n.DEFAULT_LANGUAGE]
TAG = re.compile(r"</?[a-z]+>")


def code_messages() -> dict[str, tuple[str, ...]]:
    """Every text marked in bot/ -> its forms (singular, plural), as Babel extracts them."""
    found: dict[str, tuple[str, ...]] = {}
    for _file, _line, message, _comments, _context in extract_from_dir(ROOT / "bot"):
        forms = message if isinstance(message, tuple) else (message,)
        found[forms[0]] = tuple(forms)
    return found


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def test_the_twelve_languages_are_there() -> None:
    assert set(i18n.LANGUAGES) >= {
        "en", "es", "pt", "de", "fr", "it", "ru", "uk", "tr", "id", "ar", "hi"
    }  # fmt: skip
    assert i18n.DEFAULT_LANGUAGE == "en"


@pytest.mark.parametrize("language", TRANSLATED)
def test_every_catalog_has_every_message_with_the_same_placeholders(language: str) -> None:
    messages = code_messages()
    assert len(messages) > 100, "the texts were not found in bot/"
    path = i18n.catalog_path(language)
    with path.open("rb") as file:
        catalog = read_po(file, locale=language)
    entries = {
        (entry.id[0] if isinstance(entry.id, tuple) else entry.id): entry
        for entry in catalog
        if entry.id
    }
    missing = sorted(set(messages) - set(entries))
    assert not missing, f"{path} lacks {len(missing)} texts (run `make messages`): {missing[:3]}"
    obsolete = sorted(set(entries) - set(messages))
    assert not obsolete, f"{path} has texts the code no longer uses: {obsolete[:3]}"
    same = 0
    for msgid, forms in messages.items():
        entry = entries[msgid]
        assert not entry.fuzzy, f"{language}: fuzzy (unreviewed) translation of {msgid!r}"
        strings = entry.string if isinstance(entry.string, tuple) else (entry.string,)
        assert len(forms) == (2 if isinstance(entry.id, tuple) else 1), msgid
        if len(forms) == 2:
            assert len(strings) == catalog.num_plurals, f"{language}: plural forms of {msgid!r}"
        for translated in strings:
            assert isinstance(translated, str), f"{language}: {msgid!r} is not text"
            assert translated.strip(), f"{language}: no translation of {msgid!r}"
            # The same named placeholders (order free), the same HTML tags (parse mode HTML).
            # A plural form may leave out {count} where the language's form says it in words.
            expected = set().union(*(placeholders(form) for form in forms))
            found = placeholders(translated)
            assert found <= expected, f"{language}: unknown placeholders in {translated!r}"
            assert expected - found <= {"count"}, (
                f"{language}: {translated!r} lacks some of {expected}"
            )
            assert sorted(TAG.findall(translated)) == sorted(TAG.findall(forms[0])), (
                f"{language}: HTML tags differ in {translated!r}"
            )
        same += strings[0] == msgid
    # A catalog that copies English is not a translation (a few texts, like "{digit}: {percent}",
    # are legitimately the same).
    assert same <= 5, f"{language}: {same} texts are left in English"


def test_every_catalog_compiles_and_is_used() -> None:
    for language in TRANSLATED:
        with i18n.use_language(language):
            assert replies.admin_only() != "Sorry, this command is for the bot's admins only."
    assert replies.admin_only() == "Sorry, this command is for the bot's admins only."


def test_telegram_language_codes_map_to_catalogs_with_english_as_fallback() -> None:
    assert i18n.language_for("pt-br") == "pt"
    assert i18n.language_for("de") == "de"
    assert i18n.language_for("UK") == "uk"
    assert i18n.language_for("zh-hans") == "en"
    assert i18n.language_for(None) == "en"
    assert i18n.language_for("") == "en"


def test_numbers_and_percentages_are_in_the_local_format() -> None:
    cases = {
        "en": ("98.1%", "12,345"),
        "de": ("98,1\xa0%", "12.345"),
        "fr": ("98,1\xa0%", "12\u202f345"),
        "tr": ("%98,1", "12.345"),
        "es": ("98,1\xa0%", "12.345"),
    }
    for language, (percent, number) in cases.items():
        with i18n.use_language(language):
            assert replies.percent(0.981) == percent, language
            assert replies.number(12345) == number, language


def test_the_language_only_changes_inside_its_block() -> None:
    with i18n.use_language("de"):
        german = replies.no_digit()
        with i18n.use_language("ru"):
            assert replies.no_digit() != german
        assert replies.no_digit() == german
    assert replies.no_digit().startswith("I could not find a digit")


def test_an_answer_and_the_admin_texts_are_translated() -> None:
    assert admin_replies.points(0.1) == "0.1 points"
    with i18n.use_language("de"):
        assert admin_replies.points(0.1) == "0,1 Prozentpunkte"
        nothing = replies.answer(Classification([], "v1", 0.01), 0.6)
        assert "Ziffer" in nothing, nothing


# --- the running bot -------------------------------------------------------------------------


async def test_each_user_is_answered_in_their_language(
    start_bot: Any, emulator: BotApiEmulator, mnist: Any
) -> None:
    await start_bot()
    emulator.add_user(4004, "Ana", "ana", language_code="es")
    emulator.add_user(5005, "Jonas", "jonas", language_code="de-AT")
    emulator.add_user(6006, "Li", "li", language_code="zh-hans")
    expected = {4004: "¡Hola, Ana!", 5005: "Hallo, Jonas!", 6006: "Hello, Li!"}
    for user_id, hello in expected.items():
        start = emulator.send_text(user_id, user_id, "/start")
        reply = await emulator.wait_for_reply(user_id, start["message_id"])
        assert reply["text"].startswith(hello), reply["text"]
    photo = emulator.send_photo(4004, 4004, digit_photo(mnist.x_test[0]))
    answer = await emulator.wait_for_reply(4004, photo["message_id"])
    top3 = answer["text"].splitlines()[1]
    assert re.fullmatch(r"(\d: \d{1,3},\d\xa0%  ){2}\d: \d{1,3},\d\xa0%", top3), top3
    buttons = [
        button["text"] for row in answer["reply_markup"]["inline_keyboard"] for button in row
    ]
    assert buttons == ["✅ correcto", "❌ incorrecto"]


async def test_in_a_group_the_answer_is_in_the_language_of_who_sent_the_photo(
    start_bot: Any, emulator: BotApiEmulator, mnist: Any
) -> None:
    await start_bot()
    emulator.add_user(7007, "Olga", "olga", language_code="ru")
    emulator.add_user(8008, "Ahmet", "ahmet", language_code="tr")
    # Olga's photo, then Ahmet asks for it with /predict: the answer is in Olga's language.
    photo = emulator.send_photo(GROUP_ID, 7007, digit_photo(mnist.x_test[0]), caption="hi")
    command = emulator.send_text(
        GROUP_ID, 8008, f"/predict@{BOT_USERNAME}", reply_to_message_id=photo["message_id"]
    )
    answer = await emulator.wait_for_reply(GROUP_ID, photo["message_id"])
    assert answer["text"].splitlines()[1].count("\xa0%") == 3, answer["text"]
    assert any(
        "правильно" in button["text"] for button in answer["reply_markup"]["inline_keyboard"][0]
    )
    # Ahmet's own text in the open group gets Turkish where the bot answers him.
    unknown = emulator.send_text(OPEN_GROUP_ID, 8008, "/predict")
    usage = await emulator.wait_for_reply(OPEN_GROUP_ID, unknown["message_id"])
    assert "/predict" in usage["text"] and "fotoğraf" in usage["text"], usage["text"]
    assert command["message_id"]


async def test_the_command_menu_is_set_in_every_language(
    start_bot: Any, emulator: BotApiEmulator
) -> None:
    await start_bot()
    calls = calls_named(emulator, "setMyCommands")
    everyone = {
        call.get("language_code", ""): call["commands"]
        for call in calls
        if call.get("scope", {"type": "default"})["type"] == "default"
    }
    assert set(everyone) == {"", *TRANSLATED}
    assert everyone[""][0] == {"command": "start", "description": "what this bot does"}
    assert everyone["es"][0] == {"command": "start", "description": "qué hace este bot"}
    assert all([c["command"] for c in menu] == [c["command"] for c in everyone[""]]
               for menu in everyone.values())  # fmt: skip
    admins = {
        call.get("language_code", "")
        for call in calls
        if call.get("scope", {}).get("type") == "chat"
    }
    assert admins == {"", *TRANSLATED}
