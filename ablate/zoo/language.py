"""Pre-train the zoo's tiny language model: a `LlamaForCausalLM` (Touvron et al., 2023) trained with next-token
prediction on the world's text corpus (alt and rich captions, interleaved text, text-only documents), packed into
`seq_len` blocks with <bos> ... <eos> around each text. Saved with the world tokenizer (which has `<image>`).
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from ablate.zoo.data import ZooData
from ablate.zoo.recipes import LMRecipe
from ablate.zoo.vision import _schedule


def lm_config(r: LMRecipe, tokenizer) -> LlamaConfig:
    return LlamaConfig(vocab_size=len(tokenizer), hidden_size=r.width, intermediate_size=r.intermediate,
                       num_hidden_layers=r.layers, num_attention_heads=r.heads, num_key_value_heads=r.heads,
                       max_position_embeddings=2048, tie_word_embeddings=True, pad_token_id=tokenizer.pad_token_id,
                       bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)


def pack(tokenizer, texts, seq_len: int) -> torch.Tensor:
    """All texts as one stream of <bos> text <eos>, cut into `(n, seq_len)` blocks (the tail dropped)."""
    stream: list[int] = []
    for text in texts:
        stream += [tokenizer.bos_token_id, *tokenizer(text, add_special_tokens=False)["input_ids"],
                   tokenizer.eos_token_id]
    n = len(stream) // seq_len
    if n == 0:
        raise ValueError(f"corpus of {len(stream)} tokens is shorter than one block of {seq_len}")
    return torch.tensor(stream[: n * seq_len]).view(n, seq_len)


@torch.no_grad()
def perplexity(model, blocks: torch.Tensor, batch: int = 32) -> float:
    model.eval()
    total = 0.0
    for i in range(0, len(blocks), batch):
        chunk = blocks[i:i + batch]
        total += float(model(input_ids=chunk, labels=chunk).loss) * len(chunk)
    return math.exp(total / len(blocks))


def train_lm(r: LMRecipe, data: ZooData, out: Path, log=print) -> dict:
    start = time.perf_counter()
    tok = data.tokenizer
    blocks = pack(tok, data.texts(), r.seq_len)
    held_texts = list(data.heldout_texts())
    held = pack(tok, held_texts, r.seq_len) if held_texts else blocks[-max(1, len(blocks) // 20):]
    with torch.random.fork_rng():
        torch.manual_seed(r.seed)
        model = LlamaForCausalLM(lm_config(r, tok))
        ppl_before = perplexity(model, held[:64])
        opt = torch.optim.AdamW(model.parameters(), lr=r.lr, weight_decay=r.weight_decay, betas=(0.9, 0.95))
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _schedule(s, r.steps, r.warmup))
        gen = torch.Generator().manual_seed(r.seed)
        losses: list[float] = []
        model.train()
        for step in range(r.steps):
            batch = blocks[torch.randint(len(blocks), (min(r.batch, len(blocks)),), generator=gen)]
            loss = model(input_ids=batch, labels=batch).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            losses.append(loss.item())
            if step % 50 == 0 or step == r.steps - 1:
                log(f"zoo lm: step {step + 1}/{r.steps} loss {losses[-1]:.4f}")
        model.eval()
    model.save_pretrained(out)
    tok.save_pretrained(out)
    k = max(1, len(losses) // 10)
    return {
        "steps": r.steps, "train_s": round(time.perf_counter() - start, 1),
        "tokens_seen": r.steps * r.batch * r.seq_len,
        "corpus_tokens": int(blocks.numel()), "loss_first": sum(losses[:k]) / k if losses else None,
        "loss_last": sum(losses[-k:]) / k if losses else None, "heldout_ppl_init": ppl_before,
        "heldout_ppl": perplexity(model, held[:64]), "vocab": len(tok),
    }
