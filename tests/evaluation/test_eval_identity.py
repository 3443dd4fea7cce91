"""Evaluation keyed apart from training: a cell's id is its training identity; each evaluation is keyed
by (task, shots, the settings that change that score), so what is pending after a grid changes is exactly what the
change asks for."""
import hashlib
import json

import pytest

from ablate.config.errors import GridError
from ablate.config.schema import CellConfig, EvalConfig
from ablate.evaluation import keys
from ablate.resolve import Resolver, cell_id, identity_json, legacy_cell_id, load_grid


def config(**eval_settings) -> CellConfig:
    return CellConfig(eval=EvalConfig(**eval_settings))


def test_the_id_leaves_the_eval_block_out_and_the_legacy_id_does_not():
    base = config()
    changed = config(tasks=["world_vqa", "world_caption"], shots=[0, 4], limit=7, max_new_tokens=9)
    assert cell_id(base) == cell_id(changed)
    assert legacy_cell_id(base) != legacy_cell_id(changed)
    trained_differently = CellConfig(train={"steps": 7})
    assert cell_id(trained_differently) != cell_id(base)


def _keys_of_the_old_schema(tree, prefix: str = ""):
    """`tree` with only the keys the schema had when ids were first made (`ablate.resolve.ID_KEYS`); a mapping whose
    keys are free (mixture, lr_multipliers, options) is kept whole."""
    from ablate.resolve import ID_KEYS

    if isinstance(tree, list):
        return [_keys_of_the_old_schema(item, prefix + "[]") for item in tree]
    if not isinstance(tree, dict) or (prefix and not any(k.startswith(prefix + ".") for k in ID_KEYS)):
        return tree
    path = (lambda k: f"{prefix}.{k}") if prefix else (lambda k: k)
    return {k: _keys_of_the_old_schema(v, path(k)) for k, v in tree.items() if path(k) in ID_KEYS}


def test_the_legacy_id_is_the_hash_ids_had_before():
    """The legacy id is sha256(canonical JSON with the eval block + provenance)[:12], as ids were made up to issue
    16; a custom task's new settings (chance, baseline) at their defaults do not enter it."""
    cfg = config(tasks=["world_vqa", "signs"], custom_tasks=[{"name": "signs", "path": "/x.jsonl"}])
    data = _keys_of_the_old_schema(json.loads(cfg.canonical_json()))   # settings added since, at their defaults, out
    assert "chance" not in data["eval"]["custom_tasks"][0] and "grad_accum" not in data["train"]
    old = json.dumps(data, sort_keys=True, separators=(",", ":"))
    provenance = json.dumps(Resolver().provenance(cfg), sort_keys=True)
    assert legacy_cell_id(cfg) == hashlib.sha256((old + provenance).encode()).hexdigest()[:12]
    with_chance = config(tasks=["world_vqa", "signs"], custom_tasks=[{"name": "signs", "path": "/x.jsonl",
                                                                       "chance": 0.5}])
    assert legacy_cell_id(with_chance) != legacy_cell_id(cfg)


def test_a_setting_added_later_enters_the_id_only_away_from_its_default(monkeypatch):
    import ablate.resolve as resolve

    monkeypatch.setattr(resolve, "ID_KEYS", resolve.ID_KEYS - {"train.log_every"})   # as if log_every were new
    monkeypatch.setattr(resolve, "_SCHEMA_HAS_NEW_KEYS", True)
    monkeypatch.setattr(resolve, "_NEW_KEYS", resolve._new_key_plan(CellConfig))
    assert "log_every" not in identity_json(CellConfig())
    assert '"log_every":3' in identity_json(CellConfig(train={"log_every": 3}))


def test_a_grid_sweeping_an_eval_setting_is_refused_naming_the_axis(tmp_path):
    path = tmp_path / "g.yaml"
    path.write_text("name: g\nbase:\n  connector: {tokens: 16}\naxes:\n  eval.limit: [10, 20]\n")
    with pytest.raises(GridError, match=r"eval\.limit.*one trained model"):
        load_grid(path)


def test_pending_is_exactly_what_a_change_asks_for():
    before = EvalConfig(tasks=["world_vqa", "world_textvqa"], shots=[0], limit=50, blind=False)
    done = keys.wanted(before)
    assert keys.pending(before, done) == {}                                  # evaluated twice: nothing to do
    assert set(done) == {"ablate.eval/world_vqa/0shot", "ablate.eval/world_textvqa/0shot",
                         "ablate.eval/text/perplexity"}
    added = before.model_copy(update={"tasks": ["world_vqa", "world_textvqa", "world_caption"]})
    assert keys.pairs(keys.pending(added, done)) == {("world_caption", 0)}
    shots = before.model_copy(update={"shots": [0, 4]})
    assert keys.pairs(keys.pending(shots, done)) == {("world_vqa", 4), ("world_textvqa", 4)}
    limit = before.model_copy(update={"limit": 100})
    assert keys.pairs(keys.pending(limit, done)) == {("world_vqa", 0), ("world_textvqa", 0)}
    assert "ablate.eval/text/perplexity" not in keys.pending(limit, done)
    faster = before.model_copy(update={"batch_size": 4, "n_predictions": 3})   # how fast, how many kept: same scores
    assert keys.pending(faster, done) == {}
    fewshot_seed = before.model_copy(update={"fewshot_seed": 3})            # no k-shot task: nothing changes
    assert keys.pending(fewshot_seed, done) == {}


def test_a_custom_tasks_own_settings_key_only_that_task():
    task = {"name": "signs", "path": "/x.jsonl", "prompt": "{question}?"}
    before = EvalConfig(tasks=["world_vqa", "signs"], custom_tasks=[task])
    done = keys.wanted(before)
    prompt = EvalConfig(tasks=["world_vqa", "signs"], custom_tasks=[{**task, "prompt": "Q: {question}"}])
    assert keys.pairs(keys.pending(prompt, done)) == {("signs", 0), ("signs_blind", 0)}   # and its blind twin
    chance = EvalConfig(tasks=["world_vqa", "signs"], custom_tasks=[{**task, "chance": 0.5, "baseline": 0.6}])
    assert keys.pending(chance, done) == {}


def test_a_legacy_run_earns_the_tags_of_the_scores_it_logged():
    cfg = EvalConfig(tasks=["world_vqa", "world_textvqa"], shots=[0])
    earned = keys.done_by_metrics(cfg, {"score/world_vqa/0shot": 0.3, "text/perplexity": 2.0})
    assert set(earned) == {"ablate.eval/world_vqa/0shot", "ablate.eval/text/perplexity"}
    assert keys.pairs(keys.pending(cfg, earned)) == {("world_textvqa", 0), ("world_vqa_blind", 0),
                                                     ("world_textvqa_blind", 0)}


def test_the_blind_evaluations_leave_the_keys_of_the_tasks_unchanged():
    """`eval.blind` adds `<task>_blind` evaluations under tags of their own: a store's existing evaluations keep
    their keys (nothing evaluated again), a blind one follows its task's settings, control and blind-off add none."""
    task = {"name": "signs", "path": "/data/signs.jsonl"}
    on = EvalConfig(tasks=["world_vqa", "signs", "vqav2"], custom_tasks=[task])
    off = on.model_copy(update={"blind": False})
    assert {k: v for k, v in keys.wanted(on).items() if "_blind" not in k} == keys.wanted(off)
    assert set(keys.wanted(on)) - set(keys.wanted(off)) == {"ablate.eval/world_vqa_blind/0shot",
                                                            "ablate.eval/signs_blind/0shot"}   # no hub benchmark
    limit = on.model_copy(update={"limit": 10})
    assert keys.task_key(limit, "world_vqa_blind", 0) != keys.task_key(on, "world_vqa_blind", 0)
    control = EvalConfig(tasks=["signs"], custom_tasks=[{**task, "control": True}])
    assert keys.task_key(control, "signs", 0) == keys.task_key(on, "signs", 0)
