"""The run record (`ablate.record`): its fields as MLflow tags and `run_record.json`, and `ablate show CELL`."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
import torch

from ablate import record
from ablate.cell import log_record
from ablate.cli import main
from ablate.resolve import load_grid
from ablate.tracking.results import read_json_artifact
from ablate.tracking.store import Store

REPO = Path(__file__).resolve().parents[2]


def _head() -> str:
    return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=REPO).stdout.strip()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_record_is_in_mlflow_and_show_prints_it(make_grid, workspace, capsys):
    path = make_grid(axes="connector.name: [avg-pool, mlp]")
    grid = load_grid(path)
    cell = grid.cells[1]
    store = Store(workspace.tracking_uri, workspace.artifacts)
    logger = store.start_run(store.experiment_id(grid), grid, cell)
    log_record(cell.config, None, workspace, logger)   # no world: the backbones and versions are still recorded
    logger.log_metrics({"score/world_vqa/0shot": 0.25, "wall_s": 12.0})
    logger.finish("FINISHED")

    run = store.client.get_run(logger.run_id)
    tags = run.data.tags
    assert tags["mlflow.source.git.commit"] == _head() == tags["ablate.env.commit"]
    assert tags["ablate.env.torch"] == metadata.version("torch")
    assert tags["ablate.env.mlflow"] == metadata.version("mlflow")
    assert tags["ablate.env.threads"] == str(torch.get_num_threads())
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True,
                           cwd=REPO).stdout.strip()
    assert tags["ablate.env.dirty"] == str(bool(dirty)).lower()
    if not torch.cuda.is_available():
        assert tags["ablate.env.gpus"] == "none" and "CPU only" in tags["ablate.env.machine"]
    saved = read_json_artifact(store, logger.run_id, record.RECORD_FILE)
    assert set(saved) == {"versions", "code", "device", "files", "prompts", "config"}
    assert set(record.LIBRARIES) <= set(saved["versions"]) and saved["code"]["commit"] == _head()
    assert saved["config"] == json.loads(json.dumps(cell.config.model_dump(mode="json")))
    encoder = Path(cell.config.encoder.name.removeprefix("hf:"))
    entry = saved["files"][f"encoder:{encoder}"]
    assert entry["files"] == sum(1 for p in encoder.rglob("*") if p.is_file())
    assert entry["sha256"] == record.fingerprint(encoder)["sha256"]
    assert tags["ablate.env.data"] == record.data_digest(saved["files"])

    assert main(["--home", str(workspace.home), "show", str(path), cell.id[:6]]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"cell {cell.id} of grid tiny")
    assert f"run {logger.run_id}: FINISHED, wall time 12 s" in out and "world_vqa/0shot 25.0 %" in out
    assert f"code: commit {_head()}" in out and f"torch {saved['versions']['torch']}" in out
    assert f"machine: {record.machine_label(saved['device'])}" in out
    assert f"encoder:{encoder}: sha256 {entry['sha256'][:16]}" in out
    assert f"connector.name = {cell.config.connector.name}" in out


def test_show_names_the_candidates_of_a_prefix_that_is_not_one_cell(make_grid, workspace, capsys):
    path = make_grid(axes="connector.name: [avg-pool, mlp]")
    grid = load_grid(path)
    Store(workspace.tracking_uri, workspace.artifacts).experiment_id(grid)   # a store, with no run yet
    assert main(["--home", str(workspace.home), "show", str(path), "zzz"]) == 2
    err = capsys.readouterr().err
    assert "'zzz' is not the id (or the start of one) of any cell of grid tiny" in err
    assert all(cell.id in err for cell in grid.cells)
    assert main(["--home", str(workspace.home), "show", str(path), grid.cells[0].id]) == 1   # no run yet
    assert "no run yet" in capsys.readouterr().out


def test_fingerprints_of_large_files_and_folders(tmp_path, monkeypatch):
    small = tmp_path / "data" / "a.jsonl"
    small.parent.mkdir()
    small.write_bytes(b'{"x": 1}\n')
    assert record.fingerprint(small) == {"sha256": _sha256(small), "bytes": 9}
    monkeypatch.setattr(record, "FULL_HASH_BYTES", 16)
    monkeypatch.setattr(record, "SAMPLE_BYTES", 4)
    big = tmp_path / "data" / "b.bin"
    big.write_bytes(b"0123456789" * 5)
    first = record.fingerprint(big)
    assert first["sampled"] and first["bytes"] == 50
    big.write_bytes(b"0123456789" * 5 + b"!")   # an append changes the size and the tail
    assert record.fingerprint(big)["sha256"] != first["sha256"]
    folder = record.fingerprint(tmp_path / "data")
    assert folder["files"] == 2 and folder["bytes"] == 9 + 51
    small.write_bytes(b'{"x": 2}\n')   # same size, other content
    assert record.fingerprint(tmp_path / "data")["sha256"] != folder["sha256"]


@pytest.mark.slow
def test_show_on_a_finished_cell(make_grid, workspace, capsys):
    """A tiny grid run to the end: its record fingerprints the world's question files and renders the prompts."""
    path = make_grid(axes="connector.name: [avg-pool]")
    assert main(["--home", str(workspace.home), "--reports", str(workspace.reports), "run", str(path),
                 "--runner", str(REPO / "runners" / "local.yaml"), "--no-report"]) == 0
    grid = load_grid(path)
    capsys.readouterr()
    assert main(["--home", str(workspace.home), "show", str(path), grid.cells[0].id[:8]]) == 0
    out = capsys.readouterr().out
    store = Store(workspace.tracking_uri, workspace.artifacts)
    run = store.runs(store.experiment_id(grid, create=False))[0]
    saved = read_json_artifact(store, run.run_id, record.RECORD_FILE)
    questions = Path(saved["files"]["world/questions/vqa_test.jsonl"]["path"])
    assert saved["files"]["world/questions/vqa_test.jsonl"]["sha256"] == _sha256(questions)
    assert f"world/questions/vqa_test.jsonl: sha256 {_sha256(questions)[:16]}" in out
    first = json.loads(questions.read_text().splitlines()[0])
    assert saved["prompts"]["rendered"]["world_vqa"] == "<image>" + first["prompt"]
    assert f"world_vqa: {('<image>' + first['prompt'])!r}" in out
    assert ": FINISHED" in out and f"machine: {record.machine_label(saved['device'])}" in out

    path.write_text(path.read_text().replace("tasks: [world_vqa]", "tasks: [world_vqa, world_textvqa]"))
    assert main(["--home", str(workspace.home), "--reports", str(workspace.reports), "eval", str(path),
                 "--no-report"]) == 0   # a later evaluation says where it ran, beside the training's record
    tags = store.client.get_run(run.run_id).data.tags
    assert tags["ablate.env.evaluated_on"] == record.machine_label(record.device())
    assert tags["ablate.env.evaluated_at_commit"] == _head() and "score/world_textvqa/0shot" in \
        store.client.get_run(run.run_id).data.metrics


def test_the_record_module_needs_no_mlflow():
    code = "import sys, ablate.record; print(sorted(m for m in ('mlflow', 'torch', 'pandas') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True).stdout
    assert out.strip() == "[]"
