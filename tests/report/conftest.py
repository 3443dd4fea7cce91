"""A small hand-made results frame: 3 connectors x 2 token counts x 2 seeds, one failed and one missing cell."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

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


@pytest.fixture
def frame() -> pd.DataFrame:
    return make_frame()


@pytest.fixture
def meta() -> ReportMeta:
    return make_meta()


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
