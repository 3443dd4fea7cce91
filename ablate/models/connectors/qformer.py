"""`qformer`: the Querying Transformer of BLIP-2 (Li et al. 2023, "BLIP-2: Bootstrapping Language-Image
Pre-training with Frozen Image Encoders and Large Language Models").

n learnable queries go through a small BERT-style transformer (transformers' `Blip2QFormerModel`) in which they
self-attend and cross-attend to the patch features (every `cross_every` layers); a linear layer then projects
them to the LLM width. Shape: (B, h*w, d_in) -> (B, n, d_out) for any n >= 1.
Options: depth (layers, 2), width (0 = d_out), heads (0 = auto), ffn_mult (2), cross_every (1; BLIP-2 uses 2).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import Connector
from .layers import default_heads


class QFormer(Connector):
    OPTIONS = {"depth": 2, "width": 0, "heads": 0, "ffn_mult": 2, "cross_every": 1}
    HOW = "any n >= 1 (one learnable query per token)"

    def __init__(self, d_in, d_out, grid, tokens, options):
        super().__init__(d_in, d_out, grid, tokens, options)
        from transformers import Blip2QFormerConfig, Blip2QFormerModel  # imported here: transformers is slow to load

        width = options["width"] or d_out
        heads = options["heads"] or default_heads(width)
        if width % heads:
            raise ValueError(f"qformer width {width} is not divisible by {heads} heads")
        config = Blip2QFormerConfig(
            hidden_size=width, num_hidden_layers=options["depth"], num_attention_heads=heads,
            intermediate_size=width * options["ffn_mult"], encoder_hidden_size=d_in,
            cross_attention_frequency=options["cross_every"], hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
        )
        self.queries = nn.Parameter(torch.randn(1, tokens, width) * 0.02)
        self.qformer = Blip2QFormerModel(config)
        self.out = nn.Linear(width, d_out)

    def forward(self, x: Tensor) -> Tensor:
        q = self.queries.expand(x.shape[0], -1, -1)
        return self.out(self.qformer(query_embeds=q, encoder_hidden_states=x).last_hidden_state)
