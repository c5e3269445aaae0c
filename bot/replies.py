"""Every text the bot sends, in one place (HTML parse mode; user-provided text is escaped here)."""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from core.serving import Classification, DigitPrediction

if TYPE_CHECKING:  # core.train pulls in matplotlib; the bot process only needs the type
    from bot.feedback import FeedbackStats
    from bot.retrain import Comparison
    from core.train import EpochReport


def escape(text: str) -> str:
    """User-provided text for HTML parse mode (quotes need no escaping outside attributes)."""
    return html.escape(text, quote=False)


TIP = (
    "Tip: one dark digit on plain light paper, filling a good part of the photo, "
    "sharp and evenly lit, works best."
)


def percent(probability: float) -> str:
    """0.981 -> '98.1 %'."""
    return f"{probability * 100:.1f} %"


def duration(seconds: float) -> str:
    """A short human duration: '45 s', '3 min 05 s', '2 h 07 min'."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def ordinal(position: int) -> str:
    suffix = (
        "th" if 10 <= position % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(position % 10, "th")
    )
    return f"{position}{suffix}"


def _top3_line(prediction: DigitPrediction) -> str:
    return "  ".join(f"{digit}: {percent(probability)}" for digit, probability in prediction.top3)


# --- answers to images -------------------------------------------------------------------------


def answer(classification: Classification, confidence_threshold: float) -> str:
    """The reply to an image: the digit (or number) in bold first, then the percentages."""
    if not classification.digits:
        return no_digit()
    if len(classification.digits) == 1:
        prediction = classification.digits[0]
        lines = [f"<b>{prediction.digit}</b>", _top3_line(prediction)]
        if prediction.confidence < confidence_threshold:
            lines[0] += "  <i>(not sure)</i>"
            lines.append(f"I am not sure about this one. {TIP}")
        return "\n".join(lines)
    return _number_answer(classification.digits, confidence_threshold)


def _number_answer(digits: Sequence[DigitPrediction], confidence_threshold: float) -> str:
    """Several digits: the number, then each digit's confidence; alternatives where unsure."""
    number = "".join(str(prediction.digit) for prediction in digits)
    lines = [f"<b>{number}</b>", "  ".join(f"{p.digit}: {percent(p.confidence)}" for p in digits)]
    unsure = [
        (position, p)
        for position, p in enumerate(digits, start=1)
        if p.confidence < confidence_threshold
    ]
    if unsure:
        lines[0] += "  <i>(not sure)</i>"
        for position, prediction in unsure:
            options = " or ".join(
                f"{digit} ({percent(probability)})" for digit, probability in prediction.top3
            )
            lines.append(f"{ordinal(position)} digit: {options}?")
        lines.append(TIP)
    return "\n".join(lines)


def no_digit() -> str:
    return f"I could not find a digit in this picture.\n{TIP}"


def image_error(message: str) -> str:
    """Core's ImageError messages are written for people; add what to do next."""
    return f"{escape(message)}\nSend a photo (or a PNG/JPEG file) of a handwritten digit."


def not_an_image(file_name: str | None, mime_type: str | None) -> str:
    what = escape(file_name or mime_type or "This file")
    return (
        f"{what} is not an image, so I cannot read a digit from it. "
        "Send a photo, or an image file: PNG, JPEG, WebP, BMP, GIF or TIFF."
    )


def unsupported_image_format(mime_type: str | None) -> str:
    kind = escape(mime_type or "this image format")
    return (
        f"I cannot read {kind} files. "
        "Send a photo, or an image file: PNG, JPEG, WebP, BMP, GIF or TIFF."
    )


def too_large_download(size: int, limit: int) -> str:
    return (
        f"This file is too large for me ({size / 1e6:.1f} MB; the limit is "
        f"{limit / 1e6:.0f} MB). Send it as a photo, or a smaller image."
    )


def too_many_pixels(width: int, height: int, limit: int) -> str:
    return (
        f"This image is too large: {width}x{height} pixels (the limit is {limit:,} pixels). "
        "Send it as a photo, or a smaller image."
    )


def flood(limit: int, window_seconds: float, wait_seconds: float) -> str:
    return (
        f"You are sending images faster than I read them: at most {limit} every "
        f"{duration(window_seconds)}. I will skip the extra ones; try again in "
        f"{duration(max(wait_seconds, 1))}."
    )


def predict_usage() -> str:
    return (
        "Use /predict as a reply to a photo (or image file), or send a photo with /predict "
        "in its caption."
    )


def debug_titles(classification: Classification) -> list[str]:
    """A title above each crop: the digit read from it and its probability."""
    return [
        f"{prediction.digit}: {percent(prediction.confidence)}"
        for prediction in classification.digits
    ]


def debug_caption(classification: Classification) -> str:
    """Caption of the crops photo: what they are and what was read from them."""
    count = len(classification.digits)
    what = "the 28x28 crop" if count == 1 else f"the {count} 28x28 crops, left to right,"
    return (
        f"What the model saw: {what} enlarged. Read as <b>{classification.number}</b>.\n"
        "Light ink on black, fitted into 20x20 and centred like MNIST digits."
    )


def debug_no_digit() -> str:
    return f"I found no digit in this picture, so there is no crop to show.\n{TIP}"


def debug_usage() -> str:
    return (
        "Use /debug as a reply to a photo (or image file) to see the 28x28 crops I "
        "classified, or send a photo with the word debug in its caption."
    )


def private_text_hint() -> str:
    return "Send me a photo of a handwritten digit and I will tell you which one it is. /help"


def something_went_wrong() -> str:
    return "Sorry, something went wrong on my side. Please try again in a moment."


# --- commands ----------------------------------------------------------------------------------


def start(first_name: str | None, bot_username: str, group_mode: str = "mention") -> str:
    name = f", {escape(first_name)}" if first_name else ""
    return (
        f"Hello{name}! I read handwritten digits.\n"
        "Send me a photo of a digit (0-9) and I answer with the digit and how sure I am. "
        "A photo with several digits gives the number.\n\n" + help_text(bot_username, group_mode)
    )


def help_text(bot_username: str, group_mode: str = "mention") -> str:
    mention = f"@{escape(bot_username)}"
    groups = (
        f"• In groups, I answer a photo whose caption mentions {mention} or says /predict, "
        "a photo sent as a reply to one of my messages, and /predict sent as a reply to "
        "a photo."
    )
    if group_mode == "all":
        groups += (
            " Where I can read every message (privacy mode off, or I am an admin), "
            "I answer every photo."
        )
    return (
        "<b>How to use me</b>\n"
        "• Send a photo of one handwritten digit, or an image file "
        "(PNG, JPEG, WebP, BMP, GIF, TIFF).\n"
        "• I reply with the digit first, then my three best guesses with percentages.\n"
        f"{groups}\n\n"
        "<b>For good results</b>\n"
        "• Dark ink on plain light paper (white on black works too).\n"
        "• The digit fills a good part of the photo, sharp, evenly lit, no other marks near it.\n"
        "• One digit per photo; several digits in a row are read as a number.\n"
        "• To see what I looked at, write <i>debug</i> in the caption, or reply /debug to a "
        "photo: I send back the 28x28 crops I classified.\n\n"
        "I was trained on MNIST, 70,000 handwritten digits; I am not perfect, so a "
        "low percentage means I am guessing.\n\n" + corrections_help()
    )


def corrections_help() -> str:
    """The /help part about the buttons, what is kept and why, and /forget."""
    return (
        "<b>Corrections</b>\n"
        f"• Under each answer: {BUTTON_RIGHT} or {BUTTON_WRONG}. After {BUTTON_WRONG}, tap the "
        "real digit; for a number, tap the wrong digit, or reply to my answer with the right "
        "number. In groups anyone may correct; the first confirmation counts.\n"
        "• Why: when an admin retrains me, confirmed digits are mixed into my training data and "
        "some are kept aside to measure how well I read your photos.\n"
        "• What I keep per answer: the 28x28 digit crops I looked at (never your photo), my "
        "answer and confidence, the confirmed digit, the model version, the chat type, the time, "
        "and a salted hash of your user id (never the id or your name).\n"
        "• /forget deletes everything you contributed: your digits and your corrections."
    )


def admin_only() -> str:
    return "Sorry, this command is for the bot's admins only."


def stats(
    *,
    metadata: dict[str, Any],
    backend: str,
    fallback_reason: str | None,
    predictions_served: int,
    average_answer_seconds: float | None,
    average_model_seconds: float | None,
    uptime_seconds: float,
) -> str:
    """The /stats text: the served model's metrics, then this process's counters."""
    version = escape(str(metadata.get("version", "?")))
    created = metadata.get("created")
    try:
        created_text = datetime.fromisoformat(created).strftime("%Y-%m-%d %H:%M %Z").strip()
    except (TypeError, ValueError):
        created_text = escape(str(created or "unknown date"))
    lines = [f"<b>Model</b> {version} ({escape(backend)}), trained {created_text}"]
    if fallback_reason:
        lines.append(f"⚠ serving a fall-back version: {escape(fallback_reason)}")
    details = [escape(str(metadata.get("arch", "?")))]
    if isinstance(metadata.get("params"), int):
        details.append(f"{metadata['params']:,} parameters")
    if isinstance(metadata.get("epochs"), int):
        details.append(plural(metadata["epochs"], "epoch"))
    lines.append("Architecture " + ", ".join(details))
    accuracy, loss = metadata.get("test_accuracy"), metadata.get("test_loss")
    if isinstance(accuracy, int | float) and isinstance(loss, int | float):
        lines.append(f"MNIST test: accuracy <b>{accuracy * 100:.2f} %</b>, loss {loss:.4f}")
    per_class = metadata.get("per_class_accuracy")
    if isinstance(per_class, list) and len(per_class) == 10:
        lines.append(
            "Per digit: "
            + "  ".join(f"{digit}: {value * 100:.1f}" for digit, value in enumerate(per_class))
            + " (%)"
        )
    lines.append("")
    lines.append(f"<b>Since start</b> (up {duration(uptime_seconds)})")
    served = f"Predictions served: {predictions_served:,}"
    if average_answer_seconds is not None and average_model_seconds is not None:
        served += (
            f", average time to answer {average_answer_seconds * 1000:.0f} ms "
            f"(download + model; the model alone {average_model_seconds * 1000:.1f} ms)"
        )
    lines.append(served)
    return "\n".join(lines)


def retrain_recipe(arch: str, epochs: int, full_epochs: int, train_limit: int | None) -> str:
    """One /stats line: what /retrain would train, and how it differs from the full recipe."""
    data = f"the first {train_limit:,} MNIST images" if train_limit else "all of MNIST"
    shorter = f" (the full {escape(arch)} recipe: {full_epochs})" if epochs != full_epochs else ""
    return (
        f"/retrain trains {escape(arch)} with the same recipe on {data}: "
        f"{plural(epochs, 'epoch')} by default{shorter}"
    )


def stats_image_captions() -> tuple[str, str]:
    return "Confusion matrix on the MNIST test set", "Training curves"


# --- /retrain ----------------------------------------------------------------------------------


def retrain_usage(argument: str, minimum: int, maximum: int, default: int) -> str:
    return (
        f"{escape(argument)!s} is not a number of epochs. Use /retrain or /retrain N with N "
        f"from {minimum} to {maximum} (default {default})."
    )


def retrain_started(
    arch: str,
    epochs: int,
    train_limit: int | None,
    user_digits: int = 0,
    holdout_digits: int = 0,
    user_weight: float = 1.0,
) -> str:
    data = f"the first {train_limit:,} MNIST training images" if train_limit else "MNIST"
    if user_digits:
        users = f" + {plural(user_digits, 'confirmed user digit')} (weight {user_weight:g})"
    else:
        users = " (no confirmed user digits to learn from yet)"
    held_out = (
        f"\n{plural(holdout_digits, 'more user digit')} held out to measure "
        "accuracy on users' photos."
        if holdout_digits
        else ""
    )
    return (
        f"Retraining: {escape(arch)}, {plural(epochs, 'epoch')} on {data}{users}.{held_out}\n"
        "Starting the training process… photos are still answered meanwhile."
    )


def retrain_progress(
    arch: str, report: EpochReport, train_limit: int | None, user_digits: int = 0
) -> str:
    data = f" on {train_limit:,} images" if train_limit else ""
    if user_digits:
        data += f" + {plural(user_digits, 'user digit')}"
    line = f"Epoch {report.epoch}/{report.epochs}: loss {report.loss:.4f}"
    if report.val_accuracy is not None:
        line += f", validation accuracy {report.val_accuracy * 100:.2f} %"
    if report.epoch < report.epochs:
        line += f", about {duration(report.seconds_left)} left"
    else:
        line += "\nEvaluating on the MNIST test set…"
    return f"Retraining ({escape(arch)}{data})\n{line}"


def retrain_busy(progress: str) -> str:
    return f"A retraining is already running; one at a time.\n\n{progress}"


def _accuracy_lines(comparison: Comparison, old_name: str) -> list[str]:
    """MNIST and user-photo accuracy, the candidate ("new") against the model it would replace."""
    old = "unknown" if comparison.old_mnist is None else f"{comparison.old_mnist * 100:.2f} %"
    lines = [
        f"MNIST test accuracy: new {comparison.new_mnist * 100:.2f} %, {old_name} {old} "
        f"(tolerance {comparison.mnist_tolerance:g} points)."
    ]
    if comparison.holdout_count == 0:
        lines.append("Accuracy on users' photos: no held-out user digits yet.")
    else:
        new_user = (
            "unknown" if comparison.new_user is None else f"{comparison.new_user * 100:.1f} %"
        )
        old_user = (
            "unknown" if comparison.old_user is None else f"{comparison.old_user * 100:.1f} %"
        )
        rule = f"tolerance {comparison.user_tolerance:g} points"
        if not comparison.user_enforced:
            rule += (
                f"; not enforced below {comparison.user_min_holdout} held-out digits, "
                "too few to judge"
            )
        held_out = plural(comparison.holdout_count, "held-out digit")
        lines.append(
            f"Accuracy on users' photos ({held_out}): new {new_user}, "
            f"{old_name} {old_user} ({rule})."
        )
    if comparison.user_digits:
        lines.append(
            f"Trained with {plural(comparison.user_digits, 'confirmed user digit')} "
            f"(weight {comparison.user_weight:g})."
        )
    return lines


def retrain_promoted(version: str, comparison: Comparison) -> str:
    return "\n".join(
        [
            f"✅ New model {escape(version)} is now serving.",
            *_accuracy_lines(comparison, "previous"),
        ]
    )


def retrain_rejected(comparison: Comparison) -> str:
    if not comparison.mnist_ok and comparison.old_mnist is not None:
        reason = (
            f"MNIST test accuracy {comparison.new_mnist * 100:.2f} % against "
            f"{comparison.old_mnist * 100:.2f} % for the current model (it may be at most "
            f"{comparison.mnist_tolerance:g} points lower)"
        )
    else:
        new_user = 0.0 if comparison.new_user is None else comparison.new_user
        old_user = 0.0 if comparison.old_user is None else comparison.old_user
        reason = (
            f"accuracy on users' photos {new_user * 100:.1f} % against "
            f"{old_user * 100:.1f} % for the current model (it may be at most "
            f"{comparison.user_tolerance:g} points lower)"
        )
    return "\n".join(
        [
            f"❌ Candidate not promoted: {reason}. The current model keeps serving.",
            *_accuracy_lines(comparison, "current"),
        ]
    )


def retrain_failed(reason: str) -> str:
    return (
        f"⚠ Retraining failed: {escape(reason)}\n"
        "The current model keeps serving; nothing was left behind. You can /retrain again."
    )


# --- corrections from users --------------------------------------------------------------------

BUTTON_RIGHT = "✅ right"
BUTTON_WRONG = "❌ wrong"
BUTTON_BACK = "↩ back"
# The answer text and what the buttons add below it are separated by one blank line; an answer
# itself never contains a blank line (see `answer`), so the footer can be replaced later.
FOOTER_SEPARATOR = "\n\n"


def button_save(number: str) -> str:
    return f"✅ save {number}"


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
        return f"✅ Confirmed: it is <b>{confirmed}</b>."
    return f"✏ Corrected: it is <b>{confirmed}</b>, not {predicted}."


def digit_question() -> str:
    return "Which digit is it? Tap it below."


def number_question() -> str:
    return (
        "Which number is it? Tap a wrong digit to change it, or reply to this message with "
        "the right number."
    )


def position_question(position: int) -> str:
    return f"Which is the {ordinal(position + 1)} digit?"


def thanks(predicted: str, confirmed: str) -> str:
    """The short notice after one's own confirmation was stored."""
    if predicted == confirmed:
        return f"Thanks! Confirmed: {confirmed}."
    return f"Thanks! Noted: it is {confirmed}. I learn from corrections when I am retrained."


def already_confirmed(confirmed: str) -> str:
    return f"Already confirmed as {confirmed}."


def confirmations_capped(per_day: int, total: int) -> str:
    return (
        f"You have reached the limit of corrections ({per_day} a day, {total} in all), so "
        "this one was not saved. Thank you for helping!"
    )


def stale_answer() -> str:
    return "This answer is no longer in my records, so it cannot be confirmed or corrected."


def unknown_button() -> str:
    return "This button no longer works."


def corrections_unavailable() -> str:
    return "Corrections cannot be saved right now; please try again later."


def typed_saved(predicted: str, confirmed: str) -> str:
    """The reply to a number typed as a reply to an answer."""
    text = thanks(predicted, confirmed)
    if len(confirmed) != len(predicted):
        text += (
            f" I found {plural(len(predicted), 'digit')} there, so this counts for the "
            "statistics but cannot be used for training."
        )
    return text


def typed_not_an_answer() -> str:
    return (
        "To correct me, reply with the right number to one of my answers (the message "
        "that starts with the digit)."
    )


def typed_too_long(maximum: int) -> str:
    return f"That is more digits than I read in one photo (at most {maximum})."


def forgotten(count: int) -> str:
    if count == 0:
        return "I have nothing from you: no digits and no corrections, so nothing was deleted."
    return (
        f"Done: {plural(count, 'item')} deleted (digits from your photos and the "
        "corrections you gave). A model already trained with them keeps what it learned "
        "until the next retraining."
    )


def feedback_stats(
    overall: FeedbackStats,
    served: FeedbackStats | None,
    served_version: str | None,
    *,
    html_format: bool = True,
) -> str:
    """The corrections part of /stats and `digitbot feedback stats` (HTML or plain text)."""

    def bold(text: str) -> str:
        return f"<b>{text}</b>" if html_format else text

    def safe(text: str) -> str:
        return escape(text) if html_format else text

    lines = [bold("Corrections from users")]
    lines.append(
        f"Answers recorded: {overall.collected:,}; confirmed: {overall.confirmed:,} "
        f"({overall.confirmed_right:,} right, {overall.confirmed_wrong:,} wrong)"
    )
    if served_version is not None and served is not None:
        if served.live_accuracy is None:
            lines.append(f"Live accuracy of {safe(served_version)}: no confirmed answers yet")
        else:
            lines.append(
                f"Live accuracy of {safe(served_version)}: "
                f"{percent(served.live_accuracy)} on "
                f"{plural(served.confirmed, 'confirmed answer')}"
            )
    if overall.live_accuracy is not None:
        lines.append(
            f"Live accuracy, all models: {percent(overall.live_accuracy)} on "
            f"{plural(overall.confirmed, 'confirmed answer')}"
        )
    confusion = overall.confusion
    per_digit = [
        (digit, confusion[digit][digit], sum(confusion[digit]))
        for digit in range(10)
        if sum(confusion[digit])
    ]
    if per_digit:
        lines.append(
            "Per digit (right/confirmed): "
            + "  ".join(f"{digit}: {right}/{total}" for digit, right, total in per_digit)
        )
    mistakes = sorted(
        (
            (confusion[true][read], true, read)
            for true in range(10)
            for read in range(10)
            if true != read and confusion[true][read]
        ),
        key=lambda item: (-item[0], item[1], item[2]),
    )
    if mistakes:
        shown = ", ".join(f"{true} read as {read} ×{count}" for count, true, read in mistakes[:10])
        more = f" (+{len(mistakes) - 10} more)" if len(mistakes) > 10 else ""
        lines.append(f"Mistakes users corrected: {shown}{more}")
    return "\n".join(lines)
