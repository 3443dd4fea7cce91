"""GPU speed of ablate's training step, grid and evaluation, eager baseline and optimised path in one run.

    python benchmarks/gpu.py                   # reference shapes, needs a CUDA GPU, about 8-10 minutes
    python benchmarks/gpu.py --tiny            # tiny shapes, runs on a CPU in about a minute (tests the script)
    python benchmarks/gpu.py --out DIR         # also write DIR/gpu_results.json and DIR/gpu_results.md

Reference configuration: a SigLIP-B/16-shaped encoder at 384 px (frozen), an average-pool/MLP
connector with 144 visual tokens, a Qwen2-0.5B-shaped LM (vocabulary 151,936), 128 text tokens, batch 32, bf16
autocast. Random weights, built from configs, saved with save_pretrained and loaded through the project's own
`hf:<folder>` specs (`build_mllm`), so nothing is downloaded.

Parts, in the order they run (each prints its rows as it finishes; results are written after every row):
1. grid: a 6-cell connector grid (avg-pool / attn-pool / c-abstractor x 64 / 144 tokens) of `--grid-steps` (150)
   steps per cell through the project's training loop, eager baseline against optimised; model building,
   feature-cache filling and a cold compilation included (this part runs first, so nothing is compiled before it).
2. step: the eager baseline (full-vocabulary logits, Hugging Face loss, float32 frozen encoder under autocast)
   against the optimised step (fused linear + cross-entropy from `ablate.models.loss`, frozen encoder in bf16,
   decoder blocks under `torch.compile`), on the same card; samples/s, MFU of the measured bf16 matmul peak,
   peak memory, first/last loss.
3. loader: the optimised step with data already on the GPU against real loading (images decoded from disk on a
   prefetch thread, with and without the feature cache), and the plain synchronous path.
4. eval: batched generation (`MLLM.generate`), questions per second, float32 against bf16 autocast.
5. nocache: the optimised grid without the frozen-encoder feature cache at `--nocache-steps` steps per cell,
   against the cached grid's wall time up to that step of every cell.
6. cell: one whole cell as `ablate run` trains it (`ablate.cell.run_cell`: the embedded world, the model built,
   `--cell-steps` steps, the cost metrics, the final checkpoint), with the speed path off (every `train:` switch
   false) and on (`auto`: on with CUDA), each in a fresh process (cold compilation included); evaluation is left
   out (lmms-eval is not needed here). Without `datasets` (the GPU image) or with `--synthetic-data`, the world's
   data pipeline is replaced by synthetic batches over the world's images (column `data`). Figures: whole-cell
   wall time, training samples/s at the median step, peak memory, the effective switches, on / off.
7. dp: data-parallel weak scaling, when more than one GPU is visible (or `--dp-procs N`): the same cell with the
   speed path on, on 1 process and on N (one per GPU, `train.batch_size` N times the per-process batch), each rank
   joining the group as under runners/multigpu.yaml (`parallel.init_from_env`). Figures: samples/s, samples/s per
   GPU, weak-scaling efficiency (per-GPU samples/s on N over that on 1).
Parts 3-7 are skipped when their estimated end is past `--limit-s`, so that one run fits a 10-minute command;
they run in the order grid, step, cell, dp, loader, eval, nocache.

Code (benchmarks/gpubench/): one module per part (grid.py, step.py, loader.py, generation.py, nocache.py, cell.py,
dp.py; each a `run(bench)`, the late ones an `estimate(bench)`), wholecell.py (a cell in fresh processes, for cell
and dp), common.py (shapes, backbones, images, synthetic batches, the training step: shared with tests/perf),
measure.py, bench.py (the run's state and rows), report.py (markdown), cli.py (options, order, output).

Needs torch, transformers, accelerate, pydantic, Pillow (and liger-kernel for its fused loss; without it the
chunked PyTorch loss is used). Not datasets, mlflow, optuna or lmms-eval.
"""
