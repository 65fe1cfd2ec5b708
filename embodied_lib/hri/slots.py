"""Numbers from the words that say them: slot tags on tokens -> spans of the command -> values -> the decision.

The model tags each token with a slot (``commands.TAGS``: B-/I- of row, col, distance, angle, or O) and classifies
the sentence's colour, move direction and turn sense. This module turns that into what the robot does, the same
way the Rust pipeline does (native/rust/hri-pipeline, tested equal on the golden commands):

    tags + the tokenizer's offsets --slot_spans--> "forty-five degrees" --read_number--> 45.0
    values + classes --decide--> {"action", "params", "vector", "refused", "reason"}

``read_number`` is text2num (the Rust crate's PyO3 binding, threshold 0) plus the schema's small word table
(``commands.SLOT_WORDS``: "a", "half", "quarter", units); a slot it cannot read exactly, a value said twice
differently, or a value the action needs and the words do not give is refused with the reason, never guessed.
"""
from __future__ import annotations

import numpy as np
from text_to_num import Token, alpha2digit, find_numbers

from embodied_lib.hri.commands import (ACTIONS, BY_NAME, COLOUR_CLASSES, COLOURS, DIRECTION_CLASSES, DIRECTION_VECTOR,
                                       MAX_ANGLE_DEG, NEEDS, SLOT_PARAMETER, SLOT_WORDS, SLOTS, TAGS, TURN_CLASSES,
                                       neutral_vector, normalise, out_of_range)

ARTICLES = ("a", "an")          # an amount only before a unit ("a metre"): "rotate a bit" says no number
_SAID_AS = {"row": "row", "col": "column", "distance": "distance", "angle": "angle"}


# -- tokens <-> spans -----------------------------------------------------------------------------

def token_tags(offsets, spans: dict) -> list[int]:
    """Training targets: the tag index of each token, from the command's character spans (``Command.spans``).
    Special tokens (offsets (0, 0)) are O; the first token inside a span is B-, the rest I-."""
    tags = []
    previous = None
    for start, end in offsets:
        tag = 0
        if end > start:
            for slot, ranges in spans.items():
                for k, (a, b) in enumerate(ranges):
                    if start < b and end > a:
                        tag = TAGS.index(("I-" if previous == (slot, k) else "B-") + slot)
                        previous = (slot, k)
                        break
                if tag:
                    break
        if not tag:
            previous = None
        tags.append(tag)
    return tags


def word_tags(tag_ids, word_ids) -> list[int]:
    """Tags by whole words: a word (its word pieces, ``word_ids``) keeps its tags only when every piece is tagged
    with the same slot; otherwise all its pieces are O. "eighty anticlockwise" with "anti" tagged and "##clockwise"
    not reads "eighty", never "eighty anti"."""
    tags = [int(t) for t in tag_ids]
    pieces: dict[int, list[int]] = {}
    for i, w in enumerate(word_ids):
        if w is not None and i < len(tags):
            pieces.setdefault(w, []).append(i)
    for indices in pieces.values():
        slots = {TAGS[tags[i]].split("-", 1)[-1] if tags[i] else None for i in indices}
        if len(slots) > 1:
            for i in indices:
                tags[i] = 0
    return tags


def slot_spans(text: str, offsets, tag_ids, word_ids=None) -> dict[str, list[str]]:
    """The words of each slot: per token its tag (by whole words, ``word_tags``, when ``word_ids`` are given); a
    span starts at B- (or at an I- not continuing its slot) and goes on over I- tags of its slot; its text runs
    from the first token's start offset to the last one's end, widened to every number it touches
    (``number_ranges``: "row one hundred" with only "one" tagged reads one hundred, never one), taking in a '-'
    right before it when that is a minus sign (not a hyphen inside a word)."""
    return {slot: [text[a:b] for a, b, _ in ranges] for slot, ranges in _span_ranges(text, offsets, tag_ids, word_ids).items()}


_SPACES = " \t\n\r"


class _Word(Token):
    """One word of the command as text2num's ``find_numbers`` reads it (ASCII lower case, as in Rust)."""

    def __init__(self, word: str):
        self.word = word.lower() if word.isascii() else word

    def text(self) -> str:
        return self.word


def _words(text: str) -> list[tuple[int, int]]:
    """The command as text2num tokens, as character ranges: ASCII words (hyphens inside), digit numbers with a
    decimal part, runs of spaces, and every other character alone (the Rust pipeline splits the same way)."""
    out, i, n = [], 0, len(text)
    while i < n:
        j = i + 1
        if text[i].isascii() and text[i].isalpha():
            while j < n and text[j].isascii() and (text[j].isalpha() or (text[j] == "-" and j + 1 < n and text[j + 1].isascii()
                                                                          and text[j + 1].isalpha())):
                j += 1
        elif "0" <= text[i] <= "9":
            while j < n and "0" <= text[j] <= "9":
                j += 1
            if j + 1 < n and text[j] == "." and "0" <= text[j + 1] <= "9":
                j += 2
                while j < n and "0" <= text[j] <= "9":
                    j += 1
        elif text[i] in _SPACES:
            while j < n and text[j] in _SPACES:
                j += 1
        out.append((i, j))
        i = j
    return out


def number_ranges(text: str) -> list[tuple[int, int]]:
    """Character ranges of the numbers the command says, each one whole: digits ("3", "0.25") and numbers in words
    as text2num's ``find_numbers`` finds them at threshold 0 ("one hundred and fifty", "ninety-nine", "second")."""
    words = _words(text)
    ranges = [(a, b) for a, b in words if "0" <= text[a] <= "9"]
    ranges += [(words[o.start][0], words[o.end - 1][1])
               for o in find_numbers([_Word(text[a:b]) for a, b in words], "en", 0.0)]
    return sorted(ranges)


def _span_ranges(text: str, offsets, tag_ids, word_ids=None) -> dict[str, list[tuple[int, int, str | None]]]:
    """``slot_spans`` as character ranges of ``text``, each with a problem: a number touched by two slots' spans
    ("ninety" tagged row and "nine" column in "ninety-nine") is not read as either."""
    if word_ids is not None:
        tag_ids = word_tags(tag_ids, word_ids)
    spans: dict[str, list[list[int]]] = {}
    current = None
    for (start, end), tag in zip(offsets, tag_ids):
        name = TAGS[int(tag)]
        if end <= start or name == "O":
            current = None
            continue
        bio, slot = name.split("-", 1)
        if bio == "I" and current is not None and current[0] == slot:
            current[1][1] = end
        else:
            current = (slot, [start, end])
            spans.setdefault(slot, []).append(current[1])
    numbers = number_ranges(text) if spans else []
    touched: dict[tuple[int, int], set] = {}
    for slot, ranges in spans.items():
        for span in ranges:
            start, end = span
            for a, b in numbers:
                if a < end and b > start:
                    span[0], span[1] = min(span[0], a), max(span[1], b)
                    touched.setdefault((a, b), set()).add(slot)
    split = [(a, b, sorted(slots, key=SLOTS.index)) for (a, b), slots in touched.items() if len(slots) > 1]
    out = {}
    for slot, ranges in spans.items():
        out[slot] = []
        for start, end in ranges:
            problem = next((f"{text[a:b]!r} is tagged as both the {' and the '.join(_SAID_AS[s] for s in slots)}"
                            for a, b, slots in split if a < end and b > start), None)
            if start > 0 and text[start - 1] == "-" and (start < 2 or not text[start - 2].isalnum()):
                start -= 1
            if (start, end, problem) not in out[slot]:   # two pieces of one number are one reading
                out[slot].append((start, end, problem))
    return out


def untagged_numbers(text: str, offsets, tag_ids, word_ids=None, table: dict = SLOT_WORDS) -> list[str]:
    """Numbers the command says outside every slot span (text2num at the table's ``untagged_threshold``, on the
    text with the spans blanked out), as the Rust pipeline finds them: a value the words give that nobody read."""
    return _untagged(text, _span_ranges(text, offsets, tag_ids, word_ids), table)


def _untagged(text: str, spans: dict, table: dict) -> list[str]:
    chars = list(text)
    for ranges in spans.values():
        for start, end, _ in ranges:
            chars[start:end] = " " * (end - start)
    rest = alpha2digit("".join(chars).lower(), "en", threshold=table["untagged_threshold"])
    return [item for item in _items(rest) if _is_number(item)]


# -- words -> a number ----------------------------------------------------------------------------

def _items(text: str) -> list[str]:
    """A slot's words after text2num, as the Rust pipeline splits them: numbers ('-'? ASCII digits, '.' digits
    once) and words (letters, hyphens between letters); every other character separates."""
    items, i, n = [], 0, len(text)

    def digit(k):
        return k < n and "0" <= text[k] <= "9"

    while i < n:
        if digit(i) or (text[i] == "-" and digit(i + 1)):
            j = i + 1
            while digit(j):
                j += 1
            if j < n and text[j] == "." and digit(j + 1):
                j += 1
                while digit(j):
                    j += 1
            items.append(text[i:j])
            i = j
        elif text[i].isalpha():
            j = i + 1
            while j < n and (text[j].isalpha() or (text[j] == "-" and j + 1 < n and text[j + 1].isalpha())):
                j += 1
            items.append(text[i:j])
            i = j
        else:
            i += 1
    return items


def _is_number(item: str) -> bool:
    return "0" <= item[0] <= "9" or item[0] == "-"


def _quantity_items(slot: str, words: str, table: dict) -> list[str]:
    """The slot's words after text2num (threshold 0) from the first one that says how much: a number, an article,
    an amount, a unit of the slot or an ignored word. Words before it are the tagger's border, not the number's
    ("creep twenty cm", "over half a turn"); words after it are all read ("90 radians" must not be 90 degrees)."""
    items = _items(alpha2digit(words.lower(), "en", threshold=0))
    for k, item in enumerate(items):
        if (_is_number(item) or item in ARTICLES or item in table["slot_amounts"].get(slot, {}) or item in table["amounts"]
                or item in table["units"].get(slot, {}) or item in table["ignored"]):
            return items[k:]
    return []


def read_number(slot: str, words: str, table: dict = SLOT_WORDS) -> tuple[float | None, str | None]:
    """``(value, None)`` or ``(None, why not)`` for the words of one slot, in the slot's unit (cells, cm, degrees).

    text2num turns number words into digits ("one hundred and fifty five" -> 155, "forty-five" -> 45, "zero point
    five" -> 0.5); words before the first that is one of the below are left out (the span's border); then every
    word must be a number, an amount of the table, one unit of the slot, or ignored.
    The value is the product of the amounts and the unit. At most one number; an article counts only before a
    unit; a slot with no default unit needs one said."""
    return _read_items(slot, words, _quantity_items(slot, words, table), table)


def _read_items(slot: str, words: str, items: list[str], table: dict) -> tuple[float | None, str | None]:
    """``read_number`` over the slot's ``_quantity_items`` (``words`` only names them in a problem)."""
    amounts, numbers, unit, article = [], 0, None, False
    slot_amounts = table["slot_amounts"].get(slot, {})
    units = table["units"].get(slot, {})
    for item in items:
        if _is_number(item):
            amounts.append(float(item))
            numbers += 1
        elif item in ARTICLES:
            article = True
        elif item in slot_amounts:
            amounts.append(float(slot_amounts[item]))
        elif item in table["amounts"]:
            amounts.append(float(table["amounts"][item]))
        elif item in units:
            if unit is not None:
                return None, f"two units in {words!r}"
            unit = float(units[item])
        elif item not in table["ignored"]:
            return None, f"{item!r} in {words!r} is not a number"
    if numbers > 1:
        return None, f"more than one number in {words!r}"
    if article and unit is not None and not amounts:
        amounts.append(1.0)          # "a metre"
    if not amounts:
        return None, f"no number in {words!r}"
    if unit is None:
        unit = table["default_unit"].get(slot)
        if unit is None:
            return None, f"no unit in {words!r} (say cm or m)"
    value = 1.0
    for amount in amounts:      # left to right, as the Rust pipeline multiplies
        value *= amount
    value *= unit
    if not np.isfinite(value):
        return None, f"{words!r} is too large to be a number"
    if slot in table["whole"] and not value.is_integer():
        return None, f"{words!r} is not a whole number"
    return value, None


def read_slots(text: str, offsets, tag_ids, word_ids=None, table: dict = SLOT_WORDS) -> dict[str, list[dict]]:
    """Every slot span of the command with its reading: ``slot -> [{"words", "value", "problem"}]``."""
    return _readings(text, _span_ranges(text, offsets, tag_ids, word_ids), table)


def _readings(text: str, spans: dict, table: dict) -> dict[str, list[dict]]:
    out = {}
    for slot, ranges in spans.items():
        out[slot] = []
        for start, end, problem in ranges:
            words = text[start:end]
            if problem:
                out[slot].append({"words": words, "value": None, "problem": problem})
                continue
            items = _quantity_items(slot, words, table)
            if items:   # none: a word tagged by mistake that says no number at all ("creep" in "creep 20 cm")
                value, why = _read_items(slot, words, items, table)
                out[slot].append({"words": words, "value": value, "problem": why})
    return out


# -- the decision --------------------------------------------------------------------------------


def _one_value(slot: str, readings: dict) -> tuple[float | None, str | None]:
    """The single value the words give a slot, or why there is none."""
    found = readings.get(slot, [])
    if not found:
        return None, f"the command says no {_SAID_AS[slot]}"
    for r in found:
        if r["problem"]:
            return None, f"cannot read the {_SAID_AS[slot]}: {r['problem']}"
    values = sorted({r["value"] for r in found})
    if len(values) > 1:
        return None, f"two different values for the {_SAID_AS[slot]} ({', '.join(f'{v:g}' for v in values)})"
    return values[0], None


def decide(action_probs, readings: dict, colour_probs, direction_probs, turn_probs, threshold: float,
           untagged: list[str] = ()) -> dict:
    """What the robot does with one command, the same in Python, Rust and the C ABI the controller calls:
    ``{"action", "params", "vector", "confidence", "refused": None | "low confidence" | "incomplete" |
    "out of range", "reason"}``. The threshold judges the action type; then every value the action needs
    (``commands.NEEDS``) must be said exactly once, readably, and no number may be said outside the slots
    (``untagged``: "row 3 or 4" read as row 3 is a guess; stop is never refused for it); then each value is
    checked against its valid range. ``vector`` is the schema's [10] encoding of what was read (neutral where
    nothing was)."""
    best = int(np.argmax(action_probs))
    action, confidence = ACTIONS[best], float(action_probs[best])
    colour = COLOUR_CLASSES[int(np.argmax(colour_probs))]
    direction = DIRECTION_CLASSES[int(np.argmax(direction_probs))]
    turn = TURN_CLASSES[int(np.argmax(turn_probs))]
    needs = NEEDS[action]
    params, missing, beyond, vector, values = {}, [], [], neutral_vector(), {}
    for slot in ("row", "col", "distance"):
        if slot in needs:
            values[slot], why = _one_value(slot, readings)
            if why:
                missing.append(why)
    if values.get("row") is not None and values.get("col") is not None:
        params["row"], params["col"] = int(values["row"]), int(values["col"])
    if "colour" in needs:
        if colour == "none":
            missing.append("the command says no colour")
        params["colour"] = colour if colour in COLOURS else None    # unknown: out of range, below
    if action == "move":
        if direction == "none":
            missing.append("the command says no direction (forward, back, left or right)")
        else:
            params["direction"] = direction
        if values.get("distance") is not None:
            params["distance_cm"] = values["distance"]
    if action == "rotate":
        magnitude, why = _one_value("angle", readings)
        if why:
            missing.append(why)
        else:
            if magnitude < 0:
                beyond.append(f"the angle {magnitude:g} is negative (say left or right instead)")
            elif turn == "none" and magnitude != MAX_ANGLE_DEG:   # half a turn is the same either way
                missing.append("the command says no turn direction (left or right)")
            params["angle_deg"] = (-1.0 if turn == "right" else 1.0) * magnitude
    if untagged and action != "stop":
        missing.append(f"it also says {', '.join(untagged)}, which is not read as any value")
    _encode(params, vector)
    verdict = {"action": action, "params": params, "vector": vector, "confidence": confidence, "refused": None,
               "reason": None}
    if confidence < threshold:
        verdict.update(refused="low confidence", reason=f"low confidence: {confidence:.2f} < threshold {threshold:.2f} "
                                                         f"(not a command this robot knows?)")
    elif missing:
        verdict.update(refused="incomplete", reason=f"cannot {action}: " + "; ".join(missing) + " (please say it again)")
    elif problems := beyond + out_of_range(params):  # read as said, never clamped into something else
        verdict.update(refused="out of range", reason=f"cannot {action}: " + "; ".join(problems))
    return verdict


def action_slot_tags(tag_ids, action: str) -> list[int]:
    """An action with one number to read (move: the distance, rotate: the angle) has every tagged word in that slot:
    the tagger says where the number is, the action says what it is ("ninety seven" tagged half distance, half angle
    in a rotate is the angle). Actions with two (row, column) or none keep their tags."""
    numeric = [slot for slot in NEEDS[action] if slot in SLOTS]
    if len(numeric) != 1:
        return [int(t) for t in tag_ids]
    return [TAGS.index(TAGS[int(t)][:2] + numeric[0]) if t else 0 for t in tag_ids]


def decide_outputs(text: str, offsets, word_ids, outputs: dict, threshold: float) -> tuple[dict, dict]:
    """``(readings, verdict)`` for one command from the pipeline's outputs by name (``model.PIPELINE_OUTPUTS``,
    batch dimension removed) and its tokens' offsets and word ids: what the interpreter and the golden file use."""
    tags = action_slot_tags(np.asarray(outputs["slot_probs"])[:len(offsets)].argmax(-1),
                            ACTIONS[int(np.argmax(outputs["action_probs"]))])
    spans = _span_ranges(text, offsets, tags, word_ids)   # once: readings and stray numbers both need them
    readings = _readings(text, spans, SLOT_WORDS)
    verdict = decide(outputs["action_probs"], readings, outputs["colour_probs"], outputs["direction_probs"],
                     outputs["turn_probs"], threshold, _untagged(text, spans, SLOT_WORDS))
    return readings, verdict


# position of each schema parameter in the [10] vector, built once (every decision encodes one)
_VECTOR_INDEX = {p.name: i for i, p in enumerate(BY_NAME.values())}


def _encode(params: dict, vector: np.ndarray) -> None:
    """The schema's normalised [10] vector of the read parameters (what the ParamExtractor also outputs)."""
    index = _VECTOR_INDEX
    for key in ("row", "col"):
        if key in params:
            vector[index[key]] = normalise(key, params[key])
    if params.get("colour") in COLOURS:
        vector[index[f"colour_{params['colour']}"]] = 1.0
    if params.get("direction") in DIRECTION_VECTOR:
        dx, dy = DIRECTION_VECTOR[params["direction"]]
        vector[index["direction_x"]], vector[index["direction_y"]] = normalise("direction_x", dx), normalise("direction_y", dy)
    if "distance_cm" in params:
        vector[index["distance"]] = normalise("distance", params["distance_cm"])
    if "angle_deg" in params:
        vector[index["angle"]] = normalise("angle", params["angle_deg"])


__all__ = ["token_tags", "slot_spans", "action_slot_tags", "untagged_numbers", "read_number", "read_slots", "decide", "decide_outputs", "SLOT_PARAMETER"]
