"""The bot's languages: gettext catalogs, the language of the update being handled, local numbers.

Texts are marked with `_()` / `ngettext()` in bot/replies.py (the one place for texts) and
translated in `bot/locale/<language>/LC_MESSAGES/digitbot.po`. Only the `.po` files are kept in
git: each is compiled in memory by Babel the first time its language is needed, so a fresh clone
or a `pip install` needs no build step. `make messages` extracts the texts again and updates every
catalog (Babel's `pybabel extract` / `update`).

The language is a context variable: `language_middleware` sets it from the Telegram user of each
update (`language_code`; English where no catalog exists), and `use_language` switches it for one
block, e.g. to answer a photo in a group in the language of the person who sent it. asyncio copies
context variables into every task, so a /retrain started by an admin reports in the admin's
language.
"""

from __future__ import annotations

import contextlib
import functools
import gettext
import io
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import datetime, timedelta
from pathlib import Path

from babel import Locale
from babel.dates import format_datetime, format_timedelta
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import NumberPattern, format_decimal, parse_pattern
from telegram import Update
from telegram.ext import ContextTypes

DOMAIN = "digitbot"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"
DEFAULT_LANGUAGE = "en"
# English first (the texts in the code); each other one has a catalog in LOCALE_DIR.
LANGUAGES = ("en", "es", "pt", "de", "fr", "it", "ru", "uk", "tr", "id", "ar", "hi")

_language: ContextVar[str] = ContextVar("digitbot_language", default=DEFAULT_LANGUAGE)


def language_for(code: str | None) -> str:
    """The catalog for a Telegram `language_code` (an IETF tag such as `pt-br`), else English."""
    if not code:
        return DEFAULT_LANGUAGE
    primary = code.replace("_", "-").split("-", 1)[0].lower()
    return primary if primary in LANGUAGES else DEFAULT_LANGUAGE


def current_language() -> str:
    return _language.get()


def set_language(code: str | None) -> str:
    """Make `code`'s language the current one for this task; return the catalog chosen."""
    language = language_for(code)
    _language.set(language)
    return language


@contextlib.contextmanager
def use_language(code: str | None) -> Iterator[str]:
    """Texts made inside the block are in `code`'s language."""
    token = _language.set(language_for(code))
    try:
        yield token.var.get()
    finally:
        _language.reset(token)


def catalog_path(language: str) -> Path:
    return LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"


@functools.cache
def translations(language: str) -> gettext.NullTranslations:
    """The compiled catalog of `language` (English, or a missing catalog: the texts as written)."""
    path = catalog_path(language)
    if language == DEFAULT_LANGUAGE or not path.is_file():
        return gettext.NullTranslations()
    with path.open("rb") as file:
        catalog = read_po(file, locale=language, domain=DOMAIN)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)  # fuzzy (unreviewed) entries are left out: English instead
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


def _(message: str) -> str:
    """`message` in the current language."""
    return translations(_language.get()).gettext(message)


def ngettext(singular: str, plural: str, count: int) -> str:
    """The form of `singular`/`plural` for `count` in the current language (its plural rules)."""
    return translations(_language.get()).ngettext(singular, plural, count)


# --- numbers, percentages, durations and dates in the current language (Babel, CLDR data) ------


@functools.cache
def _locale(language: str) -> Locale:
    return Locale.parse(language)


@functools.cache
def _percent_pattern(language: str, decimals: int) -> NumberPattern:
    """The language's percent pattern (`98.1%`, `98,1 %`, `%98,1`) with fixed decimals."""
    pattern = parse_pattern(_locale(language).percent_formats[None].pattern)
    pattern.frac_prec = (decimals, decimals)
    return pattern


def percent(probability: float, decimals: int = 1) -> str:
    """0.981 -> '98.1%' in English, '98,1 %' in French, '%98,1' in Turkish."""
    language = _language.get()
    return _percent_pattern(language, decimals).apply(probability, _locale(language))


def number(value: float, decimals: int = 0) -> str:
    """12345 -> '12,345' in English, '12.345' in German; `decimals` fixed digits after the point."""
    pattern = "#,##0" + ("." + "0" * decimals if decimals else "")
    return format_decimal(value, format=pattern, locale=_locale(_language.get()))


def decimal(value: float) -> str:
    """A number with as many decimals as it has (up to 3): '0.1', '2', '1,5' in German."""
    return format_decimal(value, locale=_locale(_language.get()))


def duration(seconds: float) -> str:
    """A rounded human duration in words: '45 seconds', '3 minutes', '2 hours'."""
    return format_timedelta(
        timedelta(seconds=max(1, round(seconds))),
        threshold=1.5,
        locale=_locale(_language.get()),
    )


def date_time(moment: datetime) -> str:
    """A date and time in the language's medium format."""
    return format_datetime(moment, format="medium", locale=_locale(_language.get()))


async def language_middleware(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Before every update: its texts are in the language of the user who sent it."""
    user = update.effective_user if isinstance(update, Update) else None
    set_language(user.language_code if user else None)
