"""`gguf:` LLMs end to end, on a tiny GGUF file this test writes itself with the `gguf` package's GGUFWriter.

The file holds what transformers' GGUF loader reads: llama metadata, llama.cpp tensor names (q/k rows permuted
as llama.cpp's converter does), 2-D weights quantised to Q8_0, and a byte-level BPE tokenizer (vocabulary,
merges, token types) trained here on the tiny world's texts.
"""
from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
from tinyworld import TINY_WORLD, TINY_WORLD_YAML  # the world tests/conftest.py's tiny backbones were made with

HEADS, KV_HEADS, HIDDEN, LAYERS = 2, 1, 64, 2
SPECIAL = ["<pad>", "<bos>", "<eos>", "<|endoftext|>"]  # transformers' GGUF byte-level tokenizer adds the last one
                                                        # when a file lacks it


def _permute(rows: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's `permute` for q/k weights (transformers' LlamaTensorProcessor undoes it on load)."""
    return rows.reshape(n_head, 2, rows.shape[0] // n_head // 2, *rows.shape[1:]).swapaxes(1, 2).reshape(rows.shape)


def write_tiny_gguf(path, texts):
    """A random 2-layer Llama (GQA: 2 heads, 1 kv head) with a BPE tokenizer, as GGUF. Returns (model, tokenizer)."""
    import gguf
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=600, special_tokens=SPECIAL, show_progress=False,
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    spec = json.loads(tok.to_str())["model"]
    tokens = [t for t, _ in sorted(spec["vocab"].items(), key=lambda kv: kv[1])]
    merges = [m if isinstance(m, str) else " ".join(m) for m in spec["merges"]]

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tokens), hidden_size=HIDDEN, intermediate_size=2 * HIDDEN,
                      num_hidden_layers=LAYERS, num_attention_heads=HEADS, num_key_value_heads=KV_HEADS,
                      max_position_embeddings=512, rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False,
                      pad_token_id=0, bos_token_id=1, eos_token_id=2)
    model = LlamaForCausalLM(cfg).eval()

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("tiny-llama")
    w.add_context_length(512)
    w.add_embedding_length(HIDDEN)
    w.add_block_count(LAYERS)
    w.add_feed_forward_length(2 * HIDDEN)
    w.add_head_count(HEADS)
    w.add_head_count_kv(KV_HEADS)
    w.add_rope_dimension_count(HIDDEN // HEADS)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(len(tokens))
    w.add_tokenizer_model("gpt2")
    w.add_token_list(tokens)
    w.add_token_merges(merges)
    w.add_token_types([3 if t in SPECIAL else 1 for t in tokens])  # 3: control
    w.add_pad_token_id(0)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, LAYERS)
    for hf_name, tensor in model.state_dict().items():
        base, suffix = hf_name.rsplit(".", 1)
        name = f"{names.get_name(base)}.{suffix}"
        x = tensor.numpy().astype(np.float32)
        if name.endswith("attn_q.weight"):
            x = _permute(x, HEADS)
        elif name.endswith("attn_k.weight"):
            x = _permute(x, KV_HEADS)
        if x.ndim == 2 and not name.startswith("token_embd"):
            w.add_tensor(name, gguf.quants.quantize(x, gguf.GGMLQuantizationType.Q8_0),
                         raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        else:
            w.add_tensor(name, x)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return model, PreTrainedTokenizerFast(tokenizer_object=tok)


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory):
    from ablate.config.schema import WorldConfig
    from ablate.world import build_world

    root = tmp_path_factory.mktemp("gguf")
    world = build_world(WorldConfig(**TINY_WORLD), root / "cache")
    texts = list(world.corpus()) + [r["question"] + " " + " ".join(r["answers"])
                                    for task in ("vqa", "textvqa") for r in world.questions(task, "test")]
    model, tokenizer = write_tiny_gguf(root / "tiny-llama-q8_0.gguf", texts)
    return {"file": root / "tiny-llama-q8_0.gguf", "model": model, "tokenizer": tokenizer, "texts": texts}


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_gguf_loads_as_written_and_reloads_from_the_cache(tiny_gguf, tmp_path, monkeypatch, caplog):
    from ablate.config.schema import LLMConfig
    from ablate.models import llm as llm_module
    from ablate.models.families import gguf as gguf_family

    spec = LLMConfig(name=f"gguf:{tiny_gguf['file']}")
    records = _Records()   # a handler on the module's own logger: what it logs, whatever other tests did to the root
    gguf_family.log.addHandler(records)
    level, disabled, global_off = gguf_family.log.level, gguf_family.log.disabled, logging.root.manager.disable
    gguf_family.log.setLevel(logging.INFO)
    gguf_family.log.disabled = False   # a library's logging.config call elsewhere in the test run may have disabled it
    logging.disable(logging.NOTSET)
    try:
        model, tok = llm_module.build_llm(spec, tmp_path)
    finally:
        gguf_family.log.removeHandler(records)
        gguf_family.log.setLevel(level)
        gguf_family.log.disabled = disabled
        logging.disable(global_off)
    assert any("dequantised in" in m for m in records.messages), records.messages
    assert getattr(model, "hf_quantizer", None) is None and not hasattr(model.config, "quantization_config")
    (folder,) = [p for p in (tmp_path / "gguf").iterdir() if p.is_dir()]
    assert folder.name.startswith("tiny-llama-q8_0-") and (folder / "model.safetensors").is_file()

    reference, ref_tok = tiny_gguf["model"], tiny_gguf["tokenizer"]
    for text in tiny_gguf["texts"][:20]:                 # the tokenizer in the file is the one trained here
        assert tok(text, add_special_tokens=False)["input_ids"] == ref_tok(text)["input_ids"]
    n = len(ref_tok)
    assert len(tok) == n + 1 and tok.convert_tokens_to_ids("<image>") == n   # <image> added, embeddings grown
    ids = torch.tensor([ref_tok(tiny_gguf["texts"][0])["input_ids"][:24]])
    with torch.no_grad():
        ours, want = model(input_ids=ids).logits[..., :n], reference(input_ids=ids).logits
    assert (ours - want).abs().max() < 0.02 * want.abs().max()   # Q8_0: close to the float model, not equal
    assert (ours - want).abs().max() > 0                           # ... and it really went through Q8_0 blocks

    def no_dequantising(file):
        raise AssertionError("dequantised again although the cache holds the model")

    monkeypatch.setattr(gguf_family, "_dequantise", no_dequantising)
    again, _ = llm_module.build_llm(spec, tmp_path)
    for (name, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), name


def _grid(path, encoder: str, llm: str):
    world = TINY_WORLD_YAML
    path.write_text(f"""name: gguf
base:
  encoder: {{name: "{encoder}", resolution: 64}}
  llm: {{name: "{llm}"}}
  connector: {{name: avg-pool, tokens: 16}}
  data: {{world: {{{world}}}, max_length: 96}}
  train: {{steps: 4, batch_size: 4, checkpoint_every: 2, lr: 0.003,
           lr_multipliers: {{encoder: 0.0, connector: 1.0, llm: 0.5}}}}
  eval: {{tasks: [world_vqa], limit: 8, bootstrap: 10, batch_size: 8, text_perplexity: 0}}
axes:
  train.seed: [0]
""")
    return path


@pytest.mark.slow
def test_gguf_cell_trains_checkpoints_reloads_and_evaluates(tiny_gguf, tiny_backbones, workspace, tmp_path):
    import mlflow

    from ablate.checkpoint import load_for_eval, read_config
    from ablate.cli import main
    from ablate.evaluation import evaluate
    from ablate.models.llm import build_llm
    from ablate.world import build_world

    grid_path = _grid(tmp_path / "gguf.yaml", tiny_backbones["encoder"], f"gguf:{tiny_gguf['file']}")
    assert main(["--home", str(workspace.home), "--reports", str(workspace.reports), "run", str(grid_path)]) == 0
    client = mlflow.MlflowClient(workspace.tracking_uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    (run,) = [r for r in runs if "score/world_vqa/0shot" in r.data.metrics]
    assert run.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")] == [1, 2, 3, 4]

    (final,) = (workspace.home / "checkpoints").glob("*/final")
    cfg = read_config(final)
    assert cfg.llm.name == f"gguf:{tiny_gguf['file']}"
    model = load_for_eval(final, workspace.cache, device="cpu")   # LLM from the gguf cache + the trained weights
    fresh, _ = build_llm(cfg.llm, workspace.cache)
    trained = dict(model.llm.named_parameters())
    assert [n for n, p in fresh.named_parameters() if not torch.equal(p, trained[n])], \
        "the checkpoint did not carry the trained LLM weights"
    result = evaluate(model, cfg.eval, build_world(cfg.data.world, workspace.cache), tmp_path / "eval")
    assert result.metrics["score/world_vqa/0shot"] == pytest.approx(run.data.metrics["score/world_vqa/0shot"])


def _metadata_only_gguf(path, chat_template: str | None):
    """A GGUF file with llama metadata and no tensors: all the dry run reads."""
    import gguf

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("metadata-only")
    if chat_template is not None:
        w.add_chat_template(chat_template)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_the_dry_run_reads_the_chat_template_from_the_gguf_metadata(tiny_gguf, tiny_backbones, tmp_path, capsys,
                                                                      monkeypatch):
    from ablate.cli import main
    from ablate.models.families import gguf as gguf_family

    def no_dequantising(file):
        raise AssertionError("the dry run dequantised the GGUF")

    monkeypatch.setattr(gguf_family, "_dequantise", no_dequantising)
    file = tiny_gguf["file"]          # a base model: no tokenizer.chat_template in its metadata
    grid = _grid(tmp_path / "chat.yaml", tiny_backbones["encoder"], f"gguf:{file}")
    grid.write_text(grid.read_text().replace(f'llm: {{name: "gguf:{file}"}}',
                                             f'llm: {{name: "gguf:{file}", chat_template: true}}'))
    home = tmp_path / "home"
    assert main(["--home", str(home), "run", str(grid), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "llm.chat_template" in err and str(file) in err and "'tokenizer.chat_template'" in err
    assert str(grid) in err and not home.exists()

    chat = _metadata_only_gguf(tmp_path / "chat.gguf", "{% for m in messages %}<user>{{ m.content }}{% endfor %}")
    grid.write_text(grid.read_text().replace(str(file), str(chat)))
    assert main(["--home", str(home), "run", str(grid), "--dry-run"]) == 0
    assert ": 1 cells over train.seed" in capsys.readouterr().out
    assert not home.exists()


def test_the_dry_run_refuses_a_gguf_llm_when_the_gguf_package_is_missing(tiny_gguf, tiny_backbones, tmp_path,
                                                                         capsys, monkeypatch):
    import sys

    from ablate.cli import main

    grid = _grid(tmp_path / "g.yaml", tiny_backbones["encoder"], f"gguf:{tiny_gguf['file']}")
    monkeypatch.setitem(sys.modules, "gguf", None)     # `import gguf` raises ImportError
    assert main(["run", str(grid), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "llm.name" in err and "needs the optional 'gguf' package" in err and "pip install 'ablate[gguf]'" in err
    monkeypatch.delitem(sys.modules, "gguf")
    assert main(["run", str(grid), "--dry-run"]) == 0


@pytest.mark.parametrize("value", ['"yes"', "1", '"true"'])
def test_chat_template_takes_true_or_false_only(value, tiny_gguf, tiny_backbones, tmp_path, capsys):
    from ablate.cli import main

    file = tiny_gguf["file"]
    grid = _grid(tmp_path / "g.yaml", tiny_backbones["encoder"], f"gguf:{file}")
    grid.write_text(grid.read_text().replace(f'llm: {{name: "gguf:{file}"}}',
                                             f'llm: {{name: "gguf:{file}", chat_template: {value}}}'))
    assert f"chat_template: {value}" in grid.read_text()
    assert main(["run", str(grid), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "llm.chat_template" in err and "not a boolean" in err and "true" in err and "false" in err


def test_a_checkpoint_is_rebuilt_with_the_cache_of_its_own_home(tmp_path, monkeypatch):
    """The lmms-eval CLI (`load_for_eval(<checkpoint>)`, no cache named) dequantises a GGUF into, and reads the zoo
    and the world from, the home the checkpoint lives in, not the folder it is run from."""
    from ablate import checkpoint
    from ablate.config.schema import CellConfig

    final = tmp_path / "runs" / "home" / "checkpoints" / "0123456789ab" / "final"
    final.mkdir(parents=True)
    used = []
    monkeypatch.setattr(checkpoint, "read_config", lambda folder: CellConfig())
    monkeypatch.setattr(checkpoint, "build_mllm", lambda cfg, cache_root, **kw: used.append(cache_root) or
                        type("Model", (), {"eval": lambda self: self})())
    monkeypatch.setattr(checkpoint, "load_weights", lambda folder, model: None)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.delenv("ABLATE_HOME", raising=False)
    checkpoint.load_for_eval(final)
    assert used == [tmp_path / "runs" / "home" / "cache"]
    assert not (elsewhere / ".ablate").exists()
    checkpoint.load_for_eval(final, tmp_path / "mine")    # a cache named is the one used
    assert used[-1] == tmp_path / "mine"
