"""Causal language models by spec, each with a tokenizer that has an `<image>` special token.

Specs: `zoo:lm-<size>` (a tiny Llama pretrained here, see `ablate.zoo`), `hf:<hub id or local folder>`
(AutoModelForCausalLM + AutoTokenizer), `gguf:<file.gguf>` (transformers' GGUF loading, which dequantises to
float; needs the optional `gguf` package: `pip install 'ablate[gguf]'`). A dequantised GGUF model is saved once
under `cache_root/gguf/<name>-<digest>/` (measured: 30-45 s to dequantise a 270M model, 0.1 s to reload).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from ablate.config.schema import LLMConfig
from ablate.models.encoders.hub import resolve, weights_identity
from ablate.models.encoders.registry import default_cache_root

IMAGE_TOKEN = "<image>"


def image_token_id(tokenizer) -> int:
    """Id of the `<image>` token (added by `build_llm` when missing)."""
    return tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)


def ensure_image_token(model, tokenizer) -> int:
    """Add `<image>` as a special token when the tokenizer lacks it, grow the embeddings to fit; give a pad token.

    Returns the `<image>` id. The new embedding row is initialised by transformers (mean of the existing rows).
    """
    from tokenizers import AddedToken

    if IMAGE_TOKEN not in tokenizer.get_vocab():
        tokenizer.add_tokens([AddedToken(IMAGE_TOKEN, special=True, normalized=False)], special_tokens=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    if len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(len(tokenizer))
    if getattr(model.config, "pad_token_id", None) is None and tokenizer.pad_token_id is not None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return image_token_id(tokenizer)


def _load_hf(location: str):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(location)
    tokenizer = AutoTokenizer.from_pretrained(location)
    return model, tokenizer


def _gguf_folder(file: Path, cache_root: Path) -> Path:
    """Dequantise `file` once into an HF folder under the cache; later calls reload that folder."""
    try:
        import gguf  # noqa: F401
    except ImportError as err:
        raise ImportError(f"loading {file.name} needs the optional 'gguf' package: pip install 'ablate[gguf]' "
                          f"(or pip install gguf)") from err
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = cache_root / "gguf" / f"{file.stem}-{weights_identity(file)}"
    if (folder / "config.json").is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}-"))
    try:
        model = AutoModelForCausalLM.from_pretrained(str(file.parent), gguf_file=file.name)
        tokenizer = AutoTokenizer.from_pretrained(str(file.parent), gguf_file=file.name)
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        os.replace(tmp, folder) if not folder.exists() else shutil.rmtree(tmp)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


def build_llm(cfg: LLMConfig, cache_root: Path | None = None):
    """`(model, tokenizer)` for `cfg.name`; the tokenizer has `<image>` (id: `image_token_id(tokenizer)`)."""
    cache_root = Path(cache_root) if cache_root is not None else default_cache_root()
    kind, sep, ref = cfg.name.partition(":")
    if kind == "hf" and ref:
        model, tokenizer = _load_hf(resolve(ref, "language model"))
    elif kind == "gguf" and ref:
        file = Path(ref).expanduser()
        if not file.is_file() or file.suffix != ".gguf":
            raise FileNotFoundError(f"gguf spec {cfg.name!r}: {file} is not an existing .gguf file")
        model, tokenizer = _load_hf(str(_gguf_folder(file, cache_root)))
    elif kind == "zoo" and ref:
        from ablate.zoo import ensure_built

        model, tokenizer = _load_hf(str(ensure_built(ref, cache_root)))
    else:
        raise ValueError(f"language model spec {cfg.name!r} should be one of: zoo:lm-<size> (e.g. zoo:lm-s), "
                         f"hf:<hub id or local folder>, gguf:<path to .gguf>")
    ensure_image_token(model, tokenizer)
    return model, tokenizer
