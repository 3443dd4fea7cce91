"""runners/slurm.yaml: the pending cells as one Slurm array job, through submitit.

Each array task runs one cell in-process (`ablate.runners.child.run_one`: claim, stale-run clean-up, train,
evaluate, store). A task that hits its time limit or is preempted is requeued by submitit (`Checkpointable`) and
resumes from the cell's last checkpoint. Running `ablate run ... --runner runners/slurm.yaml` again submits only
the cells not finished. `cluster: local` runs the same jobs as processes on this machine (the tests use it).
The workspace home (store, claims, checkpoints) must be on a file system every node sees.

A cell on several processes (`nodes` x `tasks_per_node`, one per GPU by default): each array task is a job of
that many Slurm tasks; every task exports the rendezvous from the job's environment (`rendezvous_env`: RANK,
WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR = the job's first node, MASTER_PORT derived from the job id)
and runs `child.run_one`, which joins the process group (`ablate.train.parallel.init_from_env`) and trains its
share of each batch; rank 0 claims, logs, evaluates and records the outcome, as under runners/multigpu.yaml.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import submitit

from ablate.config.grid import Grid
from ablate.runners import child, protocol
from ablate.runners.local import GridOutcome, claims_dir, open_store
from ablate.runners.process import close_crashed, latest_reason
from ablate.workspace import Workspace


def processes_per_node(cfg) -> int:
    """Processes (Slurm tasks) per node: `tasks_per_node`, else one per GPU (at least one)."""
    return cfg.tasks_per_node or max(1, cfg.gpus_per_node)


def processes(cfg) -> int:
    """Processes that train one cell together: nodes x processes per node."""
    return cfg.nodes * processes_per_node(cfg)


def rendezvous_env() -> dict[str, str]:
    """RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT for this task, from the job's
    environment (Slurm's SLURM_PROCID / SLURM_NTASKS / SLURM_LOCALID / SLURM_JOB_NODELIST ..., or those of
    submitit's local executor) through submitit's `TorchDistributedEnvironment`: the rendezvous host is the job's
    first node, the port a function of the job id (the same on every task of the job, different between the
    array's cells); a MASTER_PORT already set (e.g. by `setup`) is kept. CUDA_VISIBLE_DEVICES is left alone: every
    task sees the node's GPUs and takes GPU LOCAL_RANK (`parallel.init_from_env`)."""
    dist = submitit.helpers.TorchDistributedEnvironment()
    return {"RANK": str(dist.rank), "WORLD_SIZE": str(dist.world_size), "LOCAL_RANK": str(dist.local_rank),
            "LOCAL_WORLD_SIZE": str(dist.local_world_size), "MASTER_ADDR": dist.master_addr,
            "MASTER_PORT": str(dist.master_port)}


class CellJob(submitit.helpers.Checkpointable):
    """One array task: one cell, on one process or on every task of a multi-process job (each exports its rank
    and the rendezvous first). Requeued with the same arguments on timeout/preemption (it resumes itself)."""

    def __call__(self, grid_path: str, cell_id: str, home: str, tracking_uri: str, reports: str) -> int:
        if submitit.JobEnvironment().num_tasks > 1:
            os.environ.update(rendezvous_env())
        return child.run_one(grid_path, cell_id, home, tracking_uri, reports)


class SlurmRunner:
    def __init__(self, cfg):
        self.cfg = cfg

    def executor(self, workspace: Workspace) -> submitit.AutoExecutor:
        cfg = self.cfg
        folder = cfg.folder.replace("{home}", str(workspace.home))
        executor = submitit.AutoExecutor(folder=folder, cluster=cfg.cluster, slurm_max_num_timeout=cfg.max_requeue,
                                         local_max_num_timeout=cfg.max_requeue)
        if executor.cluster == "debug" and processes(cfg) > 1:
            raise ValueError(f"cluster: debug runs a cell in this process: it cannot train on {processes(cfg)} "
                             "processes (use cluster: local, or tasks_per_node: 1 and gpus_per_node <= 1)")
        params = {"timeout_min": cfg.timeout_min, "gpus_per_node": cfg.gpus_per_node,
                  "cpus_per_task": cfg.cpus_per_task, "tasks_per_node": processes_per_node(cfg),
                  "nodes": cfg.nodes, "name": "ablate"}
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
        each = f" of {self.cfg.nodes} node(s) x {processes_per_node(self.cfg)} processes" if processes(self.cfg) > 1 \
            else ""
        print(f"submitted {n} cells as {executor.cluster} jobs{each} {jobs[0].job_id.split('_')[0]}... "
              f"(ids in {record})")
        if not self.cfg.wait:
            outcome.submitted = [c.id for c in pending]   # running under the scheduler, not here
            return outcome
        for cell, job in zip(pending, jobs):
            try:   # rank 0 holds the claim and records the cell: its exit code is the cell's
                rc = (job.task(0) if processes(self.cfg) > 1 else job).result()
            except Exception as err:  # noqa: BLE001 - the job died: a FailedJobError / UncompletedJobError
                reason = f"job {job.job_id} did not complete: {str(err).strip().splitlines()[-1][:300]}; " \
                         f"logs {Path(job.paths.stdout).parent}"
                close_crashed(store, experiment, grid, cell, reason, claims_dir(workspace))
                outcome.failed[cell.id] = reason
                continue
            if outcome.settled(rc, cell.id):
                continue
            if rc == protocol.EXIT_STORE:
                outcome.failed[cell.id] = (f"the store or the workspace could not be written (disk full or read-only?);"
                                           f" job {job.job_id}, log {job.paths.stdout}")
            else:
                outcome.failed[cell.id] = latest_reason(store, experiment, cell.id) or f"exit code {rc} " \
                                          f"(job {job.job_id}, log {job.paths.stdout})"
        return outcome
