"""The classifier's say where the cut between digits is unclear (issue 13's recognition-driven
splitting and merging): core.segmentation offers other readings of a few groups (a looser cut
of a wide group, one digit made of two narrow neighbours), core.preprocess crops them, and the
classifier's confidence picks the reading.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from core.model import NO_DIGIT
from core.segmentation import (
    Alternative,
    Box,
    Segmentation,
    interlocked_cuts,
    loose_cut,
)

Crop = Callable[[np.ndarray, Box], np.ndarray]  # a digit's mask and box -> its 28x28 crop
Judge = Callable[[np.ndarray], np.ndarray]  # (n, 28, 28) crops -> (n, 10) probabilities
Judged = tuple[np.ndarray, Box, np.ndarray | None]  # a digit's crop, box and probabilities
# A split is taken when both parts are read at least this surely (and no less surely than the
# whole, unless the group is SURE_WIDE times wider than tall); a merge when the one digit is
# read at least MERGE_SURE surely and MERGE_MARGIN more surely than either part.
SPLIT_SURE = 0.8
SURE_WIDE = 1.3
# A group narrower than WIDE_DIGIT (an interlocked pair, or one digit) is split only when the
# one digit is read less surely than NARROW_UNSURE and both parts NARROW_MARGIN more surely.
NARROW_UNSURE = 0.9
NARROW_MARGIN = 0.1
MERGE_SURE = 0.9
MERGE_MARGIN = 0.1
# A crop read as no digit is cut as two interlocked digits only beside this many sure digits.
NUMBER_AROUND = 2


def choose(found: Segmentation, crop: Crop, judge: Judge | None) -> list[list[Judged]]:
    """The 28x28 crop, box and (when judged) probabilities of every digit, line by line, each
    unclear cut decided by the classifier's confidence: a wide group is read as two digits when
    both are clearly digits (and, unless it is far wider than a digit, no less sure than the
    whole; a group narrower than a wide digit only when the one digit is unsure); two narrow
    neighbours as one when that one is clearly a digit and surer than either part. Then a
    second look (_second_look) at crops that may still be two digits."""
    lines = [[(crop(mask, box), box) for mask, box in line] for line in found.lines]
    if judge is None:
        return [[(crop, box, None) for crop, box in line] for line in lines]
    if not lines:
        return []
    masks = [[mask for mask, _ in line] for line in found.lines]
    others = [
        [(crop(mask, box), box) for mask, box in other.digits] for other in found.alternatives
    ]
    batch = [crop for line in lines for crop, _ in line] + [
        crop for other in others for crop, _ in other
    ]
    answers = judge(np.stack(batch))
    sure = answers[:, :10].max(axis=1)  # how surely a digit: a "no digit" column does not count
    offsets = np.cumsum([0] + [len(line) for line in lines])
    judged = [
        [
            (crop, box, answers[int(offsets[index]) + position])
            for position, (crop, box) in enumerate(line)
        ]
        for index, line in enumerate(lines)
    ]
    position = int(offsets[-1])
    chosen = []
    for other, crops in zip(found.alternatives, others, strict=True):
        first = int(offsets[other.line])
        now = sure[first + other.start : first + other.stop]
        then = sure[position : position + len(crops)]
        replacement = [
            (crop, box, answers[position + offset]) for offset, (crop, box) in enumerate(crops)
        ]
        position += len(crops)
        if len(crops) > len(now):  # a split
            left, top, right, bottom = found.lines[other.line][other.start][1]
            wide = right - left >= SURE_WIDE * (bottom - top)
            better = float(then.min()) >= SPLIT_SURE and (wide or then.min() >= now.min())
        else:  # a merge
            better = float(then.min()) >= MERGE_SURE and then.min() > now.min() + MERGE_MARGIN
        if better:
            chosen.append((float(then.min()), other, replacement))
    # Of readings that overlap (several cuts of one group), the surest; then replace from the
    # end of each line, so earlier indices stay valid.
    kept: list[tuple[Alternative, list[tuple[np.ndarray, Box, np.ndarray]]]] = []
    for _, other, replacement in sorted(chosen, key=lambda item: -item[0]):
        if all(
            taken.line != other.line or taken.stop <= other.start or other.stop <= taken.start
            for taken, _ in kept
        ):
            kept.append((other, replacement))
    for other, replacement in sorted(kept, key=lambda item: (item[0].line, -item[0].start)):
        judged[other.line][other.start : other.stop] = replacement
        masks[other.line][other.start : other.stop] = [mask for mask, _ in other.digits]
    return _second_look(judged, masks, crop, judge)


def _second_look(
    judged: list[list[Judged]], masks: list[list[np.ndarray]], crop: Crop, judge: Judge
) -> list[list[Judged]]:
    """Cuts asked for once the crops are read, where a crop may be two digits: one the
    classifier is unsure of, narrower than a wide digit (its loose pair cut,
    core.segmentation.loose_cut), and one read as no digit in a line with at least
    NUMBER_AROUND sure digits besides (up to three cuts where interlocked digits may meet,
    interlocked_cuts; elsewhere such a crop is what the model says: a letter, a mark, and a
    "w" would cut into two 1s). The surest cut whose parts are both read at least SPLIT_SURE
    and NARROW_MARGIN more surely than the whole replaces the crop; otherwise it stays."""
    offers: list[tuple[int, int, float, list[tuple[np.ndarray, Box]]]] = []
    for index, line in enumerate(judged):
        around = sum(
            row is not None and int(np.argmax(row)) < NO_DIGIT and float(row.max()) >= SPLIT_SURE
            for _, _, row in line
        )
        for position, (_, box, row) in enumerate(line):
            if row is None:
                continue
            mask = masks[index][position]
            sure = float(row[:NO_DIGIT].max())
            cuts = loose_cut(mask, box) if sure < NARROW_UNSURE else []
            no_digit = len(row) > NO_DIGIT and int(np.argmax(row)) == NO_DIGIT
            if no_digit and around >= NUMBER_AROUND:
                cuts += interlocked_cuts(mask, box)
            offers.extend((index, position, sure, cut) for cut in cuts)
    if not offers:
        return judged
    crops = [[crop(mask, box) for mask, box in cut] for _, _, _, cut in offers]
    answers = iter(judge(np.stack([part for parts in crops for part in parts])))
    best: dict[tuple[int, int], tuple[float, list[Judged]]] = {}
    for (index, position, whole, cut), parts in zip(offers, crops, strict=True):
        replacement = [
            (part, box, next(answers)) for part, (_, box) in zip(parts, cut, strict=True)
        ]
        sure = min(float(row[:NO_DIGIT].max()) for _, _, row in replacement)
        better = sure >= SPLIT_SURE and sure >= whole + NARROW_MARGIN
        if better and sure > best.get((index, position), (0.0, []))[0]:
            best[(index, position)] = (sure, replacement)
    # From the end of each line, so earlier positions stay valid.
    for (index, position), (_, replacement) in sorted(best.items(), reverse=True):
        judged[index][position : position + 1] = replacement
    return judged
