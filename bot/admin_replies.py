"""The admins' texts: /stats, /retrain's reports, and the corrections figures (also the CLI's).

Like bot/replies.py (the texts everyone sees, and the helpers both use), each text is marked for
translation and built when it is sent, in the language of the admin who asked.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from bot.i18n import _, date_time, decimal, duration, ngettext, number, percent
from bot.replies import escape
from core.recipes import EpochReport

if TYPE_CHECKING:
    from bot.feedback.samples import FeedbackStats
    from core.promotion import Comparison


def points(value: float) -> str:
    """Accuracy points (a tolerance of 0.1 or 2 points); no plural forms: 0.1 is not a count."""
    return _("{value} points").format(value=decimal(value))


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
        created_text = date_time(datetime.fromisoformat(str(created)))
    except (TypeError, ValueError):
        created_text = escape(str(created or "?"))
    lines = [
        _("<b>Model</b> {version} ({backend}), trained {date}").format(
            version=version, backend=escape(backend), date=created_text
        )
    ]
    if fallback_reason:
        lines.append(
            "⚠ " + _("serving a fall-back version: {reason}").format(reason=escape(fallback_reason))
        )
    details = [escape(str(metadata.get("arch", "?")))]
    if isinstance(metadata.get("params"), int):
        details.append(
            ngettext("{count} parameter", "{count} parameters", metadata["params"]).format(
                count=number(metadata["params"])
            )
        )
    if isinstance(metadata.get("epochs"), int):
        details.append(epochs_text(metadata["epochs"]))
    lines.append(_("Architecture: {details}").format(details=", ".join(details)))
    accuracy, loss = metadata.get("test_accuracy"), metadata.get("test_loss")
    if isinstance(accuracy, int | float) and isinstance(loss, int | float):
        lines.append(
            _("MNIST test: accuracy {accuracy}, loss {loss}").format(
                accuracy=f"<b>{percent(accuracy, 2)}</b>", loss=number(loss, 4)
            )
        )
    per_class = metadata.get("per_class_accuracy")
    if isinstance(per_class, list) and len(per_class) == 10:
        lines.append(
            _("Per digit: {values}").format(
                values="  ".join(
                    f"{digit}: {percent(value)}" for digit, value in enumerate(per_class)
                )
            )
        )
    lines.append("")
    lines.append(
        "<b>"
        + _("Since start")
        + "</b> "
        + _("(up {uptime})").format(uptime=duration(uptime_seconds))
    )
    served = _("Predictions served: {count}").format(count=number(predictions_served))
    if average_answer_seconds is not None and average_model_seconds is not None:
        served += _(
            ", average time to answer {answer} ms (download + model; the model alone {model} ms)"
        ).format(
            answer=number(average_answer_seconds * 1000),
            model=number(average_model_seconds * 1000, 1),
        )
    lines.append(served)
    return "\n".join(lines)


def epochs_text(count: int) -> str:
    return ngettext("{count} epoch", "{count} epochs", count).format(count=number(count))


def retrain_recipe(
    epochs: int, full_arch: str, full_epochs: int | None, train_limit: int | None
) -> str:
    """One /stats line: what /retrain and /retrain full would train."""
    if train_limit:
        text = _(
            "/retrain fine-tunes the served model for {epochs} on the first {limit} MNIST "
            "images and the confirmed user digits"
        ).format(limit=number(train_limit), epochs=epochs_text(epochs))
    else:
        text = _(
            "/retrain fine-tunes the served model for {epochs} on all of MNIST and the "
            "confirmed user digits"
        ).format(epochs=epochs_text(epochs))
    full = _("/retrain full trains {arch} from scratch").format(arch=escape(full_arch))
    if full_epochs:
        full += f" ({epochs_text(full_epochs)})"
    return f"{text}; {full}"


def kept_versions(kept: dict[str, list[str]]) -> str:
    """One /stats line: the versions in the model folder and why each is kept."""
    reasons = {
        "serving": _("serving"),
        "newest": _("newest"),
        "in the repository": _("in the repository"),
        "recent": _("recent"),
    }
    parts = [
        f"{escape(version)} ({', '.join(reasons.get(why, why) for why in whys)})"
        for version, whys in kept.items()
    ]
    return _("Model versions kept: {versions}").format(versions="; ".join(parts) or "-")


def stats_image_captions() -> tuple[str, str]:
    return _("Confusion matrix on the MNIST test set"), _("Training curves")


# --- /retrain ----------------------------------------------------------------------------------


def retrain_usage(argument: str, minimum: int, maximum: int, default: int) -> str:
    return _(
        "{argument} is not a number of epochs. Use /retrain or /retrain N to fine-tune the "
        "served model, /retrain full [N] to train from scratch, with N from {minimum} to "
        "{maximum} (default {default}), or /retrain cancel."
    ).format(argument=escape(argument), minimum=minimum, maximum=maximum, default=default)


def retrain_needs_mnist(default_file: object) -> str:
    return _(
        "Retraining needs MNIST: put mnist.npz at {path} in the project folder, or set "
        "MNIST_PATH in .env, then /retrain again."
    ).format(path=escape(str(default_file)))


def retrain_nothing_to_cancel() -> str:
    return _("No retraining is running; nothing to cancel.")


def retrain_cancelled() -> str:
    return _("Retraining cancelled. The current model keeps serving; nothing was left behind.")


def retrain_started(
    arch: str,
    epochs: int,
    train_limit: int | None,
    user_digits: int = 0,
    holdout_digits: int = 0,
    user_weight: float = 1.0,
    *,
    fine_tune_from: str | None = None,
) -> str:
    if train_limit:
        data = _("the first {count} MNIST training images").format(count=number(train_limit))
    else:
        data = "MNIST"
    if fine_tune_from:
        what = _("fine-tuning {version} ({arch})").format(
            version=escape(fine_tune_from), arch=escape(arch)
        )
    else:
        what = _("{arch} from scratch").format(arch=escape(arch))
    text = _("Retraining: {arch}, {epochs} on {data}").format(
        arch=what, epochs=epochs_text(epochs), data=data
    )
    if user_digits:
        text += " " + ngettext(
            "+ {count} confirmed user digit (weight {weight}).",
            "+ {count} confirmed user digits (weight {weight}).",
            user_digits,
        ).format(count=number(user_digits), weight=decimal(user_weight))
    else:
        text += " " + _("(no confirmed user digits to learn from yet).")
    if holdout_digits:
        text += "\n" + ngettext(
            "{count} more user digit held out to measure accuracy on users' photos.",
            "{count} more user digits held out to measure accuracy on users' photos.",
            holdout_digits,
        ).format(count=number(holdout_digits))
    return (
        text
        + "\n"
        + _("Starting the training process… photos are still answered meanwhile.")
        + " "
        + _("(/retrain cancel stops it)")
    )


def retrain_progress(
    arch: str, report: EpochReport, train_limit: int | None, user_digits: int = 0
) -> str:
    title = _("Retraining ({arch})").format(arch=escape(arch))
    if train_limit:
        title = _("Retraining ({arch} on {count} images)").format(
            arch=escape(arch), count=number(train_limit)
        )
    if user_digits:
        title += " " + ngettext(
            "+ {count} user digit", "+ {count} user digits", user_digits
        ).format(count=number(user_digits))
    line = _("Epoch {epoch}/{epochs}: loss {loss}").format(
        epoch=report.epoch, epochs=report.epochs, loss=number(report.loss, 4)
    )
    if report.val_accuracy is not None:
        line += _(", validation accuracy {accuracy}").format(
            accuracy=percent(report.val_accuracy, 2)
        )
    if report.epoch < report.epochs:
        line += _(", about {time} left").format(time=duration(report.seconds_left))
    else:
        line += "\n" + _("Evaluating on the MNIST test set…")
    return f"{title}\n{line}"


def retrain_mnist_missing(path: str) -> str:
    """/retrain cannot start: MNIST is not where MNIST_PATH says."""
    return (
        _("MNIST is not at {path}.").format(path=escape(path))
        + " "
        + _(
            "/retrain needs MNIST: set MNIST_PATH to an .npz file (x_train y_train x_test "
            "y_test) or a folder with the four IDX files, then restart the bot."
        )
    )


def retrain_queued() -> str:
    """The status message of a /retrain queued for `digitbot worker` (RETRAIN_ON_WORKER)."""
    return _(
        "Retraining queued: a training worker takes it and edits this message as it goes. "
        "/retrain cancel stops it."
    )


def retrain_running_for(seconds: float) -> str:
    return _("(running for {time})").format(time=duration(seconds))


def retrain_busy(progress: str) -> str:
    return _("A retraining is already running; one at a time.") + f"\n\n{progress}"


def _evidence_lines(comparison: Comparison, promoted: bool) -> list[str]:
    """The candidate ("new") against the model it would replace, figure by figure."""
    new, old, rule = comparison.candidate, comparison.current, comparison.rule
    unknown = _("unknown")

    def pct(value: float | None, digits: int = 1) -> str:
        return unknown if value is None else percent(value, digits)

    template = (
        _("MNIST test accuracy: new {new}, previous {old} (tolerance {tolerance}).")
        if promoted
        else _("MNIST test accuracy: new {new}, current {old} (tolerance {tolerance}).")
    )
    lines = [
        template.format(
            new=pct(new.mnist, 2), old=pct(old.mnist, 2), tolerance=points(rule.mnist_tolerance)
        )
    ]
    if comparison.holdout_count == 0:
        lines.append(_("Accuracy on users' photos: no held-out user digits yet."))
    else:
        rule_text = _("tolerance {tolerance}").format(tolerance=points(rule.user_tolerance))
        if not comparison.user_enforced:
            rule_text += "; " + _(
                "not enforced below {count} held-out digits, too few to judge"
            ).format(count=rule.user_min_holdout)
        template = (
            ngettext(
                "Accuracy on users' photos ({count} held-out digit): new {new}, previous {old} "
                "({rule}).",
                "Accuracy on users' photos ({count} held-out digits): new {new}, previous {old} "
                "({rule}).",
                comparison.holdout_count,
            )
            if promoted
            else ngettext(
                "Accuracy on users' photos ({count} held-out digit): new {new}, current {old} "
                "({rule}).",
                "Accuracy on users' photos ({count} held-out digits): new {new}, current {old} "
                "({rule}).",
                comparison.holdout_count,
            )
        )
        lines.append(
            template.format(
                count=number(comparison.holdout_count),
                new=pct(new.user),
                old=pct(old.user),
                rule=rule_text,
            )
        )
    if comparison.corrected_count:
        template = (
            _("Digits users corrected, now read right: new {new} of {count}, previous {old}.")
            if promoted
            else _("Digits users corrected, now read right: new {new} of {count}, current {old}.")
        )
        lines.append(
            template.format(
                new=number(new.corrected_right),
                count=number(comparison.corrected_count),
                old=number(old.corrected_right),
            )
        )
    if comparison.user_digits:
        lines.append(
            ngettext(
                "Trained with {count} confirmed user digit (weight {weight}).",
                "Trained with {count} confirmed user digits (weight {weight}).",
                comparison.user_digits,
            ).format(count=number(comparison.user_digits), weight=decimal(comparison.user_weight))
        )
    return lines


def retrain_promoted(version: str, comparison: Comparison) -> str:
    return "\n".join(
        [
            "✅ " + _("New model {version} is now serving.").format(version=escape(version)),
            *_evidence_lines(comparison, promoted=True),
        ]
    )


def rejection_reason(comparison: Comparison) -> str:
    """Why the rule said no, in words (the first rule that failed)."""
    new, old, rule = comparison.candidate, comparison.current, comparison.rule
    if not comparison.mnist_ok:
        return _(
            "MNIST test accuracy {new} against {old} for the current model (it may be at most "
            "{tolerance} lower)"
        ).format(
            new=percent(new.mnist or 0.0, 2),
            old=percent(old.mnist or 0.0, 2),
            tolerance=points(rule.mnist_tolerance),
        )
    if not comparison.user_ok:
        return _(
            "accuracy on users' photos {new} against {old} for the current model (it may be at "
            "most {tolerance} lower)"
        ).format(
            new=percent(new.user or 0.0),
            old=percent(old.user or 0.0),
            tolerance=points(rule.user_tolerance),
        )
    return _(
        "it reads {new} of the {count} digits users corrected right, the current model {old}"
    ).format(
        new=number(new.corrected_right),
        count=number(comparison.corrected_count),
        old=number(old.corrected_right),
    )


def retrain_rejected(comparison: Comparison) -> str:
    return "\n".join(
        [
            "❌ "
            + _("Candidate not promoted: {reason}. The current model keeps serving.").format(
                reason=rejection_reason(comparison)
            ),
            *_evidence_lines(comparison, promoted=False),
        ]
    )


def retrain_failed(reason: str) -> str:
    return (
        "⚠ "
        + _("Retraining failed: {reason}").format(reason=escape(reason))
        + "\n"
        + _("The current model keeps serving; nothing was left behind. You can /retrain again.")
    )


# --- corrections from users (/stats and `digitbot feedback stats`) ----------------------------


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

    def live(stats: FeedbackStats) -> str:
        return ngettext(
            "{accuracy} on {count} confirmed answer",
            "{accuracy} on {count} confirmed answers",
            stats.confirmed,
        ).format(accuracy=percent(stats.live_accuracy or 0.0), count=number(stats.confirmed))

    lines = [bold(_("Corrections from users"))]
    lines.append(
        _(
            "Answers recorded: {collected}; confirmed: {confirmed} ({right} right, {wrong} wrong)"
        ).format(
            collected=number(overall.collected),
            confirmed=number(overall.confirmed),
            right=number(overall.confirmed_right),
            wrong=number(overall.confirmed_wrong),
        )
    )
    if served_version is not None and served is not None:
        if served.live_accuracy is None:
            lines.append(
                _("Live accuracy of {version}: no confirmed answers yet").format(
                    version=safe(served_version)
                )
            )
        else:
            lines.append(
                _("Live accuracy of {version}: {figures}").format(
                    version=safe(served_version), figures=live(served)
                )
            )
    if overall.live_accuracy is not None:
        lines.append(_("Live accuracy, all models: {figures}").format(figures=live(overall)))
    confusion = overall.confusion
    per_digit = [
        (digit, confusion[digit][digit], sum(confusion[digit]))
        for digit in range(10)
        if sum(confusion[digit])
    ]
    if per_digit:
        lines.append(
            _("Per digit (right/confirmed): {values}").format(
                values="  ".join(f"{digit}: {right}/{total}" for digit, right, total in per_digit)
            )
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
        shown = ", ".join(
            _("{true} read as {read} ×{count}").format(true=true, read=read, count=count)
            for count, true, read in mistakes[:10]
        )
        if len(mistakes) > 10:
            shown += " " + _("(+{count} more)").format(count=len(mistakes) - 10)
        lines.append(_("Mistakes users corrected: {mistakes}").format(mistakes=shown))
    return "\n".join(lines)
