"""A small hand-made results frame: 3 connectors x 2 token counts x 2 seeds, one failed and one missing cell.

A module of its own, not conftest: `from report_frames import` finds whichever conftest was imported first when
several test folders are collected together."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from ablate.report import ReportMeta

TASKS = ["world_vqa", "world_textvqa"]
SHOTS = [0, 4]
# mean score (0..1) per (connector, tokens), per task; seeds add a fixed +-0.01
BASE = {
    ("avg-pool", 64): 0.40, ("avg-pool", 144): 0.46,
    ("c-abstractor", 64): 0.42, ("c-abstractor", 144): None,  # missing
    ("mlp", 64): 0.50, ("mlp", 144): None,  # failed
}
PARAMS = {"avg-pool": 1_234_567, "c-abstractor": 3_456_789, "mlp": 2_100_000}


def make_frame() -> pd.DataFrame:
    rows = []
    for (conn, tokens), base in BASE.items():
        for seed in (0, 1):
            row = {"cell_id": f"{conn[:3]}{tokens}s{seed}", "connector.name": conn, "connector.tokens": tokens,
                   "seed": seed, "connector_params": PARAMS[conn], "connector_flops": PARAMS[conn] * tokens * 2,
                   "wall_s": 100.0 + tokens + seed, "failure": None, "status": "FINISHED"}
            for t, task in enumerate(TASKS):
                for k in SHOTS:
                    col = f"{task}/{k}shot"
                    if base is None:
                        row[f"score/{col}"] = np.nan
                        continue
                    v = base + 0.05 * t + 0.02 * (k > 0) + (0.01 if seed else -0.01)
                    row[f"score/{col}"] = v
                    row[f"ci_low/{col}"], row[f"ci_high/{col}"] = v - 0.03, v + 0.03
            if conn == "mlp" and base is None:
                row.update(status="FAILED", wall_s=12.0,
                           failure="Traceback (most recent call last):\n  ...\nRuntimeError: CUDA out of memory")
            if conn == "c-abstractor" and base is None:
                row.update(status="RUNNING" if seed == 0 else "MISSING", wall_s=np.nan)
            rows.append(row)
    return pd.DataFrame(rows)


def with_cost(frame: pd.DataFrame, old_runs: tuple[str, ...] = (), processes: int = 1) -> pd.DataFrame:
    """The frame with the `cost/...` metrics a cell logs (samples/s, peak memory, processes) on every run that
    trained: samples/s falls with the tokens and the connector's parameters, memory rises with them. Connectors in
    `old_runs` have none (runs made before the cost metrics were logged)."""
    frame = frame.copy()
    trained = frame["status"].isin(["FINISHED", "FAILED"]) & ~frame["connector.name"].isin(old_runs)
    sps = 1e9 / (frame["connector_params"] * frame["connector.tokens"]) * (1 + 0.1 * frame["seed"])
    frame["cost/samples_per_s"] = sps.where(trained)
    frame["cost/peak_memory_gib"] = (frame["connector_params"] * frame["connector.tokens"] / 2e8).where(trained)
    frame["cost/processes"] = pd.Series(float(processes), index=frame.index).where(trained)
    return frame


def make_curves(frame: pd.DataFrame) -> dict:
    curves = {}
    for i, cid in enumerate(frame["cell_id"]):
        steps = np.arange(0, 101, 10)
        curves[cid] = [(int(s), float(4.0 * np.exp(-s / (40 + 5 * i)) + 1.0)) for s in steps]
    return curves


def make_meta(**kw) -> ReportMeta:
    args = {"grid_name": "MM1 Table 2: connectors / tokens", "grid_file": "grids/mm1_connectors.yaml",
                "date": dt.datetime(2025, 3, 1, 12, 30), "git_commit": "abc1234", "device": "1x NVIDIA H100 80GB",
                "total_wall_s": 1900.0, "swept_axes": ["connector.name", "connector.tokens", "train.seed"],
                "fixed": {"encoder.name": "zoo:clip-s", "encoder.resolution": 96, "train.steps": 250},
                "baseline": None}
    args.update(kw)
    return ReportMeta(**args)


def make_rich_frame() -> pd.DataFrame:
    """`make_frame` plus what cells log since round 2: TextVQA per question type (small text 10 points worse,
    large text 10 points better at resolution 96; equal at 192), ANLS, text perplexity (3.0 + 0.1 x row; lower is
    better), a zoo encoder's pre-training figures, train / eval times, run start and end."""
    f = make_frame()
    f["encoder.resolution"] = [96 if i % 4 < 2 else 192 for i in range(len(f))]
    low = f["encoder.resolution"] == 96
    for k in SHOTS:
        for qtype, shift in (("text-small", -0.1), ("text-large", 0.1)):
            col = f"world_textvqa/{k}shot/{qtype}"
            f[f"score/{col}"] = f[f"score/world_textvqa/{k}shot"] + shift * low
            f[f"ci_low/{col}"], f[f"ci_high/{col}"] = f[f"score/{col}"] - 0.05, f[f"score/{col}"] + 0.05
            f[f"n/{col}"] = 24.0
        f[f"anls/world_textvqa/{k}shot"] = f[f"score/world_textvqa/{k}shot"] + 0.03
    done = f["status"] == "FINISHED"
    f["text/perplexity"] = np.where(done, 3.0 + 0.1 * np.arange(len(f)), np.nan)
    f["encoder.name"] = "zoo:clip-s"
    f["encoder/zero_shot_i2t_top1"], f["encoder/probe_i2t_top1"] = 0.1484375, 0.10546875
    f["encoder/chance"], f["encoder/n_heldout"] = 1 / 256, 256.0
    f["encoder/loss_first"], f["encoder/loss_last"] = 4.16, 1.78
    f["time/train_s"], f["time/eval_s"] = np.where(done, 60.0, np.nan), np.where(done, 30.0, np.nan)
    return f


RICH_AXES = ["connector.name", "connector.tokens", "encoder.resolution", "train.seed"]


CONNECTORS_AXES = ["connector.name", "connector.tokens", "encoder.resolution"]
CONNECTORS_FIXED = {  # what grids/connectors.yaml leaves fixed, as Grid.fixed has it (lists, an empty mapping)
    "connector.options": {}, "data.mixture": {"synthetic": 1.0}, "data.sources": [], "data.world.n_words": 12,
    "data.world.image_size": 192, "encoder.name": "zoo:clip-read-s", "eval.custom_tasks": [], "eval.limit": 200,
    "eval.shots": [0], "eval.tasks": ["world_vqa", "world_textvqa"], "llm.name": "zoo:lm-s", "train.lr": 0.005,
    "train.steps": 300, "train.seed": 0}
VQA_TYPES, TEXT_TYPES = ["colour", "shape", "count", "position"], ["text-small", "text-large"]


def _ci(p: float, n: int) -> tuple[float, float]:
    half = 1.96 * np.sqrt(max(p * (1 - p), 0.01) / n)
    return max(0.0, p - half), min(1.0, p + half)


def make_connectors_frame(seeds=(0, 1, 2)) -> pd.DataFrame:
    """Shaped like `ablate run grids/connectors.yaml` logs (2 connectors x 2 token counts x 2 resolutions x seeds,
    0-shot only, VQA and TextVQA with per-type scores, a reading zoo encoder): TextVQA-style near the 8.3 % chance
    at 96 px and above it at 160 px with avg-pool; attn-pool near chance at both."""
    rng = np.random.default_rng(7)
    rows = []
    for conn in ("avg-pool", "attn-pool"):
        for tokens in (64, 144):
            for res in (96, 160):
                for seed in seeds:
                    reads = conn == "avg-pool" and res == 160
                    text = (0.185 if reads else 0.093 if conn == "avg-pool" else 0.10) + rng.normal(0, 0.02)
                    vqa = 0.31 + rng.normal(0, 0.03)
                    cid = f"{conn[:3]}{tokens}r{res}s{seed}"
                    row = {"cell_id": cid, "run_id": f"run-{cid}", "connector.name": conn, "connector.tokens": tokens,
                           "encoder.resolution": res, "seed": seed, "status": "FINISHED", "failure": "",
                           "encoder.name": "zoo:clip-read-s",
                           "connector_params": 150_000 if conn == "avg-pool" else 420_000,
                           "connector_flops": (3e5 if conn == "avg-pool" else 9e5) * tokens,
                           "wall_s": 55 + tokens / 10 + res / 20 + seed, "time/train_s": 40.0, "time/eval_s": 12.0,
                           "text/perplexity": 2.0 + rng.uniform(0, 0.2)}
                    for task, score, types, n in (("world_vqa", vqa, VQA_TYPES, 50), ("world_textvqa", text,
                                                                                      TEXT_TYPES, 100)):
                        row[f"score/{task}/0shot"] = score
                        row[f"ci_low/{task}/0shot"], row[f"ci_high/{task}/0shot"] = _ci(score, 200)
                        for i, qtype in enumerate(types):
                            shift = {"text-small": 0.02 if reads else -0.06, "text-large": 0.06}.get(qtype,
                                                                                                   0.04 * (i - 1.5))
                            p = float(np.clip(score + shift + rng.normal(0, 0.02), 0, 1))
                            row[f"score/{task}/0shot/{qtype}"] = p
                            row[f"ci_low/{task}/0shot/{qtype}"], row[f"ci_high/{task}/0shot/{qtype}"] = _ci(p, n)
                            row[f"n/{task}/0shot/{qtype}"] = float(n)
                    row["anls/world_textvqa/0shot"] = text + 0.05
                    row.update({"encoder/zero_shot_i2t_top1": 0.12, "encoder/probe_i2t_top1": 0.09,
                                "encoder/zero_shot_t2i_top1": 0.11, "encoder/zero_shot_i2t_top1_pool32": 0.35,
                                "encoder/probe_i2t_top1_pool32": 0.3, "encoder/chance_pool32": 1 / 32,
                                "encoder/chance": 1 / 256, "encoder/n_heldout": 256.0, "encoder/loss_first": 5.1,
                                "encoder/loss_last": 2.3, "encoder/steps": 600.0, "encoder/build_s": 245.3,
                                "encoder/read_top1_96_large": 0.48, "encoder/read_top1_96_small": 0.2,
                                "encoder/read_top1_160_large": 0.53, "encoder/read_top1_160_small": 0.43})
                    rows.append(row)
    return pd.DataFrame(rows)


def make_connectors_curves(frame: pd.DataFrame) -> dict:
    """Noisy training losses logged every 10 steps, as the cells log them."""
    rng = np.random.default_rng(3)
    steps = np.arange(0, 301, 10)
    return {cid: [(int(s), float(3.0 * np.exp(-s / (60 + 7 * i)) + 1.2 + rng.normal(0, 0.15))) for s in steps]
            for i, cid in enumerate(frame["cell_id"])}


def make_connectors_meta(**kw) -> ReportMeta:
    args = {"grid_name": "connectors", "grid_file": "grids/connectors.yaml", "date": "2026-11-28 10:00 UTC",
            "git_commit": "0a1aa19", "device": "box (x86_64, 2 cores, CPU only, torch 2.5)",
            "total_wall_s": 1500.0, "elapsed_s": 1560.0, "swept_axes": CONNECTORS_AXES, "fixed": CONNECTORS_FIXED}
    args.update(kw)
    return ReportMeta(**args)


TEXT, VQA = "score/world_textvqa/0shot", "score/world_vqa/0shot"
EFFECT = {0: 0.10, 1: 0.11, 2: 0.12}  # resolution 160 minus 96 on TextVQA, per seed
HALF = 0.02  # each run's bootstrap interval: score ± 0.02


def injected_frame() -> pd.DataFrame:
    """The connectors grid with known scores: TextVQA at chance (1/12) with attn-pool at either resolution, 30 %
    with avg-pool at 96 px and 20/22/24 points more at 160 px in seeds 0/1/2: resolution 160 vs 96 is +10/+11/+12
    points over both connectors (+11 on average); tokens change nothing beyond small per-run noise."""
    f = make_connectors_frame()
    rng = np.random.default_rng(0)
    for i, r in f.iterrows():
        seed = int(r["seed"])
        reads = r["connector.name"] == "avg-pool"
        text = 0.30 + 2 * EFFECT[seed] * (r["encoder.resolution"] == 160) if reads else 0.0845
        text += rng.normal(0, 0.003)
        vqa = 0.40 + rng.normal(0, 0.003)
        for col, v in ((TEXT, text), (VQA, vqa)):
            tail = col.removeprefix("score/")
            f.loc[i, col], f.loc[i, f"ci_low/{tail}"], f.loc[i, f"ci_high/{tail}"] = v, v - HALF, v + HALF
    return f


EMPTY = {"avg-pool": 0.25, "c-abstractor": 0.0, "mlp": 0.75}   # mean of the seeds (seed 0: -0.05, seed 1: +0.05)


def with_empty(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with the share of empty predictions each finished run logs (`EMPTY`, seeds -0.05 / +0.05 apart,
    c-abstractor none) and TextVQA's share of unknown tokens in the references."""
    frame = frame.copy()
    done = frame["status"] == "FINISHED"
    for task in TASKS:
        for k in (0, 4):
            shift = np.where(frame["seed"] == 0, -0.05, 0.05) * (frame["connector.name"] != "c-abstractor")
            frame[f"empty/{task}/{k}shot"] = (frame["connector.name"].map(EMPTY) + shift).where(done)
    frame["eval/world_textvqa/unk_share"] = 0.125   # world_vqa: not logged
    return frame


# A report build is seconds (figures, PDF layout) and reading a PDF back with pdfplumber about a second: the
# reports that several test files read are built once per test run.

def overflow(pdf) -> list[tuple[int, str, int]]:
    """The characters of an open pdfplumber PDF closer than 20 pt to a side or 10 pt to the bottom of their page:
    (page number, character, right edge)."""
    bad = []
    for i, page in enumerate(pdf.pages, 1):
        for c in page.chars:
            if c["x0"] < 20 or c["x1"] > page.width - 20 or c["bottom"] > page.height - 10:
                bad.append((i, c["text"], round(c["x1"])))
    return bad
