"""The robot-command schema and a generator of natural-language commands for the HRI models.

Schema (written once here; exported in every HRI manifest so C++ and Rust decode alike):
six action types and a 10-number parameter vector, every number normalised to [0, 1].
A parameter an action does not use holds its ``neutral`` value.

Splits: phrasings are split **by template and by synonym** into train / validation / test, so
test commands use templates or words never seen in training (validation ones are unseen too,
and choose the confidence threshold). Out-of-domain text (chit-chat, questions, gibberish,
empty, punctuation, emoji, very long) has its own train / validation / test parts.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ACTIONS = ("go_to", "pick", "place", "move", "rotate", "stop")
COLOURS = ("red", "green", "blue", "yellow")
GRID_CELLS = 8          # go_to / place targets are cells of the 8 x 8 grid of notebook 01
MAX_DISTANCE_CM = 100.0
MAX_ANGLE_DEG = 180.0

# name, meaning, unit, raw range, neutral raw value, used by
PARAMETERS = (
    ("row", "target grid row", "cell", (0, GRID_CELLS - 1), 0, ("go_to", "place")),
    ("col", "target grid column", "cell", (0, GRID_CELLS - 1), 0, ("go_to", "place")),
    ("colour_red", "cube colour is red", "0/1", (0, 1), 0, ("pick", "place")),
    ("colour_green", "cube colour is green", "0/1", (0, 1), 0, ("pick", "place")),
    ("colour_blue", "cube colour is blue", "0/1", (0, 1), 0, ("pick", "place")),
    ("colour_yellow", "cube colour is yellow", "0/1", (0, 1), 0, ("pick", "place")),
    ("direction_x", "move direction, +1 right / -1 left", "unit", (-1, 1), 0, ("move",)),
    ("direction_y", "move direction, +1 forward / -1 backward", "unit", (-1, 1), 0, ("move",)),
    ("distance", "move distance", "cm", (0, MAX_DISTANCE_CM), 0, ("move",)),
    ("angle", "rotation, positive = counter-clockwise (left)", "degree", (-MAX_ANGLE_DEG, MAX_ANGLE_DEG), 0, ("rotate",)),
)
PARAMETER_NAMES = tuple(p[0] for p in PARAMETERS)


def normalise(name: str, raw: float) -> float:
    lo, hi = PARAMETERS[PARAMETER_NAMES.index(name)][3]
    return (raw - lo) / (hi - lo)


def denormalise(name: str, value: float) -> float:
    lo, hi = PARAMETERS[PARAMETER_NAMES.index(name)][3]
    return lo + float(value) * (hi - lo)


def neutral_vector() -> np.ndarray:
    return np.array([normalise(p[0], p[4]) for p in PARAMETERS], dtype=np.float32)


def decode_params(action: str, vector) -> dict:
    """The parameters ``action`` uses, in their units (colour as a name, cells rounded)."""
    values = {name: denormalise(name, v) for name, v in zip(PARAMETER_NAMES, vector)}
    out = {}
    if action in ("go_to", "place"):
        out["row"] = int(np.clip(round(values["row"]), 0, GRID_CELLS - 1))
        out["col"] = int(np.clip(round(values["col"]), 0, GRID_CELLS - 1))
    if action in ("pick", "place"):
        out["colour"] = COLOURS[int(np.argmax([values[f"colour_{c}"] for c in COLOURS]))]
    if action == "move":
        out["direction_x"] = round(values["direction_x"], 2)
        out["direction_y"] = round(values["direction_y"], 2)
        out["distance_cm"] = round(values["distance"], 1)
    if action == "rotate":
        out["angle_deg"] = round(values["angle"], 1)
    return out


def schema_json() -> dict:
    return {
        "actions": list(ACTIONS),
        "parameters": [{"index": i, "name": n, "meaning": m, "unit": u, "range": list(r), "neutral": z,
                        "used_by": list(used), "normalised": "(raw - range[0]) / (range[1] - range[0])"}
                       for i, (n, m, u, r, z, used) in enumerate(PARAMETERS)],
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
    "go_to": Split3(("go to", "move to", "navigate to", "drive to"), ("head to",), ("travel to", "proceed to")),
    "pick": Split3(("pick up", "grab", "take", "lift"), ("get",), ("collect", "fetch")),
    "place": Split3(("place", "put", "set", "drop"), ("leave",), ("deposit", "position")),
    "move": Split3(("move", "go", "drive", "shift"), ("roll",), ("travel", "step")),
    "rotate": Split3(("rotate", "turn", "spin"), ("twist",), ("pivot", "swivel")),
    "stop": Split3(("stop", "halt", "freeze", "stand still", "stop moving", "do not move", "stay put"), ("pause",),
                   ("cease moving", "hold still")),
}
OBJECT_WORDS = Split3(("cube", "block"), ("box",), ("brick", "piece"))
MOVE_DIRECTIONS = {  # word -> (direction_x, direction_y)
    "forward": (0, 1), "ahead": (0, 1), "backward": (0, -1), "back": (0, -1), "left": (-1, 0), "right": (1, 0),
    "onward": (0, 1), "in reverse": (0, -1), "to the left": (-1, 0), "to the right": (1, 0),
}
DIRECTION_WORDS = Split3(("forward", "backward", "left", "right", "ahead", "back"), ("to the left", "to the right"),
                         ("onward", "in reverse", "left", "right"))
TURN_DIRECTIONS = {"left": 1, "counterclockwise": 1, "anticlockwise": 1, "right": -1, "clockwise": -1}
TURN_WORDS = Split3(("left", "right", "counterclockwise", "clockwise"), ("left", "right"),
                    ("anticlockwise", "clockwise", "left", "right"))
CM_UNITS = Split3(("cm", "centimeters"), ("centimetres",), ("cms",))
DEG_UNITS = Split3(("degrees", "deg"), ("degrees",), ("degree",))

TEMPLATES = {
    "go_to": Split3(
        ("{verb} row {row} column {col}", "{verb} cell {row}, {col}", "please {verb} the cell at row {row} and column {col}",
         "{verb} ({row}, {col})"),
        ("could you {verb} row {row}, column {col}",),
        ("i need you to {verb} grid cell {row} {col}", "{verb} position row {row} col {col} now")),
    "pick": Split3(
        ("{verb} the {colour} {object}", "please {verb} the {colour} {object}", "{verb} that {colour} {object} now",
         "can you {verb} the {colour} {object}"),
        ("i would like you to {verb} the {colour} {object}",),
        ("{verb} the {object} that is {colour}", "go ahead and {verb} the {colour} {object}")),
    "place": Split3(
        ("{verb} the {colour} {object} at row {row} column {col}", "{verb} the {colour} {object} on cell {row}, {col}",
         "please {verb} the {colour} {object} in ({row}, {col})", "{verb} the {colour} {object} down at row {row}, column {col}"),
        ("could you {verb} the {colour} {object} on row {row} col {col}",),
        ("the {colour} {object} should {verb} at cell {row} {col}", "{verb} that {colour} {object} onto position {row}, {col}")),
    "move": Split3(
        ("{verb} {direction} {distance}", "{verb} {distance} {direction}", "please {verb} {direction} by {distance}",
         "{verb} {direction} about {distance}"),
        ("could you {verb} {direction} for {distance}",),
        ("i want you to {verb} {distance} {direction}", "{verb} {direction}, {distance} please")),
    "rotate": Split3(
        ("{verb} {turn} {angle}", "{verb} {angle} {turn}", "please {verb} {turn} by {angle}", "{verb} {turn} {angle} now"),
        ("could you {verb} {turn} about {angle}",),
        ("{verb} by {angle} to the {turn}", "i need you to {verb} {angle} {turn}")),
    "stop": Split3(
        ("{verb}", "{verb} now", "please {verb}", "{verb} right there", "{verb} immediately"),
        ("could you {verb}",),
        ("you need to {verb} at once", "{verb}, that is enough")),
}

OUT_OF_DOMAIN = Split3(
    train=("hello there", "how are you", "thank you very much", "good morning", "what a nice day", "i like pizza",
           "tell me a joke", "who are you", "what is your name", "what time is it", "is it raining",
           "where is the red cube", "how many cubes are there", "what can you do", "nice work", "ok", "hmm",
           "blah blah", "asdf qwer", "the weather is lovely today", "my favourite colour is blue",
           "do you like music", "why is the sky blue", "let me think about it", "see you later"),
    val=("good evening", "how is it going", "thanks a lot", "what is the capital of france", "can you hear me",
         "are you a robot", "what colour is the cube", "where are you", "i am hungry", "lorem ipsum dolor",
         "that was funny", "who made you", "how old are you", "is the table clean", "bye"),
    test=("hi", "what's up", "nice to meet you", "how do you do", "i love this song", "what day is it today",
          "which cube is the biggest", "how far is the wall", "can you sing", "do you dream", "tell me a story",
          "the cat sat on the mat", "what is two plus two", "is this thing on", "good night", "are you sure",
          "i have no idea", "who won the game yesterday", "what is the meaning of life", "see you tomorrow"),
)


@dataclass
class Command:
    text: str
    action: int            # index into ACTIONS; -1 for out-of-domain text
    params: np.ndarray     # normalised [10]; neutral for out-of-domain text
    template: str


def _number_words(rng, n: int) -> str:
    words = ("zero", "one", "two", "three", "four", "five", "six", "seven")
    return words[n] if rng.random() < 0.25 else str(n)


def make_command(action: str, split: str, rng: np.random.Generator) -> Command:
    template = TEMPLATES[action].part(split)[rng.integers(len(TEMPLATES[action].part(split)))]
    pick = lambda options: options.part(split)[rng.integers(len(options.part(split)))]  # noqa: E731
    params = neutral_vector()
    slots = {"verb": pick(VERBS[action]), "object": pick(OBJECT_WORDS)}
    if action in ("go_to", "place"):
        row, col = int(rng.integers(GRID_CELLS)), int(rng.integers(GRID_CELLS))
        slots.update(row=_number_words(rng, row), col=_number_words(rng, col))
        params[0], params[1] = normalise("row", row), normalise("col", col)
    if action in ("pick", "place"):
        colour = COLOURS[rng.integers(len(COLOURS))]
        slots["colour"] = colour
        params[2 + COLOURS.index(colour)] = 1.0
    if action == "move":
        word = pick(DIRECTION_WORDS)
        dx, dy = MOVE_DIRECTIONS[word]
        cm = int(rng.integers(1, 21)) * 5
        unit = pick(CM_UNITS)
        slots.update(direction=word, distance=f"{cm} {unit}" if rng.random() < 0.8 else f"{cm / 100:g} m")
        params[6], params[7] = normalise("direction_x", dx), normalise("direction_y", dy)
        params[8] = normalise("distance", cm)
    if action == "rotate":
        word = pick(TURN_WORDS)
        deg = int(rng.choice([15, 30, 45, 60, 90, 120, 135, 180]))
        slots.update(turn=word, angle=f"{deg} {pick(DEG_UNITS)}")
        params[9] = normalise("angle", TURN_DIRECTIONS[word] * deg)
    text = template.format(**slots)
    if rng.random() < 0.3:
        text = text.capitalize() + ("." if rng.random() < 0.5 else "")
    return Command(text, ACTIONS.index(action), params, template)


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


def make_corpus(n_train: int, n_val: int, n_test: int, n_ood: int, seed: int = 0) -> dict[str, list[Command]]:
    """In-domain train / val / test (disjoint phrasings) and out-of-domain train / val / test."""
    rng = np.random.default_rng(seed)
    corpus = {}
    for split, n in (("train", n_train), ("val", n_val), ("test", n_test)):
        corpus[split] = [make_command(ACTIONS[i % len(ACTIONS)], split, rng) for i in range(n)]
        corpus[f"ood_{split}"] = make_out_of_domain(split, n_ood, rng)
    return corpus
