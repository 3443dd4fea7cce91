"""Facts about a scene, each in one fixed cloze form: `prompt + " " + answer` is the caption sentence.

The same fact gives a caption sentence ("the colour of the circle is red"), a natural question ("What colour
is the circle?") and the cloze prefix a caption-trained model completes ("the colour of the circle is").
A fact about an object is only stated when it is unambiguous: "the colour of the circle" only when the scene
holds exactly one circle, "the red shape" only when exactly one shape is red.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from ablate.world import vocab
from ablate.world.scene import Scene

VQA_TYPES: tuple[str, ...] = ("colour", "shape", "count", "position")


@dataclass(frozen=True)
class Fact:
    type: str  # colour | shape | count | position | size | text-small | text-large
    question: str
    prompt: str
    answers: tuple[str, ...]  # the first is the one the caption sentence uses

    @property
    def sentence(self) -> str:
        return f"{self.prompt} {self.answers[0]}"


def _count_answers(n: int) -> tuple[str, ...]:
    return (str(n), vocab.NUMBER_WORDS[n]) if n in vocab.NUMBER_WORDS else (str(n),)


def word_facts(scene: Scene) -> list[Fact]:
    words = scene.words
    if len(words) == 1:
        w = words[0]
        return [Fact(f"text-{w.size}", "What word is written in the image?", "the word is", (w.text,))]
    return [
        Fact(
            f"text-{w.size}",
            f"What is the {vocab.ORDINALS[i]} word from the top?",
            f"the {vocab.ORDINALS[i]} word is",
            (w.text,),
        )
        for i, w in enumerate(words)
    ]


def scene_facts(scene: Scene) -> list[Fact]:
    """Every unambiguous fact of a scene, in a fixed order (callers shuffle)."""
    facts = word_facts(scene)
    shapes = scene.shapes
    facts.append(Fact("count", "How many shapes are there?", "the number of shapes is", _count_answers(len(shapes))))
    per_shape = Counter(s.shape for s in shapes)
    for name in vocab.SHAPES:
        if per_shape[name]:
            plural = vocab.PLURALS[name]
            facts.append(
                Fact("count", f"How many {plural} are there?", f"the number of {plural} is",
                     _count_answers(per_shape[name]))
            )
    for s in shapes:
        if per_shape[s.shape] != 1:
            continue
        facts.append(Fact("colour", f"What colour is the {s.shape}?", f"the colour of the {s.shape} is", (s.colour,)))
        facts.append(Fact("position", f"Where is the {s.shape}?", f"the {s.shape} is at the", (s.position,)))
        facts.append(Fact("size", f"Is the {s.shape} big or small?", f"the size of the {s.shape} is", (s.size,)))
    per_colour = Counter(s.colour for s in shapes)
    for s in shapes:
        if per_colour[s.colour] == 1:
            facts.append(Fact("shape", f"What shape is the {s.colour} object?", f"the {s.colour} shape is a",
                              (s.shape,)))
    return facts
