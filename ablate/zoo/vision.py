"""Pre-train a tiny ViT (a transformers `CLIPVisionModel`) with the recipe's objective; save it as an HF folder.

Image-text objectives pool the last layer's patch tokens (mean) into the joint space, so the patch features the
MLLM reads are the ones the loss shaped. The text tower (a tiny `CLIPTextModel`, masked mean pooling) and the
projections are saved under `text_tower/` for zero-shot retrieval.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch
from torch import nn
from transformers import CLIPTextConfig, CLIPTextModel, CLIPVisionConfig, CLIPVisionModel

from ablate.zoo import objectives
from ablate.zoo.data import ZooData, encode_texts, load_pixels, normalise
from ablate.zoo.recipes import EncoderRecipe


def vision_config(r: EncoderRecipe) -> CLIPVisionConfig:
    return CLIPVisionConfig(hidden_size=r.width, intermediate_size=r.width * r.mlp_ratio, num_hidden_layers=r.layers,
                            num_attention_heads=r.heads, image_size=r.resolution, patch_size=r.patch,
                            projection_dim=r.embed_dim, attn_implementation="sdpa")


def text_config(r: EncoderRecipe, tokenizer) -> CLIPTextConfig:
    return CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=r.text_width, intermediate_size=r.text_width * 4,
                          num_hidden_layers=r.text_layers, num_attention_heads=max(1, r.text_width // 32),
                          max_position_embeddings=r.text_len, pad_token_id=tokenizer.pad_token_id,
                          bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                          projection_dim=r.embed_dim, attn_implementation="sdpa")


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.unsqueeze(-1).to(x.dtype)
    return (x * m).sum(1) / m.sum(1).clamp(min=1)


class TwoTower(nn.Module):
    """Image tower + text tower + projections + the loss's learnable scalars."""

    def __init__(self, r: EncoderRecipe, tokenizer):
        super().__init__()
        self.vision = CLIPVisionModel(vision_config(r))
        self.text = CLIPTextModel(text_config(r, tokenizer))
        self.v_proj = nn.Linear(r.width, r.embed_dim, bias=False)
        self.t_proj = nn.Linear(r.text_width, r.embed_dim, bias=False)
        if r.objective == "siglip":
            self.scale, self.bias = nn.Parameter(torch.tensor(math.log(10.0))), nn.Parameter(torch.tensor(-10.0))
        else:
            self.scale, self.bias = nn.Parameter(torch.tensor(math.log(1 / 0.07))), None

    def embed_images(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.v_proj(self.vision(pixel_values=pixel_values).last_hidden_state[:, 1:].mean(1))

    def embed_texts(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.t_proj(masked_mean(self.text(input_ids=ids, attention_mask=mask).last_hidden_state, mask))

    def loss(self, pixel_values, ids, mask) -> torch.Tensor:
        img, txt = self.embed_images(pixel_values), self.embed_texts(ids, mask)
        if self.bias is not None:
            return objectives.siglip_loss(img, txt, self.scale, self.bias)
        return objectives.clip_loss(img, txt, self.scale)


class AIM(nn.Module):
    """ViT under prefix-causal attention + an MLP head regressing the next patch's normalised pixels."""

    def __init__(self, r: EncoderRecipe):
        super().__init__()
        self.vision = CLIPVisionModel(vision_config(r))
        self.patch = r.patch
        self.head = nn.Sequential(nn.Linear(r.width, r.width * 2), nn.GELU(), nn.Linear(r.width * 2, 3 * r.patch ** 2))

    def loss(self, pixel_values: torch.Tensor) -> torch.Tensor:
        vm = self.vision
        x = vm.pre_layrnorm(vm.embeddings(pixel_values))
        b, t, _ = x.shape
        prefix = torch.randint(1, t, (b,))
        x = vm.encoder(inputs_embeds=x, attention_mask=objectives.aim_mask(t, prefix, x.dtype)).last_hidden_state
        pred = self.head(vm.post_layernorm(x))
        return objectives.aim_loss(pred, objectives.aim_targets(pixel_values, self.patch), prefix)


def _schedule(step: int, total: int, warmup: float) -> float:
    w = max(1, int(total * warmup))
    if step < w:
        return (step + 1) / w
    return 0.5 * (1 + math.cos(math.pi * (step - w) / max(1, total - w)))


def train_encoder(r: EncoderRecipe, data: ZooData, out: Path, log=print) -> dict:
    """Train per `r` on `data.captions[:-r.heldout]`; save the vision tower (+ text tower) to `out`."""
    from ablate.zoo.retrieval import evaluate_encoder

    start = time.perf_counter()
    train = data.captions[: len(data.captions) - r.heldout]
    with torch.random.fork_rng():
        torch.manual_seed(r.seed)
        model = AIM(r) if r.objective == "aim" else TwoTower(r, data.tokenizer)
        if r.objective == "random":
            model = CLIPVisionModel(vision_config(r))
        losses: list[float] = []
        if r.objective != "random" and r.steps > 0:
            pixels = load_pixels([c["image"] for c in train], r.resolution)
            ids, mask = encode_texts(data.tokenizer, [c["rich"] for c in train], r.text_len)
            opt = torch.optim.AdamW(model.parameters(), lr=r.lr, weight_decay=r.weight_decay)
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _schedule(s, r.steps, r.warmup))
            gen = torch.Generator().manual_seed(r.seed)
            model.train()
            for step in range(r.steps):
                idx = torch.randperm(len(train), generator=gen)[: min(r.batch, len(train))]
                x = normalise(pixels[idx])
                loss = model.loss(x) if r.objective == "aim" else model.loss(x, ids[idx], mask[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
                sched.step()
                losses.append(loss.item())
                if step % 50 == 0 or step == r.steps - 1:
                    log(f"zoo {r.objective}: step {step + 1}/{r.steps} loss {losses[-1]:.4f}")
        model.eval()
    vision = model if isinstance(model, CLIPVisionModel) else model.vision
    vision.save_pretrained(out)
    (out / "preprocessor_config.json").write_text(json.dumps(
        {"image_mean": [0.5] * 3, "image_std": [0.5] * 3, "size": r.resolution, "resample": "bicubic"}))
    if isinstance(model, TwoTower):
        (out / "text_tower").mkdir()
        model.text.save_pretrained(out / "text_tower")
        torch.save({"v_proj": model.v_proj.state_dict(), "t_proj": model.t_proj.state_dict()},
                   out / "text_tower" / "projections.pt")
        data.tokenizer.save_pretrained(out / "text_tower")
    train_s = time.perf_counter() - start
    metrics = evaluate_encoder(r, data, vision, model if isinstance(model, TwoTower) else None)
    k = max(1, len(losses) // 10)
    metrics.update({
        "objective": r.objective, "steps": r.steps, "train_s": round(train_s, 1),
        "loss_first": sum(losses[:k]) / k if losses else None, "loss_last": sum(losses[-k:]) / k if losses else None,
    })
    return metrics
