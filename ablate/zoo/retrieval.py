"""Did pre-training work? Image-caption retrieval on held-out pairs (the last `heldout` caption records).

- zero-shot (CLIP / SigLIP only): cosine between the two towers' embeddings, top-1 image->text and text->image;
- probe (every encoder, random included): ridge regression from mean-pooled patch features to the caption's bag
  of words, fitted on `probe_train` training pairs, then top-1 image->text by cosine among the held-out captions.
- reading (encoders pre-trained with a reading head, `ocr` > 0): top-1 accuracy of the head naming the first drawn
  word of each held-out image, per training resolution and word size (`read_top1_<px>_<large|small>`).
A retrieved caption counts as right when its text equals the true one (duplicates are not penalised); `chance`
is the expected top-1 of a random guess under the same rule. `*_pool32` figures rank each query against the 32
candidates of its own block only (chance about 1/32), a gentler test for tiny models than all 256 at once.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ablate.world.tokenizer import word_id
from ablate.zoo.data import ZooData, encode_texts, load_pixels, normalise
from ablate.zoo.recipes import EncoderRecipe

POOL = 32  # candidates per query for the pooled figures


def _top1(scores: torch.Tensor, texts: list[str], pool: int | None = None) -> float:
    """scores[i, j] for query i and candidate j; a hit when the best candidate's caption equals query i's.

    With `pool`, queries compete only against the candidates of their own consecutive block of `pool` pairs.
    """
    n = len(texts)
    pool = pool or n
    hits = 0
    for start in range(0, n, pool):
        block = slice(start, min(n, start + pool))
        best = scores[block, block].argmax(1).tolist()
        hits += sum(texts[start + b] == texts[start + i] for i, b in enumerate(best))
    return hits / n


def chance(texts: list[str], pool: int | None = None) -> float:
    pool = pool or len(texts)
    blocks = [texts[s:s + pool] for s in range(0, len(texts), pool)]
    return sum(b.count(t) / len(b) for b in blocks for t in b) / len(texts)


@torch.no_grad()
def pooled_features(vision, pixels: torch.Tensor, batch: int = 128) -> torch.Tensor:
    out = [vision(pixel_values=normalise(pixels[i:i + batch])).last_hidden_state[:, 1:].mean(1)
           for i in range(0, len(pixels), batch)]
    return torch.cat(out)


def bag_of_words(tokenizer, texts: list[str]) -> torch.Tensor:
    bow = torch.zeros(len(texts), len(tokenizer))
    for i, text in enumerate(texts):
        for t in tokenizer(text, add_special_tokens=False)["input_ids"]:
            bow[i, t] += 1
    return bow


def ridge(x: torch.Tensor, y: torch.Tensor, alpha: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    mu = x.mean(0)
    sd = x.std(0).clamp(min=1e-6)
    z = (x - mu) / sd
    w = torch.linalg.solve(z.T @ z + alpha * len(z) * 1e-3 * torch.eye(z.shape[1]), z.T @ (y - y.mean(0)))
    return mu, sd, w


@torch.no_grad()
def evaluate_encoder(r: EncoderRecipe, data: ZooData, vision, towers=None) -> dict:
    held = data.captions[len(data.captions) - r.heldout:]
    train = data.captions[: max(0, len(data.captions) - r.heldout)][: r.probe_train]
    texts = [c["rich"] for c in held]
    vision.eval()
    pix_held = load_pixels([c["image"] for c in held], r.resolution)
    result = {"n_heldout": len(held), "chance": chance(texts), f"chance_pool{POOL}": chance(texts, POOL)}
    if towers is not None:
        towers.eval()
        ids, mask = encode_texts(data.tokenizer, texts, r.text_len)
        img = F.normalize(towers.embed_images(normalise(pix_held)), dim=-1)
        txt = F.normalize(towers.embed_texts(ids, mask), dim=-1)
        result["zero_shot_i2t_top1"] = _top1(img @ txt.T, texts)
        result["zero_shot_t2i_top1"] = _top1(txt @ img.T, texts)
        result[f"zero_shot_i2t_top1_pool{POOL}"] = _top1(img @ txt.T, texts, POOL)
    if towers is not None and towers.reader is not None:
        sizes = dict.fromkeys((r.resolution, *r.extra_resolutions))  # each once, in training order
        result.update(reading_accuracy(towers, held, data.tokenizer, sizes))
    if train:
        f_train = pooled_features(vision, load_pixels([c["image"] for c in train], r.resolution))
        mu, sd, w = ridge(f_train, bag_of_words(data.tokenizer, [c["rich"] for c in train]))
        pred = F.normalize(((pooled_features(vision, pix_held) - mu) / sd) @ w, dim=-1)
        bow = bag_of_words(data.tokenizer, texts)
        bow = F.normalize(bow - bow.mean(0), dim=-1)
        result["probe_i2t_top1"] = _top1(pred @ bow.T, texts)
        result[f"probe_i2t_top1_pool{POOL}"] = _top1(pred @ bow.T, texts, POOL)
    return result


@torch.no_grad()
def reading_accuracy(towers, rows: list[dict], tokenizer, sizes, batch: int = 128) -> dict:
    first = torch.tensor([word_id(tokenizer, row["words"][0]) for row in rows])
    small = torch.tensor([row["word_sizes"][0] == "small" for row in rows])
    out = {}
    for size in sizes:
        pixels = load_pixels([row["image"] for row in rows], size)
        pred = torch.cat([towers.reader.read(towers.patches(normalise(pixels[i:i + batch])))
                          for i in range(0, len(rows), batch)])
        right = (pred == first).float()
        for name, keep in (("large", ~small), ("small", small)):
            out[f"read_top1_{size}_{name}"] = right[keep].mean().item() if keep.any() else float("nan")
    return out
