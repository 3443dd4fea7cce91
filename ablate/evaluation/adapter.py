"""`AblateLMM`: the lmms-eval model adapter around a `Generator` (a thin `lmms` subclass, as in nanoVLM).

Made fresh for each evaluation: lmms-eval's `clean()` deletes every `nn.Module` attribute of the model it
was given. Requests are grouped by generation settings, sorted by context size (so a batch holds contexts of
similar length), cut into batches of `batch_size` and answered in their original order.

A context string carries one `<image>` marker per image of `doc_to_visual` (the embedded tasks write them);
without markers (lmms-eval's own tasks), the images come first, then the text. A conversation task's context text
is its turns (`spec.conversation_text`): the generator gets a `protocol.Conversation` of them and the images.
"""
from __future__ import annotations

import time
from collections import defaultdict

from lmms_eval.api.instance import Instance
from lmms_eval.api.model import lmms

from ablate.evaluation.protocol import Context, Conversation, Generator
from ablate.evaluation.spec import IMAGE_MARKER, conversation_turns


def interleave(text: str, images: list) -> Context:
    """Split `text` at `<image>` markers and put the images there, in order (empty text pieces dropped)."""
    pieces = text.split(IMAGE_MARKER)
    markers = len(pieces) - 1
    if markers == 0:
        return [*images, text] if text else list(images)
    if markers != len(images):
        raise ValueError(f"context has {markers} {IMAGE_MARKER} markers for {len(images)} images")
    context: Context = [pieces[0]] if pieces[0] else []
    for image, piece in zip(images, pieces[1:]):
        context.append(image)
        if piece:
            context.append(piece)
    return context


def cut_at_stops(text: str, until) -> str:
    """`text` up to the first stop sequence, stripped."""
    stops = [until] if isinstance(until, str) else list(until or [])
    for stop in stops:
        if stop:
            text = text.split(stop, 1)[0]
    return text.strip()


def _flat_images(visuals) -> list:
    if visuals is None:
        return []
    if not isinstance(visuals, (list, tuple)):
        visuals = [visuals]
    images = []
    for v in visuals:
        if isinstance(v, (list, tuple)):
            images.extend(_flat_images(v))
        elif hasattr(v, "convert"):
            images.append(v)
        else:
            raise NotImplementedError(f"only images are supported, got {type(v).__name__} (video/audio?)")
    return images


def _size(context: Context) -> int:
    return sum(len(s) if isinstance(s, str) else 256 for s in context)


class AblateLMM(lmms):
    """lmms-eval `lmms` answering `generate_until`, `loglikelihood` and `generate_until_multi_round`."""

    def __init__(self, generator: Generator, batch_size: int = 32, max_new_tokens: int = 4):
        super().__init__()
        self.generator = generator
        self.batch_size = int(batch_size)
        self.max_new_tokens = int(max_new_tokens)
        self.generated = 0  # contexts sent to generator.generate
        self.model_seconds = 0.0  # time spent inside the generator

    # -- helpers --------------------------------------------------------------------------------------
    def _doc(self, task: str, split: str, doc_id: int) -> dict:
        return self.task_dict[task][split][doc_id]

    def _context(self, ctx: str, doc_to_visual, task: str, split: str, doc_id: int) -> Context:
        images = _flat_images(doc_to_visual(self._doc(task, split, doc_id))) if doc_to_visual else []
        turns = conversation_turns(ctx)
        return interleave(ctx, images) if turns is None else Conversation(turns, images)

    def _generate(self, contexts: list[Context], max_new_tokens: int) -> list[str]:
        """Generate for `contexts` in batches, longest first, answers in the given order."""
        order = sorted(range(len(contexts)), key=lambda i: -_size(contexts[i]))
        out: list[str] = [""] * len(contexts)
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            t0 = time.perf_counter()
            texts = self.generator.generate([contexts[i] for i in idx], max_new_tokens)
            self.model_seconds += time.perf_counter() - t0
            if len(texts) != len(idx):
                raise RuntimeError(f"generator returned {len(texts)} answers for {len(idx)} contexts")
            for i, text in zip(idx, texts):
                out[i] = text
        self.generated += len(contexts)
        return out

    def _settings(self, gen_kwargs: dict | None) -> tuple[int, tuple[str, ...]]:
        kwargs = dict(gen_kwargs or {})
        until = kwargs.get("until") or ()
        until = (until,) if isinstance(until, str) else tuple(until)
        return int(kwargs.get("max_new_tokens") or self.max_new_tokens), until

    # -- lmms-eval API --------------------------------------------------------------------------------
    def generate_until(self, requests: list[Instance]) -> list[str]:
        groups: dict[tuple, list[int]] = defaultdict(list)
        for i, req in enumerate(requests):
            groups[self._settings(req.args[1])].append(i)
        answers: list[str] = [""] * len(requests)
        for (max_new, until), members in groups.items():
            contexts = []
            for i in members:
                ctx, _, doc_to_visual, doc_id, task, split = requests[i].args
                contexts.append(self._context(ctx, doc_to_visual, task, split, doc_id))
            for i, text in zip(members, self._generate(contexts, max_new)):
                answers[i] = cut_at_stops(text, until)
        return answers

    def loglikelihood(self, requests: list[Instance]) -> list[tuple[float, bool]]:
        """(loss, is_greedy) per request: loss = -sum log p(continuation | context); lmms-eval takes argmin.

        `is_greedy` is not computed (always False).
        """
        contexts, continuations = [], []
        for req in requests:
            ctx, continuation, doc_to_visual, doc_id, task, split = req.args
            if callable(continuation):
                continuation = continuation(self._doc(task, split, doc_id))
                if isinstance(continuation, (list, tuple)):
                    continuation = continuation[0]
            contexts.append(self._context(ctx, doc_to_visual, task, split, doc_id))
            continuations.append(str(continuation))
        losses: list[tuple[float, bool]] = []
        for start in range(0, len(contexts), self.batch_size):
            t0 = time.perf_counter()
            end = start + self.batch_size
            logps = self.generator.loglikelihood(contexts[start:end], continuations[start:end])
            self.model_seconds += time.perf_counter() - t0
            losses.extend((-float(lp), False) for lp in logps)
        return losses

    def generate_until_multi_round(self, requests: list[Instance]) -> list[list[str]]:
        """Multi-round generation: round 0 from the request, later rounds from the task's `doc_to_text`
        (called with `previous_output`, `round_idx`, `previous_round_info`; it returns
        `(visuals, context, done, round_answers, round_info)`). Returns each request's answers, one per round."""
        state = []
        for req in requests:
            ctx, gen_kwargs, doc_to_visual, doc_to_text, doc_id, task, split = req.args
            state.append(
                {
                    "context": self._context(ctx, doc_to_visual, task, split, doc_id),
                    "settings": self._settings(gen_kwargs),
                    "doc_to_text": doc_to_text,
                    "doc": self._doc(task, split, doc_id),
                    "answers": [],
                    "info": None,
                    "done": False,
                }
            )
        round_idx = 0
        while True:
            active = [s for s in state if not s["done"]]
            if not active:
                break
            groups: dict[tuple, list[dict]] = defaultdict(list)
            for s in active:
                groups[s["settings"]].append(s)
            for (max_new, until), members in groups.items():
                texts = self._generate([s["context"] for s in members], max_new)
                for s, text in zip(members, texts):
                    s["answers"].append(cut_at_stops(text, until))
            round_idx += 1
            for s in active:
                visuals, ctx, done, round_answers, info = s["doc_to_text"](
                    s["doc"], previous_output=list(s["answers"]), round_idx=round_idx, previous_round_info=s["info"]
                )
                if round_answers is not None:
                    s["answers"] = list(round_answers)
                s["info"], s["done"] = info, bool(done)
                if not done:
                    s["context"] = interleave(ctx, _flat_images(visuals))
        return [s["answers"] for s in state]
