"""Question sets over held-out images: `vqa`, `textvqa` and `caption` records.

Each record is `{"id", "image", "question", "prompt", "answers", "type"}`: `question` is the natural
question, `prompt` the cloze prefix that a caption-trained model completes, `answers` the references.
"""
from __future__ import annotations

import numpy as np

from ablate.world.captions import rich_caption
from ablate.world.facts import VQA_TYPES, Fact, word_facts

TASKS: tuple[str, ...] = ("vqa", "textvqa", "caption")
SPLITS: tuple[str, ...] = ("test", "demo")
CAPTION_REFERENCES = 3


def _record(qid: str, image: str, fact: Fact) -> dict:
    return {"id": qid, "image": image, "question": fact.question, "prompt": fact.prompt,
            "answers": list(fact.answers), "type": fact.type}


def vqa_record(rng: np.random.Generator, qid: str, image: str, facts: list[Fact], index: int) -> dict:
    """One visual question; types cycle colour/shape/count/position with the image index (balanced set)."""
    wanted = VQA_TYPES[index % len(VQA_TYPES)]
    pool = [f for f in facts if f.type == wanted] or [f for f in facts if f.type in VQA_TYPES]
    return _record(qid, image, pool[int(rng.integers(len(pool)))])


def textvqa_record(qid: str, image: str, scene) -> dict:
    return _record(qid, image, word_facts(scene)[0])


def caption_record(rng: np.random.Generator, qid: str, image: str, facts: list[Fact]) -> dict:
    refs = [rich_caption(rng, facts) for _ in range(CAPTION_REFERENCES)]
    return {"id": qid, "image": image, "question": "Describe the image.", "prompt": "",
            "answers": refs, "type": "caption"}
