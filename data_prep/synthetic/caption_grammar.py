"""A small caption grammar: one sentence per event, with synonyms, word order and tense varied.

Example outputs: "Two big red circles slowly move to the left.",
"Quickly, a tiny blue square was spinning.", "There are three large green crosses flashing
rapidly." Every sentence names the count, size, color and shape of the objects, the action
and the speed, so that the semantic concepts (nouns, verbs, adjectives, adverbs) of a caption
describe what is visible in the event's pixels.
"""
from __future__ import annotations

import numpy as np

from data_prep.synthetic.attributes import EventSpec

_DETERMINERS = {1: ("A", "One", "A single"), 2: ("Two", "A pair of"),
                3: ("Three", "A group of three")}
_SIZE_WORDS = {"small": ("small", "little", "tiny"), "big": ("big", "large", "huge")}
_PLURALS = {"circle": "circles", "square": "squares", "triangle": "triangles",
            "diamond": "diamonds", "cross": "crosses"}
# Verb phrases as (head verb, rest). The head verb is conjugated from `_CONJUGATION`.
_VERB_PHRASES = {
    # Not "move left": the tagger reads "left" there as the verb "leave".
    "move_left": (("move", "to the left"), ("head", "to the left"), ("slide", "to the left"),
                  ("travel", "leftward")),
    "move_right": (("move", "to the right"), ("head", "to the right"),
                   ("slide", "to the right"), ("travel", "rightward")),
    "move_up": (("move", "up"), ("rise", ""), ("float", "upward"), ("drift", "up")),
    "move_down": (("move", "down"), ("fall", ""), ("sink", "downward"), ("drop", "down")),
    "rotate": (("rotate", ""), ("spin", ""), ("turn", "around")),
    "grow": (("grow", ""), ("get", "bigger"), ("expand", "")),
    "shrink": (("shrink", ""), ("get", "smaller"), ("contract", "")),
    "bounce": (("bounce", ""), ("jump", "up and down"), ("hop", "")),
    "blink": (("blink", ""), ("flash", ""), ("flicker", "")),
    "orbit": (("move", "in a circle"), ("circle", "around"), ("go", "around in circles")),
}
# base -> (third person singular, present participle, past)
_CONJUGATION = {
    "move": ("moves", "moving", "moved"), "head": ("heads", "heading", "headed"),
    "slide": ("slides", "sliding", "slid"),
    "travel": ("travels", "traveling", "traveled"), "rise": ("rises", "rising", "rose"),
    "float": ("floats", "floating", "floated"), "drift": ("drifts", "drifting", "drifted"),
    "fall": ("falls", "falling", "fell"), "sink": ("sinks", "sinking", "sank"),
    "drop": ("drops", "dropping", "dropped"), "rotate": ("rotates", "rotating", "rotated"),
    "spin": ("spins", "spinning", "spun"), "turn": ("turns", "turning", "turned"),
    "grow": ("grows", "growing", "grew"), "get": ("gets", "getting", "got"),
    "expand": ("expands", "expanding", "expanded"),
    "shrink": ("shrinks", "shrinking", "shrank"),
    "contract": ("contracts", "contracting", "contracted"),
    "bounce": ("bounces", "bouncing", "bounced"), "jump": ("jumps", "jumping", "jumped"),
    "hop": ("hops", "hopping", "hopped"), "blink": ("blinks", "blinking", "blinked"),
    "flash": ("flashes", "flashing", "flashed"),
    "flicker": ("flickers", "flickering", "flickered"),
    "circle": ("circles", "circling", "circled"), "go": ("goes", "going", "went"),
}
_ADVERBS = {"slow": ("slowly", "gently", "steadily"), "quick": ("quickly", "rapidly", "swiftly")}
# Adverbs that only sound right after the verb phrase.
_TRAILING_ADVERBS = {"slow": ("at a slow pace",), "quick": ("fast", "at a fast pace")}
_CONNECTORS = ("Then", "Next", "After that", "Later")
_TENSES = ("present", "progressive", "past")


def _choice(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


def _verb(base: str, tense: str, plural: bool) -> str:
    third, ing, past = _CONJUGATION[base]
    if tense == "present":
        return base if plural else third
    if tense == "progressive":
        return ("are " if plural else "is ") + ing
    return past


def _join(*parts: str) -> str:
    return " ".join(p for p in parts if p)


def describe_event(event: EventSpec, rng: np.random.Generator, first: bool = True) -> str:
    """One sentence for `event` (capitalised, with a trailing period, no leading space)."""
    plural = event.count > 1
    noun = _PLURALS[event.shape] if plural else event.shape
    subject = _join(_choice(rng, _DETERMINERS[event.count]),
                    _choice(rng, _SIZE_WORDS[event.size]), event.color, noun)
    head, rest = _choice(rng, _VERB_PHRASES[event.action])
    tense = _choice(rng, _TENSES)
    template = int(rng.integers(4))
    if template == 3:  # "There are two big red circles moving to the left quickly."
        be = ("were" if plural else "was") if tense == "past" else ("are" if plural else "is")
        adverb = _choice(rng, _ADVERBS[event.speed] + _TRAILING_ADVERBS[event.speed])
        lowered = subject[0].lower() + subject[1:]
        sentence = _join("There", be, lowered, _CONJUGATION[head][1], rest, adverb)
    elif template == 2:  # "Quickly, two circles move left."
        adverb = _choice(rng, _ADVERBS[event.speed])
        lowered = subject[0].lower() + subject[1:]
        sentence = _join(adverb.capitalize() + ",", lowered, _verb(head, tense, plural), rest)
    elif template == 1:  # "Two circles move left quickly."
        adverb = _choice(rng, _ADVERBS[event.speed] + _TRAILING_ADVERBS[event.speed])
        sentence = _join(subject, _verb(head, tense, plural), rest, adverb)
    else:  # "Two circles quickly move left." / "Two circles are quickly moving left."
        adverb = _choice(rng, _ADVERBS[event.speed])
        verb = _verb(head, tense, plural)
        if tense == "progressive":
            aux, participle = verb.split(" ")
            sentence = _join(subject, aux, adverb, participle, rest)
        else:
            sentence = _join(subject, adverb, verb, rest)
    if not first and template != 2 and rng.uniform() < 0.3:
        connector = _choice(rng, _CONNECTORS)
        sentence = connector + ", " + sentence[0].lower() + sentence[1:]
    return sentence + "."


def describe_video(events, rng: np.random.Generator) -> list[str]:
    """Sentences for a video's events, in event order. As in ActivityNet Captions, every
    sentence but the first starts with a space."""
    return [("" if i == 0 else " ") + describe_event(e, rng, first=i == 0)
            for i, e in enumerate(events)]
