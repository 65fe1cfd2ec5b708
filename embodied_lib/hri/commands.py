"""The robot-command schema and a generator of commands phrased the way people type them.

Schema (written once here; exported in every HRI manifest so C++ and Rust decode alike): six action
types and a 10-number parameter vector, every number normalised to [0, 1] over its **encoded range**.
The encoded range is wider than what the robot can do (the **valid range**), so that a command the robot
cannot carry out ("go to row 10", "move back 3 metres", "turn 270 degrees") is still read as what it
says, and decoding refuses it with a reason instead of clamping it to something else. Colours are a
one-hot of the four the robot knows; a colour it does not know is trained as all four off.
A parameter an action does not use holds its ``neutral`` value.

Phrasing: numbers as digits or words ("3", "three", "forty five"), cell pairs written "row 3 column 5",
"(3, 5)", "3,5", "3 5", "cell 3 5", "row three col five"; distances in cm / centimetres / centimeters /
m / metres / meters, "half a metre", "a metre"; directions forward / ahead / back / backwards / in reverse /
left / right / "to your left"; turns left / right / clockwise / counterclockwise / anticlockwise /
"turn around"; fillers, politeness, capitals and punctuation.

Splits: sentence templates, verbs, object words and fillers are split **by template and by synonym**
into train / validation / test, so test commands use templates or words never seen in training
(validation ones are unseen too, and choose the confidence threshold). Out-of-range commands (numbers
outside the valid range, colours the robot does not know) are in every split, so refusing them is
trained and measured. Out-of-domain text (chit-chat, questions, gibberish, empty, punctuation, emoji,
very long) has its own train / validation / test parts.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

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
# How close a decoded value must be to count as right (the evaluation's tolerances, in units).
DISTANCE_TOLERANCE_CM = 5.0
ANGLE_TOLERANCE_DEG = 10.0
# Out-of-range values in the corpus start this far past the valid range, so decoding has a margin.
DISTANCE_REFUSE_ABOVE = MAX_DISTANCE_CM + DISTANCE_TOLERANCE_CM
ANGLE_REFUSE_ABOVE = MAX_ANGLE_DEG + ANGLE_TOLERANCE_DEG
COLOUR_MIN = 0.5        # a known colour must score at least this


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
        if d > DISTANCE_REFUSE_ABOVE:
            problems.append(f"distance {d:.0f} cm is more than the {MAX_DISTANCE_CM:.0f} cm a move may be")
        elif d < BY_NAME["distance"].valid[0] / 2:  # schema_json's distance_refused_below_cm
            problems.append("no distance to move (zero or negative)")
    if "angle_deg" in params and abs(params["angle_deg"]) > ANGLE_REFUSE_ABOVE:
        problems.append(f"a turn of {abs(params['angle_deg']):.0f} degrees is more than {MAX_ANGLE_DEG:.0f}")
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


def decide(probs, params, threshold: float) -> dict:
    """What the robot does with the model's outputs for one command, the same in Python, C++ and Rust:
    ``{"action", "params", "confidence", "refused": None | "bad text" | "low confidence" | "out of range",
    "reason"}``. The threshold judges the action type; then every parameter the action uses is checked
    against its valid range. Text refused before the model gets ``refuse_text`` instead."""
    best = int(np.argmax(probs))
    action, confidence = ACTIONS[best], float(probs[best])
    decoded = decode_params(action, params)
    verdict = {"action": action, "params": decoded, "confidence": confidence, "refused": None, "reason": None}
    if confidence < threshold:
        verdict.update(refused="low confidence", reason=f"low confidence: {confidence:.2f} < threshold {threshold:.2f} "
                                                         f"(not a command this robot knows?)")
    elif problems := out_of_range(decoded):  # read as said, never clamped into something else
        verdict.update(refused="out of range", reason=f"cannot {action}: " + "; ".join(problems))
    return verdict


def schema_json() -> dict:
    return {
        "actions": list(ACTIONS),
        "colours": list(COLOURS),
        "parameters": [{"index": i, "name": p.name, "meaning": p.meaning, "unit": p.unit, "range": list(p.valid),
                        "encoded_range": list(p.encoded), "neutral": p.neutral, "used_by": list(p.used_by),
                        "normalised": "(clip(raw, encoded_range) - encoded_range[0]) / (encoded_range[1] - encoded_range[0])"}
                       for i, p in enumerate(PARAMETERS)],
        "decoding": {"cells": "round; refused outside range", "colour": "argmax of the four, refused below colour_min",
                     "direction": "the axis with the larger |value|", "colour_min": COLOUR_MIN,
                     "distance_refused_below_cm": BY_NAME["distance"].valid[0] / 2,
                     "distance_refused_above_cm": DISTANCE_REFUSE_ABOVE, "angle_refused_above_deg": ANGLE_REFUSE_ABOVE},
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
    "go_to": Split3(("go to", "move to", "navigate to", "drive to", "get to"), ("head to",), ("travel to", "proceed to")),
    "pick": Split3(("pick up", "grab", "take", "lift"), ("get",), ("collect", "fetch")),
    "place": Split3(("place", "put", "set", "drop"), ("leave",), ("deposit", "position")),
    "move": Split3(("move", "go", "drive", "shift"), ("roll",), ("travel", "step")),
    "rotate": Split3(("rotate", "turn", "spin"), ("twist",), ("pivot", "swivel")),
    "stop": Split3(("stop", "halt", "freeze", "stand still", "stop moving", "do not move", "stay put"), ("pause",),
                   ("cease moving", "hold still")),
}
OBJECT_WORDS = Split3(("cube", "block"), ("box",), ("brick", "piece"))
# How a cell pair is written: shared by all splits (they are the notation, not the phrasing).
CELL_FORMS = ("row {r} column {c}", "row {r}, column {c}", "row {r} col {c}", "({r}, {c})", "{r},{c}", "{r} {c}",
              "cell {r} {c}", "cell {r}, {c}", "row {r} and column {c}", "the cell at row {r}, column {c}")
MOVE_DIRECTIONS = {  # word -> (direction_x, direction_y)
    "forward": (0, 1), "ahead": (0, 1), "forwards": (0, 1), "straight ahead": (0, 1),
    "back": (0, -1), "backward": (0, -1), "backwards": (0, -1), "in reverse": (0, -1),
    "left": (-1, 0), "right": (1, 0), "to the left": (-1, 0), "to the right": (1, 0),
    "to your left": (-1, 0), "to your right": (1, 0),
}
DIRECTION_WORDS = Split3(("forward", "ahead", "back", "backward", "left", "right", "to the left", "to your right"),
                         ("forwards", "to the right", "backwards"),
                         ("straight ahead", "in reverse", "to your left", "backwards", "left", "right"))
TURN_DIRECTIONS = {"left": 1, "counterclockwise": 1, "anticlockwise": 1, "counter-clockwise": 1, "to the left": 1,
                   "right": -1, "clockwise": -1, "to the right": -1}
TURN_WORDS = Split3(("left", "right", "counterclockwise", "clockwise"), ("to the left", "to the right"),
                    ("anticlockwise", "counter-clockwise", "left", "right"))
CM_UNITS = ("cm", "centimetres", "centimeters", "centimetre", "cms")
M_UNITS = ("m", "metres", "meters", "metre", "meter")
DEG_UNITS = Split3(("degrees", "deg"), ("degrees",), ("degree", "degrees"))
FILLERS = Split3(
    train=(("please ", ""), ("", " please"), ("robot, ", ""), ("", " now"), ("can you ", ""), ("", ", thanks")),
    val=(("hey robot, ", ""), ("", " right away")),
    test=(("would you ", ""), ("", ", thank you"), ("ok robot, ", ""), ("kindly ", "")),
)

TEMPLATES = {
    "go_to": Split3(
        ("{verb} {cell}", "{verb} the cell {cell}", "i want you to {verb} {cell}", "{verb} {cell} now"),
        ("could you {verb} {cell}",),
        ("i need you to {verb} grid position {cell}", "{verb} {cell} and wait there")),
    "pick": Split3(
        ("{verb} the {colour} {object}", "{verb} that {colour} {object}", "{verb} the {colour} {object} up",
         "i want the {colour} {object}, {verb} it"),
        ("i would like you to {verb} the {colour} {object}",),
        ("{verb} the {object} that is {colour}", "go ahead and {verb} the {colour} {object}")),
    "place": Split3(
        ("{verb} the {colour} {object} at {cell}", "{verb} the {colour} {object} on {cell}",
         "{verb} the {colour} {object} in {cell}", "{verb} the {colour} {object} down at {cell}"),
        ("could you {verb} the {colour} {object} on {cell}",),
        ("the {colour} {object} should {verb} at {cell}", "{verb} that {colour} {object} onto {cell}")),
    "move": Split3(
        ("{verb} {direction} {distance}", "{verb} {distance} {direction}", "{verb} {direction} by {distance}",
         "{verb} {direction} about {distance}"),
        ("could you {verb} {direction} for {distance}",),
        ("i want you to {verb} {distance} {direction}", "{verb} {direction}, {distance}")),
    "rotate": Split3(
        ("{verb} {turn} {angle}", "{verb} {angle} {turn}", "{verb} {turn} by {angle}", "{verb} {angle} to the {turn}"),
        ("could you {verb} {turn} about {angle}",),
        ("{verb} by {angle} {turn}", "i need you to {verb} {angle} {turn}")),
    "stop": Split3(
        ("{verb}", "{verb} now", "{verb} right there", "{verb} immediately"),
        ("could you {verb}",),
        ("you need to {verb} at once", "{verb}, that is enough")),
}
TURN_AROUND = Split3(("turn around", "do a u-turn"), ("spin around",), ("turn round", "about face"))

OUT_OF_DOMAIN = Split3(
    train=("hello there", "how are you", "thank you very much", "good morning", "what a nice day", "i like pizza",
           "tell me a joke", "who are you", "what is your name", "what time is it", "is it raining",
           "where is the red cube", "how many cubes are there", "what can you do", "nice work", "ok", "hmm",
           "blah blah", "asdf qwer", "the weather is lovely today", "my favourite colour is blue",
           "do you like music", "why is the sky blue", "let me think about it", "see you later",
           "row 3 is my favourite row", "i moved 20 cm yesterday", "the cube weighs 50 grams"),
    val=("good evening", "how is it going", "thanks a lot", "what is the capital of france", "can you hear me",
         "are you a robot", "what colour is the cube", "where are you", "i am hungry", "lorem ipsum dolor",
         "that was funny", "who made you", "how old are you", "is the table clean", "bye"),
    test=("hi", "what's up", "nice to meet you", "how do you do", "i love this song", "what day is it today",
          "which cube is the biggest", "how far is the wall", "can you sing", "do you dream", "tell me a story",
          "the cat sat on the mat", "what is two plus two", "is this thing on", "good night", "are you sure",
          "i have no idea", "who won the game yesterday", "what is the meaning of life", "see you tomorrow"),
)

_ONES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
         "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen")
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")


def number_words(n: int) -> str:
    """0-999 in English words ("forty five", "one hundred and twenty")."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    rest = n % 100
    return _ONES[n // 100] + " hundred" + ("" if rest == 0 else " and " + number_words(rest))


@dataclass
class Command:
    text: str
    action: int            # index into ACTIONS; -1 for out-of-domain text
    params: np.ndarray     # normalised [10]; neutral for out-of-domain text
    template: str
    out_of_range: bool = False   # a command the robot must refuse (a number or colour outside the schema)


def _number(rng, n: int, words_p: float = 0.3) -> str:
    return number_words(n) if 0 <= n < 1000 and rng.random() < words_p else str(n)


def _cell(rng, out_of_range: bool) -> tuple[int, int, str]:
    r, c = (int(v) for v in rng.integers(GRID_CELLS, size=2))
    if out_of_range:  # one or both coordinates off the grid
        bad = int(rng.choice([8, 9, 10, 11, 12, 15, 20, 50, 99, 100, -1]))
        r, c = (bad, c) if rng.random() < 0.5 else (r, bad)
    form = CELL_FORMS[rng.integers(len(CELL_FORMS))]
    words = 0.0 if form in ("{r},{c}", "{r} {c}", "({r}, {c})") else 0.3
    return r, c, form.format(r=_number(rng, r, words), c=_number(rng, c, words))


def _distance(rng, out_of_range: bool) -> tuple[float, str]:
    if out_of_range:
        kind = rng.random()
        if kind < 0.35:
            cm = int(rng.integers(DISTANCE_REFUSE_ABOVE + 5, 1000))
        elif kind < 0.85:
            metres = float(rng.choice([1.5, 2, 2.5, 3, 4, 5, 10]))
            amount = _number(rng, int(metres)) if metres == int(metres) else f"{metres:g}"
            return metres * 100, f"{amount} {M_UNITS[rng.integers(len(M_UNITS))]}"
        else:
            cm = -int(rng.integers(1, 500))
        return float(cm), f"{cm} {CM_UNITS[rng.integers(len(CM_UNITS))]}"
    kind = rng.random()
    if kind < 0.1:
        return 50.0, str(rng.choice(["half a metre", "half a meter", "0.5 m", "0.5 metres"]))
    if kind < 0.17:
        return 100.0, str(rng.choice(["a metre", "one metre", "a meter", "1 m", "one meter"]))
    cm = int(rng.integers(1, 21)) * 5 if rng.random() < 0.7 else int(rng.integers(5, 101))
    return float(cm), f"{_number(rng, cm)} {CM_UNITS[rng.integers(len(CM_UNITS))]}"


def _angle(rng, out_of_range: bool) -> int:
    if out_of_range:
        return int(rng.choice([int(rng.integers(ANGLE_REFUSE_ABOVE + 10, 1000)), 270, 360, 450, 720]))
    if rng.random() < 0.6:
        return int(rng.choice([15, 30, 45, 60, 90, 120, 135, 150, 180]))
    return int(rng.integers(5, 181))


def make_command(action: str, split: str, rng: np.random.Generator, out_of_range: bool = False) -> Command:
    """One command of ``action`` in the phrasing of ``split``; ``out_of_range``: one the robot must refuse."""
    def pick(options):
        values = options.part(split) if isinstance(options, Split3) else options
        return values[rng.integers(len(values))]

    out_of_range = out_of_range and action != "stop"  # stop has nothing that can be out of range
    template = pick(TEMPLATES[action])
    params = neutral_vector()
    slots = {"verb": pick(VERBS[action]), "object": pick(OBJECT_WORDS)}
    if action in ("go_to", "place"):
        cell_bad = out_of_range and (action == "go_to" or rng.random() < 0.5)
        r, c, slots["cell"] = _cell(rng, cell_bad)
        params[0], params[1] = normalise("row", r), normalise("col", c)
    else:
        cell_bad = False
    if action in ("pick", "place"):
        if out_of_range and not cell_bad:
            slots["colour"] = pick(UNKNOWN_COLOURS)   # all four colour outputs stay 0
        else:
            colour = COLOURS[rng.integers(len(COLOURS))]
            slots["colour"] = colour
            params[2 + COLOURS.index(colour)] = 1.0
    if action == "move":
        word = pick(DIRECTION_WORDS)
        dx, dy = MOVE_DIRECTIONS[word]
        cm, slots["distance"] = _distance(rng, out_of_range)
        slots["direction"] = word
        params[6], params[7] = normalise("direction_x", dx), normalise("direction_y", dy)
        params[8] = normalise("distance", cm)
    if action == "rotate":
        if not out_of_range and rng.random() < 0.12:  # "turn around": half a turn, no number
            phrase = pick(TURN_AROUND)
            params[9] = normalise("angle", 180)
            return _finish(phrase, action, params, f"turn_around:{phrase}", False, split, rng)
        word = pick(TURN_WORDS)
        deg = _angle(rng, out_of_range)
        slots.update(turn=word, angle=f"{_number(rng, deg)} {pick(DEG_UNITS)}")
        params[9] = normalise("angle", TURN_DIRECTIONS[word] * deg)
    return _finish(template.format(**slots), action, params, template, out_of_range, split, rng)


def _finish(text, action, params, template, out_of_range, split, rng) -> Command:
    if rng.random() < 0.35:
        before, after = FILLERS.part(split)[rng.integers(len(FILLERS.part(split)))]
        text = before + text + after
    style = rng.random()
    if style < 0.25:
        text = text[0].upper() + text[1:]
    elif style < 0.3:
        text = text.upper()
    if rng.random() < 0.3:
        text += str(rng.choice([".", "!", "?", "..."]))
    return Command(text, ACTIONS.index(action), params, template, out_of_range)


def _gibberish(rng) -> str:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return " ".join("".join(rng.choice(list(letters), size=rng.integers(2, 9))) for _ in range(rng.integers(1, 6)))


def _long_text(rng) -> str:
    words = ("the", "robot", "table", "and", "then", "some", "very", "long", "story", "about", "nothing", "at", "all",
             "while", "people", "talk", "near", "kitchen", "window", "music", "plays", "softly")
    return " ".join(rng.choice(words, size=int(rng.integers(80, 200))))


def make_out_of_domain(split: str, n: int, rng: np.random.Generator) -> list[Command]:
    """Chit-chat and questions from the split's list, plus generated gibberish, long text, odd symbols."""
    fixed = list(OUT_OF_DOMAIN.part(split))
    special = ["", "   ", "?!...", "🤖🤖🤖", "¿qué?", "こんにちは", "bonjour, ça va ?", "#$%&*", "..."]
    out = []
    for i in range(n):
        kind = i % 5
        if kind in (0, 1):
            text = fixed[rng.integers(len(fixed))]
        elif kind == 2:
            text = _gibberish(rng)
        elif kind == 3:
            text = special[rng.integers(len(special))] if split != "train" else _gibberish(rng).upper()
        else:
            text = _long_text(rng) if rng.random() < 0.5 else fixed[rng.integers(len(fixed))] + "?"
        out.append(Command(text, -1, neutral_vector(), "out_of_domain"))
    return out


OUT_OF_RANGE_SHARE = 0.15   # of the go_to, pick, place, move and rotate commands


def make_corpus(n_train: int, n_val: int, n_test: int, n_ood: int, seed: int = 0) -> dict[str, list[Command]]:
    """In-domain train / val / test (disjoint phrasings, a share of them out of range) and out-of-domain
    train / val / test."""
    rng = np.random.default_rng(seed)
    corpus = {}
    for split, n in (("train", n_train), ("val", n_val), ("test", n_test)):
        commands = []
        for i in range(n):
            action = ACTIONS[i % len(ACTIONS)]
            bad = action != "stop" and rng.random() < OUT_OF_RANGE_SHARE
            commands.append(make_command(action, split, rng, out_of_range=bad))
        corpus[split] = commands
        corpus[f"ood_{split}"] = make_out_of_domain(split, n_ood, rng)
    return corpus
