"""Causal language models by spec, each with a tokenizer that has an `<image>` special token.

Specs: `zoo:lm-<size>` (a tiny Llama pretrained here, see `ablate.zoo`), `hf:<hub id or local folder>`
(AutoModelForCausalLM + AutoTokenizer), `gguf:<file.gguf>` (transformers' GGUF loading, dequantised once into the
cache); each family loads its own (`ablate.models.families`), this module does what every LLM gets.

`llm.lora` injects LoRA adapters (`peft`) into the loaded model; `trained_parameters` says which of an LLM's
parameters learn (the adapters only, when it has them).
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch
from tokenizers import AddedToken

from ablate.config.schema import LLMConfig
from ablate.config.spec import SpecError
from ablate.models import families
from ablate.models.encoders.hub import weights_identity
from ablate.models.encoders.registry import default_cache_root

IMAGE_TOKEN = "<image>"

log = logging.getLogger(__name__)


def image_token_id(tokenizer) -> int:
    """Id of the `<image>` token (added by `build_llm` when missing)."""
    return tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)


def ensure_image_token(model, tokenizer) -> int:
    """Add `<image>` as a special token when the tokenizer lacks it, grow the embeddings to fit; give a pad token.

    Returns the `<image>` id. New embedding rows (and output rows of an untied head) are the mean of the existing
    rows: deterministic, so a model rebuilt from its spec (a frozen LLM is not stored in checkpoints) is the same.
    """
    if IMAGE_TOKEN not in tokenizer.get_vocab():
        tokenizer.add_tokens([AddedToken(IMAGE_TOKEN, special=True, normalized=False)], special_tokens=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    rows = model.get_input_embeddings().weight.shape[0]
    if len(tokenizer) > rows:
        model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
        with torch.no_grad():
            for layer in {id(m): m for m in (model.get_input_embeddings(), model.get_output_embeddings())
                          if m is not None}.values():
                layer.weight[rows:] = layer.weight[:rows].mean(dim=0)
        log.info("llm: token embeddings resized from %d to %d rows (added %s)", rows, len(tokenizer), IMAGE_TOKEN)
    if getattr(model.config, "pad_token_id", None) is None and tokenizer.pad_token_id is not None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return image_token_id(tokenizer)


def build_llm(cfg: LLMConfig, cache_root: Path | None = None):
    """`(model, tokenizer)` for `cfg.name`; the tokenizer has `<image>` (id: `image_token_id(tokenizer)`)."""
    cache_root = Path(cache_root) if cache_root is not None else default_cache_root()
    try:
        spec, family = families.parse(cfg.name, families.LLM)
    except SpecError:
        raise ValueError(f"language model spec {cfg.name!r} should be one of: "
                         f"{', '.join(families.forms(families.LLM))}") from None
    model, tokenizer, location = family.load_llm(spec, cache_root)
    model.ablate_weights = weights_identity(location) if Path(str(location)).exists() else str(location)
    ensure_image_token(model, tokenizer)
    log.info("llm %s: %s, %.1fM parameters, dtype %s, vocabulary %d", cfg.name, type(model).__name__,
             sum(p.numel() for p in model.parameters()) / 1e6, model.dtype, len(tokenizer))
    if cfg.lora is not None:
        add_lora(model, cfg.lora)
    if cfg.chat_template:
        use_chat_template(tokenizer, cfg.name)
    return model, tokenizer


_TURN = "\x00ablate-user-turn\x00"


def use_chat_template(tokenizer, name: str = "") -> tuple[list[int], list[int]]:
    """Give `tokenizer` the token ids its chat template puts before and after one user turn (`chat_ids`), up to
    where the assistant's reply begins. The collator wraps each instruction row's prompt in them (the answer
    follows) and generation wraps each context in them, so training and evaluation see the same frame."""
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(f"llm.chat_template is true but the tokenizer of {name or 'this LLM'} has no chat template "
                         f"(a base model): leave llm.chat_template out")
    text = tokenizer.apply_chat_template([{"role": "user", "content": _TURN}], tokenize=False,
                                         add_generation_prompt=True)
    if text.count(_TURN) != 1:
        raise ValueError(f"the chat template of {name or 'this LLM'} does not render a user turn as given")
    before, after = text.split(_TURN)
    if tokenizer.bos_token and before.startswith(tokenizer.bos_token):
        before = before[len(tokenizer.bos_token):]    # rows and contexts start with <bos> already
    ids = (tokenizer(before, add_special_tokens=False)["input_ids"],
           tokenizer(after, add_special_tokens=False)["input_ids"])
    tokenizer.chat_ids = ids
    log.info("llm %s: chat template on instruction rows and evaluation prompts: %r <prompt> %r", name, before,
             after)
    return ids


def chat_ids(tokenizer) -> tuple[list[int], list[int]] | None:
    """`(before, after)` ids of a user turn when the cell applies the chat template (`llm.chat_template`), else None."""
    return getattr(tokenizer, "chat_ids", None)


ADAPTER_MARK = "lora_"   # in the names of LoRA's parameters (`q_proj.lora_A.default.weight`), never in a base's


def is_adapter(name: str) -> bool:
    return ADAPTER_MARK in name


def has_adapters(module) -> bool:
    return any(is_adapter(name) for name, _ in module.named_parameters())


def trained_parameters(module) -> dict:
    """`{name: parameter}` that learn when `module` trains: its LoRA adapters if it has some (the base stays
    frozen), else all of them. The optimiser and the checkpoint both ask this."""
    named = dict(module.named_parameters())
    if has_adapters(module):
        return {name: p for name, p in named.items() if is_adapter(name)}
    return named


def add_lora(model, lora) -> None:
    """Inject LoRA adapters (`peft`) into `model` in place: its class, forward and embeddings stay as they are;
    `lora_B` starts at zero, so the adapted model computes what the base did until it trains."""
    from peft import LoraConfig, inject_adapter_in_model  # lazy: peft only for LoRA cells

    config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                        target_modules=list(lora.target_modules) if lora.target_modules else "all-linear",
                        bias="none")
    inject_adapter_in_model(config, model)
    adapters = {n: p for n, p in model.named_parameters() if is_adapter(n)}
    if not adapters:
        raise ValueError(f"llm.lora: no layer of {type(model).__name__} matches target_modules "
                         f"{lora.target_modules}")
    layers = sorted({n.split(".lora_")[0].rsplit(".", 1)[-1] for n in adapters})
    log.info("llm: LoRA r=%d alpha=%g on %s (%d adapter parameters, %.2f%% of the LLM)", lora.r, lora.alpha,
             ", ".join(layers), sum(p.numel() for p in adapters.values()),
             100 * sum(p.numel() for p in adapters.values()) / sum(p.numel() for p in model.parameters()))
