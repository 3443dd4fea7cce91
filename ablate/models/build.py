"""The one place that turns a cell config into a model: encoder + connector + LLM."""
from __future__ import annotations

from pathlib import Path

import torch

from ablate.config.schema import CellConfig
from ablate.config.stages import trains_in_any_stage
from ablate.models.connectors import build_connector
from ablate.models.encoders import build_encoder
from ablate.models.features import FeatureCache, ImageFeatures
from ablate.models.llm import build_llm
from ablate.models.mllm import MLLM
from ablate.models.visual_tokens import ImageTokens


def build_mllm(cfg: CellConfig, cache_root: Path, feature_cache: FeatureCache | None = None,
               device: str | torch.device | None = None, stages: list | None = None) -> MLLM:
    """`stages`: `plan(cfg.train)`, when the caller has made it."""
    encoder = build_encoder(cfg.encoder, cache_root)
    llm, tokenizer = build_llm(cfg.llm, cache_root)
    torch.manual_seed(cfg.train.seed)  # the connector's initialisation depends on the cell's seed only
    d_llm = llm.get_input_embeddings().embedding_dim
    connector = build_connector(cfg.connector, encoder.dim, d_llm, encoder.grid)
    image_tokens = ImageTokens(cfg.encoder, cfg.connector.tokens, tokenizer.convert_tokens_to_ids("<image>"),
                               tokenizer)
    model = MLLM(encoder, connector, llm, tokenizer, image_tokens)
    frozen = not trains_in_any_stage(stages or cfg.train, "encoder")   # features can be cached only if it never trains
    model.features = ImageFeatures(encoder, feature_cache if cfg.train.feature_cache else None, frozen)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model.to(device)
    if frozen:
        encoder.eval()
    return model
