"""A cell on an LLM whose word-level tokenizer lacks "yes": `ablate run` logs the unknown-token shares of its
training data and tasks to the cell's run, warns naming the source, the task and the word, and logs the share of
empty predictions per task (docs/data.md, "Words the LLM cannot spell")."""
import json
import logging

import pytest
from tinyworld import IN_PROCESS, TINY_WORLD_YAML

from ablate.cli import main
from ablate.resolve import load_grid
from ablate.tracking.results import results_frame
from ablate.tracking.store import Store

PROMPT_WORDS = "is the image red Answer question using a single word or phrase . no".split()


def save_word_level_llm(folder) -> None:
    """A 1-layer Llama with a word-level tokenizer: the prompt's words and "no", not "yes"."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    from wordlevel import word_tokenizer

    fast = word_tokenizer(PROMPT_WORDS)
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(vocab_size=len(fast), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                 num_attention_heads=2, num_key_value_heads=2, bos_token_id=1, eos_token_id=2,
                                 pad_token_id=0)).save_pretrained(folder)
    fast.save_pretrained(folder)


def write_questions(folder, n: int = 8) -> None:
    """`n` questions "is the image red" over solid images, half answered "yes"."""
    from PIL import Image

    (folder / "images").mkdir(parents=True)
    rows = []
    for i in range(n):
        red = i % 2 == 0
        Image.new("RGB", (64, 64), (220, 20, 20) if red else (20, 20, 220)).save(folder / "images" / f"{i}.png")
        rows.append({"id": str(i), "image": f"images/{i}.png", "question": "is the image red",
                     "answers": ["yes" if red else "no"]})
    for split in ("train", "test"):
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.mark.slow
def test_a_cell_logs_and_warns_the_unknown_token_share_and_logs_empty_predictions(tiny_backbones, workspace,
                                                                                    tmp_path, caplog):
    save_word_level_llm(tmp_path / "llm")
    write_questions(tmp_path / "vqa")
    world = TINY_WORLD_YAML
    grid_path = tmp_path / "yesno.yaml"
    grid_path.write_text(f"""name: yesno
base:
  encoder: {{name: "{tiny_backbones['encoder']}", resolution: 64}}
  llm: {{name: "hf:{tmp_path / 'llm'}"}}
  connector: {{name: avg-pool, tokens: 4}}
  data:
    world: {{{world}}}
    max_length: 64
    mixture: {{instruction: 1.0}}
    sources: [{{kind: instruction, path: "{tmp_path / 'vqa' / 'train.jsonl'}"}}]
  train: {{steps: 2, batch_size: 4}}
  eval:
    tasks: [yes_no]
    bootstrap: 20
    custom_tasks: [{{name: yes_no, path: "{tmp_path / 'vqa' / 'test.jsonl'}"}}]
""")
    with caplog.at_level(logging.WARNING, logger="ablate.data.vocabulary"):
        assert main(["--home", str(workspace.home), "--reports", str(workspace.reports), "run",
                     str(grid_path), *IN_PROCESS]) == 0   # in this process: caplog reads the cell's warnings
    frame, _ = results_frame(Store(workspace.tracking_uri, workspace.artifacts), load_grid(grid_path))
    row = frame.iloc[0]
    # a row: "is the image red" (4), "Answer the question using a single word or phrase ." (10), the answer (1)
    assert row["data/instruction/unk_share"] == pytest.approx(4 / (8 * 15))
    assert row["eval/yes_no/unk_share"] == pytest.approx(4 / (8 * 15))
    assert 0.0 <= row["empty/yes_no/0shot"] <= 1.0
    lines = [r.getMessage() for r in caplog.records]
    assert any(line.startswith("instruction data (") and "3.3%" in line and "'yes'" in line for line in lines)
    assert any(line.startswith("evaluation task yes_no: 3.3%") and "'yes'" in line for line in lines)
