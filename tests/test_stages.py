"""Training stages and instruction data (docs/training.md, docs/data.md "Instruction data").

A cell without stages trains, and is identified, exactly as before stages existed; a two-stage cell freezes what
each stage says; a cell killed inside its second stage resumes inside it, bit for bit; an instruction row's loss
covers its answer and end-of-sequence token only, with the prompt evaluation uses; bad stage and instruction
settings are refused before anything trains."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from tinyworld import TINY_WORLD, TINY_WORLD_YAML  # the world tests/conftest.py's tiny backbones were made with

from ablate.config.errors import GridError
from ablate.config.schema import CellConfig, DataConfig, SourceConfig, TrainConfig
from ablate.config.stages import plan, stage_at, trains_in_any_stage
from ablate.resolve import load_grid

TWO_STAGES = [{"name": "align", "steps": 3, "lr_multipliers": {"llm": 0.0}, "data": {"mixture": {"caption": 1.0}}},
              {"name": "tune", "steps": 5, "lr": 0.002, "warmup_ratio": 0.2,
               "data": {"mixture": {"instruction": 1.0}}}]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    from ablate.config.schema import WorldConfig
    from ablate.world import build_world

    root = tmp_path_factory.mktemp("stages")
    build_world(WorldConfig(**TINY_WORLD), root)
    return root


def config(tiny_backbones, **train) -> CellConfig:
    return CellConfig.model_validate({
        "encoder": {"name": tiny_backbones["encoder"], "resolution": 64},
        "llm": {"name": tiny_backbones["llm"]}, "connector": {"tokens": 16},
        "data": {"world": TINY_WORLD, "max_length": 96, "mixture": {"caption": 0.6, "text": 0.2, "interleaved": 0.2}},
        "train": {"steps": 8, "batch_size": 4, "lr": 0.003, "checkpoint_every": 100,
                  "lr_multipliers": {"encoder": 0.0, "connector": 1.0, "llm": 0.5}, **train},
        "eval": {"tasks": ["world_vqa"]}})


class Record:
    """Hooks that keep the losses; `fail_at` raises after that step, `on_step_extra(step)` looks at `self.model`."""

    def __init__(self, fail_at=None, on_step_extra=None, checkpoint=None):
        self.losses, self.stages_seen, self.model = [], [], None
        self.fail_at, self.extra, self.checkpoint = fail_at, on_step_extra, checkpoint

    def on_step(self, step, loss, lr):
        self.losses.append((step, loss))
        if self.extra:
            self.extra(step)
        if step == self.fail_at:
            raise RuntimeError(f"killed at step {step}")

    def on_stage(self, stage, step):
        self.stages_seen.append((stage.name, step))

    def on_checkpoint(self, step, state):
        if self.checkpoint is not None:
            self.checkpoint(step, state)


def train_cell(cfg: CellConfig, cache: Path, hooks, resume_from: Path | None = None):
    """What `ablate.cell.run_cell` does to train (no store, no evaluation)."""
    from ablate.cell import seed_everything, stage_batches, stage_optimizer
    from ablate.checkpoint import resume_state
    from ablate.models.build import build_mllm
    from ablate.train.loop import TrainState, train_stages
    from ablate.world import build_world

    torch.set_num_threads(1)
    seed_everything(cfg.train.seed)
    world = build_world(cfg.data.world, cache)
    model = build_mllm(cfg, cache, device="cpu")
    hooks.model = model
    optim, slots = stage_optimizer(cfg, model)
    resumed = resume_state(resume_from, model, *slots) if resume_from else None
    state = resumed.state if resumed else TrainState()
    state = train_stages(model, cfg.train, optim, stage_batches(cfg, world, model), hooks, state, slots)
    return model, state


# ---------------------------------------------------------------------------------------------- the config

def test_a_cell_without_stages_is_one_stage_and_dumps_as_before():
    cfg = CellConfig()
    assert "stages" not in json.loads(cfg.canonical_json())["train"]    # the id hashes this text: unchanged
    (stage,) = plan(cfg.train)
    assert (stage.name, stage.start, stage.steps, stage.lr, stage.warmup_ratio) == ("train", 0, 250, 2e-3, 0.05)
    assert stage.lr_multipliers == dict(cfg.train.lr_multipliers) and stage.seed(7) == 7
    assert "image_root" not in json.loads(DataConfig(sources=[SourceConfig(kind="caption", path="x.jsonl")])
                                           .model_dump_json())["sources"][0]   # instruction-only keys left out


def test_stages_fill_in_from_the_cell_and_steps_are_their_sum():
    train = TrainConfig.model_validate({"lr": 0.01, "lr_multipliers": {"encoder": 0, "connector": 1, "llm": 0.5},
                                        "stages": TWO_STAGES})
    assert train.steps == 8 and "stages" in json.loads(train.model_dump_json())
    align, tune = plan(train)
    assert (align.start, align.end, align.lr, tune.start, tune.end, tune.lr) == (0, 3, 0.01, 3, 8, 0.002)
    assert align.lr_multipliers == {"encoder": 0, "connector": 1, "llm": 0.0}        # laid over the cell's
    assert tune.lr_multipliers == {"encoder": 0, "connector": 1, "llm": 0.5}
    assert not align.trains("llm") and tune.trains("llm") and trains_in_any_stage(train, "llm")
    assert not trains_in_any_stage(train, "encoder")                                  # the feature cache may serve
    assert [stage_at(plan(train), s).name for s in range(9)] == ["align"] * 3 + ["tune"] * 6
    assert align.seed(5) == 5 and tune.seed(5) != 5                                   # stage 2 reads its own order
    assert TrainConfig.model_validate({"steps": 8, "stages": TWO_STAGES}).steps == 8


# ---------------------------------------------------------------------------------------------- instruction rows

def test_the_loss_covers_exactly_the_answer_tokens_and_eos_of_an_instruction_row(cache):
    from ablate.config.schema import WorldConfig
    from ablate.data import Collator
    from ablate.world import build_world

    tok = build_world(WorldConfig(**TINY_WORLD), cache).tokenizer()
    collate = Collator(tok, 4, 96)
    batch = collate([{"text": "<image>the square is at the", "images": ["a.png"], "answer": "bottom middle"},
                     {"text": "<image>the square is at the bottom middle", "images": ["a.png"]}])
    ids, labels = batch.input_ids[0].tolist(), batch.labels[0].tolist()
    prompt = [tok.bos_token_id] + [tok.convert_tokens_to_ids("<image>")] * 4 + \
        tok("the square is at the", add_special_tokens=False)["input_ids"]
    answer = tok(" bottom middle", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert len(answer) == 3 and ids[:len(prompt) + len(answer)] == prompt + answer
    assert labels[:len(prompt)] == [-100] * len(prompt)
    assert labels[len(prompt):len(prompt) + len(answer)] == answer
    assert set(labels[len(prompt) + len(answer):]) <= {-100}                     # padding
    caption_ids, caption = batch.input_ids[1].tolist(), batch.labels[1].tolist()  # a caption row: all its text
    assert caption[:5] == [-100] * 5 and caption[5:] == caption_ids[5:] and caption_ids[-1] == tok.eos_token_id


def test_world_instruction_rows_ask_every_type_over_train_images_only_with_the_eval_prompt(cache):
    from ablate.config.schema import EvalConfig, WorldConfig
    from ablate.data import load_source
    from ablate.evaluation.taskfns import TaskFns
    from ablate.evaluation.tasks import embedded_spec
    from ablate.world import build_world
    from ablate.world.facts import scene_facts
    from ablate.world.scene import Scene

    world = build_world(WorldConfig(**TINY_WORLD), cache)
    rows = load_source("instruction", world=world).to_list()
    split = {r["image"]: r["split"] for r in world.read("scenes")}
    scenes = {r["image"]: Scene.from_dict(r["scene"]) for r in world.read("scenes")}
    held_out = {q["image"] for task in ("vqa", "textvqa") for s in ("test", "demo") for q in world.questions(task, s)}
    assert {split[r["images"][0]] for r in rows} == {"train"} and not held_out & {r["images"][0] for r in rows}
    assert len({r["images"][0] for r in rows}) == TINY_WORLD["n_train"]            # every train image
    kinds = set()
    for row in rows:
        facts = {f.prompt: f for f in scene_facts(scenes[row["images"][0]])}
        fact = facts[row["text"].removeprefix("<image>")]                         # a true fact of that image
        assert row["answer"] == fact.answers[0]
        kinds.add(fact.type.split("-")[0])
    assert kinds == {"colour", "shape", "count", "position", "text"}
    for task in ("world_vqa", "world_textvqa"):                    # evaluation asks with "<image>{prompt}"
        fns = TaskFns(embedded_spec(task, 0, EvalConfig(), world))
        record = world.questions(task.removeprefix("world_"))[0]
        assert fns.doc_to_text(record) == "<image>" + record["prompt"]


def write_question_file(folder: Path, rows: int = 6, answers=None) -> Path:
    (folder / "pics").mkdir(parents=True, exist_ok=True)
    with (folder / "train.jsonl").open("w") as f:
        for i in range(rows):
            Image.new("RGB", (32, 32), (40 * i % 255, 0, 0)).save(folder / "pics" / f"{i}.png")
            value = answers if answers is not None else ["red", "red", "crimson"] if i % 2 else [{"answer": "blue"}]
            f.write(json.dumps({"image": f"pics/{i}.png", "question": f"What colour is picture {i}?",
                                "answers": value}) + "\n")
    return folder / "train.jsonl"


def test_a_local_question_file_gives_the_prompt_and_answers_evaluation_reads(tmp_path):
    from ablate.config.schema import CustomTaskConfig, EvalConfig
    from ablate.data import load_source
    from ablate.evaluation.taskfns import TaskFns
    from ablate.evaluation.tasks import custom_spec

    path = write_question_file(tmp_path)
    source = SourceConfig(kind="instruction", path=str(path))
    assert source.prompt == CustomTaskConfig(name="t", path="x").prompt             # one default template
    rows = load_source("instruction", source=source).to_list()
    fns = TaskFns(custom_spec(CustomTaskConfig(name="mine", path=str(path)), 0, EvalConfig()))
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["text"] for r in rows] == [fns.doc_to_text(rec) for rec in records]   # the same prompt, same image place
    assert [r["images"][0] for r in rows] == [str(tmp_path / "pics" / f"{i}.png") for i in range(6)]
    assert [r["answer"] for r in rows] == ["blue", "red"] * 3                         # the most common answer
    drawn = load_source("instruction", source=source.model_copy(update={"answer": "draw"})).to_list()
    assert {r["answer"] for r in drawn[1::2]} <= {"red", "crimson"}
    assert drawn == load_source("instruction", source=source.model_copy(update={"answer": "draw"})).to_list()


def test_an_instruction_source_from_a_local_jsonl_with_relative_image_paths_trains(tiny_backbones, cache, tmp_path):
    path = write_question_file(tmp_path / "vqa", rows=8)
    cfg = config(tiny_backbones, steps=4).model_copy(update={"data": DataConfig.model_validate(
        {"world": TINY_WORLD, "max_length": 96, "mixture": {"instruction": 1.0},
         "sources": [{"kind": "instruction", "path": str(path)}]})})
    from ablate.data import train_batches
    from ablate.world import build_world

    tok = build_world(cfg.data.world, cache).tokenizer()
    batch = next(train_batches(cfg.data, None, tok, 16, 4, 0))    # no world: the file is the only data
    assert set(batch.images) <= {str(tmp_path / "vqa" / "pics" / f"{i}.png") for i in range(8)}
    assert int((batch.labels != -100).sum()) == 2 * 4                 # one answer word and <eos> a row
    _, state = train_cell(cfg, cache, Record())
    assert len(state.losses) == 4 and all(torch.isfinite(torch.tensor(v)) for _, v in state.losses)
    assert state.losses[-1][1] < state.losses[0][1]


# ---------------------------------------------------------------------------------------------- training

def test_a_cell_without_stages_trains_exactly_as_one_optimiser_over_one_stream(tiny_backbones, cache):
    """The loop before stages: one AdamW and schedule from `train`, one batch stream from `data` with the cell's seed.
    `train_stages` must give the same losses bit for bit (and so must the same settings written as one stage)."""
    from ablate.cell import seed_everything
    from ablate.data import train_batches
    from ablate.models.build import build_mllm
    from ablate.train.loop import train
    from ablate.train.optim import build_optimizer
    from ablate.world import build_world

    cfg = config(tiny_backbones)
    torch.set_num_threads(1)
    seed_everything(0)
    model = build_mllm(cfg, cache, device="cpu")
    optimizer, scheduler = build_optimizer(model, cfg.train)
    batches = train_batches(cfg.data, build_world(cfg.data.world, cache), model.tokenizer, model.image_tokens, 4, 0)
    before = train(model, batches, cfg.train, optimizer, scheduler, Record()).losses
    _, state = train_cell(cfg, cache, Record())
    assert state.losses == before
    one = config(tiny_backbones, stages=[{"name": "train", "steps": 8}])
    assert one.canonical_json() != cfg.canonical_json()
    assert train_cell(one, cache, Record())[1].losses == before


def test_a_two_stage_cell_freezes_and_unfreezes_what_its_stages_say(tiny_backbones, cache):
    cfg = config(tiny_backbones, stages=TWO_STAGES)
    snapshots = {}

    def look(step):
        model = hooks.model
        llm, connector = list(model.llm.parameters()), list(model.connector.parameters())
        snapshots[step] = {"stage": stage_at(plan(cfg.train), step - 1).name,
                           "llm_grads": [0.0 if p.grad is None else float(p.grad.abs().sum()) for p in llm],
                           "llm": torch.cat([p.detach().flatten() for p in llm]).clone(),
                           "connector_grad": sum(float(p.grad.abs().sum()) for p in connector if p.grad is not None),
                           "encoder_grad": any(p.grad is not None for p in model.encoder.parameters())}

    hooks = Record(on_step_extra=look)
    train_cell(cfg, cache, hooks)
    assert hooks.stages_seen == [("align", 0), ("tune", 3)]
    for step in (1, 2, 3):                                            # align: LLM frozen, connector trains
        assert snapshots[step]["stage"] == "align" and sum(snapshots[step]["llm_grads"]) == 0
        assert snapshots[step]["connector_grad"] > 0 and not snapshots[step]["encoder_grad"]
    assert torch.equal(snapshots[1]["llm"], snapshots[3]["llm"])        # not one LLM weight moved
    for step in (4, 8):                                               # tune: the LLM learns
        assert snapshots[step]["stage"] == "tune" and sum(snapshots[step]["llm_grads"]) > 0
    assert not torch.equal(snapshots[3]["llm"], snapshots[8]["llm"])


@pytest.mark.parametrize("killed_at, resumes_from", [(7, 6), (5, 3)], ids=["inside-stage-2", "at-the-boundary"])
def test_a_cell_killed_in_stage_2_resumes_there_with_the_losses_of_an_uninterrupted_run(
        tiny_backbones, cache, tmp_path, killed_at, resumes_from):
    from ablate.checkpoint import STATE_JSON, save_checkpoint

    cfg = config(tiny_backbones, stages=TWO_STAGES, checkpoint_every=3)
    _, whole = train_cell(cfg, cache, Record())
    folder = tmp_path / "last"

    def checkpoint(step, state):
        save_checkpoint(folder, killed.model, cfg, state["state"], state["optimizer"], state["scheduler"])

    killed = Record(fail_at=killed_at, checkpoint=checkpoint)
    with pytest.raises(RuntimeError, match="killed"):
        train_cell(cfg, cache, killed)
    saved = json.loads((folder / STATE_JSON).read_text())
    assert saved["step"] == resumes_from
    assert saved["state"]["optimizer"]["stage"] == ("tune" if resumes_from > 3 else "align")   # names its stage
    hooks = Record()
    _, resumed = train_cell(cfg, cache, hooks, resume_from=folder)
    assert hooks.stages_seen[0] == ("tune", resumes_from)
    assert resumed.losses == whole.losses                          # bit for bit, the killed part included


def test_staged_cells_log_each_stages_loss_and_its_boundaries():
    from ablate.cell import step_metrics

    stages = plan(TrainConfig.model_validate({"stages": TWO_STAGES}))
    assert step_metrics(None, 4, 1.5, 0.1) == {"train/loss": 1.5, "train/lr": 0.1}     # no stages: as before
    assert step_metrics(stages, 1, 2.0, 0.1) == {"train/loss": 2.0, "train/lr": 0.1, "train/align/loss": 2.0,
                                                 "train/align/lr": 0.1, "train/stage": 0.0}
    assert step_metrics(stages, 3, 1.0)["train/align/loss"] == 1.0
    assert step_metrics(stages, 4, 1.0) == {"train/loss": 1.0, "train/tune/loss": 1.0, "train/stage": 1.0}


# ---------------------------------------------------------------------------------------------- grid files

def grid(tmp_path: Path, tiny_backbones, train: str = "", data: str = "", axes: str = "seeds: [0]") -> Path:
    world = TINY_WORLD_YAML
    text = f"""name: stages-test
base:
  encoder: {{name: "{tiny_backbones['encoder']}", resolution: 64}}
  llm: {{name: "{tiny_backbones['llm']}"}}
  connector: {{tokens: 16}}
  data: {{world: {{{world}}}, max_length: 96{data}}}
  train: {{batch_size: 4{train}}}
  eval: {{tasks: [world_vqa]}}
{axes}
"""
    path = tmp_path / "g.yaml"
    path.write_text(text)
    return path


def test_stages_are_an_axis_with_labelled_values(tmp_path, tiny_backbones):
    one = '[{name: all, steps: 8, data: {mixture: {caption: 0.5, instruction: 0.5}}}]'
    two = ('[{name: align, steps: 3, lr_multipliers: {llm: 0}}, '
           '{name: tune, steps: 5, data: {mixture: {instruction: 1.0}}}]')
    loaded = load_grid(grid(tmp_path, tiny_backbones, train=", steps: 8",
                            axes=f"axes:\n  train.stages: {{one-stage: {one}, two-stage: {two}}}"))
    assert [c.axes["train.stages"] for c in loaded.cells] == ["one-stage", "two-stage"]
    assert [len(c.config.train.stages) for c in loaded.cells] == [1, 2] and len({c.id for c in loaded.cells}) == 2


def test_a_grid_with_a_good_instruction_source_and_stages_is_accepted(tmp_path, tiny_backbones):
    path = write_question_file(tmp_path / "q")
    stages = (f'[{{name: align, steps: 2, lr_multipliers: {{llm: 0}}}}, {{name: tune, steps: 2, data: {{mixture: '
              f'{{instruction: 1}}, sources: [{{kind: instruction, path: "{path}", answer: draw}}]}}}}]')
    (cell,) = load_grid(grid(tmp_path, tiny_backbones, train=f", stages: {stages}")).cells
    tune = plan(cell.config.train)[1]
    assert cell.config.train.steps == 4 and tune.sources[0].answer == "draw"
    assert tune.data(cell.config.data).sources == tune.sources and cell.config.data.sources == []


BAD = {   # what the grid says -> the key and words the refusal must name
    "unknown-stage-key": (", stages: [{name: a, steps: 4, stepz: 3}]", "", "train.stages", "a stage takes"),
    "zero-steps": (", stages: [{name: a, steps: 0}]", "", "train.stages.0.steps", "greater than or equal to 1"),
    "steps-disagree": (", steps: 9, stages: [{name: a, steps: 4}]", "", "train", "add up to 4"),
    "kind-without-data": ("", ", mixture: {caption: 0.5, instruction: 0.5}, sources: [{kind: instruction, "
                              "path: QFILE}]", "data.mixture", "no caption data"),
    "stage-kind-without-data": (", stages: [{name: a, steps: 2, data: {mixture: {text: 1}, sources: [{kind: "
                                "instruction, path: QFILE}]}}]", "", "train.stages.0.data", "no text data"),
    "no-question-file": ("", ", mixture: {instruction: 1}, sources: [{kind: instruction, path: QDIR/none.jsonl}]",
                         "data.sources.path", "no question file"),
    "no-image-folder": ("", ", mixture: {instruction: 1}, sources: [{kind: instruction, path: QFILE, image_root: "
                            "QDIR/nowhere}]", "data.sources.image_root", "no image folder"),
    "no-column": ("", ", mixture: {instruction: 1}, sources: [{kind: instruction, path: QFILE, question_column: q}]",
                  "data.sources.question_column", "no column 'q'"),
    "answers-shape": ("", ", mixture: {instruction: 1}, sources: [{kind: instruction, path: QBAD}]",
                      "data.sources.answers_column", "a list of lists"),
    "unknown-kind": ("", ", mixture: {captions: 1}", "data.mixture", "instruction"),
    "same-name-twice": (", stages: [{name: a, steps: 2}, {name: a, steps: 2}]", "", "train.stages", "unique"),
    "no-stages": (", stages: []", "", "train.stages", "stages is empty"),
    "boolean-in-a-stage": (", stages: [{name: a, steps: 2, lr_multipliers: {llm: false}}]", "",
                           "train.stages.0.lr_multipliers", "a boolean"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_stages_and_instruction_sources_are_refused_before_anything_trains(case, tmp_path, tiny_backbones):
    train, data, key, words = BAD[case]
    good = write_question_file(tmp_path / "q")
    bad = write_question_file(tmp_path / "bad", answers=[["red"], ["blue"]])
    fill = {"QFILE": str(good), "QDIR": str(tmp_path / "q"), "QBAD": str(bad)}
    for name, value in fill.items():
        train, data = train.replace(name, value), data.replace(name, value)
    path = grid(tmp_path, tiny_backbones, train=train if "steps" in train else ", steps: 4" + train, data=data)
    with pytest.raises(GridError) as err:
        load_grid(path)
    text = str(err.value)
    assert str(path) in text and f"key '{key}" in text and words in text, text


@pytest.mark.slow
def test_a_staged_cell_killed_in_stage_2_by_the_runner_resumes_there_and_logs_each_stage(
        tmp_path, tiny_backbones, monkeypatch):
    """End to end through `run_cells` and the MLflow store: per-stage metrics and tags, a kill inside stage 2, the
    resumed run's whole curve equal to an uninterrupted run's."""
    import ablate.cell as cell_module
    from ablate.runners import run_cells
    from ablate.tracking.store import Store
    from ablate.workspace import Workspace

    torch.set_num_threads(1)
    stages = ('[{name: align, steps: 3, lr_multipliers: {llm: 0}}, '
              '{name: tune, steps: 4, data: {mixture: {instruction: 1.0}}}]')
    path = grid(tmp_path, tiny_backbones, train=f", checkpoint_every: 5, stages: {stages}")
    path.write_text(path.read_text().replace(
        "eval: {tasks: [world_vqa]}",
        "eval: {tasks: [world_vqa], limit: 4, bootstrap: 0, batch_size: 4, n_predictions: 0, text_perplexity: 0}"))
    loaded = load_grid(path)
    cell = loaded.cells[0].id

    def curve(workspace, key="train/loss"):
        store = Store(workspace.tracking_uri, workspace.artifacts)
        runs = sorted(store.runs(store.experiment_id(loaded, create=False)), key=lambda r: r.start_time)
        return runs[-1], [(s, v) for s, v in store.loss_curve(runs[-1].run_id, key)]

    reference = Workspace.create(tmp_path / "reference", reports=tmp_path / "r1")
    assert run_cells(loaded, loaded.cells, reference).finished == [cell]
    run, whole = curve(reference)
    assert [s for s, _ in whole] == list(range(1, 8))
    assert [s for s, _ in curve(reference, "train/align/loss")[1]] == [1, 2, 3]
    assert [s for s, _ in curve(reference, "train/tune/loss")[1]] == [4, 5, 6, 7]
    assert curve(reference, "train/stage")[1] == [(1, 0.0), (4, 1.0)]
    assert run.tags["ablate.stages"] == "align: steps 1-3, tune: steps 4-7" and run.tags["ablate.stage"] == "tune"

    real = cell_module.CellHooks.on_step

    def on_step(self, at, loss, lr):
        real(self, at, loss, lr)
        if at == 6:
            raise RuntimeError("stopped at step 6 by the test")

    workspace = Workspace.create(tmp_path / "killed", reports=tmp_path / "r2")
    monkeypatch.setattr(cell_module.CellHooks, "on_step", on_step)
    assert cell in run_cells(loaded, loaded.cells, workspace).failed       # checkpoint at step 5, inside "tune"
    monkeypatch.setattr(cell_module.CellHooks, "on_step", real)
    saved = json.loads((workspace.checkpoints(cell) / "last" / "training_state.json").read_text())
    assert saved["step"] == 5 and saved["state"]["optimizer"]["stage"] == "tune"
    assert run_cells(loaded, loaded.cells, workspace).finished == [cell]
    run, resumed = curve(workspace)
    assert run.tags["ablate.resumed_from_step"] == "5"
    assert resumed == whole                                                 # bit for bit
