"""runners/slurm.yaml: the pending cells as one Slurm array job, through submitit.

Each array task runs one cell in-process (`ablate.runners.child.run_one`: claim, stale-run clean-up, train,
evaluate, store). A task that hits its time limit or is preempted is requeued by submitit (`Checkpointable`) and
resumes from the cell's last checkpoint. Running `ablate run ... --runner runners/slurm.yaml` again submits only
the cells not finished. `cluster: local` runs the same jobs as processes on this machine (the tests use it).
The workspace home (store, claims, checkpoints) must be on a file system every node sees.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import submitit

from ablate.config.grid import Grid
from ablate.runners import child, protocol
from ablate.runners.local import GridOutcome, claims_dir, open_store
from ablate.runners.process import close_crashed, latest_reason
from ablate.workspace import Workspace


class CellJob(submitit.helpers.Checkpointable):
    """One array task: one cell. Requeued with the same arguments on timeout/preemption (it resumes itself)."""

    def __call__(self, grid_path: str, cell_id: str, home: str, tracking_uri: str, reports: str) -> int:
        return child.run_one(grid_path, cell_id, home, tracking_uri, reports)


class SlurmRunner:
    def __init__(self, cfg):
        self.cfg = cfg

    def executor(self, workspace: Workspace) -> submitit.AutoExecutor:
        cfg = self.cfg
        folder = cfg.folder.replace("{home}", str(workspace.home))
        executor = submitit.AutoExecutor(folder=folder, cluster=cfg.cluster, slurm_max_num_timeout=cfg.max_requeue,
                                         local_max_num_timeout=cfg.max_requeue)
        params = {"timeout_min": cfg.timeout_min, "gpus_per_node": cfg.gpus_per_node,
                  "cpus_per_task": cfg.cpus_per_task, "tasks_per_node": 1, "nodes": 1, "name": "ablate"}
        if cfg.mem_gb:
            params["mem_gb"] = cfg.mem_gb
        if executor.cluster == "slurm":
            params.update(slurm_array_parallelism=cfg.array_parallelism, slurm_setup=list(cfg.setup),
                          slurm_additional_parameters=dict(cfg.slurm_additional_parameters))
            if cfg.partition:
                params["slurm_partition"] = cfg.partition
        elif executor.cluster == "local" and cfg.setup:
            params["local_setup"] = list(cfg.setup)
        executor.update_parameters(**params)
        return executor

    def run(self, grid: Grid, workspace: Workspace) -> GridOutcome:
        store, experiment = open_store(workspace, grid)
        outcome = GridOutcome()
        finished = store.finished_cells(experiment)
        pending = [c for c in grid.cells if c.id not in finished]
        outcome.skipped = [c.id for c in grid.cells if c.id in finished]
        if not pending:
            return outcome
        executor = self.executor(workspace)
        n = len(pending)
        jobs = executor.map_array(CellJob(), [str(grid.path.resolve())] * n, [c.id for c in pending],
                                  [str(workspace.home)] * n, [workspace.tracking_uri] * n,
                                  [str(workspace.reports)] * n)
        record = workspace.home / "submitit" / f"{grid.name}-jobs.json"
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_text(json.dumps({"submitted": time.time(), "jobs": {c.id: j.job_id for c, j in
                                                                          zip(pending, jobs)}}, indent=1))
        print(f"submitted {n} cells as {executor.cluster} jobs {jobs[0].job_id.split('_')[0]}... (ids in {record})")
        if not self.cfg.wait:
            outcome.claimed_elsewhere = [c.id for c in pending]   # running under the scheduler, not here
            return outcome
        for cell, job in zip(pending, jobs):
            try:
                rc = job.result()
            except Exception as err:  # noqa: BLE001 - the job died: a FailedJobError / UncompletedJobError
                reason = f"job {job.job_id} did not complete: {str(err).strip().splitlines()[-1][:300]}; " \
                         f"logs {Path(job.paths.stdout).parent}"
                close_crashed(store, experiment, grid, cell, reason, claims_dir(workspace))
                outcome.failed[cell.id] = reason
                continue
            if rc == protocol.EXIT_FINISHED:
                outcome.finished.append(cell.id)
            elif rc == protocol.EXIT_CLAIMED:
                outcome.claimed_elsewhere.append(cell.id)
            elif rc == protocol.EXIT_SKIPPED:
                outcome.skipped.append(cell.id)
            elif rc == protocol.EXIT_STORE:
                outcome.failed[cell.id] = (f"the store or the workspace could not be written (disk full or read-only?);"
                                           f" job {job.job_id}, log {job.paths.stdout}")
            else:
                outcome.failed[cell.id] = latest_reason(store, experiment, cell.id) or f"exit code {rc} " \
                                          f"(job {job.job_id}, log {job.paths.stdout})"
        return outcome
