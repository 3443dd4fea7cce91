"""Speed helpers for the training step: regional compilation, frozen modules in bf16, batches prepared ahead.

- `compile_blocks`: `torch.compile` of each repeated transformer block rather than of the whole model ("regional
  compilation", PyTorch tutorial "Reducing torch.compile cold start compilation time with regional
  compilation"). The 24 decoder layers of an LM share one compiled graph per input shape, so compiling costs
  seconds instead of minutes, and a later cell of a grid whose blocks have the same code and shapes reuses it
  (Dynamo's cache lives with the code object, Inductor's on disk), so a grid pays compilation once per shape.
- `cast_frozen`: modules that do not train hold bf16 weights on the GPU (no per-step casts, half the memory).
- `Prefetcher`: the next batches (and their image features) are made on a background thread and copied to the
  device while the GPU runs the current step, so the loader does not add to the step time.
"""
from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import torch
from PIL import Image
from torch import nn

from ablate.config.stages import trains_in_any_stage
from ablate.train.loop import micro_batches

SWITCHES = ("compile", "frozen_bf16", "prefetch", "fused_adamw", "activation_checkpointing")


def resolve_switches(cfg, device: torch.device) -> dict[str, bool]:
    """The speed path's switches of a `TrainConfig` (`train.compile`, ...), `auto` made on (CUDA) or off (any
    other device): what a cell applies and logs as `speed/<name>`."""
    switches = {name: (device.type == "cuda") if getattr(cfg, name) == "auto" else bool(getattr(cfg, name))
                for name in SWITCHES}
    bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and device.type == "cuda")
    if switches["frozen_bf16"] and not bf16:
        if cfg.frozen_bf16 is True:
            raise ValueError("train.frozen_bf16 needs bf16 autocast (train.precision: bf16, or auto on CUDA): "
                             "float32 activations cannot meet bf16 weights")
        switches["frozen_bf16"] = False   # auto, on CUDA with precision fp32
    return switches


def frozen_throughout(model, cfg) -> dict[str, nn.Module]:
    """The parts of `model` that no stage of `cfg` (a `TrainConfig`, or its `plan`) trains (a part unfrozen by a
    later stage must keep fp32)."""
    return {name: part for name, part in vars(model.parts()).items() if not trains_in_any_stage(cfg, name)}


class Applied:
    """What `apply_switches` did to a model (`done`: switch -> what, for the log); `undo()` gives evaluation the
    plain model back: frozen parts in float32 again (with their bf16-rounded values, the ones training saw) and
    the blocks eager (generation's changing shapes would recompile them)."""

    def __init__(self):
        self.done: dict[str, str] = {}
        self.cast: list[nn.Module] = []
        self.compiled: list[nn.Module] = []

    def undo(self) -> None:
        for part in self.cast:
            _cast_parameters(part, torch.float32)
        for block in self.compiled:
            block._compiled_call_impl = None   # what nn.Module.compile set: the block runs eagerly again
        self.cast, self.compiled = [], []


def apply_switches(model, cfg, switches: dict[str, bool], stages=None) -> Applied:
    """Apply the speed path to a built MLLM from outside, after the first stage's optimiser is built (it sets
    `requires_grad`). `prefetch` and `fused_adamw` act elsewhere (the batch stream, `ablate.train.optim`).
    `stages`: `plan(cfg)`, when the caller has made it."""
    applied = Applied()
    done = applied.done
    frozen = frozen_throughout(model, stages or cfg)
    if switches["frozen_bf16"]:
        cast = cast_frozen(model, frozen)
        applied.cast = [frozen[name] for name in cast]
        done["frozen_bf16"] = ", ".join(cast) or "nothing frozen"
    if switches["activation_checkpointing"]:
        llm = model.llm
        if "llm" in frozen:
            done["activation_checkpointing"] = "LLM frozen: not needed"
        elif hasattr(llm, "activation_checkpointing_enable"):   # transformers >= 5 (the older name is deprecated)
            llm.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
            done["activation_checkpointing"] = "LLM"
        elif hasattr(llm, "gradient_checkpointing_enable"):
            llm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            done["activation_checkpointing"] = "LLM"
        else:
            raise ValueError(f"train.activation_checkpointing: the LLM ({type(llm).__name__}) has no "
                             "gradient_checkpointing_enable()")
    if switches["compile"]:
        done["compile"] = f"{compile_blocks(model.llm)} LLM blocks"
        applied.compiled = repeated_blocks(model.llm)
    return applied


def batch_stream(batches_for: Callable, grad_accum: int = 1, prefetch_model=None, depth: int = 2) -> Callable:
    """`batches_for(stage, done)` as the training loop takes it: each global batch split into `grad_accum`
    micro-batches, and, given `prefetch_model`, those made, moved to its device and given their frozen-encoder
    features on a background thread (`Prefetcher`), stopped when the stage's stream is dropped."""
    def stream(stage, done: int):
        batches = micro_batches(batches_for(stage, done), grad_accum)
        if prefetch_model is None:
            yield from batches
            return
        ahead = prefetch_batches(batches, prefetch_model, depth)
        try:
            yield from ahead
        finally:
            ahead.close()

    return stream


def repeated_blocks(module: nn.Module) -> list[nn.Module]:
    """Members of every `nn.ModuleList` of two or more modules of one class (transformer layers)."""
    blocks = []
    for child in module.modules():
        if isinstance(child, nn.ModuleList) and len(child) >= 2 and len({type(m) for m in child}) == 1:
            blocks.extend(child)
    return blocks


def compile_blocks(module: nn.Module, **compile_kwargs) -> int:
    """Compile each repeated block of `module` in place (`nn.Module.compile`); returns how many were compiled.

    Raises Dynamo's recompile limit so that many block instances (and later cells) sharing one code object are
    never silently left to run eagerly.
    """
    import torch._dynamo  # lazy: dynamo loads only when blocks are compiled

    blocks = repeated_blocks(module)
    limit = max(64, 4 * len(blocks))
    if hasattr(torch._dynamo.config, "recompile_limit"):
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, limit)
    else:  # older torch
        torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, limit)
    for block in blocks:
        block.compile(**compile_kwargs)
    return len(blocks)


def _cast_parameters(module: nn.Module, dtype: torch.dtype) -> None:
    for param in module.parameters():
        param.data = param.data.to(dtype)


def cast_frozen(model: nn.Module, parts: dict[str, nn.Module], dtype: torch.dtype = torch.bfloat16) -> list[str]:
    """Cast each part of `parts` whose parameters all have `requires_grad=False` to `dtype`; returns their names.

    Call after the optimiser is built (it sets `requires_grad` from the learning-rate multipliers).
    """
    cast = []
    for name, part in parts.items():
        params = list(part.parameters())
        if params and not any(p.requires_grad for p in params):
            _cast_parameters(part, dtype)   # buffers (rotary frequency tables) keep their precision
            cast.append(name)
    return cast


def _to_device(value, device: torch.device):
    if isinstance(value, torch.Tensor):
        pinned = value.pin_memory() if device.type == "cuda" and not value.is_pinned() else value
        return pinned.to(device, non_blocking=True)
    return value


class Prefetcher:
    """Iterate `source` on a background thread, `depth` items ahead; each item goes through `prepare` first.

    `prepare(item)` runs on the thread: e.g. move a batch's tensors to the GPU (pinned, non-blocking) and look
    its image features up. Exceptions raised there come out of `next()`; `close()` stops the thread.
    """

    _END = object()

    def __init__(self, source: Iterator, prepare: Callable | None = None, depth: int = 2):
        self._source, self._prepare = source, prepare or (lambda item: item)
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="ablate-prefetch")
        self._thread.start()

    def _run(self) -> None:
        try:
            for item in self._source:
                if self._stop.is_set():
                    return
                self._put(self._prepare(item))
            self._put(self._END)
        except BaseException as err:  # handed to the consumer
            self._put(err)

    def _put(self, item) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def __iter__(self):
        return self

    def __next__(self):
        item = self._queue.get()
        if item is self._END:
            raise StopIteration
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        """Stop the thread (and `prepare.close()`, if `prepare` has one: e.g. its image-decoding pool)."""
        self._stop.set()
        self._thread.join(timeout=5)
        closer = getattr(self._prepare, "close", None)
        if closer is not None:
            closer()


@dataclass
class ReadyBatch:
    """A batch already on the device, with its image features (None: the model computes them in the step)."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor
    images: list[str]
    features: torch.Tensor | None = None
    data_state: dict | None = None   # the batch's `data_state` (where the data stream stands after it)
    position_ids: torch.Tensor | None = None   # packed rows' position ids (`data.packing`)
    pixel_values: list[torch.Tensor] | None = None   # a loader worker's pixels, when the step computes the features


def _load_crops(encoder, path: str) -> torch.Tensor:
    """The preprocessed crops of one image, `(crops, 3, R, R)` (one crop unless the encoder slices)."""
    with Image.open(path) as img:
        return encoder.preprocess([img.convert("RGB")])


def feature_preparer(model, threads: int = 8) -> Callable:
    """`prepare` for `Prefetcher`: a batch -> `ReadyBatch` on the model's device, features looked up ahead.

    With a frozen encoder the features are computed (or read from the feature cache) on the prefetch thread,
    images decoded by a small thread pool; with a trained encoder they are left to the step (they need grads).
    """
    pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="ablate-images")
    device = model.device
    features = model.features
    encoder = model.encoder

    def encode(paths: list[str], pixels: dict | None = None) -> list[torch.Tensor]:
        """Features of each image, `(crops, h*w, dim)`, images decoded by the pool (or their `pixels` by path, made
        by a loader worker), encoded in one batch."""
        crops = [pixels[p] for p in paths] if pixels else list(pool.map(lambda p: _load_crops(encoder, p), paths))
        pixels = _to_device(torch.cat(crops), device).to(next(encoder.parameters()).dtype)
        return list(torch.split(encoder(pixels), [c.shape[0] for c in crops]))

    def prepare(batch) -> ReadyBatch:
        feats, given = None, getattr(batch, "pixel_values", None)
        pixels = dict(zip(batch.images, given)) if given else None
        if batch.images and getattr(features, "frozen", False):
            with torch.no_grad():
                key, cache = getattr(features, "key", None), getattr(features, "cache", None)
                if key is None:
                    feats = torch.cat(encode(batch.images, pixels))
                else:   # misses decoded by the pool and encoded once, then every image is a cache lookup
                    missing = [p for p in dict.fromkeys(batch.images) if cache.get((key, p)) is None]
                    if missing:
                        for path, feat in zip(missing, encode(missing, pixels)):
                            cache.put((key, path), feat.to("cpu"))
                    feats = features(batch.images, device)
                    cache.hits, cache.misses = cache.hits - len(missing), cache.misses + len(missing)
        positions = getattr(batch, "position_ids", None)
        return ReadyBatch(_to_device(batch.input_ids, device), _to_device(batch.attention_mask, device),
                          _to_device(batch.labels, device), list(batch.images), feats,
                          getattr(batch, "data_state", None),
                          None if positions is None else _to_device(positions, device),
                          None if feats is not None or not given else [_to_device(p, device) for p in given])

    prepare.close = lambda: pool.shutdown(wait=False, cancel_futures=True)
    return prepare


def prefetch_batches(batches: Iterator, model, depth: int = 2) -> Prefetcher:
    """`batches` made, moved to the device and given their image features on a background thread."""
    return Prefetcher(batches, feature_preparer(model), depth)


class reference_forward:
    """Context manager: inside it, `model(...)` runs the eager baseline's forward (full-vocabulary logits and
    Hugging Face's loss, the path before `ablate.models.loss`); for benchmarks and equivalence tests."""

    def __init__(self, model):
        self.model = model

    def __enter__(self):
        model = self.model

        def forward(input_ids, attention_mask, labels, images, pixel_values=None, features=None):
            embeds = model.embed(input_ids, images, pixel_values, features)
            return model.llm(inputs_embeds=embeds, attention_mask=attention_mask, labels=labels)

        model.forward = forward
        return model

    def __exit__(self, *exc):
        del self.model.forward
        return False
