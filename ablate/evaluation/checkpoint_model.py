"""`CheckpointLMM`: the `ablate` model of the lmms-eval CLI, built from a self-describing checkpoint.

`lmms-eval eval --model ablate --model_args checkpoint=<dir>[,max_new_tokens=4] --include_path <tasks>
--tasks world_vqa,world_vqa_4shot` loads the model with `ablate.checkpoint.load_for_eval(<dir>)` (a
`Generator`) and answers requests through `AblateLMM`.
"""
from __future__ import annotations

from ablate.evaluation.adapter import AblateLMM


class CheckpointLMM(AblateLMM):
    def __init__(self, checkpoint: str, batch_size=32, max_new_tokens=4, device=None, max_batch_size=None,
                 cache_root=None, **kwargs):
        if kwargs:
            raise TypeError(
                f"unknown model_args for ablate: {sorted(kwargs)} (known: checkpoint, max_new_tokens, cache_root)"
            )
        from ablate.checkpoint import load_for_eval  # lazy: the checkpoint module loads torch models

        options = {k: v for k, v in {"device": device, "cache_root": cache_root}.items() if v is not None}
        batch = int(batch_size) if str(batch_size).isdigit() else 32  # "auto" -> 32
        super().__init__(load_for_eval(checkpoint, **options), batch_size=batch, max_new_tokens=int(max_new_tokens))
