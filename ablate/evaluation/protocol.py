"""What evaluation needs from a model: the `Generator` protocol.

A *context* is an interleaved sequence of images and text, in reading order: the few-shot demonstrations
(image, prompt, answer) x k and then the query (image, prompt), as in Flamingo (Alayrac et al., 2022) and
MM1 (McKinzie et al., 2024, section 3). The model turns each context into a continuation (`generate`) or
scores given continuations (`loglikelihood`). Batching, KV caches and devices are the model's business.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, Union, runtime_checkable

if TYPE_CHECKING:  # pragma: no cover
    from PIL.Image import Image

Segment = Union[str, "Image"]
Context = list  # list[Segment]: text and PIL images interleaved, in order


@runtime_checkable
class Generator(Protocol):
    """A multimodal model seen from evaluation."""

    def generate(self, contexts: list[Context], max_new_tokens: int) -> list[str]:
        """Greedy continuation of each context (one string per context, in order)."""
        ...

    def loglikelihood(self, contexts: list[Context], continuations: list[str]) -> list[float]:
        """Summed log-probability of each continuation given its context (natural log, <= 0)."""
        ...
