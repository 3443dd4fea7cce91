"""What evaluation needs from a model: the `Generator` protocol.

A *context* is an interleaved sequence of images and text, in reading order: the few-shot demonstrations
(image, prompt, answer) x k and then the query (image, prompt), as in Flamingo (Alayrac et al., 2022) and
MM1 (McKinzie et al., 2024, section 3). The model turns each context into a continuation (`generate`) or
scores given continuations (`loglikelihood`). Batching, KV caches and devices are the model's business.

A conversation task's context is a `Conversation`: still a list of text and images (each turn's text in the plain
frame's order, images at their markers), so any generator reads it; it also carries its turns, and `frame(tokenizer,
template)` gives the pieces the model was trained on for the same turns (`ablate.data.conversation.prompt_pieces`):
text pieces each tokenised on its own, images, and token ids (`<eos>`). A generator that frames it so
(`ablate.models.mllm.MLLM`) sees at evaluation what training showed it, up to where the reply begins.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, Union, runtime_checkable

from ablate.data.conversation import EOS, IMAGE_MARKER, prompt_pieces

if TYPE_CHECKING:  # pragma: no cover
    from PIL.Image import Image

Segment = Union[str, "Image"]
Context = list  # list[Segment]: text and PIL images interleaved, in order


class Conversation(list):
    """A context that is the turns of a conversation (`[{"role", "content"}]`, one `<image>` marker per image) before
    the reply to generate; as a list, those turns in the plain frame with the images in place."""

    def __init__(self, turns: list[dict], images: list):
        markers = sum(t["content"].count(IMAGE_MARKER) for t in turns)
        if markers != len(images):
            raise ValueError(f"a conversation context has {markers} {IMAGE_MARKER} markers for {len(images)} images")
        self.turns, self.images = [dict(t) for t in turns], list(images)
        super().__init__(p for p in self.frame() if not isinstance(p, int))

    def frame(self, tokenizer=None, template: bool = False) -> list:
        """The context as training frames the same turns (`template`: the tokenizer's chat template, else the plain
        frame): text pieces, each tokenised on its own, the images where their markers are, and the `<eos>` id
        that closes each earlier assistant turn in the plain frame (left out without a tokenizer)."""
        images, out = iter(self.images), []
        for piece in prompt_pieces(self.turns, tokenizer, template):
            if piece == IMAGE_MARKER:
                out.append(next(images))
            elif piece == EOS:
                if tokenizer is not None and tokenizer.eos_token_id is not None:
                    out.append(tokenizer.eos_token_id)
            else:
                out.append(piece)
        return out


@runtime_checkable
class Generator(Protocol):
    """A multimodal model seen from evaluation."""

    def generate(self, contexts: list[Context], max_new_tokens: int) -> list[str]:
        """Greedy continuation of each context (one string per context, in order)."""
        ...

    def loglikelihood(self, contexts: list[Context], continuations: list[str]) -> list[float]:
        """Summed log-probability of each continuation given its context (natural log, <= 0)."""
        ...
