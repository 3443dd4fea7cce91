"""Text-only ability: the LLM's perplexity on held-out world text, with no image in sight.

MM1 keeps text-only data in the mixture to keep the LLM's language ability; this is the number that shows it.
"""
from __future__ import annotations

import math

import torch


@torch.no_grad()
def text_perplexity(llm, tokenizer, texts: list[str], batch_size: int = 16, max_length: int = 256) -> float:
    """exp(mean next-token loss) over all tokens of `texts` (bos/eos added where the tokenizer has them)."""
    device = next(llm.parameters()).device
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    total_loss, total_tokens = 0.0, 0
    for start in range(0, len(texts), batch_size):
        rows = []
        for text in texts[start:start + batch_size]:
            ids = tokenizer(text, add_special_tokens=False)["input_ids"][: max_length - 2]
            rows.append(([bos] if bos is not None else []) + ids + ([eos] if eos is not None else []))
        width = max(len(r) for r in rows)
        input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
        labels = torch.full((len(rows), width), -100, dtype=torch.long)
        attention = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            input_ids[i, : len(row)] = torch.tensor(row)
            labels[i, 1: len(row)] = torch.tensor(row[1:])
            attention[i, : len(row)] = 1
        logits = llm(input_ids=input_ids.to(device), attention_mask=attention.to(device)).logits.float()
        loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]),
                                                 labels[:, 1:].reshape(-1).to(device), ignore_index=-100,
                                                 reduction="sum")
        total_loss += float(loss)
        total_tokens += int((labels[:, 1:] != -100).sum())
    return math.exp(total_loss / max(total_tokens, 1))
