"""Tokenise `{"text", "images"}` rows and collate them into a `Batch`.

Each `<image>` marker becomes a block of `visual_tokens_per_image` image-token ids (the MLLM splices the
connector's output there). Rows are `<bos> ... <eos>`, padded on the right. Truncation to `max_length` never
cuts an image's block in half: a block that does not fit is dropped whole, with its image.

Labels: every text token and `<eos>` of a row, except for an instruction row (one with an `answer`): there the
prompt carries no loss, only the answer's tokens (` ` + answer, tokenised apart from the prompt, as generation
continues a prompt) and `<eos>` do. With `llm.chat_template` an instruction row's prompt is wrapped in the
tokenizer's user turn (its ids before the prompt, then the ids that open the assistant's reply), as generation
wraps an evaluation prompt. A conversation row (one with `turns`, `ablate.data.conversation`) carries the loss on
each assistant turn and what closes it (the chat template's end-of-turn text, or `<eos>` in the plain frame).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ablate.data import conversation
from ablate.data.batch import Batch

IMAGE_MARKER = "<image>"
IGNORE = -100


@dataclass
class _Row:
    ids: list[int]
    is_image: list[bool]
    images: list[str]
    labelled: list[bool]   # positions whose token carries loss


class Collator:
    def __init__(self, tokenizer, visual_tokens_per_image, max_length: int, pack: bool = False):
        """`visual_tokens_per_image`: a count, or an object whose `block(path) -> list[int]` gives the ids of
        one image (`ablate.models.visual_tokens.ImageTokens`: slices and their separators). `pack`: rows packed
        first-fit into sequences of `max_length` (`data.packing`, `pack`)."""
        self.pack = pack
        self.block = getattr(visual_tokens_per_image, "block", None)
        if self.block is None and visual_tokens_per_image < 1:
            raise ValueError(f"visual_tokens_per_image must be >= 1, got {visual_tokens_per_image}")
        self.tokenizer = tokenizer
        self.n_visual = visual_tokens_per_image if self.block is None else None
        self.max_length = max_length
        self.image_id = tokenizer.convert_tokens_to_ids(IMAGE_MARKER)
        if self.image_id is None or self.image_id == tokenizer.unk_token_id:
            raise ValueError(f"the tokenizer has no {IMAGE_MARKER} token; add it as a special token first")
        self.bos_id = tokenizer.bos_token_id
        self.eos_id = tokenizer.eos_token_id
        pad = tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else (self.eos_id if self.eos_id is not None else 0)
        # `llm.chat_template`: the ids around a user turn (ablate.models.llm.use_chat_template), for instruction rows
        self.chat = getattr(tokenizer, "chat_ids", None)

    def encode(self, text: str, images: list[str], answer: str | None = None) -> _Row:
        """One row: ids, which positions are visual tokens, the images kept (truncation-aware) and which positions
        carry loss (with an `answer`: only the answer after the prompt `text`, and `<eos>`)."""
        pieces = text.split(IMAGE_MARKER)
        if len(pieces) - 1 != len(images):
            raise ValueError(f"{len(pieces) - 1} {IMAGE_MARKER} markers but {len(images)} images in {text[:80]!r}")
        encoded = self.tokenizer([p.strip() for p in pieces], add_special_tokens=False)["input_ids"]
        ids: list[int] = [] if self.bos_id is None else [self.bos_id]
        chat = self.chat if answer is not None else None
        if chat:
            ids += chat[0]
        is_image = [False] * len(ids)
        kept: list[str] = []
        for k, piece in enumerate(encoded):
            ids += piece
            is_image += [False] * len(piece)
            if k < len(images):
                block = self.block(images[k]) if self.block else [self.image_id] * self.n_visual
                if len(ids) + len(block) > self.max_length:
                    break  # this image's block would be cut: drop it and everything after it
                ids += block
                is_image += [True] * len(block)   # separators inside the block carry no loss either
                kept.append(images[k])
        if answer is None:   # bos, visual tokens and separators carry no loss, every other token does
            labelled = [not image for image in is_image]
            if self.bos_id is not None:
                labelled[0] = False
        else:
            if chat and len(kept) == len(images):   # the prompt fits whole: the assistant's turn begins
                ids += chat[1]
                is_image += [False] * len(chat[1])
            labelled = [False] * len(ids)
            answer_ids = self.tokenizer(" " + answer.strip(), add_special_tokens=False)["input_ids"]
            ids += answer_ids
            is_image += [False] * len(answer_ids)
            labelled += [True] * len(answer_ids)
        if self.eos_id is not None:
            ids.append(self.eos_id)
            is_image.append(False)
            labelled.append(True)
        n = self.max_length
        return _Row(ids[:n], is_image[:n], kept, labelled[:n])

    def encode_turns(self, turns: list[dict], images: list[str]) -> _Row:
        """A conversation row: its framed pieces (`conversation.pieces`) tokenised in order, each `<image>` marker a
        block of visual tokens (truncation as in `encode`: a block that does not fit ends the row)."""
        ids: list[int] = [] if self.bos_id is None else [self.bos_id]
        is_image, labelled, kept = [False] * len(ids), [False] * len(ids), []
        for piece, loss in conversation.pieces(turns, self.tokenizer, template=self.chat is not None):
            if piece == conversation.EOS:
                if self.eos_id is not None:
                    ids.append(self.eos_id)
                    is_image.append(False)
                    labelled.append(True)
            elif piece == IMAGE_MARKER:
                if len(kept) == len(images):
                    raise ValueError(f"more {IMAGE_MARKER} markers than the {len(images)} images of a conversation")
                block = self.block(images[len(kept)]) if self.block else [self.image_id] * self.n_visual
                if len(ids) + len(block) > self.max_length:
                    return self._cut(ids, is_image, kept, labelled)
                ids += block
                is_image += [True] * len(block)
                labelled += [False] * len(block)
                kept.append(images[len(kept)])
            else:
                piece_ids = self.tokenizer(piece, add_special_tokens=False)["input_ids"]
                ids += piece_ids
                is_image += [False] * len(piece_ids)
                labelled += [loss] * len(piece_ids)
        return self._cut(ids, is_image, kept, labelled)

    def _cut(self, ids, is_image, kept, labelled) -> _Row:
        n = self.max_length
        return _Row(ids[:n], is_image[:n], kept, labelled[:n])

    def __call__(self, rows: list[dict]) -> Batch:
        encoded = [self.encode_turns(r["turns"], list(r.get("images") or [])) if r.get("turns") else
                   self.encode(r["text"], list(r.get("images") or []), r.get("answer")) for r in rows]
        if self.pack:
            return packed(encoded, self.max_length, self.pad_id)
        width = max(len(e.ids) for e in encoded)
        input_ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        attention = torch.zeros((len(rows), width), dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
        for i, e in enumerate(encoded):
            n = len(e.ids)
            ids = torch.tensor(e.ids, dtype=torch.long)
            input_ids[i, :n] = ids
            attention[i, :n] = 1
            lab = ids.clone()
            lab[~torch.tensor(e.labelled, dtype=torch.bool)] = IGNORE
            labels[i, :n] = lab
        return Batch(
            input_ids=input_ids,
            attention_mask=attention,
            labels=labels,
            images=[p for e in encoded for p in e.images],
            n_images=torch.tensor([len(e.images) for e in encoded], dtype=torch.long),
        )


def packed(encoded: list[_Row], max_length: int, pad_id: int) -> Batch:
    """Rows packed first-fit (in order, each into the first sequence with room) into sequences of at most
    `max_length` tokens. Each row keeps its ids and labels; `position_ids` restart at 0 with each row (and with the
    padding at a sequence's end), from which the LLM's attention makes a block-diagonal mask: a row attends only
    to itself (transformers' packed-sequence detection). No loss crosses rows: a row's last token predicts the next
    row's `<bos>`, which carries no label."""
    bins: list[list[_Row]] = []
    for row in encoded:
        room = next((b for b in bins if sum(len(r.ids) for r in b) + len(row.ids) <= max_length), None)
        if room is None:
            bins.append([row])
        else:
            room.append(row)
    width = max(sum(len(r.ids) for r in b) for b in bins)
    input_ids = torch.full((len(bins), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(bins), width), dtype=torch.long)
    labels = torch.full((len(bins), width), IGNORE, dtype=torch.long)
    positions = torch.zeros((len(bins), width), dtype=torch.long)
    for i, rows in enumerate(bins):
        at = 0
        for row in rows:
            n = len(row.ids)
            ids = torch.tensor(row.ids, dtype=torch.long)
            input_ids[i, at:at + n] = ids
            attention[i, at:at + n] = 1
            labels[i, at:at + n] = torch.where(torch.tensor(row.labelled, dtype=torch.bool), ids, IGNORE)
            positions[i, at:at + n] = torch.arange(n)
            at += n
        positions[i, at:] = torch.arange(width - at)
    return Batch(input_ids=input_ids, attention_mask=attention, labels=labels,
                 images=[p for rows in bins for r in rows for p in r.images],
                 n_images=torch.tensor([sum(len(r.images) for r in rows) for rows in bins], dtype=torch.long),
                 position_ids=positions)
