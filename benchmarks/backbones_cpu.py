"""Measure real-sized backbones on the CPU: load time, s/step, peak memory and checkpoint size per LLM set-up.

What a user runs: each measurement is its own process; a cell is one `ablate run` of a one-cell grid, timed with
`/usr/bin/time -v` (peak RSS), its median step time read from the cell's MLflow run (`cost/step_s_median`) and its
checkpoint's size read from disk. Offline: the backbones are random `save_pretrained` folders made here, or a file
you have (a GGUF). Nothing is downloaded.

    # random CLIP ViT-B/16 vision tower and a random Qwen2-shaped LM (world tokenizer) under OUT/
    python benchmarks/backbones_cpu.py prepare --out /tmp/bb
    # a cached load of an LLM spec (the first call of a gguf: spec dequantises and fills the cache)
    python benchmarks/backbones_cpu.py load gguf:/tmp/bb/gemma-3-270m-q4_k_m.gguf --home /tmp/bb/h
    # one cell per LLM set-up, one after another: frozen, LoRA r 8, fully trained (lr_multipliers.llm 0.02)
    python benchmarks/backbones_cpu.py cells --encoder hf:/tmp/bb/clip-b16 --llm hf:/tmp/bb/qwen2-lm \\
        --modes frozen lora full --home /tmp/bb/h --steps 3

Set OMP_NUM_THREADS to the cores you mean to use; each result is printed as one JSON line.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORLD = {"image_size": 64, "n_train": 96, "n_test": 24, "n_demo": 12, "n_text_docs": 32, "n_interleaved_docs": 16}
MODES = {"frozen": {"lr_multipliers": {"llm": 0.0}}, "lora": {"lora": {"r": 8}},
         "full": {"lr_multipliers": {"llm": 0.02}}}


def prepare(out: Path, layers: int, hidden: int) -> None:
    """A CLIP ViT-B/16 vision tower (86M) and a causal LM with Qwen2.5-0.5B's layer shape (hidden 896, 14 heads,
    2 KV heads, MLP 4864, tied embeddings; `layers` of its 24) and the world's tokenizer, random init."""
    import torch
    from transformers import CLIPVisionConfig, CLIPVisionModel, Qwen2Config, Qwen2ForCausalLM

    from ablate.config.schema import WorldConfig
    from ablate.world import build_world

    tokenizer = build_world(WorldConfig(**WORLD), out / "world-cache").tokenizer()
    torch.manual_seed(0)
    CLIPVisionModel(CLIPVisionConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                                     num_attention_heads=12, patch_size=16, image_size=224)).save_pretrained(
        out / "clip-b16")
    heads = hidden // 64
    lm = Qwen2ForCausalLM(Qwen2Config(vocab_size=len(tokenizer), hidden_size=hidden,
                                      intermediate_size=4864 * hidden // 896,
                                      num_hidden_layers=layers, num_attention_heads=heads,
                                      num_key_value_heads=max(1, heads // 7), max_position_embeddings=2048,
                                      tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
                                      eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id))
    lm.save_pretrained(out / "qwen2-lm")
    tokenizer.save_pretrained(out / "qwen2-lm")
    params = sum(p.numel() for p in lm.parameters())
    print(json.dumps({"prepared": str(out), "lm_params": params, "lm_vocab": len(tokenizer)}))


def load(spec: str, home: Path) -> None:
    """Time one build of the LLM `spec` (a cached load once its cache is filled); peak RSS of this process."""
    import resource

    from ablate.config.schema import LLMConfig
    from ablate.models.llm import build_llm

    start = time.perf_counter()
    model, _ = build_llm(LLMConfig(name=spec), home / "cache")
    seconds = time.perf_counter() - start
    print(json.dumps({"load": spec, "seconds": round(seconds, 1),
                      "params": sum(p.numel() for p in model.parameters()),
                      "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)}))


def grid_text(name: str, encoder: str, llm: str, mode: str, steps: int, batch: int, tokens: int, resolution: int,
              max_length: int) -> str:
    llm_cfg = {"name": llm, **({"lora": MODES[mode]["lora"]} if "lora" in MODES[mode] else {})}
    train = {"steps": steps, "batch_size": batch, "checkpoint_every": 10_000,
             **({"lr_multipliers": MODES[mode]["lr_multipliers"]} if "lr_multipliers" in MODES[mode] else {})}
    base = {"encoder": {"name": encoder, "resolution": resolution}, "llm": llm_cfg,
            "connector": {"name": "avg-pool", "tokens": tokens}, "data": {"world": WORLD, "max_length": max_length},
            "train": train, "eval": {"tasks": ["world_vqa"], "limit": 4, "bootstrap": 0, "text_perplexity": 0}}
    return json.dumps({"name": name, "base": base, "axes": {}}, indent=1)   # JSON is YAML


def megabytes(folder: Path) -> float:
    return round(sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 1e6, 2)


def run_cell(args, mode: str) -> dict:
    home = args.home.resolve()
    name = f"bench-{mode}"
    with tempfile.TemporaryDirectory() as tmp:
        grid = Path(tmp) / f"{name}.yaml"
        grid.write_text(grid_text(name, args.encoder, args.llm, mode, args.steps, args.batch, args.tokens,
                                  args.resolution, args.max_length))
        cmd = ["/usr/bin/time", "-v", str(Path(sys.executable).parent / "ablate"), "run", str(grid),
               "--home", str(home), "--reports", str(home / "reports"), "--no-report"]
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - start
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    cpu = [float(x) for x in re.findall(r"(?:User|System) time \(seconds\): ([\d.]+)", proc.stderr)]
    out = {"mode": mode, "llm": args.llm, "rc": proc.returncode, "wall_s": round(wall, 1),
           "cpu_s": round(sum(cpu), 1),     # cpu_s / wall_s: the cores this run had, on a shared machine
           "peak_rss_gib": round(int(rss.group(1)) / 2**20, 2) if rss else None}
    if proc.returncode != 0:
        out["stderr_tail"] = proc.stderr[-2000:]
        return out
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
    exp = client.get_experiment_by_name(name)
    runs = client.search_runs([exp.experiment_id], order_by=["attributes.start_time DESC"]) if exp else []
    cell = next((r for r in runs if "cost/step_s_median" in r.data.metrics), None)
    if cell is not None:
        m = cell.data.metrics
        losses = [x.value for x in client.get_metric_history(cell.info.run_id, "train/loss")]
        out.update({"step_s_median": round(m["cost/step_s_median"], 2),
                    "cell_peak_gib": round(m["cost/peak_memory_gib"], 2), "losses": [round(x, 3) for x in losses]})
        ckpts = sorted((home / "checkpoints").glob("*/final/model.safetensors"), key=lambda p: p.stat().st_mtime)
        if ckpts:                        # the finished cell's weights (what `ablate eval` and a reload read)
            folder = ckpts[-1].parent
            out["checkpoint_mb"] = megabytes(folder)
            out["checkpoint"] = str(folder)
            out["cell_folder_mb"] = megabytes(folder.parent)   # with `last` (the resume state) and eval files
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("prepare")
    a.add_argument("--out", type=Path, required=True)
    a.add_argument("--layers", type=int, default=12)
    a.add_argument("--hidden", type=int, default=896)
    b = sub.add_parser("load")
    b.add_argument("spec")
    b.add_argument("--home", type=Path, required=True)
    c = sub.add_parser("cells")
    c.add_argument("--encoder", required=True)
    c.add_argument("--llm", required=True)
    c.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES))
    c.add_argument("--home", type=Path, required=True)
    c.add_argument("--steps", type=int, default=3)
    c.add_argument("--batch", type=int, default=2)
    c.add_argument("--tokens", type=int, default=64)
    c.add_argument("--resolution", type=int, default=224)
    c.add_argument("--max-length", type=int, default=164)
    args = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.cmd == "prepare":
        prepare(args.out, args.layers, args.hidden)
    elif args.cmd == "load":
        load(args.spec, args.home)
    else:
        for mode in args.modes:          # one after another: each cell has the cores to itself
            print(json.dumps(run_cell(args, mode)), flush=True)


if __name__ == "__main__":
    main()
