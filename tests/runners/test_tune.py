"""`ablate tune`: Optuna TPE over the learning rate per connector, its own sqlite storage, MLflow runs per trial,
a tuned grid file the runners then use; a killed study resumes (stale trial re-run with the same parameters)."""
import time

import optuna
import pytest
from runner_helpers import store_for

from ablate.config.errors import GridError
from ablate.resolve import load_grid
from ablate.tune import storage, tune_grid, tuned_path


@pytest.fixture(autouse=True)
def one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.slow
def test_tune_per_connector_writes_a_grid_pinned_to_the_best_lr(make_grid, workspace, capsys):
    grid = load_grid(make_grid(axes="connector.name: [avg-pool, mlp]", steps=3, extra="seeds: [0, 1]\n"))
    assert tune_grid(grid, workspace, trials=2, per="connector.name", objective="loss") == 0

    studies = {s.study_name: s for s in optuna.get_all_study_summaries(storage(workspace))}
    assert set(studies) == {"tiny/connector.name=avg-pool", "tiny/connector.name=mlp"}
    assert (workspace.home / "optuna.db").is_file() and (workspace.home / "mlflow.db").is_file()
    best = {}
    for name in studies:
        study = optuna.load_study(study_name=name, storage=storage(workspace))
        assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
        assert study.best_value == min(t.value for t in study.trials)
        best[name.split("=")[1]] = study.best_params["lr"]

    store = store_for(workspace)                                       # one MLflow run per trial
    experiment = store.client.get_experiment_by_name("tiny-tune").experiment_id
    runs = store.runs(experiment)
    assert len(runs) == 4 and {r.status for r in runs} == {"FINISHED"}
    assert sorted(r.metrics["tune/value"] for r in runs) == pytest.approx(
        sorted(t.value for n in studies for t in optuna.load_study(study_name=n, storage=storage(workspace)).trials))

    tuned = load_grid(tuned_path(grid))                                # the runners' input
    assert tuned.name == "tiny-tuned" and len(tuned.cells) == len(grid.cells) == 4
    for cell in tuned.cells:
        assert cell.config.train.lr == pytest.approx(best[cell.axes["connector.name"]], rel=1e-2)
    assert sorted(c.config.train.seed for c in tuned.cells) == [0, 0, 1, 1]
    assert "best lr" in capsys.readouterr().out


@pytest.mark.slow
def test_a_killed_study_resumes_and_reruns_the_stale_trial(make_grid, workspace):
    grid = load_grid(make_grid(axes="connector.name: [mlp]", steps=2))
    study_storage = storage(workspace, heartbeat_s=1, grace_s=1)
    study = optuna.create_study(study_name="tiny/connector.name=mlp", storage=study_storage,
                                sampler=optuna.samplers.TPESampler(seed=0))
    killed = study.ask({"lr": optuna.distributions.FloatDistribution(1e-5, 3e-2, log=True)})
    study_storage.record_heartbeat(killed._trial_id)          # ... then the process died mid-trial
    time.sleep(2.5)
    tune_grid(grid, workspace, trials=1, per="connector.name", objective="loss", heartbeat_s=1, grace_s=1)
    trials = optuna.load_study(study_name="tiny/connector.name=mlp", storage=study_storage).trials
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE"]
    assert trials[1].params["lr"] == killed.params["lr"]     # the same trial again, not a new one


def test_tune_per_must_name_an_axis(make_grid, workspace):
    grid = load_grid(make_grid(axes="connector.name: [mlp]"))
    with pytest.raises(GridError, match="key 'encoder.name'.*Allowed: connector.name, none"):
        tune_grid(grid, workspace, per="encoder.name")
