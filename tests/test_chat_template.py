"""`llm.chat_template`: instruction rows (training) and generation prompts (evaluation) in the tokenizer's user turn."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

TEMPLATE = ("{% for m in messages %}user: {{ m['content'] }} end{% endfor %}"
            "{% if add_generation_prompt %} model:{% endif %}")


@pytest.fixture
def chat_llm(tiny_backbones, tmp_path):
    """The tiny Llama's folder, its tokenizer given a chat template."""
    import shutil

    from transformers import AutoTokenizer

    folder = tmp_path / "chat-llm"
    shutil.copytree(tiny_backbones["llm"][len("hf:"):], folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.chat_template = TEMPLATE
    tokenizer.save_pretrained(folder)
    return f"hf:{folder}"


def test_instruction_rows_and_generation_prompts_are_wrapped_in_the_same_user_turn(chat_llm, tmp_path, caplog):
    from ablate.config.schema import LLMConfig
    from ablate.data.collate import IGNORE, Collator
    from ablate.models.llm import build_llm, chat_ids
    from ablate.models.mllm import MLLM

    plain, plain_tok = build_llm(LLMConfig(name=chat_llm), tmp_path)
    assert chat_ids(plain_tok) is None                              # off by default
    with caplog.at_level("INFO", logger="ablate.models.llm"):
        _, tok = build_llm(LLMConfig(name=chat_llm, chat_template=True), tmp_path)
    before, after = chat_ids(tok)
    assert before == tok("user: ", add_special_tokens=False)["input_ids"]
    assert after == tok(" end model:", add_special_tokens=False)["input_ids"]
    assert "chat template" in caplog.text

    row = {"text": "what colour is the square?", "images": [], "answer": "red"}
    wrapped, unwrapped = Collator(tok, 4, 96).encode(**row), Collator(plain_tok, 4, 96).encode(**row)
    prompt = tok("what colour is the square?", add_special_tokens=False)["input_ids"]
    answer = tok(" red", add_special_tokens=False)["input_ids"]
    bos = [tok.bos_token_id] if tok.bos_token_id is not None else []
    assert wrapped.ids == bos + before + prompt + after + answer + [tok.eos_token_id]
    assert unwrapped.ids == bos + prompt + answer + [tok.eos_token_id]
    batch = Collator(tok, 4, 96)([row])
    labelled = batch.labels[0][batch.labels[0] != IGNORE].tolist()
    assert labelled == answer + [tok.eos_token_id]                 # the turn's frame carries no loss
    caption = {"text": "a red square", "images": []}               # other rows are not wrapped
    assert Collator(tok, 4, 96).encode(**caption).ids == Collator(plain_tok, 4, 96).encode(**caption).ids

    model = SimpleNamespace(tokenizer=tok, image_tokens=None)
    ids, _ = MLLM._encode_context(model, ["what colour is the square?"], chat=True)
    assert ids == bos + before + prompt + after                    # generation continues where training answers
    assert MLLM._encode_context(model, ["what colour is the square?"])[0] == bos + prompt   # loglikelihood


def test_a_tokenizer_without_a_chat_template_is_refused(tiny_backbones, tmp_path):
    from ablate.config.schema import LLMConfig
    from ablate.models.llm import build_llm

    with pytest.raises(ValueError, match="has no chat template"):
        build_llm(LLMConfig(name=tiny_backbones["llm"], chat_template=True), tmp_path)


def test_the_dry_run_refuses_a_chat_template_the_tokenizer_lacks_and_warns_of_frozen_adapters(
        tiny_backbones, chat_llm, tmp_path):
    from tinyworld import TINY_WORLD_YAML

    from ablate.config.errors import GridError
    from ablate.resolve import load_grid

    world = TINY_WORLD_YAML

    def grid(llm: str, train: str = "") -> object:
        path = tmp_path / "grid.yaml"
        path.write_text(f"""name: chat
base:
  encoder: {{name: "{tiny_backbones['encoder']}", resolution: 64}}
  llm: {llm}
  data: {{world: {{{world}}}}}
  train: {{steps: 2{train}}}
axes:
  connector.tokens: [16]
""")
        return load_grid(path)

    with pytest.raises(GridError, match="llm.chat_template.*no chat template"):
        grid(f'{{name: "{tiny_backbones["llm"]}", chat_template: true}}')
    assert grid(f'{{name: "{chat_llm}", chat_template: true}}').cells[0].config.llm.chat_template
    frozen_adapters = grid(f'{{name: "{chat_llm}", lora: {{r: 2}}}}', ", lr_multipliers: {llm: 0}")
    assert any("adapters never train" in w for w in frozen_adapters.warnings)
