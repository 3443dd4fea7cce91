"""Language models by spec: local HF folders, the `<image>` token, GGUF without the extra, offline failure."""

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from ablate.config.schema import LLMConfig
from ablate.models.encoders import NotCachedError
from ablate.models.llm import IMAGE_TOKEN, build_llm, image_token_id

torch.set_num_threads(1)


def save_tiny_llama(folder, with_image: bool):
    words = ["<pad>", "<bos>", "<eos>", "<unk>"] + (["<image>"] if with_image else []) + ["a", "red", "square"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<bos>", eos_token="<eos>",
                                   unk_token="<unk>", additional_special_tokens=["<image>"] if with_image else [])
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(words), hidden_size=16, intermediate_size=32,
                                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2))
    model.save_pretrained(folder)
    fast.save_pretrained(folder)
    return len(words)


def test_image_token_added_and_embeddings_resized(tmp_path, caplog):
    n = save_tiny_llama(tmp_path / "lm", with_image=False)
    with caplog.at_level("INFO", logger="ablate.models.llm"):
        model, tok = build_llm(LLMConfig(name=f"hf:{tmp_path / 'lm'}"), tmp_path)
    assert f"token embeddings resized from {n} to {n + 1} rows" in caplog.text   # the log says what was adapted
    assert "dtype torch.float32" in caplog.text
    assert len(tok) == n + 1 and image_token_id(tok) == n
    assert model.get_input_embeddings().weight.shape[0] == n + 1
    ids = tok("a <image> square", add_special_tokens=False)["input_ids"]
    assert ids == [tok.convert_tokens_to_ids("a"), n, tok.convert_tokens_to_ids("square")]
    out = model(input_ids=torch.tensor([ids]))
    assert out.logits.shape == (1, 3, n + 1)
    # the new rows are the mean of the old ones, the same on every build (a frozen LLM is rebuilt, not stored)
    emb = model.get_input_embeddings().weight
    torch.testing.assert_close(emb[n], emb[:n].mean(dim=0))
    torch.manual_seed(123)
    again, _ = build_llm(LLMConfig(name=f"hf:{tmp_path / 'lm'}"), tmp_path)
    assert torch.equal(again.get_input_embeddings().weight, emb)
    assert torch.equal(again.get_output_embeddings().weight, model.get_output_embeddings().weight)


def test_existing_image_token_is_kept(tmp_path, caplog):
    n = save_tiny_llama(tmp_path / "lm", with_image=True)
    with caplog.at_level("INFO", logger="ablate.models.llm"):
        model, tok = build_llm(LLMConfig(name=f"hf:{tmp_path / 'lm'}"), tmp_path)
    assert "resized" not in caplog.text
    assert len(tok) == n and image_token_id(tok) == 4 == tok.convert_tokens_to_ids(IMAGE_TOKEN)
    assert model.get_input_embeddings().weight.shape[0] == n
    assert tok.pad_token == "<pad>"


def test_gguf_needs_the_extra(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_gguf(name, *args, **kwargs):
        if name == "gguf":
            raise ImportError("No module named 'gguf'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_gguf)
    file = tmp_path / "model.gguf"
    file.write_bytes(b"GGUF")
    with pytest.raises(ImportError, match=r"ablate\[gguf\]"):
        build_llm(LLMConfig(name=f"gguf:{file}"), tmp_path)
    with pytest.raises(FileNotFoundError, match="not an existing .gguf"):
        build_llm(LLMConfig(name=f"gguf:{tmp_path / 'missing.gguf'}"), tmp_path)


def test_offline_hub_id_fails_fast(tmp_path, monkeypatch, no_network):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as C
    monkeypatch.setattr(C, "HF_HUB_CACHE", str(tmp_path / "empty"))
    with pytest.raises(NotCachedError, match="language model 'HuggingFaceTB/SmolLM2-135M' is not in the local"):
        build_llm(LLMConfig(name="hf:HuggingFaceTB/SmolLM2-135M"), tmp_path)
    assert no_network == []   # fails at once: no connection tried, no retries


def test_bad_spec(tmp_path):
    with pytest.raises(ValueError, match="zoo:lm-<size>"):
        build_llm(LLMConfig(name="llama"), tmp_path)
