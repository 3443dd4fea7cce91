"""`gguf:<file.gguf>` LLMs: a llama.cpp file read by transformers' GGUF loader, dequantised to float32 (needs the
optional `gguf` package: `pip install 'ablate[gguf]'`). A dequantised model is saved once under
`cache_root/gguf/<name>-<digest>/` and loaded from there afterwards (measured with Gemma 3 270M Q4_K_M on 2 shared
CPU cores: 127 s the first time, 12.5 s afterwards; docs/backbones.md, "GGUF").

The dry run reads the file's metadata with the `gguf` package's reader (no tensor is dequantised): the package must
import, and `llm.chat_template: true` needs the key `tokenizer.chat_template` in the file.
"""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

from ablate.config.errors import CellCheckError
from ablate.config.spec import Spec
from ablate.models.families.base import Family

CHAT_TEMPLATE_KEY = "tokenizer.chat_template"   # where llama.cpp's converter writes a model's chat template
INSTALL = "pip install 'ablate[gguf]' (or pip install gguf)"

log = logging.getLogger(__name__)


def _gguf_module():
    try:
        import gguf  # lazy: an optional package, only for gguf: LLMs
    except ImportError:
        return None
    return gguf


class GGUF(Family):
    name = "gguf"
    forms = {"llm": "gguf:<file.gguf>"}

    def check(self, spec: Spec, role: str, key: str) -> None:
        file = Path(spec.ref).expanduser()
        if not (file.is_file() and file.suffix == ".gguf"):
            raise CellCheckError(key, f"GGUF file {spec.ref!r} does not exist (or is not a .gguf file)")
        if _gguf_module() is None:
            raise CellCheckError(key, f"reading the GGUF file {file} needs the optional 'gguf' package, which does "
                                      f"not import here: {INSTALL}")

    def has_chat_template(self, spec: Spec) -> bool | None:
        """Whether the file's metadata holds `tokenizer.chat_template` (read without dequantising anything)."""
        gguf = _gguf_module()
        if gguf is None:
            return None
        field = gguf.GGUFReader(str(Path(spec.ref).expanduser())).get_field(CHAT_TEMPLATE_KEY)
        return field is not None and bool(field.contents())

    def check_chat_template(self, spec: Spec) -> None:
        if self.has_chat_template(spec) is False:
            raise CellCheckError("llm.chat_template", f"the GGUF file {Path(spec.ref).expanduser()} has no chat "
                                 f"template (no {CHAT_TEMPLATE_KEY!r} in its metadata: a base model): leave "
                                 "llm.chat_template out")

    def load_llm(self, spec: Spec, cache_root: Path) -> tuple:
        from ablate.models.families.hf import load_pretrained  # lazy: transformers for the build only

        file = Path(spec.ref).expanduser()
        if not file.is_file() or file.suffix != ".gguf":
            raise FileNotFoundError(f"gguf spec {str(spec)!r}: {file} is not an existing .gguf file")
        return (*load_pretrained(str(gguf_folder(file, cache_root))), file)


def gguf_folder(file: Path, cache_root: Path) -> Path:
    """Dequantise `file` once into a plain HF folder under the cache; later calls reload that folder.

    The folder is keyed by the file's digest (`weights_identity`), so an edited or replaced file is dequantised
    again. A lock makes parallel workers wait for the one that dequantises instead of doing it twice.
    """
    from filelock import FileLock

    from ablate.models.encoders.hub import weights_identity  # lazy: the encoders package imports torch

    if _gguf_module() is None:
        raise ImportError(f"loading {file.name} needs the optional 'gguf' package: {INSTALL}")
    folder = cache_root / "gguf" / f"{file.stem}-{weights_identity(file)}"
    if (folder / "config.json").is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder) + ".lock"):
        if (folder / "config.json").is_file():   # another worker finished it while this one waited
            return folder
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}-"))
        try:
            start = time.perf_counter()
            log.info("gguf %s: dequantising (first use only; minutes for a few hundred MB)", file)
            model, tokenizer = _dequantise(file)
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            os.replace(tmp, folder)
            size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
            log.info("gguf %s: dequantised in %.1f s into %s (%.0f MB, %s)", file.name,
                     time.perf_counter() - start, folder, size / 2**20, model.dtype)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _dequantise(file: Path):
    """`(model, tokenizer)` read from a GGUF file, as a plain float model that `save_pretrained` accepts.

    transformers 5.x loads a GGUF through a quantizer that stays attached to the model, and a model with a
    GGUF quantizer refuses to be saved ("quantized with gguf and is not serializable"). Asking for a
    dequantised load leaves plain float tensors in every layer; what is left of the quantizer is then dropped.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs = {}
    try:
        from transformers import GgufConfig  # transformers 5.x; 4.x has none (and always dequantises)

        kwargs["quantization_config"] = GgufConfig(dequantize=True)
    except ImportError:  # transformers 4.x: GGUF files are always dequantised, no quantizer is attached
        pass
    model = AutoModelForCausalLM.from_pretrained(str(file.parent), gguf_file=file.name, dtype=torch.float32,
                                                 **kwargs)
    _drop_quantizer(model)
    tokenizer = AutoTokenizer.from_pretrained(str(file.parent), gguf_file=file.name)
    return model, tokenizer


def _drop_quantizer(model) -> None:
    """Detach the GGUF quantizer from a dequantised model, so that it saves and trains as a plain model."""
    packed = sorted({type(m).__name__ for m in model.modules() if type(m).__name__.startswith("Gguf")})
    if packed:
        raise RuntimeError(f"the GGUF model still holds packed layers ({', '.join(packed)}): not dequantised")
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer = None
    for owner, name in ((model.config, "quantization_config"), (model, "quantization_method")):
        if hasattr(owner, name):
            try:
                delattr(owner, name)
            except AttributeError:
                pass
    if getattr(model, "is_quantized", False):
        model.is_quantized = False
