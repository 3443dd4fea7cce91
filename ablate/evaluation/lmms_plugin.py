"""lmms-eval plugin: `lmms-eval eval --model ablate --model_args checkpoint=<dir> ...`.

pyproject declares `[project.entry-points."lmms_eval.models"] ablate = "ablate.evaluation.lmms_plugin:MANIFESTS"`;
lmms-eval 0.7.3 reads that group at start-up (`ModelRegistryV2.load_entrypoint_manifests`) and accepts a
`ModelManifest`, a list of them, or a callable returning either. `MANIFESTS` is built on first access
(PEP 562 `__getattr__`) so importing this module never imports lmms-eval, and importing lmms-eval first,
which loads this entry point while `lmms_eval.models` is still initialising, does not loop.
"""
from __future__ import annotations

MODEL_ID = "ablate"
MODEL_CLASS = "ablate.evaluation.checkpoint_model.CheckpointLMM"


def manifests() -> list:
    from lmms_eval.models.registry_v2 import ModelManifest  # lazy: see the module docstring

    return [ModelManifest(model_id=MODEL_ID, simple_class_path=MODEL_CLASS)]


def __getattr__(name: str):
    if name == "MANIFESTS":
        return manifests()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
