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

from ablate.world.tokenizer import word_id
from ablate.zoo import objectives
from ablate.zoo.data import ZooData, encode_texts, load_pixels, normalise
from ablate.zoo.recipes import EncoderRecipe
from ablate.zoo.retrieval import evaluate_encoder


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


class ReadingHead(nn.Module):
    """Names the word under every patch (the zoo's stand-in for the OCR tasks that real encoders meet in
    pre-training, e.g. PaLI's split-OCR on WebLI, Chen et al., 2023).

    A linear layer scores every token of the world vocabulary at each patch token. A patch that a drawn word's ink
    covers must name that word; any other patch must name `nothing` (a token no word uses). Supervising each patch
    teaches the patches that hold a word to carry it, which is what the MLLM's connector pools; a small word
    counts as much as a large one, however few patches it covers. The image-level reading is the word that the
    most confident patch names.
    """

    def __init__(self, width: int, vocab_size: int, nothing: int):
        super().__init__()
        self.score = nn.Linear(width, vocab_size)
        self.nothing = nothing

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        return self.score(patches)

    @torch.no_grad()
    def read(self, patches: torch.Tensor) -> torch.Tensor:
        p = self(patches).softmax(-1)
        p[..., self.nothing] = 0
        return p.amax(1).argmax(-1)

    def loss(self, patches: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """`targets (B, N)`: the token id of the word under each patch, else `nothing`."""
        ce = nn.functional.cross_entropy(self(patches).flatten(0, 1), targets.flatten(), reduction="none")
        ce = ce.view_as(targets)
        ink = targets != self.nothing
        per_image = (ce * ink).sum(1) / ink.sum(1).clamp(min=1)
        words = per_image[ink.any(1)].mean() if ink.any() else ce.new_zeros(())
        return words + ce[~ink].mean()


def patch_targets(tokenizer, rows: list[dict], size: int, patch: int, nothing: int) -> torch.Tensor:
    """`(n, (size // patch) ** 2)`: per patch, the token id of the word whose ink box covers it, else `nothing`.

    Boxes are fractions of the image side (`word_boxes`); a patch counts as covered when the box spans more than
    15 % of it along both axes.
    """
    g = size // patch
    out = torch.full((len(rows), g, g), nothing, dtype=torch.long)
    edges = torch.arange(g + 1) / g

    def covered(lo: float, hi: float) -> torch.Tensor:  # (g,) which patch rows / columns [lo, hi) spans enough of
        return (edges[1:].clamp(max=hi) - edges[:-1].clamp(min=lo)) * g > 0.15

    for i, row in enumerate(rows):
        for word, (x0, y0, x1, y1) in zip(row["words"], row["word_boxes"]):
            out[i][covered(y0, y1)[:, None] & covered(x0, x1)[None, :]] = word_id(tokenizer, word)
    return out.flatten(1)


class TwoTower(nn.Module):
    """Image tower + text tower + projections + the loss's learnable scalars (+ a reading head when `ocr` > 0)."""

    def __init__(self, r: EncoderRecipe, tokenizer):
        super().__init__()
        self.vision = CLIPVisionModel(vision_config(r))
        self.text = CLIPTextModel(text_config(r, tokenizer))
        self.v_proj = nn.Linear(r.width, r.embed_dim, bias=False)
        self.t_proj = nn.Linear(r.text_width, r.embed_dim, bias=False)
        self.reader = ReadingHead(r.width, len(tokenizer), tokenizer.pad_token_id) if r.ocr > 0 else None
        self.ocr = r.ocr
        self.native = r.resolution
        if r.objective == "siglip":
            self.scale, self.bias = nn.Parameter(torch.tensor(math.log(10.0))), nn.Parameter(torch.tensor(-10.0))
        else:
            self.scale, self.bias = nn.Parameter(torch.tensor(math.log(1 / 0.07))), None

    def patches(self, pixel_values: torch.Tensor) -> torch.Tensor:
        interpolate = pixel_values.shape[-1] != self.native
        return self.vision(pixel_values=pixel_values, interpolate_pos_encoding=interpolate).last_hidden_state[:, 1:]

    def embed_images(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.v_proj(self.patches(pixel_values).mean(1))

    def embed_texts(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.t_proj(masked_mean(self.text(input_ids=ids, attention_mask=mask).last_hidden_state, mask))

    def loss(self, pixel_values, ids, mask, words: torch.Tensor | None = None) -> torch.Tensor:
        """`words`: `patch_targets` of the images, for the reading loss."""
        patches = self.patches(pixel_values)
        img, txt = self.v_proj(patches.mean(1)), self.embed_texts(ids, mask)
        if self.bias is not None:
            loss = objectives.siglip_loss(img, txt, self.scale, self.bias)
        else:
            loss = objectives.clip_loss(img, txt, self.scale)
        if self.reader is not None:
            loss = loss + self.ocr * self.reader.loss(patches, words)
        return loss


class AIM(nn.Module):
    """ViT under prefix-causal attention + an MLP head regressing the next patch's normalised pixels."""

    def __init__(self, r: EncoderRecipe):
        super().__init__()
        self.vision = CLIPVisionModel(vision_config(r))
        self.patch, self.native = r.patch, r.resolution
        self.head = nn.Sequential(nn.Linear(r.width, r.width * 2), nn.GELU(), nn.Linear(r.width * 2, 3 * r.patch ** 2))

    def loss(self, pixel_values: torch.Tensor) -> torch.Tensor:
        vm = self.vision
        interpolate = pixel_values.shape[-1] != self.native
        x = vm.pre_layrnorm(vm.embeddings(pixel_values, interpolate_pos_encoding=interpolate))
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
    start = time.perf_counter()
    train = data.captions[: len(data.captions) - r.heldout]
    with torch.random.fork_rng():
        torch.manual_seed(r.seed)
        model = AIM(r) if r.objective == "aim" else TwoTower(r, data.tokenizer)
        if r.objective == "random":
            model = CLIPVisionModel(vision_config(r))
        losses: list[float] = []
        if r.objective != "random" and r.steps > 0:
            sizes = (r.resolution, *r.extra_resolutions)
            pixels = {size: load_pixels([c["image"] for c in train], size) for size in dict.fromkeys(sizes)}
            ids, mask = encode_texts(data.tokenizer, [c["rich"] for c in train], r.text_len)
            words = {size: patch_targets(data.tokenizer, train, size, r.patch, model.reader.nothing)
                     for size in pixels} if r.ocr > 0 else None
            opt = torch.optim.AdamW(model.parameters(), lr=r.lr, weight_decay=r.weight_decay)
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _schedule(s, r.steps, r.warmup))
            gen = torch.Generator().manual_seed(r.seed)
            model.train()
            for step in range(r.steps):
                idx = torch.randperm(len(train), generator=gen)[: min(r.batch, len(train))]
                size = sizes[step % len(sizes)]
                x = normalise(pixels[size][idx])
                if r.objective == "aim":
                    loss = model.loss(x)
                else:
                    loss = model.loss(x, ids[idx], mask[idx], None if words is None else words[size][idx])
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
