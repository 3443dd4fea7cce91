"""What the benchmark's parts and the tests share: the shapes, random backbones and images written to disk,
synthetic batches, a cell's config, and one training step as the project's loop takes it."""
from __future__ import annotations

import contextlib
import random
import time
from dataclasses import dataclass
from pathlib import Path

import torch

SHAPES = {
    "reference": {
        "encoder": dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                        patch_size=16, image_size=384),
        "llm": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                    num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True, rope_theta=1e6,
                    max_position_embeddings=32768),
        "resolution": 384, "image_px": 192, "tokens": 144, "grid_tokens": (64, 144), "text": 128, "batch": 32,
        "n_images": 3000, "questions": 128, "peak_n": 8192,
    },
    "tiny": {
        "encoder": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                        patch_size=8, image_size=64),
        "llm": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                    num_key_value_heads=1, vocab_size=4096, tie_word_embeddings=True, max_position_embeddings=512),
        "resolution": 64, "image_px": 64, "tokens": 16, "grid_tokens": (4, 16), "text": 16, "batch": 4,
        "n_images": 48, "questions": 8, "peak_n": 512,
    },
}
CONNECTORS = ("avg-pool", "attn-pool", "c-abstractor")

def write_backbones(root: Path, shape: dict, device: torch.device) -> dict[str, str]:
    """A random SigLIP vision tower and a random Qwen2 LM (+ a word-level tokenizer), saved with save_pretrained."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        PreTrainedTokenizerFast,
        Qwen2Config,
        Qwen2ForCausalLM,
        SiglipVisionConfig,
        SiglipVisionModel,
    )

    torch.manual_seed(0)
    init = torch.device("cuda") if device.type == "cuda" else contextlib.nullcontext()
    with init:
        SiglipVisionModel(SiglipVisionConfig(**shape["encoder"])).save_pretrained(root / "encoder")
    vocab = {t: i for i, t in enumerate(["<pad>", "<bos>", "<eos>", "<unk>", "<image>"])}
    vocab.update({f"w{i}": len(vocab) + i for i in range(1000)})
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<bos>",
                                        eos_token="<eos>", unk_token="<unk>",
                                        extra_special_tokens={"image_token": "<image>"})
    with init:
        llm = Qwen2ForCausalLM(Qwen2Config(**shape["llm"], bos_token_id=1, eos_token_id=2, pad_token_id=0))
    llm.save_pretrained(root / "llm")
    tokenizer.save_pretrained(root / "llm")
    del llm
    return {"encoder": f"hf:{root / 'encoder'}", "llm": f"hf:{root / 'llm'}"}


def write_images(folder: Path, n: int, px: int) -> list[str]:
    """`n` PNG images of coloured rectangles (the world's images are of this kind), written by a thread pool."""
    from concurrent.futures import ThreadPoolExecutor

    from PIL import Image, ImageDraw

    folder.mkdir(parents=True, exist_ok=True)

    def one(i: int) -> str:
        rng = random.Random(i)
        img = Image.new("RGB", (px, px), tuple(rng.randrange(256) for _ in range(3)))
        draw = ImageDraw.Draw(img)
        for _ in range(4):
            x, y = rng.randrange(px - 8), rng.randrange(px - 8)
            draw.rectangle([x, y, x + rng.randrange(4, px // 2), y + rng.randrange(4, px // 2)],
                           fill=tuple(rng.randrange(256) for _ in range(3)))
        path = folder / f"{i:05d}.png"
        img.save(path)
        return str(path)

    with ThreadPoolExecutor(16) as pool:
        return list(pool.map(one, range(n)))


@dataclass
class SyntheticBatch:
    """What the training loop reads from a batch (`ablate.data.Batch`'s fields), made without `datasets`."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor
    images: list[str]
    n_images: torch.Tensor
    padding_fraction: float = 0.0


def synthetic_batches(paths: list[str], visual_tokens: int, text: int, batch: int, vocab: int, seed: int,
                      image_id: int = 4, bos_id: int = 1):
    """Endless batches of `<bos> <image>*visual_tokens text*(text-1)`, one image per row, labels on the text."""
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    order: list[str] = []
    while True:
        if len(order) < batch:
            extra = list(paths)
            rng.shuffle(extra)
            order += extra
        images, order = order[:batch], order[batch:]
        text_ids = torch.randint(5, vocab, (batch, text - 1), generator=gen)
        head = torch.tensor([bos_id] + [image_id] * visual_tokens).expand(batch, -1)
        ids = torch.cat([head, text_ids], dim=1)
        labels = ids.clone()
        labels[:, : 1 + visual_tokens] = -100
        yield SyntheticBatch(ids, torch.ones_like(ids), labels, images, torch.ones(batch, dtype=torch.long))


def cell_config(specs: dict, shape: dict, connector: str, tokens: int, steps: int, feature_cache: bool = True):
    from ablate.config.schema import CellConfig

    return CellConfig.model_validate({
        "encoder": {"name": specs["encoder"], "resolution": shape["resolution"]},
        "connector": {"name": connector, "tokens": tokens},
        "llm": {"name": specs["llm"]},
        "train": {"steps": steps, "batch_size": shape["batch"], "lr": 1e-4, "warmup_ratio": 0.0,
                  "precision": "bf16", "checkpoint_every": 10**9, "feature_cache": feature_cache},
    })



class Clock:
    """Hooks for `ablate.train.loop.train`: the wall time and loss of every step."""

    def __init__(self, device: torch.device):
        self.device, self.times, self.losses = device, [], []

    def on_step(self, step: int, loss: float, lr: float) -> None:   # the loop has synced (float(loss))
        self.times.append(time.perf_counter())
        self.losses.append(loss)

    def on_checkpoint(self, step: int, state: dict) -> None:
        pass


def train_step(model, batch, optimizer, scheduler, clip: float, device: torch.device, pixel_values=None,
               features=None) -> float:
    """One step exactly as `ablate.train.loop.train` does it, with the images given as pixels or features."""
    with torch.autocast(device.type, dtype=torch.bfloat16):
        loss = model(batch.input_ids.to(device), batch.attention_mask.to(device), batch.labels.to(device),
                     batch.images, pixel_values=pixel_values,
                     features=features if features is not None else getattr(batch, "features", None)).loss
    value = float(loss.detach())
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], clip)
    optimizer.step()
    scheduler.step()
    return value

