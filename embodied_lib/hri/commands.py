"""The robot-command schema and a generator of commands phrased the way people type them.

Schema (written once here; exported in every HRI manifest so C++ and Rust decode alike): six action
types and a 10-number parameter vector, every number normalised to [0, 1] over its **encoded range**.
The encoded range is wider than what the robot can do (the **valid range**), so that a command the robot
cannot carry out ("go to row 10", "move back 3 metres", "turn 270 degrees") is still read as what it
says, and the decision refuses it with a reason instead of clamping it to something else. Colours are a
one-hot of the four the robot knows. A parameter an action does not use holds its ``neutral`` value.

How a command is read (``hri.slots``): the numbers are *slots*, words the model tags on its tokens (row,
column, distance with its unit, angle with its unit) and a number parser reads (text2num, plus the small
``SLOT_WORDS`` table); colour, move direction and turn sense are classifications of the sentence, each with
a "none" class for a command that does not say it (and colour an "unknown" class for a colour the robot does
not know). A ``Command`` carries all of it: the text, the character spans of its slots, its classes and the
[10] vector.

Phrasing: numbers as digits or words ("3", "three", "forty-five", "one hundred and twenty"), cell pairs
written "row 3 column 5", "column 5 row 3", "(3, 5)", "3,5", "3 5", "cell 3 5"; distances in cm / centimetres
/ m / metres, "half a metre", "a metre", "30cm"; directions said by a word or by the verb ("back up",
"advance"); turns by a word, in degrees or as "a quarter turn", "turn around"; "by", "about", "exactly",
fillers, politeness, capitals and punctuation.

Splits: sentence templates, verbs, object words and fillers are split **by template and by synonym**
into train / validation / test, so test commands use templates or words never seen in training
(validation ones are unseen too, and choose the confidence threshold). Out-of-range commands (numbers
outside the valid range, colours the robot does not know) and incomplete ones (a value the action needs is
not said, or said twice differently) are in every split, so refusing them is trained and measured.
Out-of-domain text (chit-chat, questions, text that shares a command's words but asks nothing of a robot,
gibberish, empty, punctuation, emoji, very long) has its own train / validation / test parts.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

ACTIONS = ("go_to", "pick", "place", "move", "rotate", "stop")
COLOURS = ("red", "green", "blue", "yellow")
UNKNOWN_COLOURS = ("orange", "purple", "pink", "black", "white", "brown", "grey", "violet", "cyan", "gold")
GRID_CELLS = 8          # go_to / place targets are cells of the 8 x 8 grid of notebook 01
MAX_DISTANCE_CM = 100.0
MAX_ANGLE_DEG = 180.0


@dataclass(frozen=True)
class Parameter:
    name: str
    meaning: str
    unit: str
    valid: tuple            # what the robot can carry out
    encoded: tuple          # what the normalised [0, 1] value spans (wider: out-of-range stays readable)
    neutral: float
    used_by: tuple


PARAMETERS = (
    Parameter("row", "target grid row", "cell", (0, GRID_CELLS - 1), (-1, 10), 0, ("go_to", "place")),
    Parameter("col", "target grid column", "cell", (0, GRID_CELLS - 1), (-1, 10), 0, ("go_to", "place")),
    *(Parameter(f"colour_{c}", f"cube colour is {c}", "0/1", (0, 1), (0, 1), 0, ("pick", "place")) for c in COLOURS),
    Parameter("direction_x", "move direction, +1 right / -1 left", "unit", (-1, 1), (-1, 1), 0, ("move",)),
    Parameter("direction_y", "move direction, +1 forward / -1 backward", "unit", (-1, 1), (-1, 1), 0, ("move",)),
    Parameter("distance", "move distance", "cm", (1, MAX_DISTANCE_CM), (0, 200), 0, ("move",)),
    Parameter("angle", "rotation, positive = counter-clockwise (left)", "degree", (-MAX_ANGLE_DEG, MAX_ANGLE_DEG),
              (-360, 360), 0, ("rotate",)),
)
PARAMETER_NAMES = tuple(p.name for p in PARAMETERS)
BY_NAME = {p.name: p for p in PARAMETERS}
# How close a read value must be to count as right: the value said (read from words it is exact; the
# ParamExtractor baseline regresses it, and is judged by the same rule).
DISTANCE_TOLERANCE_CM = 0.5
ANGLE_TOLERANCE_DEG = 0.5
# Out-of-range values in the corpus start this far past the valid range (a clear case, not a rounding one).
DISTANCE_REFUSE_ABOVE = MAX_DISTANCE_CM + 5.0
ANGLE_REFUSE_ABOVE = MAX_ANGLE_DEG + 10.0
COLOUR_MIN = 0.5        # a known colour must score at least this in the [10] vector


def normalise(name: str, raw: float) -> float:
    lo, hi = BY_NAME[name].encoded
    return (float(np.clip(raw, lo, hi)) - lo) / (hi - lo)


def denormalise(name: str, value: float) -> float:
    lo, hi = BY_NAME[name].encoded
    return lo + float(value) * (hi - lo)


def neutral_vector() -> np.ndarray:
    return np.array([normalise(p.name, p.neutral) for p in PARAMETERS], dtype=np.float32)


def decode_params(action: str, vector) -> dict:
    """The parameters ``action`` uses, in their units, read as they are (never clamped): cells rounded,
    colour by name (``None`` if no known colour scores COLOUR_MIN), direction snapped to the nearest axis."""
    values = {name: denormalise(name, v) for name, v in zip(PARAMETER_NAMES, vector)}
    out = {}
    if action in ("go_to", "place"):
        out["row"], out["col"] = int(round(values["row"])), int(round(values["col"]))
    if action in ("pick", "place"):
        scores = [values[f"colour_{c}"] for c in COLOURS]
        out["colour"] = COLOURS[int(np.argmax(scores))] if max(scores) >= COLOUR_MIN else None
    if action == "move":
        dx, dy = values["direction_x"], values["direction_y"]
        out["direction"] = (("right" if dx > 0 else "left") if abs(dx) >= abs(dy) else
                            ("forward" if dy > 0 else "backward"))
        out["distance_cm"] = round(values["distance"], 1)
    if action == "rotate":
        out["angle_deg"] = round(values["angle"], 1)
    return out


def out_of_range(params: dict) -> list[str]:
    """Why the robot cannot carry out these decoded parameters (empty when it can)."""
    problems = []
    for key in ("row", "col"):
        if key in params and not 0 <= params[key] < GRID_CELLS:
            problems.append(f"{key} {params[key]} is outside the grid (0-{GRID_CELLS - 1})")
    if "colour" in params and params["colour"] is None:
        problems.append(f"the colour is not one the robot knows ({', '.join(COLOURS)})")
    if "distance_cm" in params:
        d = params["distance_cm"]
        if d > MAX_DISTANCE_CM:
            problems.append(f"distance {d:g} cm is more than the {MAX_DISTANCE_CM:.0f} cm a move may be")
        elif d < BY_NAME["distance"].valid[0]:
            problems.append(f"no distance to move ({d:g} cm; a move is at least {BY_NAME['distance'].valid[0]:g} cm)")
    if "angle_deg" in params and abs(params["angle_deg"]) > MAX_ANGLE_DEG:
        problems.append(f"a turn of {abs(params['angle_deg']):g} degrees is more than {MAX_ANGLE_DEG:.0f}")
    return problems


def has_words(text: str) -> bool:
    """A command needs at least one letter or digit (empty, spaces, punctuation and emoji have none)."""
    return any(ch.isalnum() for ch in text)


# Characters that reorder how text displays: "pick up the \u202ebuc der\u202c cube" shows as "red cube" and
# reads as "der buc". A command holding one is refused; so is a lone surrogate (not Unicode text at all).
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# A number larger than this cannot be any parameter, in any unit (the encoded ranges end at 360 degrees and
# 200 cm): the tokenizer cuts it into pieces the model reads as some other number, so it is refused here.
LARGEST_NUMBER = 999
_NUMBER = re.compile(r"(-?\d+(?:\.\d+)?(?:e[+-]?\d+)?)\s*(?:(metres|meters|metre|meter|m)(?![a-z0-9_]))?", re.IGNORECASE | re.ASCII)


def text_problem(text: str) -> str | None:
    """Why this text cannot be a command before any model reads it (None when it can be one)."""
    if any(0xD800 <= ord(ch) <= 0xDFFF for ch in text):
        return "the text holds an unpaired surrogate, so it is not valid Unicode"
    if any(ch in BIDI_CONTROLS for ch in text):
        return "the text holds bidirectional control characters, which make it display differently than it reads"
    if not has_words(text):
        return "no words in the command (empty, spaces, punctuation or symbols only)"
    for match in _NUMBER.finditer(text):
        value = float(match.group(1)) * (100 if match.group(2) else 1)   # metres in cm
        if abs(value) > LARGEST_NUMBER:
            return (f"the number {match.group(0).strip()[:24]!r} is beyond anything a parameter can be "
                    f"(at most {LARGEST_NUMBER} degrees or cm)")
    return None


def refuse_text(problem: str) -> dict:
    """The decision for text that ``text_problem`` refused before any model read it."""
    return {"action": None, "params": {}, "confidence": 0.0, "refused": "bad text", "reason": problem}


# -- how a command is read: slots, classes and the parser's word table -----------------------------

SLOTS = ("row", "col", "distance", "angle")     # the parameters said as numbers, tagged on tokens
SLOT_PARAMETER = {"row": "row", "col": "col", "distance": "distance_cm", "angle": "angle_deg"}  # decoded names
TAGS = ("O", *(f"{bio}-{slot}" for slot in SLOTS for bio in ("B", "I")))
COLOUR_CLASSES = (*COLOURS, "unknown", "none")   # unknown: a colour the robot does not know; none: no colour said
DIRECTION_CLASSES = ("forward", "backward", "left", "right", "none")
DIRECTION_VECTOR = {"forward": (0, 1), "backward": (0, -1), "left": (-1, 0), "right": (1, 0)}
TURN_CLASSES = ("left", "right", "none")         # left = counter-clockwise = a positive angle
NEEDS = {"go_to": ("row", "col"), "pick": ("colour",), "place": ("row", "col", "colour"),
         "move": ("direction", "distance"), "rotate": ("turn", "angle"), "stop": ()}
# What the number parser (text2num, threshold 0) does not read, in one table that the manifest carries and
# Python and Rust both use. A slot's words after text2num are amounts (numbers, or these words), at most one
# unit and ignored words; the value is the product of the amounts and the unit ("half a metre" = 0.5 x 1 x 100
# cm, "a quarter turn" = 1 x 0.25 x 360 degrees, "a 100 cm" = 100 cm). Anything else, two numbers, no amount,
# or a unit the slot needs and does not have is not read: the command is refused, never guessed.
SLOT_WORDS = {
    "amounts": {"a": 1, "an": 1, "half": 0.5, "quarter": 0.25, "full": 1, "minus": -1},
    "slot_amounts": {"angle": {"around": 180, "round": 180, "u-turn": 180}},
    "ignored": ["of"],
    "units": {"distance": {**{u: 1 for u in ("cm", "cms", "centimetre", "centimetres", "centimeter", "centimeters")},
                           **{u: 100 for u in ("m", "metre", "metres", "meter", "meters")}},
              "angle": {"degree": 1, "degrees": 1, "deg": 1, "turn": 360, "turns": 360}},
    "default_unit": {"row": 1, "col": 1, "angle": 1, "distance": None},   # None: the unit must be said
    "whole": ["row", "col"],                                              # a cell is a whole number
    # A number said outside every slot ("row 3 or 4" with only 3 tagged) is a value nobody read: the command is
    # refused. Read by text2num at this threshold, so a lone "one" ("that one", "the red one") stays a word.
    "untagged_threshold": 2,
}


def schema_json() -> dict:
    return {
        "actions": list(ACTIONS),
        "colours": list(COLOURS),
        "parameters": [{"index": i, "name": p.name, "meaning": p.meaning, "unit": p.unit, "range": list(p.valid),
                        "encoded_range": list(p.encoded), "neutral": p.neutral, "used_by": list(p.used_by),
                        "normalised": "(clip(raw, encoded_range) - encoded_range[0]) / (encoded_range[1] - encoded_range[0])"}
                       for i, p in enumerate(PARAMETERS)],
        "slots": {"names": list(SLOTS), "tags": list(TAGS), "decoded_as": SLOT_PARAMETER,
                  "spans": "per token the argmax tag (a word keeps its tags only when all its pieces have one slot); a "
                           "span starts at a B- tag or an I- tag after another slot's and goes on over I- tags of its "
                           "slot; its text is the command from the first token's start offset to the last one's end, "
                           "widened to every whole number it touches (digits, and text2num find_numbers at threshold 0 "
                           "over the command's words: ASCII words with inner hyphens, digit numbers, space runs, any "
                           "other character alone), with a '-' right before it (a minus sign); a number two slots' "
                           "spans touch is read as neither",
                  "words": SLOT_WORDS,
                  "reading": "text2num replace_numbers_in_text / alpha2digit (English, threshold 0) of the lower-cased "
                             "span, then words from the first number, article, amount, unit or ignored word (a span "
                             "with none is no reading): numbers and amounts multiply, one unit at most, ignored words "
                             "skipped, any other word not read"},
        "classes": {"colour": list(COLOUR_CLASSES), "direction": list(DIRECTION_CLASSES), "turn": list(TURN_CLASSES),
                    "direction_vector": {k: list(v) for k, v in DIRECTION_VECTOR.items()}},
        "needs": {a: list(n) for a, n in NEEDS.items()},
        "decoding": {"cells": "a whole number in the valid range", "colour": "the colour class; unknown is refused",
                     "distance": "in the valid range (cm)", "angle": "magnitude at most the valid range; sign from the "
                     "turn class (left positive); a half turn needs no turn sense",
                     "colour_min": COLOUR_MIN},
        "text": {"refused": "text_problem: a lone surrogate, a bidirectional control character, no letter or digit, "
                            "or a number (optionally '-', digits, '.digits', 'e' exponent; times 100 before a metre unit) above "
                            "largest_number in magnitude",
                 "bidi_controls": sorted(ord(c) for c in BIDI_CONTROLS), "largest_number": LARGEST_NUMBER,
                 "metre_units": ["metres", "meters", "metre", "meter", "m"]},
    }


# -- phrasing: templates and synonyms, each list split train | validation | test ----------------

@dataclass(frozen=True)
class Split3:
    train: tuple
    val: tuple
    test: tuple

    def part(self, split: str) -> tuple:
        return getattr(self, split)


VERBS = {
    "go_to": Split3(("go to", "move to", "navigate to", "drive to", "get to", "head over to", "make your way to",
                     "roll to", "go over to", "get yourself to", "return to", "roll over to"),
                    ("head to", "steer to", "walk to"),
                    ("travel to", "proceed to", "relocate to", "advance to", "journey to", "move over to")),
    "pick": Split3(("pick up", "grab", "take", "lift", "pick", "grasp", "hold", "snatch", "raise", "seize",
                    "get hold of", "pull up"),
                   ("get", "clutch", "scoop up"),
                   ("collect", "fetch", "retrieve", "obtain", "grip", "take hold of")),
    "place": Split3(("place", "put", "set", "drop", "lay", "put down", "set down", "rest", "stack", "plant", "stand",
                     "move", "pop", "put back"),
                    ("leave", "park", "lower"),
                    ("deposit", "position", "release", "settle", "arrange", "situate")),
    "move": Split3(("move", "go", "drive", "shift", "roll", "slide", "travel", "head", "go on", "scoot", "glide",
                    "push on", "walk", "move along"),
                   ("crawl", "ride", "proceed"),
                   ("step", "move yourself", "coast", "creep", "make your way", "wander")),
    "rotate": Split3(("rotate", "turn", "spin", "twist", "turn yourself", "rotate yourself", "swing", "yaw",
                      "revolve", "turn your body", "spin yourself", "veer"),
                     ("wheel", "pivot yourself", "turn around by"),
                     ("pivot", "swivel", "twirl", "turn on the spot", "whirl", "angle yourself")),
    "stop": Split3(("stop", "halt", "freeze", "stand still", "stop moving", "do not move", "stay put", "stop now",
                    "stop right there", "hold it", "stay where you are", "quit moving", "wait", "stop everything",
                    "don't move", "stop the robot", "stay still", "hold on", "hold your position", "keep still",
                    "no more moving", "come to a halt", "bring yourself to a standstill", "full stop", "all stop",
                    "stop dead", "come to a standstill"),
                   ("pause", "stop there", "remain still"),
                   ("cease moving", "hold still", "come to a stop", "emergency stop", "cease all movement",
                    "stop what you are doing", "that's enough, stop")),
}
# Verbs of a move that say its direction themselves ("back up 20 cm"): the direction class comes from the verb.
DIRECTED_MOVE_VERBS = {
    "train": (("back up", "backward"), ("advance", "forward"), ("reverse", "backward"), ("go forward", "forward"),
              ("move back", "backward"), ("drive forward", "forward"), ("inch forward", "forward"), ("inch back", "backward"),
              ("back off", "backward"), ("back away", "backward"), ("press on", "forward"), ("go back", "backward"),
              ("withdraw", "backward"), ("fall back", "backward"), ("step back", "backward"), ("back out", "backward"),
              ("move ahead", "forward"), ("go ahead", "forward"), ("step forward", "forward"), ("carry on", "forward"),
              ("roll forward", "forward"), ("recede", "backward"), ("proceed forward", "forward"), ("drive back", "backward")),
    "val": (("move forward", "forward"), ("roll back", "backward")),
    "test": (("creep forward", "forward"), ("retreat", "backward"), ("push forward", "forward"),
             ("pull back", "backward")),
}
OBJECT_WORDS = Split3(("cube", "block", "box", "cuboid", "square block", "toy block"), ("piece", "object"),
                      ("brick", "thing", "item", "building block", "little cube", "cube-shaped block"))
# How a cell pair is written: shared by all splits (they are the notation, not the phrasing).
CELL_FORMS = ("row {r} column {c}", "row {r}, column {c}", "row {r} col {c}", "({r}, {c})", "{r},{c}", "{r} {c}",
              "cell {r} {c}", "cell {r}, {c}", "row {r} and column {c}", "the cell at row {r}, column {c}",
              "column {c} row {r}", "column {c}, row {r}", "position {r}, {c}", "square ({r}, {c})",
              "row number {r} column number {c}", "row {r} column {c} of the grid")
MOVE_DIRECTIONS = {  # word -> class
    "forward": "forward", "ahead": "forward", "forwards": "forward", "straight ahead": "forward", "onward": "forward",
    "to the front": "forward", "straight on": "forward", "frontward": "forward",
    "back": "backward", "backward": "backward", "backwards": "backward", "in reverse": "backward",
    "rearward": "backward", "to the back": "backward", "behind you": "backward", "the other way": "backward",
    "left": "left", "right": "right", "to the left": "left", "to the right": "right", "to your left": "left",
    "to your right": "right", "leftward": "left", "rightward": "right", "sideways left": "left",
    "sideways right": "right", "left side": "left", "right side": "right",
}
DIRECTION_WORDS = Split3(("forward", "ahead", "back", "backward", "left", "right", "to the left", "to your right",
                          "onward", "to the front", "rearward", "to the back", "leftward", "rightward",
                          "sideways left", "sideways right", "behind you", "the other way", "straight on"),
                         ("forwards", "to the right", "backwards", "left side"),
                         ("straight ahead", "in reverse", "to your left", "backwards", "left", "right", "right side",
                          "frontward"))
TURN_DIRECTIONS = {"left": "left", "counterclockwise": "left", "anticlockwise": "left", "counter-clockwise": "left",
                   "to the left": "left", "to your left": "left", "leftwards": "left", "counter clockwise": "left",
                   "right": "right", "clockwise": "right", "to the right": "right", "to your right": "right",
                   "rightwards": "right", "with the clock": "right", "against the clock": "left"}
TURN_WORDS = Split3(("left", "right", "counterclockwise", "clockwise", "to your left", "rightwards", "leftwards",
                     "counter clockwise", "with the clock", "against the clock"),
                    ("to the left", "to the right"),
                    ("anticlockwise", "counter-clockwise", "to your right", "left", "right"))
CM_UNITS = ("cm", "centimetres", "centimeters", "centimetre", "cms")
M_UNITS = ("m", "metres", "meters", "metre", "meter")
DEG_UNITS = Split3(("degrees", "deg"), ("degrees",), ("degree", "degrees"))
QUARTER_TURNS = {"a quarter turn": 90, "a half turn": 180, "half a turn": 180, "a quarter of a turn": 90}
FILLERS = Split3(
    train=(("please ", ""), ("", " please"), ("robot, ", ""), ("", " now"), ("can you ", ""), ("", ", thanks"),
           ("hey, ", ""), ("", " quickly"), ("now ", ""), ("okay, ", ""), ("", " for me"), ("next, ", ""),
           # trailing clauses that say why or how, not what: one full run refused 'stop before you hit something'
           ("", " before you bump into the wall"), ("", ", watch out"), ("", " so you don't fall over"),
           ("careful, ", ""), ("", " as soon as you can"), ("", " when you are ready"), ("", ", the path is clear"),
           ("", " or you will crash")),
    val=(("hey robot, ", ""), ("", " right away"), ("alright, ", "")),
    test=(("would you ", ""), ("", ", thank you"), ("ok robot, ", ""), ("kindly ", ""), ("", " if you can"),
          ("listen, ", "")),
)
# How much: "by", "about", "exactly" in front of a distance or angle (templates put {by}).
MEASURE_WORDS = Split3(("", "", "by ", "about ", "exactly ", "roughly "), ("", "precisely "), ("", "by about ", "just "))

TEMPLATES = {
    "go_to": Split3(
        ("{verb} {cell}", "{verb} the cell {cell}", "i want you to {verb} {cell}", "{verb} {cell} now",
         "{verb} {cell} on the grid", "you should {verb} {cell}", "{verb} {cell} and stop there", "now {verb} {cell}",
         "please {verb} {cell} quickly", "next {verb} {cell}", "{verb} {cell} right now", "your job: {verb} {cell}"),
        ("could you {verb} {cell}", "{verb} {cell} when you can", "let's {verb} {cell}"),
        ("i need you to {verb} grid position {cell}", "{verb} {cell} and wait there", "would it be possible to {verb} {cell}",
         "time to {verb} {cell}", "your goal is to {verb} {cell}", "{verb} {cell} as fast as you can")),
    "pick": Split3(
        ("{verb} the {colour} {object}", "{verb} that {colour} {object}", "{verb} the {colour} {object} up",
         "i want the {colour} {object}, {verb} it", "{verb} a {colour} {object}", "{verb} the {colour} one",
         "please {verb} the {colour} {object} from the table", "{verb} the {object} which is {colour}",
         "you should {verb} the {colour} {object}", "{verb} up the {colour} {object}", "now {verb} the {colour} {object}",
         "{verb} the {colour} {object} for me"),
        ("i would like you to {verb} the {colour} {object}", "can you {verb} the {colour} {object}",
         "{verb} the {colour} {object} next"),
        ("{verb} the {object} that is {colour}", "go ahead and {verb} the {colour} {object}",
         "i need the {colour} {object}, {verb} it", "{verb} the {colour} coloured {object}",
         "your task is to {verb} the {colour} {object}", "could you please {verb} the {colour} {object}")),
    "place": Split3(
        ("{verb} the {colour} {object} at {cell}", "{verb} the {colour} {object} on {cell}",
         "{verb} the {colour} {object} in {cell}", "{verb} the {colour} {object} down at {cell}",
         "{verb} the {colour} {object} onto {cell}", "at {cell}, {verb} the {colour} {object}",
         "{verb} the {colour} one at {cell}", "{verb} a {colour} {object} on {cell}",
         "take the {colour} {object} and {verb} it at {cell}", "{verb} the {colour} {object} over at {cell}",
         "you should {verb} the {colour} {object} at {cell}", "{verb} the {colour} {object} to {cell}"),
        ("could you {verb} the {colour} {object} on {cell}", "{verb} the {colour} {object} at {cell} please",
         "i want the {colour} {object} at {cell}, {verb} it"),
        ("the {colour} {object} should {verb} at {cell}", "{verb} that {colour} {object} onto {cell}",
         "{verb} the {object} that is {colour} at {cell}", "on {cell}, {verb} the {colour} {object}",
         "would you {verb} the {colour} {object} in {cell}", "{verb} the {colour} {object} exactly at {cell}")),
    "move": Split3(
        ("{verb} {direction} {by}{distance}", "{verb} {by}{distance} {direction}", "{verb} {direction} by {distance}",
         "{verb} {direction} about {distance}", "{verb} {direction} for {distance}", "{verb} {distance} to the {direction}",
         "i want you to {verb} {direction} {distance}", "{verb} {direction} a distance of {distance}",
         "{verb} {direction}, {distance}", "now {verb} {direction} {distance}", "{verb} {direction} exactly {distance}",
         "{verb} {distance} in the {direction} direction"),
        ("could you {verb} {direction} for {distance}", "{verb} {direction} around {distance}",
         "{verb} {distance} {direction} please"),
        ("i want you to {verb} {distance} {direction}", "{verb} {direction}: {distance}", "{verb} {direction} {distance} now",
         "please {verb} {by}{distance} {direction}", "{verb} {direction} over {distance}",
         "you need to {verb} {direction} {distance}")),
    "rotate": Split3(
        ("{verb} {turn} {by}{angle}", "{verb} {by}{angle} {turn}", "{verb} {turn} by {angle}", "{verb} {angle} to the {turn}",
         "{verb} {turn} about {angle}", "{verb} {angle} towards the {turn}", "i want you to {verb} {turn} {angle}",
         "{verb} to the {turn} by {angle}", "{verb} {turn}, {angle}", "now {verb} {turn} {angle}",
         "{verb} {turn} exactly {angle}", "{verb} {angle} in the {turn} direction"),
        ("could you {verb} {turn} about {angle}", "{verb} {turn} through {angle}", "{verb} {angle} {turn} please"),
        ("{verb} by {angle} {turn}", "i need you to {verb} {angle} {turn}", "{verb} {turn} {angle} now",
         "please {verb} {by}{angle} {turn}", "{verb} {turn} over {angle}", "you need to {verb} {turn} {angle}")),
    "stop": Split3(
        ("{verb}", "{verb} now", "{verb} right there", "{verb} immediately", "{verb} please", "{verb}!",
         "robot {verb}", "i said {verb}", "{verb} at once", "{verb}, right now", "just {verb}", "{verb} this instant",
         "{verb} right away", "{verb} instantly", "{verb} without delay"),
        ("could you {verb}", "{verb} for a moment", "okay {verb}"),
        ("you need to {verb} at once", "{verb}, that is enough", "{verb} straight away", "i want you to {verb}",
         "{verb} this minute", "{verb} before you hit something")),
}
# Directed move verbs ("back up 20 cm") take these instead of the move templates.
DIRECTED_MOVE_TEMPLATES = Split3(("{verb} {by}{distance}", "{verb} {distance} please", "{verb} for {distance}",
                                  "now {verb} {distance}"),
                                 ("{verb} {distance}",), ("{verb} {distance} slowly", "{verb} a distance of {distance}"))
TURN_AROUND = Split3(("turn around", "do a u-turn", "spin around", "make a u-turn", "rotate around", "twist around",
                      "veer around", "turn yourself round"), ("turn yourself around",),
                     ("turn round", "spin round", "swing around"))
TURN_AROUND_SLOT = ("around", "u-turn", "round")    # the word of a turn-around phrase that says how far

# Commands that leave out a value their action needs, or say one twice differently: refused, never guessed.
INCOMPLETE_TEMPLATES = {
    "go_to": Split3(("{verb} row {r}", "{verb} column {c}", "{verb} the cell", "{verb} there", "{verb} row {r} or {r2}, column {c}"),
                    ("{verb} row {r} please",), ("{verb} column {c} now", "{verb} the square", "{verb} row {r}, no, row {r2}, column {c}")),
    "pick": Split3(("{verb} the {object}", "{verb} it", "{verb} that {object}", "{verb} something"),
                   ("{verb} the {object} please",), ("{verb} one of the {object}s", "{verb} that one")),
    "place": Split3(("{verb} the {object} at {cell}", "{verb} the {colour} {object}", "{verb} it on {cell}",
                     "{verb} the {colour} {object} at row {r}", "{verb} it over there", "{verb} the {colour} {object} over there"),
                    ("{verb} the {colour} {object} down",), ("{verb} it there", "{verb} the {object} in {cell}")),
    "move": Split3(("{verb} {direction}", "{verb} {distance}", "{verb} a bit {direction}", "{verb} {direction} {distance} or {distance2}",
                    "{verb} {direction} some more", "{verb} {direction} for some time", "{verb} {by}{distance} please",
                    "{verb} {direction} for a bit"),
                   ("{verb} {direction} a little",), ("{verb} {direction} for a while", "{verb} forward a few", "{verb} {distance} or so")),
    "rotate": Split3(("{verb} {turn}", "{verb} {angle}", "{verb} a bit", "{verb} {turn} {angle} or {angle2}", "{verb} {turn} slightly",
                      "{verb} {by}{angle} please", "now {verb} {angle}"),
                     ("{verb} {turn} a little",), ("{verb} {turn} a tiny bit", "{verb} by {angle}", "{verb} somewhat")),
}
INCOMPLETE_SHARE = 0.08   # of the go_to, pick, place, move and rotate commands

OUT_OF_DOMAIN = Split3(
    train=("hello there", "how are you", "thank you very much", "good morning", "what a nice day", "i like pizza",
           "tell me a joke", "who are you", "what is your name", "what time is it", "is it raining",
           "where is the red cube", "how many cubes are there", "what can you do", "nice work", "ok", "hmm",
           "blah blah", "asdf qwer", "the weather is lovely today", "my favourite colour is blue",
           "do you like music", "why is the sky blue", "let me think about it", "see you later",
           "row 3 is my favourite row", "i moved 20 cm yesterday", "the cube weighs 50 grams",
           "turn on the radio", "turn off the tv", "go to sleep", "take a break", "pick a card, any card",
           "move on to the next question", "stop by the shop on your way home", "put the kettle on",
           "the red team won 3 to 1", "i turned 40 last year", "column 5 of the newspaper", "rotate the tyres on my car",
           "drop me a line", "place an order for two pizzas", "he ran 100 metres in 10 seconds",
           "my table is 90 cm wide", "a right angle has 90 degrees", "i walked forward and then left",
           "i cannot stop laughing", "the bus stop is over there"),
    val=("good evening", "how is it going", "thanks a lot", "what is the capital of france", "can you hear me",
         "are you a robot", "what colour is the cube", "where are you", "i am hungry", "lorem ipsum dolor",
         "that was funny", "who made you", "how old are you", "is the table clean", "bye",
         "turn up the music", "go to bed early", "grab a coffee with me", "the oven is at 180 degrees"),
    test=("hi", "what's up", "nice to meet you", "how do you do", "i love this song", "what day is it today",
          "which cube is the biggest", "how far is the wall", "can you sing", "do you dream", "tell me a story",
          "the cat sat on the mat", "what is two plus two", "is this thing on", "good night", "are you sure",
          "i have no idea", "who won the game yesterday", "what is the meaning of life", "see you tomorrow",
          "turn on the lights", "go to row 3 in the theatre and sit down", "my brother is 180 cm tall",
          "pick up the kids from school", "place your bets", "the pool is 25 metres long",
          "it is 30 degrees outside", "the blue team scored 2 goals", "stop the music, please, i want to sleep",
          "i moved to a new city", "turn the page"),
)
# Templated out-of-domain text that shares a command's words (a verb, a number, a colour) but asks nothing of the
# robot: generated so the numbers vary, split like the rest.
OOD_TEMPLATES = Split3(
    train=("i moved {n} cm yesterday", "row {n} is where i sat", "my {colour} car is {n} metres long",
           "the {colour} {object} costs {n} dollars", "it was {n} degrees last week", "turn {n} pages forward",
           "i turned left at the {n}th street", "cell {n} in the spreadsheet is empty", "she picked {n} apples",
           "we placed {n}th in the race", "page {n}, column {n2}", "{n} plus {n2} equals what"),
    val=("my house is {n} metres from the shop", "the {colour} bus leaves at {n}", "he rotated {n} crops this year"),
    test=("the temperature dropped {n} degrees", "i live at number {n}, row {n2}", "the {colour} {object} is {n} years old",
          "i drove {n} km forward on the motorway", "can you tell me what {n} times {n2} is",
          "we need {n} cm of ribbon for the present"),
)

_ONES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
         "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen")
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")


def number_words(n: int, hyphen: bool = False) -> str:
    """0-999 in English words ("forty five" or "forty-five", "one hundred and twenty")."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else ("-" if hyphen else " ") + _ONES[n % 10])
    rest = n % 100
    return _ONES[n // 100] + " hundred" + ("" if rest == 0 else " and " + number_words(rest, hyphen))


@dataclass
class Command:
    text: str
    action: int            # index into ACTIONS; -1 for out-of-domain text
    params: np.ndarray     # normalised [10]: what was said (neutral for what was not, and for out-of-domain text)
    template: str
    out_of_range: bool = False   # a command the robot must refuse (a number or colour outside the schema)
    spans: dict = field(default_factory=dict)   # slot -> [(start, end)] character spans of its words in text
    colour: int = COLOUR_CLASSES.index("none")        # classes (COLOUR_CLASSES, DIRECTION_CLASSES, TURN_CLASSES)
    direction: int = DIRECTION_CLASSES.index("none")
    turn: int = TURN_CLASSES.index("none")
    incomplete: bool = False     # a value the action needs is not said, or said twice differently


# Slot words are written between these marks while a command is assembled, then removed (their spans kept).
_OPEN, _CLOSE = "\x01", "\x02"


def _mark(slot: str, words: str) -> str:
    return f"{_OPEN}{SLOTS.index(slot)}{words}{_CLOSE}"


def _unmark(text: str) -> tuple[str, dict]:
    out, spans, i = [], {}, 0
    while i < len(text):
        if text[i] == _OPEN:
            slot = SLOTS[int(text[i + 1])]
            end = text.index(_CLOSE, i)
            start = sum(len(p) for p in out)
            out.append(text[i + 2:end])
            spans.setdefault(slot, []).append((start, start + end - i - 2))
            i = end + 1
        else:
            out.append(text[i])
            i += 1
    return "".join(out), spans


def _number(rng, n: int, words_p: float = 0.3) -> str:
    if 0 <= n < 1000 and rng.random() < words_p:
        return number_words(n, hyphen=rng.random() < 0.3)
    return str(n)


def _cell(rng, out_of_range: bool) -> tuple[int, int, str]:
    r, c = (int(v) for v in rng.integers(GRID_CELLS, size=2))
    if out_of_range:  # one or both coordinates off the grid
        bad = int(rng.choice([8, 9, 10, 11, 12, 15, 20, 50, 99, 100, -1]))
        r, c = (bad, c) if rng.random() < 0.5 else (r, bad)
    form = CELL_FORMS[rng.integers(len(CELL_FORMS))]
    words = 0.0 if form in ("{r},{c}", "{r} {c}", "({r}, {c})", "square ({r}, {c})") else 0.3
    return r, c, form.format(r=_mark("row", _number(rng, r, words)), c=_mark("col", _number(rng, c, words)))


def _distance(rng, out_of_range: bool) -> tuple[float, str]:
    """(cm, the marked phrase): the slot holds the number and its unit."""
    def glued(amount, unit):   # "30cm", "2m": no space, sometimes
        return f"{amount}{unit}" if amount[-1].isdigit() and unit in ("cm", "m") and rng.random() < 0.25 else f"{amount} {unit}"

    if out_of_range:
        kind = rng.random()
        if kind < 0.35:
            cm = int(rng.integers(DISTANCE_REFUSE_ABOVE + 5, 1000))
        elif kind < 0.85:
            metres = float(rng.choice([1.5, 2, 2.5, 3, 4, 5, 10]))
            amount = _number(rng, int(metres)) if metres == int(metres) else f"{metres:g}"
            return metres * 100, _mark("distance", glued(amount, M_UNITS[rng.integers(len(M_UNITS))]))
        else:
            cm = -int(rng.integers(1, 500))
        return float(cm), _mark("distance", f"{cm} {CM_UNITS[rng.integers(len(CM_UNITS))]}")
    kind = rng.random()
    if kind < 0.1:
        cm, phrase = float(rng.choice([50, 50, 25])), None
        phrase = {50: str(rng.choice(["half a metre", "half a meter", "0.5 m", "0.5 metres", "zero point five metres"])),
                  25: str(rng.choice(["a quarter of a metre", "0.25 m", "quarter of a meter"]))}[int(cm)]
        return cm, _mark("distance", phrase)
    if kind < 0.17:
        return 100.0, _mark("distance", str(rng.choice(["a metre", "one metre", "a meter", "1 m", "one meter", "a hundred cm"])))
    cm = int(rng.integers(1, 21)) * 5 if rng.random() < 0.7 else int(rng.integers(1, 101))
    return float(cm), _mark("distance", glued(_number(rng, cm), CM_UNITS[rng.integers(len(CM_UNITS))]))


def _angle(rng, out_of_range: bool, split: str) -> tuple[int, str]:
    """(degrees, the marked phrase)."""
    def pick(options):
        return options.part(split)[rng.integers(len(options.part(split)))]

    if out_of_range:
        deg = int(rng.choice([int(rng.integers(ANGLE_REFUSE_ABOVE + 10, 1000)), 270, 360, 450, 720]))
        if deg == 360 and rng.random() < 0.5:
            return 360, _mark("angle", str(rng.choice(["a full turn", "one full turn"])))
        return deg, _mark("angle", f"{_number(rng, deg)} {pick(DEG_UNITS)}")
    if rng.random() < 0.1:
        phrase = str(rng.choice(list(QUARTER_TURNS)))
        return QUARTER_TURNS[phrase], _mark("angle", phrase)
    deg = int(rng.choice([15, 30, 45, 60, 90, 120, 135, 150, 180])) if rng.random() < 0.6 else int(rng.integers(1, 181))
    unit = pick(DEG_UNITS) if rng.random() < 0.75 else ""    # "turn left 90": degrees is the only unit of a turn
    return deg, _mark("angle", f"{_number(rng, deg)} {unit}".strip())


def make_command(action: str, split: str, rng: np.random.Generator, out_of_range: bool = False,
                 incomplete: bool = False) -> Command:
    """One command of ``action`` in the phrasing of ``split``; ``out_of_range``: one the robot must refuse for its
    values; ``incomplete``: one that leaves out (or doubles) a value the action needs."""
    def pick(options):
        values = options.part(split) if isinstance(options, Split3) else options
        return values[rng.integers(len(values))]

    out_of_range = out_of_range and action != "stop"  # stop has nothing that can be out of range
    incomplete = incomplete and action != "stop" and not out_of_range
    template = pick(INCOMPLETE_TEMPLATES[action] if incomplete else TEMPLATES[action])
    params = neutral_vector()
    labels = {"colour": COLOUR_CLASSES.index("none"), "direction": DIRECTION_CLASSES.index("none"),
              "turn": TURN_CLASSES.index("none")}
    slots = {"verb": pick(VERBS[action]), "object": pick(OBJECT_WORDS), "by": pick(MEASURE_WORDS)}
    if action in ("go_to", "place"):
        cell_bad = out_of_range and (action == "go_to" or rng.random() < 0.5)
        r, c, slots["cell"] = _cell(rng, cell_bad)
        r2 = (r + 1 + int(rng.integers(GRID_CELLS - 1))) % GRID_CELLS
        slots.update(r=_mark("row", _number(rng, r)), c=_mark("col", _number(rng, c)), r2=_mark("row", _number(rng, r2)))
        if "{cell}" in template:
            params[0], params[1] = normalise("row", r), normalise("col", c)
    else:
        cell_bad = False
    if action in ("pick", "place"):
        if out_of_range and not cell_bad:
            slots["colour"] = pick(UNKNOWN_COLOURS)   # all four colour outputs stay 0
            labels["colour"] = COLOUR_CLASSES.index("unknown")
        else:
            colour = COLOURS[rng.integers(len(COLOURS))]
            slots["colour"] = colour
            if "{colour}" in template:
                params[2 + COLOURS.index(colour)] = 1.0
                labels["colour"] = COLOUR_CLASSES.index(colour)
    if action == "move":
        directed = not incomplete and rng.random() < 0.2
        if directed:
            slots["verb"], word = DIRECTED_MOVE_VERBS[split][rng.integers(len(DIRECTED_MOVE_VERBS[split]))]
            template = pick(DIRECTED_MOVE_TEMPLATES)
            direction = word
        else:
            word = pick(DIRECTION_WORDS)
            direction = MOVE_DIRECTIONS[word]
        cm, slots["distance"] = _distance(rng, out_of_range)
        _, slots["distance2"] = _distance(rng, False)
        slots["direction"] = word
        if directed or "{direction}" in template:
            labels["direction"] = DIRECTION_CLASSES.index(direction)
            params[6], params[7] = (normalise(name, v) for name, v in zip(("direction_x", "direction_y"),
                                                                           DIRECTION_VECTOR[direction]))
        if "{distance}" in template and "{distance2}" not in template:
            params[8] = normalise("distance", cm)
    if action == "rotate":
        if not out_of_range and not incomplete and rng.random() < 0.12:  # "turn around": half a turn, no number
            phrase = pick(TURN_AROUND)
            word = next(w for w in TURN_AROUND_SLOT if w in phrase.split())
            params[9] = normalise("angle", 180)
            text = phrase.replace(word, _mark("angle", word), 1)
            return _finish(text, action, params, f"turn_around:{phrase}", False, split, rng, labels, False)
        word = pick(TURN_WORDS)
        deg, slots["angle"] = _angle(rng, out_of_range, split)
        _, slots["angle2"] = _angle(rng, False, split)
        slots["turn"] = word
        if "{turn}" in template:
            labels["turn"] = TURN_CLASSES.index(TURN_DIRECTIONS[word])
        if "{angle}" in template and "{angle2}" not in template:
            sign = -1 if TURN_DIRECTIONS[word] == "right" and "{turn}" in template else 1
            params[9] = normalise("angle", sign * deg)
    for key in ("direction", "turn"):   # "to the {turn}" takes the bare word: "to the left", not "to the to your left"
        if "the {" + key + "}" in template and key in slots:
            slots[key] = slots[key].removeprefix("to the ").removeprefix("to your ")
    return _finish(template.format(**slots), action, params, template, out_of_range, split, rng, labels, incomplete)


def _finish(text, action, params, template, out_of_range, split, rng, labels, incomplete) -> Command:
    if rng.random() < 0.35:
        before, after = FILLERS.part(split)[rng.integers(len(FILLERS.part(split)))]
        text = before + text + after
    text, spans = _unmark(text)
    style = rng.random()
    if style < 0.25:
        text = text[0].upper() + text[1:]
    elif style < 0.3:
        text = text.upper()
    if rng.random() < 0.3:
        text += str(rng.choice([".", "!", "?", "..."]))
    return Command(text, ACTIONS.index(action), params, template, out_of_range, spans, incomplete=incomplete, **labels)


def _gibberish(rng) -> str:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return " ".join("".join(rng.choice(list(letters), size=rng.integers(2, 9))) for _ in range(rng.integers(1, 6)))


def _long_text(rng) -> str:
    words = ("the", "robot", "table", "and", "then", "some", "very", "long", "story", "about", "nothing", "at", "all",
             "while", "people", "talk", "near", "kitchen", "window", "music", "plays", "softly")
    return " ".join(rng.choice(words, size=int(rng.integers(80, 200))))


def make_out_of_domain(split: str, n: int, rng: np.random.Generator) -> list[Command]:
    """Chit-chat and questions from the split's list, text that shares a command's words, plus generated
    gibberish, long text, odd symbols."""
    fixed = list(OUT_OF_DOMAIN.part(split))
    templated = OOD_TEMPLATES.part(split)
    special = ["", "   ", "?!...", "🤖🤖🤖", "¿qué?", "こんにちは", "bonjour, ça va ?", "#$%&*", "..."]
    out = []
    for i in range(n):
        kind = i % 6
        if kind in (0, 1):
            text = fixed[rng.integers(len(fixed))]
        elif kind == 2:
            text = _gibberish(rng)
        elif kind == 3:
            text = special[rng.integers(len(special))] if split != "train" else _gibberish(rng).upper()
        elif kind == 4:
            text = templated[rng.integers(len(templated))].format(
                n=_number(rng, int(rng.integers(1, 200))), n2=_number(rng, int(rng.integers(1, 20))),
                colour=COLOURS[rng.integers(len(COLOURS))], object=OBJECT_WORDS.part(split)[0])
        else:
            text = _long_text(rng) if rng.random() < 0.5 else fixed[rng.integers(len(fixed))] + "?"
        out.append(Command(text, -1, neutral_vector(), "out_of_domain"))
    return out


OUT_OF_RANGE_SHARE = 0.15   # of the go_to, pick, place, move and rotate commands


def make_corpus(n_train: int, n_val: int, n_test: int, n_ood: int, seed: int = 0) -> dict[str, list[Command]]:
    """In-domain train / val / test (disjoint phrasings; a share of them out of range, a share incomplete) and
    out-of-domain train / val / test."""
    rng = np.random.default_rng(seed)
    corpus = {}
    for split, n in (("train", n_train), ("val", n_val), ("test", n_test)):
        commands = []
        for i in range(n):
            action = ACTIONS[i % len(ACTIONS)]
            draw = rng.random()
            bad = action != "stop" and draw < OUT_OF_RANGE_SHARE
            incomplete = action != "stop" and OUT_OF_RANGE_SHARE <= draw < OUT_OF_RANGE_SHARE + INCOMPLETE_SHARE
            commands.append(make_command(action, split, rng, out_of_range=bad, incomplete=incomplete))
        corpus[split] = commands
        corpus[f"ood_{split}"] = make_out_of_domain(split, n_ood, rng)
    return corpus
