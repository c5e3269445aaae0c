"""Every text the bot sends, in one place (HTML parse mode; user-provided text is escaped here).

Each text is marked for translation (`_()`, `ngettext()` from bot/i18n.py) and built when it is
sent, so it is in the language of the update being handled; numbers, percentages and durations
use that language's format (Babel). Placeholders are named (`{digit}`), so a translation may put
them in any order; tests/bot/test_i18n.py checks every catalog has every text with the same ones.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from bot.i18n import _, duration, ngettext, number, percent
from core.serving import Classification, DigitPrediction, is_sure

__all__ = ["duration", "number", "percent"]  # re-exported: the formats texts are built with


def escape(text: str) -> str:
    """User-provided text for HTML parse mode (quotes need no escaping outside attributes)."""
    return html.escape(text, quote=False)


def tip() -> str:
    return _(
        "Tip: one dark digit on plain light paper, filling a good part of the photo, "
        "sharp and evenly lit, works best."
    )


def send_image_hint() -> str:
    return _("Send a photo, or an image file: PNG, JPEG, WebP, BMP, GIF or TIFF.")


def _top3_line(prediction: DigitPrediction) -> str:
    return "  ".join(
        _("{digit}: {percent}").format(digit=digit, percent=percent(probability))
        for digit, probability in prediction.top3
    )


# --- answers to images -------------------------------------------------------------------------


def not_sure_mark() -> str:
    return "  <i>" + _("(not sure)") + "</i>"


def answer(classification: Classification, confidence_threshold: float) -> str:
    """The reply to an image: the digit (or number) in bold first, then the percentages."""
    if not classification.digits:
        return no_digit()
    if len(classification.digits) == 1:
        prediction = classification.digits[0]
        lines = [f"<b>{prediction.digit}</b>", _top3_line(prediction)]
        if not is_sure(prediction, confidence_threshold):
            lines[0] += not_sure_mark()
            lines.append(_("I am not sure about this one.") + " " + tip())
        return "\n".join(lines)
    return _number_answer(classification.digits, confidence_threshold)


def _number_answer(digits: Sequence[DigitPrediction], confidence_threshold: float) -> str:
    """Several digits: the number, then each digit's confidence; alternatives where unsure."""
    whole = "".join(str(prediction.digit) for prediction in digits)
    lines = [
        f"<b>{whole}</b>",
        "  ".join(
            _("{digit}: {percent}").format(digit=p.digit, percent=percent(p.confidence))
            for p in digits
        ),
    ]
    unsure = [
        (position, p)
        for position, p in enumerate(digits, start=1)
        if not is_sure(p, confidence_threshold)
    ]
    if unsure:
        lines[0] += not_sure_mark()
        for position, prediction in unsure:
            options = _(" or ").join(
                f"{digit} ({percent(probability)})" for digit, probability in prediction.top3
            )
            lines.append(
                _("Digit {position}: {options}?").format(position=position, options=options)
            )
        lines.append(tip())
    return "\n".join(lines)


def page_number(digits: Sequence[DigitPrediction], index: int, count: int, threshold: float) -> str:
    """The reply for one number of a picture with several (one reply each, in reading order):
    the number in bold, which one it is, then each digit's confidence."""
    first, _newline, rest = _number_answer(digits, threshold).partition("\n")
    which = _("(number {index} of {count})").format(index=index + 1, count=count)
    return f"{first}  <i>{which}</i>\n{rest}"


def more_numbers(numbers: Sequence[str], first_index: int, count: int) -> str:
    """The numbers past the per-picture reply limit, listed in one reply without buttons."""
    listed = "\n".join(
        f"{first_index + offset + 1}. <b>{number}</b>" for offset, number in enumerate(numbers)
    )
    return (
        _("The other numbers in this picture ({count} in all):").format(count=count) + "\n" + listed
    )


def no_digit() -> str:
    return _("I could not find a digit in this picture.") + "\n" + tip()


# Core's ImageError reasons (core/preprocess.py), in words for the person who sent the image.
def image_error(reason: str, **details: Any) -> str:
    """Why an image could not be used, and what to send instead."""
    if reason == "empty":
        text = _("The file is empty.")
    elif reason == "svg":
        text = _("This file is not an image I can read. SVG drawings are not supported.")
    elif reason == "too_many_pixels":
        width, height, limit = details.get("width"), details.get("height"), details.get("limit")
        if width and height and limit:
            return too_many_pixels(width, height, limit)
        text = _("The image is too large (too many pixels).")
    elif reason == "no_pixels":
        text = _("The image has no pixels.")
    elif reason == "damaged":
        text = _("The image is damaged or truncated.")
    elif reason == "crashed":
        text = _("Reading this image crashed my image reader twice.")
    elif reason == "timeout":
        text = _("Reading this image took too long (more than {seconds} s), so I stopped.").format(
            seconds=details.get("seconds", "?")
        )
    elif reason == "stopping":
        return _("I am restarting; send the image again in a minute.")
    else:
        text = _("This file is not an image I can read.")
    return text + "\n" + _("Send a photo (or a PNG/JPEG file) of a handwritten digit.")


def not_an_image(file_name: str | None, mime_type: str | None) -> str:
    if file_name or mime_type:
        text = _("{file} is not an image, so I cannot read a digit from it.").format(
            file=escape(file_name or mime_type or "")
        )
    else:
        text = _("This file is not an image, so I cannot read a digit from it.")
    return f"{text} {send_image_hint()}"


def unsupported_image_format(mime_type: str | None) -> str:
    if mime_type:
        text = _("I cannot read {kind} files.").format(kind=escape(mime_type))
    else:
        text = _("I cannot read this image format.")
    return f"{text} {send_image_hint()}"


def too_large_download(size: int, limit: int) -> str:
    return _(
        "This file is too large for me ({size} MB; the limit is {limit} MB). "
        "Send it as a photo, or a smaller image."
    ).format(size=number(size / 1e6, 1), limit=number(limit / 1e6))


def too_many_pixels(width: int, height: int, limit: int) -> str:
    return _(
        "This image is too large: {width}x{height} pixels (the limit is {limit} pixels). "
        "Send it as a photo, or a smaller image."
    ).format(width=width, height=height, limit=number(limit))


def flood(limit: int, window_seconds: float, wait_seconds: float) -> str:
    return _(
        "You are sending images faster than I read them: at most {limit} every "
        "{window}. I will skip the extra ones; try again in {wait}."
    ).format(limit=limit, window=duration(window_seconds), wait=duration(max(wait_seconds, 1)))


def action_flood(limit: int, window_seconds: float, wait_seconds: float) -> str:
    return _(
        "Too many commands and button presses: at most {limit} every {window}. "
        "I will ignore the extra ones; try again in {wait}."
    ).format(limit=limit, window=duration(window_seconds), wait=duration(max(wait_seconds, 1)))


def group_flood(limit: int, window_seconds: float, wait_seconds: float) -> str:
    return _(
        "This group shares my answers: at most {limit} for each member every {window}. "
        "I will skip the extra ones; try again in {wait}."
    ).format(limit=limit, window=duration(window_seconds), wait=duration(max(wait_seconds, 1)))


def predict_usage() -> str:
    return _(
        "Use /predict as a reply to a photo (or image file), or send a photo with /predict "
        "in its caption."
    )


def debug_titles(classification: Classification) -> list[str]:
    """A title above each crop: the digit read from it and its probability."""
    return [
        _("{digit}: {percent}").format(
            digit=prediction.digit, percent=percent(prediction.confidence)
        )
        for prediction in classification.digits
    ]


def debug_caption(classification: Classification) -> str:
    """Caption of the crops photo: what they are and what was read from them."""
    count = len(classification.digits)
    if count == 1:
        what = _("What the model saw: the 28x28 crop, enlarged. Read as {number}.")
    else:
        what = ngettext(
            "What the model saw: the {count} 28x28 crop, left to right, enlarged. "
            "Read as {number}.",
            "What the model saw: the {count} 28x28 crops, left to right, enlarged. "
            "Read as {number}.",
            count,
        )
    return (
        what.format(count=count, number=f"<b>{classification.number}</b>")
        + "\n"
        + _("Light ink on black, fitted into 20x20 and centred like MNIST digits.")
    )


def debug_pieces_caption() -> str:
    """Caption of the pieces picture: what the boxes mean."""
    return _(
        "The pieces of ink: green boxes became digits (line:digit, in reading order), red ones "
        "were left out, each with the reason."
    )


def debug_no_digit() -> str:
    return _("I found no digit in this picture, so there is no crop to show.") + "\n" + tip()


def debug_usage() -> str:
    return _(
        "Use /debug as a reply to a photo (or image file) to see the 28x28 crops I "
        "classified, or send a photo with the word debug in its caption."
    )


def private_text_hint() -> str:
    return _("Send me a photo of a handwritten digit and I will tell you which one it is. /help")


def something_went_wrong() -> str:
    return _("Sorry, something went wrong on my side. Please try again in a moment.")


# --- commands ----------------------------------------------------------------------------------


def start(first_name: str | None, bot_username: str, group_mode: str = "mention") -> str:
    """The short welcome: what to send and one example; the details are in /help."""
    if first_name:
        hello = _("Hello, {name}! I read handwritten digits.").format(name=escape(first_name))
    else:
        hello = _("Hello! I read handwritten digits.")
    return (
        hello
        + "\n"
        + _(
            "Send me a photo of a digit written on paper, for example a 7, and I answer "
            "<b>7</b> with how sure I am. Several digits in a row are read as a number."
        )
        + "\n"
        + _("/help: tips for good photos, groups, corrections.")
    )


def help_text(bot_username: str, group_mode: str = "mention") -> str:
    mention = f"@{escape(bot_username)}"
    groups = _(
        "• In groups, I answer a photo whose caption mentions {mention} or says /predict, "
        "a photo sent as a reply to one of my messages, and /predict sent as a reply to "
        "a photo."
    ).format(mention=mention)
    if group_mode == "all":
        groups += " " + _(
            "Where I can read every message (privacy mode off, or I am an admin), "
            "I answer every photo."
        )
    return (
        "<b>"
        + _("How to use me")
        + "</b>\n"
        + _(
            "• Send a photo of one handwritten digit, or an image file "
            "(PNG, JPEG, WebP, BMP, GIF, TIFF).\n"
            "• I reply with the digit first, then my three best guesses with percentages."
        )
        + f"\n{groups}\n\n<b>"
        + _("For good results")
        + "</b>\n"
        + _(
            "• Dark ink on plain light paper (white on black works too).\n"
            "• The digit fills a good part of the photo, sharp, evenly lit, no other marks "
            "near it.\n"
            "• One digit per photo; several digits in a row are read as a number.\n"
            "• To see what I looked at, write <i>debug</i> in the caption, or reply /debug to "
            "a photo: I send back the 28x28 crops I classified."
        )
        + "\n\n"
        + _(
            "I was trained on MNIST, {count} handwritten digits; I am not perfect, so a "
            "low percentage means I am guessing."
        ).format(count=number(70_000))
        + "\n\n"
        + corrections_help()
    )


def forget_anonymous() -> str:
    return _(
        "You are writing anonymously (as the group), and all anonymous admins share that one "
        "identity, so I cannot tell your data from theirs. Turn off “Remain anonymous” in your "
        "admin rights, or send /forget to me in a private chat."
    )


def corrections_help() -> str:
    """The /help part about the buttons, what is kept and why, and /forget."""
    return (
        "<b>"
        + _("Corrections")
        + "</b>\n"
        + _(
            "• Under each answer: {right} or {wrong}. After {wrong}, tap the real digit; for "
            "a number, tap the wrong digit, or reply to my answer with the right number. In "
            "groups anyone may correct; the first confirmation counts.\n"
            "• Why: when an admin retrains me, confirmed digits are mixed into my training "
            "data and some are kept aside to measure how well I read your photos.\n"
            "• What I keep per answer: the 28x28 digit crops I looked at (never your photo), "
            "my answer and confidence, the confirmed digit, the model version, the chat type, "
            "the time, and a salted hash of your user id (never the id or your name).\n"
            "• /forget deletes everything you contributed: your digits and your corrections."
        ).format(right=button_right(), wrong=button_wrong())
        + "\n"
        + _(
            "• Anonymous group admins all write as one identity (the group's): their "
            "corrections count as one person's, and /forget is refused for it; turn off "
            "“Remain anonymous” first."
        )
    )


def admin_only() -> str:
    return _("Sorry, this command is for the bot's admins only.")


def command_descriptions() -> dict[str, str]:
    """The command menu (set per language with set_my_commands)."""
    return {
        "start": _("what this bot does"),
        "help": _("how to get good results, how groups work"),
        "predict": _("read the digit in the photo you reply to"),
        "debug": _("show the 28x28 crops I classified in the photo you reply to"),
        "forget": _("delete the digits and corrections you gave me"),
        "stats": _("model metrics and usage since start"),
        "retrain": _("train a new model: /retrain [full] [epochs] or /retrain cancel"),
    }


# --- corrections from users --------------------------------------------------------------------

# The answer text and what the buttons add below it are separated by one blank line; an answer
# itself never contains a blank line (see `answer`), so the footer can be replaced later.
FOOTER_SEPARATOR = "\n\n"


def button_right() -> str:
    return "✅ " + _("right")


def button_wrong() -> str:
    return "❌ " + _("wrong")


def button_back() -> str:
    return "↩ " + _("back")


def button_save(digits: str) -> str:
    return "✅ " + _("save {number}").format(number=digits)


def button_position(digit: str, changed: bool) -> str:
    """One digit of the number editor; a changed digit is marked."""
    return f"«{digit}»" if changed else digit


def with_footer(answer_html: str, footer: str | None) -> str:
    """The answer (without any earlier footer) followed by `footer`."""
    body = answer_html.split(FOOTER_SEPARATOR, 1)[0]
    return body if not footer else f"{body}{FOOTER_SEPARATOR}{footer}"


def confirmed_footer(predicted: str, confirmed: str) -> str:
    """What the answer shows once confirmed (never who confirmed it)."""
    if predicted == confirmed:
        return "✅ " + _("Confirmed: it is {confirmed}.").format(confirmed=f"<b>{confirmed}</b>")
    return "✏ " + _("Corrected: it is {confirmed}, not {predicted}.").format(
        confirmed=f"<b>{confirmed}</b>", predicted=predicted
    )


def digit_question() -> str:
    return _("Which digit is it? Tap it below.")


def number_question() -> str:
    return _(
        "Which number is it? Tap a wrong digit to change it, or reply to this message with "
        "the right number."
    )


def position_question(position: int) -> str:
    """`position` counts from 0; people count from 1."""
    return _("Which digit is in position {position}?").format(position=position + 1)


def thanks(predicted: str, confirmed: str) -> str:
    """The short notice after one's own confirmation was stored."""
    if predicted == confirmed:
        return _("Thanks! Confirmed: {confirmed}.").format(confirmed=confirmed)
    return _(
        "Thanks! Noted: it is {confirmed}. I learn from corrections when I am retrained."
    ).format(confirmed=confirmed)


def already_confirmed(confirmed: str) -> str:
    return _("Already confirmed as {confirmed}.").format(confirmed=confirmed)


def confirmations_capped(per_day: int, total: int) -> str:
    return _(
        "You have reached the limit of corrections ({per_day} a day, {total} in all), so "
        "this one was not saved. Thank you for helping!"
    ).format(per_day=number(per_day), total=number(total))


def stale_answer() -> str:
    return _("This answer is no longer in my records, so it cannot be confirmed or corrected.")


def unknown_button() -> str:
    return _("This button no longer works.")


def corrections_unavailable() -> str:
    return _("Corrections cannot be saved right now; please try again later.")


def typed_saved(predicted: str, confirmed: str) -> str:
    """The reply to a number typed as a reply to an answer."""
    text = thanks(predicted, confirmed)
    if len(confirmed) != len(predicted):
        text += " " + ngettext(
            "I found {count} digit there, so this counts for the statistics but cannot be "
            "used for training.",
            "I found {count} digits there, so this counts for the statistics but cannot be "
            "used for training.",
            len(predicted),
        ).format(count=len(predicted))
    return text


def typed_not_an_answer() -> str:
    return _(
        "To correct me, reply with the right number to one of my answers (the message "
        "that starts with the digit)."
    )


def typed_too_long(maximum: int) -> str:
    return _("That is more digits than I read in one photo (at most {maximum}).").format(
        maximum=maximum
    )


def forget_question() -> str:
    return _(
        "Delete everything you contributed: the digits from your photos and your corrections? "
        "This cannot be undone."
    )


def button_forget_yes() -> str:
    return "🗑 " + _("Yes, delete")


def button_forget_no() -> str:
    return _("Cancel")


def forget_cancelled() -> str:
    return _("Nothing was deleted.")


def forget_not_yours() -> str:
    return _("Only the person who sent /forget can answer this.")


def forgotten(count: int) -> str:
    if count == 0:
        return _("I have nothing from you: no digits and no corrections, so nothing was deleted.")
    return ngettext(
        "Done: {count} item deleted (digits from your photos and the corrections you gave). "
        "A model already trained with them keeps what it learned until the next retraining.",
        "Done: {count} items deleted (digits from your photos and the corrections you gave). "
        "A model already trained with them keeps what it learned until the next retraining.",
        count,
    ).format(count=number(count))
