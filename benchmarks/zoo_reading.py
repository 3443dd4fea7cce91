"""Which encoder pre-training makes a zoo ViT read the world's words? Trains variants, probes word identity.

    python benchmarks/zoo_reading.py --device cuda --pool 40000 --probe 12000 --variants w12-ocr-lr1,cap800
    python benchmarks/zoo_reading.py --device cpu --pool 600 --probe 300 --variants sup400 --steps-scale 0.05

Renders fresh world images in memory (`--pool` to train on, `--probe` to probe), trains each variant (contrastive,
contrastive with word-only captions, the recipe's reading loss, a CapPa-like captioning decoder, or a plain supervised
word classifier as the control), then fits an attention-pooling probe on frozen features and prints one table:
probe accuracy on large / small words at (resolution, visual tokens). Needs no mlflow / lmms-eval (GPU image).
Results of 2026-11-28 (H200) are in docs/backbones.md, "Reading".
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from transformers import CLIPVisionModel, LlamaConfig, LlamaModel  # noqa: E402

from ablate.config.schema import WorldConfig  # noqa: E402
from ablate.world import build_world, vocab  # noqa: E402
from ablate.world.captions import rich_caption  # noqa: E402
from ablate.world.facts import scene_facts  # noqa: E402
from ablate.world.render import render  # noqa: E402
from ablate.world.scene import sample_scene  # noqa: E402
from ablate.zoo.data import encode_texts  # noqa: E402
from ablate.zoo.recipes import EncoderRecipe  # noqa: E402
from ablate.zoo.vision import TwoTower, vision_config  # noqa: E402

RESOLUTIONS = (96, 160)


def _render_one(args):
    seed, i, side = args
    rng = np.random.default_rng([seed, 77, i])
    scene = sample_scene(rng, side, 1)
    facts = scene_facts(scene)
    img = render(scene)
    w = scene.words[0]
    arrays = [np.asarray(img.resize((r, r), Image.BICUBIC)) for r in RESOLUTIONS]
    box = [c / side for c in w.box]
    return arrays, rich_caption(rng, facts), vocab.WORDS.index(w.text), int(w.size == "small"), box


def make_pool(n: int, seed: int, workers: int) -> dict:
    jobs = [(seed, i, 192) for i in range(n)]
    with ProcessPoolExecutor(workers) as ex:
        out = list(ex.map(_render_one, jobs, chunksize=64))
    pix = {r: torch.from_numpy(np.stack([o[0][k] for o in out])).permute(0, 3, 1, 2).contiguous()
           for k, r in enumerate(RESOLUTIONS)}
    return {"pix": pix, "rich": [o[1] for o in out], "word": torch.tensor([o[2] for o in out]),
            "small": torch.tensor([o[3] for o in out]), "box": [o[4] for o in out]}


def norm(p: torch.Tensor) -> torch.Tensor:
    return p.float().div(127.5).sub(1.0)


class Captioner(nn.Module):
    """ViT + a tiny causal decoder reading [patch tokens; caption] (AIMv2 / CapPa-like), loss on caption."""

    def __init__(self, r: EncoderRecipe, vocab_size: int, width: int = 128, layers: int = 2):
        super().__init__()
        self.vision = CLIPVisionModel(vision_config(r))
        self.proj = nn.Linear(r.width, width)
        cfg = LlamaConfig(vocab_size=vocab_size, hidden_size=width, intermediate_size=width * 3,
                          num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=4,
                          max_position_embeddings=1024)
        self.dec = LlamaModel(cfg)
        self.head = nn.Linear(width, vocab_size, bias=False)

    def loss(self, x, ids, mask, interp=False):
        v = self.proj(self.vision(pixel_values=x, interpolate_pos_encoding=interp).last_hidden_state[:, 1:])
        t = self.dec.embed_tokens(ids[:, :-1])
        h = self.dec(inputs_embeds=torch.cat([v, t], 1)).last_hidden_state[:, v.shape[1]:]
        logits = self.head(h)
        tgt = ids[:, 1:].masked_fill(mask[:, 1:] == 0, -100)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1), ignore_index=-100)


def train(variant: dict, data: dict, tok, device: str, log) -> tuple[CLIPVisionModel, float]:
    r = EncoderRecipe("clip", steps=variant["steps"], resolution=96, ocr=variant.get("ocr", 0.0))
    torch.manual_seed(0)
    kind = variant["obj"]
    model = Captioner(r, len(tok)) if kind == "cap" else TwoTower(r, tok)
    if kind == "sup":  # the control: the same ViT, mean-pooled, a linear word classifier, nothing else
        model.reader = nn.Linear(r.width, len(tok))
    from ablate.zoo.vision import patch_targets
    rows = [{"words": [vocab.WORDS[int(w)]], "word_boxes": [b]} for w, b in zip(data["word"], data["box"])]
    word_ids = torch.tensor([tok.convert_tokens_to_ids(row["words"][0]) for row in rows])
    targets = {res: patch_targets(tok, rows, res, r.patch, tok.pad_token_id) for res in RESOLUTIONS} \
        if variant.get("ocr") else None
    model.to(device)
    texts = list(data["rich"])
    if variant.get("wordfocus"):
        wf = [f"the word is {vocab.WORDS[int(w)]}" for w in data["word"]]
    ids, mask = encode_texts(tok, texts, 64)
    if variant.get("wordfocus"):
        wids, wmask = encode_texts(tok, wf, 64)
    n = len(texts)
    opt = torch.optim.AdamW(model.parameters(), lr=variant.get("lr", 3e-3), weight_decay=0.05)
    steps, warm = variant["steps"], max(1, variant["steps"] // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm
        else 0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, steps - warm))))
    gen = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    bs = variant.get("batch", 64)
    for step in range(steps):
        idx = torch.randperm(n, generator=gen)[:bs]
        res = variant.get("res", 96)
        if res == "mix":
            res = RESOLUTIONS[step % 2]
        x = norm(data["pix"][res][idx]).to(device)
        bi, bm = ids[idx], mask[idx]
        if variant.get("wordfocus"):
            pick = torch.rand(len(idx), generator=gen) < variant["wordfocus"]
            bi = torch.where(pick[:, None], wids[idx], bi)
            bm = torch.where(pick[:, None], wmask[idx], bm)
        bi, bm = bi.to(device), bm.to(device)
        if kind == "sup":
            patches = model.vision(pixel_values=x, interpolate_pos_encoding=res != 96).last_hidden_state[:, 1:]
            loss = F.cross_entropy(model.reader(patches.mean(1)), word_ids[idx].to(device))
        elif kind == "cap":
            loss = model.loss(x, bi, bm, interp=res != 96)
        elif variant.get("ocr"):
            loss = model.loss(x, bi, bm, targets[res][idx].to(device))
        else:
            patches = model.vision(pixel_values=x, interpolate_pos_encoding=res != 96).last_hidden_state[:, 1:]
            img = model.v_proj(patches.mean(1))
            from ablate.zoo import objectives
            loss = objectives.clip_loss(img, model.embed_texts(bi, bm), model.scale)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % max(1, steps // 4) == 0 or step == steps - 1:
            log(f"  {variant['name']} step {step + 1}/{steps} loss {loss.item():.3f}")
    if device == "cuda":
        torch.cuda.synchronize()
    return model.vision.eval(), time.perf_counter() - t0


@torch.no_grad()
def features(vision, pix: torch.Tensor, res: int, tokens: int, device: str) -> torch.Tensor:
    out = []
    for i in range(0, len(pix), 256):
        h = vision(pixel_values=norm(pix[i:i + 256]).to(device),
                   interpolate_pos_encoding=res != 96).last_hidden_state[:, 1:]
        g = int(math.isqrt(h.shape[1]))
        side = int(math.isqrt(tokens))
        h = h.transpose(1, 2).reshape(len(h), -1, g, g)
        if side != g:
            h = F.adaptive_avg_pool2d(h, side)
        out.append(h.flatten(2).transpose(1, 2).float().cpu())
    return torch.cat(out)


def probe(feats: torch.Tensor, y: torch.Tensor, small: torch.Tensor, n_train: int, device: str) -> tuple[float, float]:
    """Attention-pooling probe (one learned query, 4 heads) + linear classifier; accuracy on large / small words."""
    torch.manual_seed(0)
    d = feats.shape[-1]
    mu, sd = feats[:n_train].mean((0, 1)), feats[:n_train].std((0, 1)) + 1e-5
    X = ((feats - mu) / sd).to(device)
    y = y.to(device)
    attn = nn.MultiheadAttention(d, 4, batch_first=True).to(device)
    q = nn.Parameter(torch.randn(1, 1, d, device=device) * 0.02)
    cls = nn.Linear(d, len(vocab.WORDS)).to(device)
    params = [q, *attn.parameters(), *cls.parameters()]
    opt = torch.optim.AdamW(params, lr=3e-3, weight_decay=0.05)
    gen = torch.Generator().manual_seed(0)
    for _ in range(600):
        idx = torch.randperm(n_train, generator=gen)[:256].to(device)
        pooled = attn(q.expand(len(idx), -1, -1), X[idx], X[idx])[0][:, 0]
        loss = F.cross_entropy(cls(pooled), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        te = X[n_train:]
        pred = cls(attn(q.expand(len(te), -1, -1), te, te)[0][:, 0]).argmax(1).cpu()
    ok = pred == y[n_train:].cpu()
    s = small[n_train:]
    return ok[s == 0].float().mean().item() * 100, ok[s == 1].float().mean().item() * 100


VARIANTS = {
    "sup400": {"obj": "sup", "steps": 400, "pool": True, "lr": 1e-3},
    "w48-ocr-lr3": {"obj": "clip", "steps": 400, "ocr": 1.0, "res": "mix", "pool": True},
    "w48-ocr-lr1": {"obj": "clip", "steps": 400, "ocr": 1.0, "res": "mix", "pool": True, "lr": 1e-3},
    "w12-ocr-lr3": {"obj": "clip", "steps": 400, "ocr": 1.0, "res": "mix", "pool": True, "words": 12},
    "w12-ocr-lr1": {"obj": "clip", "steps": 400, "ocr": 1.0, "res": "mix", "pool": True, "words": 12, "lr": 1e-3},
    "w12-ocr-lr1-96": {"obj": "clip", "steps": 400, "ocr": 1.0, "pool": True, "words": 12, "lr": 1e-3},
    "w12-ocr2-lr1-800": {"obj": "clip", "steps": 800, "ocr": 2.0, "res": "mix", "pool": True, "words": 12, "lr": 1e-3},
    "w48-ocr-lr1-1500": {"obj": "clip", "steps": 1500, "ocr": 1.0, "res": "mix", "pool": True, "lr": 1e-3},
    "w24-ocr-lr1": {"obj": "clip", "steps": 400, "ocr": 1.0, "res": "mix", "pool": True, "words": 24, "lr": 1e-3},
    "clip200": {"obj": "clip", "steps": 200},
    "clip800": {"obj": "clip", "steps": 800},
    "clipwf800": {"obj": "clip", "steps": 800, "wordfocus": 0.5},
    "cap400": {"obj": "cap", "steps": 400},
    "cap800": {"obj": "cap", "steps": 800},
    "cap800pool": {"obj": "cap", "steps": 800, "pool": True},
    "clipwf800pool": {"obj": "clip", "steps": 800, "wordfocus": 0.5, "pool": True},
    "cap800mix": {"obj": "cap", "steps": 800, "res": "mix", "pool": True},
    "cap2000pool": {"obj": "cap", "steps": 2000, "pool": True},
    "clipwf2000pool": {"obj": "clip", "steps": 2000, "wordfocus": 0.5, "pool": True},
    "cap800pool160": {"obj": "cap", "steps": 800, "res": 160, "pool": True},
}


def subset(d: dict, k: int, n: int) -> dict:
    keep = torch.nonzero(d["word"] < k).flatten()[:n]
    return {"pix": {r: p[keep] for r, p in d["pix"].items()}, "rich": [d["rich"][i] for i in keep.tolist()],
            "word": d["word"][keep], "small": d["small"][keep], "box": [d["box"][i] for i in keep.tolist()]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--pool", type=int, default=20000)
    ap.add_argument("--probe", type=int, default=3000, help="probe images (2/3 train, 1/3 test)")
    ap.add_argument("--variants", default="all")
    ap.add_argument("--steps-scale", type=float, default=1.0)
    ap.add_argument("--cache", default=".ablate/cache")
    args = ap.parse_args()
    workers = os.cpu_count() or 2
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    log = lambda m: print(m, flush=True)  # noqa: E731
    t0 = time.perf_counter()
    world = build_world(WorldConfig(), Path(args.cache))
    tok = world.tokenizer()
    rows = world.read("caption")
    scenes = world.scenes()

    def pixels(path: str, r: int) -> torch.Tensor:
        image = Image.open(path).convert("RGB").resize((r, r), Image.BICUBIC)
        return torch.from_numpy(np.asarray(image)).permute(2, 0, 1)

    wpix = {r: torch.stack([pixels(c["image"], r) for c in rows]) for r in RESOLUTIONS}
    wdata = {"pix": wpix, "rich": [c["rich"] for c in rows],
             "word": torch.tensor([vocab.WORDS.index(scenes[c["image"]].words[0].text) for c in rows]),
             "box": [[x / scenes[c["image"]].image_size for x in scenes[c["image"]].words[0].box] for c in rows]}
    log(f"world loaded {time.perf_counter() - t0:.0f}s")
    pool = make_pool(args.pool, 1, workers)
    probe_set = make_pool(args.probe, 2, workers)
    log(f"pools rendered {time.perf_counter() - t0:.0f}s")
    names = list(VARIANTS) if args.variants == "all" else args.variants.split(",")
    table = []
    for name in names:
        v = {**VARIANTS[name], "name": name}
        v["steps"] = max(1, int(v["steps"] * args.steps_scale))
        k = v.get("words", 48)
        tp, pp = subset(pool, k, 8000), subset(probe_set, k, 3000)
        vision, secs = train(v, tp if v.get("pool") else wdata, tok, args.device, log)
        n_tr = len(pp["word"]) * 2 // 3
        cells = []
        for res in RESOLUTIONS:
            for tokens in (64, 144):
                f = features(vision, pp["pix"][res], res, tokens, args.device)
                lg, sm = probe(f, pp["word"], pp["small"], n_tr, args.device)
                cells.append(f"{lg:4.0f}/{sm:<4.0f}")
        row = f"| {name:15s} | {v['steps']:5d} | {secs:6.1f} | " + " | ".join(cells) + " |"
        table.append(row)
        log(row)
    log("\n| variant | steps | train s | 96/64 L/S | 96/144 L/S | 160/64 L/S | 160/144 L/S |")
    log("|---|---|---|---|---|---|---|")
    for r in table:
        log(r)
    log(f"total {time.perf_counter() - t0:.0f}s; chance {100 / len(vocab.WORDS):.1f}%")


if __name__ == "__main__":
    main()
