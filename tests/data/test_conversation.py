"""Conversation data (`kind: conversation`): LLaVA / ShareGPT records, the loss on the assistant turns only."""
from __future__ import annotations

import copy
import json
import warnings

import pytest
from PIL import Image

from ablate.config.schema import SourceConfig
from ablate.data import load_source
from ablate.data.collate import IGNORE, Collator
from ablate.data.conversation import context_and_reference
from ablate.models.llm import use_chat_template

CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
TURNS = [{"role": "system", "content": "be brief"},
         {"role": "user", "content": "<image>\nwhat is the word?"}, {"role": "assistant", "content": "lamp"},
         {"role": "user", "content": "and the colour <image> here?"}, {"role": "assistant", "content": "red circle"}]


def labelled_runs(tok, ids, labels) -> list[str]:
    """The text of each run of consecutive labelled positions."""
    runs, current = [], []
    for token, label in zip(ids.tolist(), labels.tolist()):
        if label != IGNORE:
            assert label == token
            current.append(token)
        elif current:
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    return [tok.decode(r).strip(" ") for r in runs]


def test_plain_frame_labels_exactly_each_assistant_turn_and_its_eos(tok):
    batch = Collator(tok, 3, 200)([{"text": "", "images": ["a.png", "b.png"], "turns": TURNS}])
    ids, labels = batch.input_ids[0], batch.labels[0]
    assert labelled_runs(tok, ids, labels) == ["lamp" + tok.eos_token, "red circle" + tok.eos_token]
    assert int((ids == tok.convert_tokens_to_ids("<image>")).sum()) == 6 and batch.images == ["a.png", "b.png"]
    # nothing of the system or user turns carries loss; they are all there, in order
    text = tok.decode(ids)
    assert text.index("be brief") < text.index("what is the word") < text.index("lamp") < text.index("and the")


def test_a_one_turn_conversation_is_the_instruction_row(tok):
    collate = Collator(tok, 2, 200)
    turns = [{"role": "user", "content": "<image>the word is"}, {"role": "assistant", "content": "lamp"}]
    conv = collate([{"text": "", "images": ["a.png"], "turns": turns}])
    inst = collate([{"text": "<image>the word is", "images": ["a.png"], "answer": "lamp"}])
    assert conv.input_ids.tolist() == inst.input_ids.tolist() and conv.labels.tolist() == inst.labels.tolist()


def test_a_text_only_conversation_has_no_image(tok):
    turns = [{"role": "user", "content": "the word is"}, {"role": "assistant", "content": "lamp"}]
    batch = Collator(tok, 2, 200)([{"text": "", "images": [], "turns": turns}])
    assert batch.images == [] and batch.n_images.tolist() == [0]
    assert labelled_runs(tok, batch.input_ids[0], batch.labels[0]) == ["lamp" + tok.eos_token]


def test_chat_template_frame_labels_each_assistant_turn_and_its_end_of_turn_text(tok):
    tok = copy.deepcopy(tok)   # the session's tokenizer keeps no template
    tok.chat_template = CHATML
    use_chat_template(tok)
    batch = Collator(tok, 3, 400)([{"text": "", "images": ["a.png", "b.png"], "turns": TURNS}])
    runs = labelled_runs(tok, batch.input_ids[0], batch.labels[0])
    assert runs == ["lamp<|im_end|>\n", "red circle<|im_end|>\n"]
    text = tok.decode(batch.input_ids[0][batch.labels[0] == IGNORE])
    assert "<|im_start|>system\nbe brief<|im_end|>" in text and "<|im_start|>assistant\n" in text


def test_truncation_drops_an_image_block_that_does_not_fit_and_what_follows(tok):
    batch = Collator(tok, 30, 40)([{"text": "", "images": ["a.png", "b.png"], "turns": TURNS}])
    assert batch.images == ["a.png"] and batch.input_ids.shape[1] <= 40


def test_the_last_assistant_turn_is_the_evaluation_reference():
    context, reference = context_and_reference(TURNS)
    assert reference == "red circle" and context == TURNS[:4]


@pytest.fixture
def llava_file(tmp_path):
    """A LLaVA-format JSON: multi-turn with one image, two images, a text-only record, an image without a marker,
    and two that cannot train (no assistant turn; two markers for one image)."""
    for name, colour in (("a.jpg", (200, 0, 0)), ("b.jpg", (0, 200, 0))):
        Image.new("RGB", (16, 16), colour).save(tmp_path / "images" / name if (tmp_path / "images").is_dir()
                                                 else _mkdir(tmp_path / "images") / name)
    records = [
        {"id": "1", "image": "a.jpg", "conversations": [
            {"from": "human", "value": "<image>\nthe word is"}, {"from": "gpt", "value": "lamp"},
            {"from": "human", "value": "the circle is"}, {"from": "gpt", "value": "red"}]},
        {"id": "2", "image": ["a.jpg", "b.jpg"], "conversations": [
            {"from": "human", "value": "<image> and <image>"}, {"from": "gpt", "value": "a b"}]},
        {"id": "3", "conversations": [{"from": "human", "value": "the word is"}, {"from": "gpt", "value": "e"}]},
        {"id": "4", "image": "b.jpg", "conversations": [
            {"from": "human", "value": "the circle is"}, {"from": "gpt", "value": "red"}]},
        {"id": "5", "image": "a.jpg", "conversations": [{"from": "human", "value": "<image> hello"}]},
        {"id": "6", "image": "a.jpg", "conversations": [
            {"from": "human", "value": "<image><image>"}, {"from": "gpt", "value": "a"}]},
    ]
    path = tmp_path / "llava.json"
    path.write_text(json.dumps([{"image": None, **r} if "image" not in r else r for r in records]))
    return path


def _mkdir(path):
    path.mkdir(parents=True, exist_ok=True)
    return path


def test_a_llava_file_loads_every_usable_record_and_counts_the_others(llava_file, tmp_path):
    source = SourceConfig(kind="conversation", path=str(llava_file), image_root=str(tmp_path / "images"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = load_source("conversation", source=source, cache_dir=tmp_path / "cache")
    assert any("skipped 2 of 6 records" in str(w.message) for w in caught)
    rows = list(table)
    assert [len(r["images"]) for r in rows] == [1, 2, 0, 1]
    assert [sum(t["role"] == "assistant" for t in r["turns"]) for r in rows] == [2, 1, 1, 1]
    assert rows[3]["turns"][0]["content"] == "<image>\nthe circle is"      # the marker put where LLaVA puts it
    assert rows[1]["images"] == [str(tmp_path / "images" / "a.jpg"), str(tmp_path / "images" / "b.jpg")]


def test_a_conversation_source_keeps_its_image_root_in_the_cell_id_and_other_kinds_do_not():
    conv = SourceConfig(kind="conversation", path="x.json", image_root="/imgs").model_dump()
    caption = SourceConfig(kind="caption", path="x.json", image_root="/imgs").model_dump()
    assert conv["image_root"] == "/imgs" and "image_root" not in caption and "prompt" not in conv


@pytest.mark.slow
def test_a_cell_trains_on_a_llava_file_through_ablate_run(llava_file, tmp_path, tiny_grid, workspace):
    import mlflow

    from ablate.cli import main
    from ablate.resolve import load_grid
    from ablate.tracking.results import results_frame
    from ablate.tracking.store import Store

    sources = (f'sources: [{{kind: conversation, path: "{llava_file}", image_root: "{tmp_path / "images"}"}}], '
               "mixture: {conversation: 1.0}, ")
    grid_path = tiny_grid(axes="connector.name: [avg-pool]", steps=4)
    grid_path.write_text(grid_path.read_text().replace("data: {", "data: {" + sources))
    assert main(["--home", str(workspace.home), "--reports", str(workspace.reports), "run", str(grid_path),
                 "--no-report"]) == 0
    frame, _ = results_frame(Store(workspace.tracking_uri, workspace.artifacts), load_grid(grid_path))
    assert list(frame["status"]) == ["FINISHED"]
    metrics = mlflow.MlflowClient(workspace.tracking_uri).get_run(frame["run_id"].iloc[0]).data.metrics
    assert 0 < metrics["train/final_loss"] < 50
    assert metrics["data/conversation/unk_share"] == 0.0   # measured on the file's turns (byte fallback)


def test_the_dry_run_refuses_a_conversation_file_without_usable_records(tmp_path, tiny_grid):
    from ablate.config.errors import GridError
    from ablate.resolve import load_grid

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"image": "a.jpg", "dialogue": [{"from": "human", "value": "hi"}]}]))
    none = tmp_path / "none.json"
    none.write_text(json.dumps([{"conversations": [{"from": "human", "value": "hi"}]}]))
    grid_path = tiny_grid(axes="connector.name: [avg-pool]", steps=4)
    text = grid_path.read_text()
    for path, said in ((bad, "no column 'conversations'.*columns present: \\['dialogue', 'image'\\]"),
                       (none, "none of its first 1 records can train")):
        source = f'sources: [{{kind: conversation, path: "{path}"}}], mixture: {{conversation: 1.0}}, '
        grid_path.write_text(text.replace("data: {", "data: {" + source))
        with pytest.raises(GridError, match=said):
            load_grid(grid_path)
