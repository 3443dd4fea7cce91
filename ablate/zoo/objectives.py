"""Pre-training losses of the zoo's image encoders.

- `clip_loss`: symmetric cross-entropy over the image-text similarity matrix (Radford et al., 2021, fig. 3).
- `siglip_loss`: independent binary (sigmoid) loss on every image-text pair, learnable temperature and bias
  initialised at log 10 and -10 (Zhai et al., 2023, "Sigmoid Loss for Language Image Pre-Training", alg. 1).
- `aim_mask` / `aim_targets` / `aim_loss`: prefix-causal attention and next-patch regression of per-patch
  normalised pixels, loss on the non-prefix patches only (El-Nouby et al., 2024, "Scalable Pre-training of Large
  Autoregressive Image Models", section 3).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def clip_loss(img: torch.Tensor, txt: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    img, txt = F.normalize(img, dim=-1), F.normalize(txt, dim=-1)
    logits = logit_scale.exp().clamp(max=100) * img @ txt.T
    labels = torch.arange(len(img), device=img.device)
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


def siglip_loss(img: torch.Tensor, txt: torch.Tensor, log_t: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    img, txt = F.normalize(img, dim=-1), F.normalize(txt, dim=-1)
    logits = log_t.exp() * img @ txt.T + bias
    labels = 2 * torch.eye(len(img), device=img.device) - 1
    return -F.logsigmoid(labels * logits).sum() / len(img)


def aim_mask(n_tokens: int, prefix: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Additive mask `(B, 1, T, T)`: token i sees j when j <= i or j < prefix[b] (prefix tokens see each other)."""
    i = torch.arange(n_tokens)
    causal = i[None, :] <= i[:, None]                                   # (T, T)
    seen = causal[None] | (i[None, None, :] < prefix[:, None, None])     # (B, T, T)
    mask = torch.zeros(seen.shape, dtype=dtype)
    mask.masked_fill_(~seen, torch.finfo(dtype).min)
    return mask[:, None]


def aim_targets(pixels: torch.Tensor, patch: int) -> torch.Tensor:
    """Raster-order patches `(B, N, p*p*3)`, each normalised to zero mean and unit variance."""
    b, c, h, w = pixels.shape
    x = pixels.reshape(b, c, h // patch, patch, w // patch, patch).permute(0, 2, 4, 3, 5, 1)
    x = x.reshape(b, (h // patch) * (w // patch), patch * patch * c)
    return (x - x.mean(-1, keepdim=True)) / (x.var(-1, keepdim=True) + 1e-6).sqrt()


def aim_loss(pred: torch.Tensor, targets: torch.Tensor, prefix: torch.Tensor) -> torch.Tensor:
    """`pred[:, t]` (the output at token t, token 0 = class token) predicts patch t (0-based) = `targets[:, t]`.

    Loss on patches at or after each image's prefix length (in patches), mean squared error.
    """
    n = targets.shape[1]
    keep = torch.arange(n)[None, :] >= (prefix[:, None] - 1)             # prefix counts the class token
    err = ((pred[:, :n] - targets) ** 2).mean(-1)
    return (err * keep).sum() / keep.sum()
