"""A LLaVA-format file as an evaluation task (`format: conversation`): the turns before the last assistant turn are
the context, that turn the reference; the model sees the context in the frame it was trained with."""
from __future__ import annotations

import copy
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from colour_world import nearest_colour
from PIL import Image

from ablate.config.schema import EvalConfig
from ablate.data.collate import Collator
from ablate.data.conversation import read_record
from ablate.evaluation import keys
from ablate.evaluation.checks import plan_warnings
from ablate.evaluation.protocol import Conversation
from ablate.evaluation.spec import TaskSpec
from ablate.evaluation.taskfns import TaskFns
from ablate.evaluation.tasks import plan
from ablate.models.mllm import MLLM

CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
RECORDS = [
    {"id": "multi", "image": "red.png", "conversations": [
        {"from": "human", "value": "<image>\nWhat colour is it?"}, {"from": "gpt", "value": "red"},
        {"from": "human", "value": "And the shape?"}, {"from": "gpt", "value": "a square"},
        {"from": "human", "value": "Say the colour again."}, {"from": "gpt", "value": "red"}]},
    {"id": "text", "conversations": [{"from": "human", "value": "Say hello."}, {"from": "gpt", "value": "hello"}]},
    {"id": "two", "image": ["red.png", "green.png"], "conversations": [
        {"from": "human", "value": "<image> then <image>: which colours?"}, {"from": "gpt", "value": "red green"}]},
    {"id": "unanswered", "image": "red.png", "conversations": [{"from": "human", "value": "<image> hi"}]},
    {"id": "blue", "image": "blue.png", "conversations": [
        {"from": "human", "value": "What colour?"}, {"from": "gpt", "value": "blue"}]},
]
RGB = {"red": (220, 20, 20), "green": (20, 200, 20), "blue": (20, 20, 220)}


def write_llava(folder: Path, records=RECORDS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for colour, rgb in RGB.items():
        Image.new("RGB", (8, 8), rgb).save(folder / f"{colour}.png")
    path = folder / "chat.json"
    path.write_text(json.dumps(records))
    return path


def task(path: Path, **settings) -> dict:
    return {"name": "chat", "path": str(path), "format": "conversation", "id_column": "id", **settings}


class Replier:
    """Answers a conversation from its last turn and the colours of its images; records every context."""

    def __init__(self):
        self.contexts = []

    def generate(self, contexts, max_new_tokens):
        self.contexts += contexts
        out = []
        for context in contexts:
            colours = " ".join(nearest_colour(p) for p in context if not isinstance(p, str))
            out.append("Hello.\nmore" if context.turns[-1]["content"] == "Say hello." else f"{colours}\nmore")
        return out

    def loglikelihood(self, contexts, continuations):
        return [0.0] * len(contexts)


def test_a_llava_file_gives_each_record_its_context_reference_and_images(tmp_path):
    from ablate.evaluation import evaluate

    path = write_llava(tmp_path / "llava")
    cfg = EvalConfig(tasks=["chat"], shots=[0, 4], bootstrap=0, blind=False, custom_tasks=[task(path)])
    model = Replier()
    result = evaluate(model, cfg, None, tmp_path / "out")
    contexts = {c.turns[-1]["content"]: c for c in model.contexts}
    assert all(isinstance(c, Conversation) for c in model.contexts) and len(model.contexts) == 4   # 0-shot only
    multi = contexts["Say the colour again."]
    assert multi.turns == [{"role": "user", "content": "<image>\nWhat colour is it?"},
                           {"role": "assistant", "content": "red"}, {"role": "user", "content": "And the shape?"},
                           {"role": "assistant", "content": "a square"},
                           {"role": "user", "content": "Say the colour again."}]
    # the plain frame's reading order: each turn's text, the assistant's after one space, the image at its marker
    assert [p if isinstance(p, str) else nearest_colour(p) for p in multi] == \
        ["red", "What colour is it?", " red", "And the shape?", " a square", "Say the colour again."]
    assert list(contexts["Say hello."]) == ["Say hello."] and contexts["Say hello."].images == []
    two = contexts["<image> then <image>: which colours?"]
    assert [nearest_colour(i) for i in two.images] == ["red", "green"]
    blue = contexts["<image>\nWhat colour?"]   # a record with an image and no marker: the marker put first
    assert [p if isinstance(p, str) else nearest_colour(p) for p in blue] == ["blue", "What colour?"]

    rows = {q["id"]: q for q in result.per_question}
    assert set(rows) == {"multi", "text", "two", "blue"}          # the record without a reply is left out
    assert {i: r["prediction"] for i, r in rows.items()} == {"multi": "red", "text": "Hello.", "two": "red green",
                                                             "blue": "blue"}
    assert all(r["correct"] == 1.0 for r in rows.values())       # VQA accuracy against the last assistant turn
    assert result.metrics["score/chat/0shot"] == 1.0 and "score/chat/4shot" not in result.metrics
    sample = next(p for p in result.predictions if p["id"] == "multi")
    assert sample["references"] == ["red"] and sample["question"].endswith("a square\nSay the colour again.")
    assert sample["image"] == str((tmp_path / "llava" / "red.png").resolve())


def _tokenizer(template: str | None = None):
    from ablate.models.llm import use_chat_template
    from ablate.world.tokenizer import build_tokenizer

    tok = copy.deepcopy(build_tokenizer(["a b c d what colour is it and the shape say again red square hello"]))
    if template:
        tok.chat_template = template
        use_chat_template(tok)
    return tok


@pytest.mark.parametrize("template", [None, CHATML], ids=["plain", "chat-template"])
def test_the_generator_sees_a_conversation_as_training_framed_it(tmp_path, template):
    """The ids `MLLM` builds for a conversation context are the training row's ids up to the last reply, token for
    token: `<bos>`, the turns, the `<eos>` after each earlier reply (plain) or the template's turns and generation
    prompt, never wrapped in one more user turn."""
    tok = _tokenizer(template)
    path = write_llava(tmp_path)
    image_id = tok.convert_tokens_to_ids("<image>")
    model = SimpleNamespace(tokenizer=tok, image_tokens=SimpleNamespace(block=lambda image: [image_id] * 3))
    fns = TaskFns(TaskSpec(name="chat", base="chat", data_file=str(path), format="conversation"))
    for record in (RECORDS[0], RECORDS[2]):
        context, reference, images = fns.dialogue(record)
        conversation = Conversation(context, [fns.load_image(v) for v in images])
        ids, shown = MLLM._encode_context(model, conversation, chat=True)

        turns, paths = read_record(record)
        row = Collator(tok, 3, 400).encode_turns(turns, [str(tmp_path / p) for p in paths])
        last = max(i for i, labelled in enumerate(row.labelled) if not labelled) + 1   # where the last reply begins
        assert ids == row.ids[:last] and len(shown) == len(paths)
        reply = [t for t, labelled in zip(row.ids[last:], row.labelled[last:]) if labelled]
        assert tok.decode(reply).replace(" ", "").startswith(reference.replace(" ", ""))
    if template:
        assert tok.decode(ids).endswith("<|im_start|>assistant\n") and tok.decode(ids).count("<|im_start|>user") == 1
    else:
        assert ids[0] == tok.bos_token_id
    multi, _, _ = fns.dialogue(RECORDS[0])
    ids, _ = MLLM._encode_context(model, Conversation(multi, [Image.new("RGB", (8, 8))]), chat=True)
    assert ids.count(tok.eos_token_id) == (0 if template else 2)   # the plain frame closes each earlier reply


def test_a_blind_conversation_shows_another_records_images_of_the_same_count(tmp_path):
    records = [{"id": f"r{i}", "image": f"{c}.png", "conversations": [
        {"from": "human", "value": "<image> colour?"}, {"from": "gpt", "value": c}]} for i, c in enumerate(RGB)]
    records += [RECORDS[1], RECORDS[2]]
    path = write_llava(tmp_path, records)
    blind = TaskFns(TaskSpec(name="chat_blind", base="chat_blind", data_file=str(path), format="conversation",
                             blind_seed=0))
    shown = {r["id"]: [Path(v).name for v in blind.conversation_images(r)] for r in records}
    own = {r["id"]: [Path(v).name for v in blind.dialogue(r)[2]] for r in records}
    singles = [f"r{i}" for i in range(3)]
    assert all(shown[r] != own[r] for r in singles)                                   # never its own image
    assert sorted(shown[r][0] for r in singles) == sorted(own[r][0] for r in singles)  # each image shown once
    assert shown["two"] == own["two"] and shown["text"] == []   # no other record has two images; none to shuffle


def test_a_conversation_task_runs_0_shot_only_and_the_dry_run_says_so(tmp_path):
    path = write_llava(tmp_path)
    cfg = EvalConfig(tasks=["chat", "mine"], shots=[0, 4],
                     custom_tasks=[task(path), {"name": "mine", "path": str(path)}])
    assert {(t.base, t.shots) for t in plan(cfg)} == {
        ("chat", 0), ("chat_blind", 0), ("mine", 0), ("mine", 4), ("mine_blind", 0), ("mine_blind", 4)}
    assert set(keys.wanted(cfg)) == {keys.tag_name(t, k) for t, k in keys.evaluations(cfg)} | {
        keys.EVAL_TAG + keys.PERPLEXITY}
    assert keys.tag_name("chat", 4) not in keys.wanted(cfg)   # never pending: nothing evaluates it
    assert plan_warnings(cfg) == ["eval.shots: 4-shot skipped for the conversation task chat (a conversation is "
                                  "evaluated 0-shot only; docs/evaluation.md)"]
    assert plan_warnings(cfg.model_copy(update={"shots": [0]})) == []


def test_the_new_settings_at_their_defaults_leave_a_vqa_tasks_evaluation_key_as_it_was():
    cfg = EvalConfig(tasks=["signs"], custom_tasks=[{"name": "signs", "path": "/x/q.jsonl"}])
    assert keys.task_key(cfg, "signs", 0) == "c0f7a9920b45"           # the key before `format` existed
    assert keys.task_key(cfg, "signs_blind", 0) == "348b6e1e33db"
    conv = EvalConfig(tasks=["signs"], custom_tasks=[{"name": "signs", "path": "/x/q.jsonl", "format": "conversation"}])
    assert keys.task_key(conv, "signs", 0) != keys.task_key(cfg, "signs", 0)


# ---------------------------------------------------------------- the dry run

def dry_run(tmp_path: Path, custom: dict, capsys, shots: str = "[0]") -> tuple[int, str]:
    from ablate.cli import main

    grid = tmp_path / "grid.yaml"
    grid.write_text(f"""name: checks
base:
  encoder: {{name: "zoo:clip-s", resolution: 96}}
  connector: {{name: avg-pool, tokens: 16}}
  train: {{steps: 5}}
  eval:
    tasks: [chat]
    shots: {shots}
    custom_tasks: [{json.dumps(custom)}]
axes:
  connector.tokens: [16]
""")
    code = main(["--home", str(tmp_path / "home"), "--reports", str(tmp_path / "reports"), "run", str(grid),
                 "--dry-run"])
    out, err = capsys.readouterr()
    return code, out + err


def test_the_dry_run_accepts_a_good_file_and_warns_of_its_skipped_shots(tmp_path, capsys):
    code, text = dry_run(tmp_path, task(write_llava(tmp_path / "llava")), capsys, shots="[0, 4]")
    assert code == 0, text
    assert "4-shot skipped for the conversation task chat" in text


@pytest.mark.parametrize("case", ["no file", "no column", "no record", "image", "question_column", "format"])
def test_the_dry_run_refuses_a_conversation_task_naming_the_key_and_the_file(tmp_path, capsys, case):
    path = write_llava(tmp_path / "llava")
    bad = tmp_path / "llava" / "bad.json"
    custom, key, said = task(path), None, None
    if case == "no file":
        custom, key, said = task(tmp_path / "nowhere.json"), "path", "no conversation file"
    elif case == "no column":
        bad.write_text(json.dumps([{"image": "red.png", "dialogue": []}]))
        custom, key, said = task(bad), "conversations_column", "columns present: ['dialogue', 'image']"
    elif case == "no record":
        robot = [{"from": "robot", "value": "hi"}, {"from": "gpt", "value": "a"}]
        bad.write_text(json.dumps([{"conversations": [{"from": "human", "value": "hi"}]}, {"conversations": robot}]))
        custom, key, said = task(bad), "conversations_column", "none of its first 2 records can be evaluated"
    elif case == "image":
        bad.write_text(json.dumps([{**RECORDS[0], "image": "missing.png"}]))
        custom, key, said = task(bad), "image_column", f"looked for {tmp_path / 'llava' / 'missing.png'}"
    elif case == "question_column":
        custom, key, said = task(path, question_column="q"), "question_column", "read by format vqa only"
    else:
        custom, key, said = task(path, format="dialogue"), "0.format", "Allowed: vqa, conversation"
    code, text = dry_run(tmp_path, custom, capsys)
    assert code == 2, text
    text = " ".join(text.split())
    assert f"eval.custom_tasks.{key}" in text and said in text
    if case != "format":
        assert str(custom["path"]) in text or str(Path(custom["path"]).resolve()) in text


@pytest.mark.slow
def test_a_cell_trains_on_conversations_and_is_scored_on_a_conversation_task(tmp_path, tiny_grid, workspace):
    """`ablate run`: a conversation source trains the cell, a conversation task evaluates it (eval.shots [0, 4]: its
    4-shot entry skipped, nothing fails); the score, the blind copy and every record's prediction are logged."""
    from ablate.cli import main
    from ablate.resolve import load_grid
    from ablate.tracking.results import read_predictions, results_frame
    from ablate.tracking.store import Store

    path = write_llava(tmp_path / "llava")
    grid_path = tiny_grid(axes="connector.name: [avg-pool]", steps=4)
    text = grid_path.read_text().replace(
        "data: {", f'data: {{sources: [{{kind: conversation, path: "{path}"}}], mixture: {{conversation: 1.0}}, ')
    evaluation = f"eval: {{tasks: [chat], shots: [0, 4], max_new_tokens: 6, custom_tasks: [{json.dumps(task(path))}]"
    text = text.replace("eval: {tasks: [world_vqa, world_textvqa]", evaluation)
    grid_path.write_text(text)
    assert main(["--home", str(workspace.home), "--reports", str(workspace.reports), "run", str(grid_path),
                 "--no-report"]) == 0
    store = Store(workspace.tracking_uri, workspace.artifacts)
    frame, _ = results_frame(store, load_grid(grid_path))
    assert list(frame["status"]) == ["FINISHED"]
    row = frame.iloc[0]
    assert 0 <= row["score/chat/0shot"] <= 1 and row["n/chat/0shot"] == 4 and row["n/chat_blind/0shot"] == 4
    assert "score/chat/4shot" not in frame or frame["score/chat/4shot"].isna().all()
    questions = read_predictions(store, row["run_id"], "questions.json")
    chat = questions[questions["task"] == "chat"]
    assert sorted(chat["id"]) == ["blue", "multi", "text", "two"] and set(chat["shots"]) == {0}
    assert chat["correct"].mean() == pytest.approx(row["score/chat/0shot"])
    sample = read_predictions(store, row["run_id"])
    references = {r["id"]: list(r["references"]) for _, r in sample[sample["task"] == "chat"].iterrows()}
    assert references == {"multi": ["red"], "text": ["hello"], "two": ["red green"], "blue": ["blue"]}


def test_the_run_record_shows_a_conversation_tasks_first_context_in_the_frame_the_model_reads(tmp_path):
    from ablate.config.schema import CellConfig
    from ablate.record import prompts

    cfg = CellConfig.model_validate({"eval": {"tasks": ["chat"], "custom_tasks": [task(write_llava(tmp_path))]}})
    rendered = prompts(cfg)["rendered"]
    assert rendered["chat"] == ("<image>What colour is it? red<eos>And the shape? a square<eos>"
                                "Say the colour again.")
    assert rendered["chat_blind"] == rendered["chat"]   # the same turns; only the images differ
