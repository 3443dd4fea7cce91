"""`data.packing`: rows packed first-fit into `max_length` sequences, each attending only to itself; the labels and
the loss per labelled token are those of the unpacked rows."""
from __future__ import annotations

import pytest
import torch
from recording import Losses
from tinyworld import TINY_WORLD

from ablate.config.schema import CellConfig
from ablate.data.collate import IGNORE, Collator
from ablate.world.tokenizer import build_tokenizer

ROWS = [{"text": "<image> the word is lamp", "images": ["a.png"]},
        {"text": "a red circle and a red square on the left of the word", "images": []},
        {"text": "<image> red", "images": ["b.png"]},
        {"text": "the word is", "images": [], "answer": "lamp"}]


def test_rows_are_packed_first_fit_with_position_ids_restarting_and_the_same_labels():
    tok = build_tokenizer(["a b c the word is lamp red circle square on left of and"])
    plain, packed = Collator(tok, 3, 24)(ROWS), Collator(tok, 3, 24, pack=True)(ROWS)
    lengths = plain.attention_mask.sum(1).tolist()
    assert lengths == [9, 15, 6, 6]
    assert packed.input_ids.shape == (2, 24)                      # [9 + 15], [6 + 6]: first fit in order
    assert packed.images == ["a.png", "b.png"] and packed.n_images.tolist() == [1, 1]
    assert packed.position_ids[0].tolist() == list(range(9)) + list(range(15))
    assert packed.position_ids[1].tolist() == list(range(6)) + list(range(6)) + list(range(12))   # padding too
    unpacked = [plain.labels[i, :n] for i, n in enumerate(lengths)]
    assert torch.equal(packed.labels[0], torch.cat(unpacked[:2]))
    assert torch.equal(packed.labels[1, :12], torch.cat(unpacked[2:])) and (packed.labels[1, 12:] == IGNORE).all()
    assert packed.attention_mask.sum().item() == sum(lengths)


def _config(tiny_backbones, packing: bool) -> CellConfig:
    return CellConfig.model_validate({
        "encoder": {"name": tiny_backbones["encoder"], "resolution": 64},
        "llm": {"name": tiny_backbones["llm"]}, "connector": {"tokens": 16},
        "data": {"world": TINY_WORLD, "max_length": 96, "packing": packing,
                 "mixture": {"caption": 0.4, "text": 0.3, "instruction": 0.3}},
        "train": {"steps": 6, "batch_size": 6, "lr": 0.003, "checkpoint_every": 100,
                  "lr_multipliers": {"encoder": 0.0, "connector": 1.0, "llm": 0.5}},
        "eval": {"tasks": ["world_vqa"]}})


@pytest.mark.slow
def test_a_packed_cell_trains_on_the_losses_of_the_unpacked_one(tiny_backbones, tmp_path):
    """6 steps of 6 rows (captions, text, instruction rows): the same rows each step, packed into fewer sequences;
    every step's loss within 1e-4 (relative) of the unpacked cell's, and fewer padded positions."""
    from ablate.cell import seed_everything, stage_batches, stage_optimizer
    from ablate.config.stages import plan
    from ablate.models.build import build_mllm
    from ablate.train.loop import TrainState, train_stages
    from ablate.world import build_world

    torch.set_num_threads(1)
    results, padding = {}, {}
    for packing in (False, True):
        cfg = _config(tiny_backbones, packing)
        seed_everything(cfg.train.seed)
        world = build_world(cfg.data.world, tmp_path)
        model = build_mllm(cfg, tmp_path, device="cpu")
        optim, slots = stage_optimizer(cfg, model)
        hooks = Losses()
        batches = stage_batches(cfg, world, model)
        first = next(batches(plan(cfg.train)[0], 0))
        padding[packing] = (first.input_ids.shape[0], first.padding_fraction)
        train_stages(model, cfg.train, optim, batches, hooks, TrainState(), slots)
        results[packing] = hooks.losses
    assert len(results[True]) == 6
    assert results[True] == pytest.approx(results[False], rel=1e-4)
    assert padding[True][0] < padding[False][0] == 6 and padding[True][1] < padding[False][1]
