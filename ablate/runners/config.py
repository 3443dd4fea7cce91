"""Runner files (runners/*.yaml): where cells run, as typed configs. `kind` picks the runner.

```yaml
kind: workers            # local | subprocess | workers | multigpu | slurm
workers: auto            # one per GPU, or per `threads_per_worker` CPU cores without a GPU
time_limit_s: 3600
```
Every file is validated before anything runs; a `GridError` names the runner file, the key and what is allowed.

A kind is one config class (its `kind` literal, its settings, `build()` for the runner it describes) and one entry
of `CONFIGS`; the union pydantic validates, the kind names and the lookup by name all come from that tuple.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, ValidationInfo, field_validator

from ablate.config.errors import GridError


class _Runner(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def build(self):
        """The runner this file describes: an object with `.run(grid, workspace) -> GridOutcome`."""
        raise NotImplementedError

    def check(self, path: Path) -> None:
        """Checks that need more than the file (an interpreter to run): GridError naming `path` and the key."""


class _Processes(_Runner):
    time_limit_s: float | None = Field(None, gt=0, description="a cell still running after this is killed, FAILED")
    grace_s: float = Field(10.0, ge=0, description="after Ctrl-C/SIGTERM, seconds a child has to close its run")
    env: dict[str, str] = Field(default_factory=dict, description="extra environment for each cell's process")
    python: str | None = Field(None, description="interpreter for the cells (default: the one running ablate)")

    def check(self, path: Path) -> None:
        if self.python is not None:
            check_python(path, self.python)

    def process_options(self) -> dict:
        return {"time_limit_s": self.time_limit_s, "grace_s": self.grace_s, "env": dict(self.env),
                "python": self.python}


PYTHON_CHECK_S = 60   # an interpreter that does not answer `import ablate` in this long is refused


def check_python(path: Path, python: str) -> None:
    """`python:` must run and import ablate (the cells run `python -m ablate.runners.child`)."""
    found = shutil.which(python)
    if found is None:
        raise GridError(path, f"no executable {python!r} (a path, or a name on PATH)", key="python", got=python)
    code = "import sys, ablate; print('ablate-python-ok', sys.version_info[0])"
    try:
        out = subprocess.run([found, "-c", code], capture_output=True, text=True, timeout=PYTHON_CHECK_S)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise GridError(path, f"{python!r} cannot be run as the cells' interpreter ({type(err).__name__})",
                        key="python", got=python) from None
    if out.returncode != 0 or "ablate-python-ok 3" not in out.stdout:
        said = (out.stderr.strip().splitlines() or [""])[-1][:200]
        raise GridError(path, f"{python!r} is not a Python that imports ablate (exit {out.returncode}"
                        + (f": {said}" if said else "") + f"); the interpreter running ablate is {sys.executable}",
                        key="python", got=python)


class LocalConfig(_Runner):
    """In this process, one cell after another (features of a frozen encoder shared across cells)."""

    kind: Literal["local"]

    def build(self):
        from ablate.runners.local import LocalRunner  # lazy: the runners load torch

        return LocalRunner()


class SubprocessConfig(_Processes):
    """Each cell in its own process, one after another: a crash, OOM kill or hang fails that cell only."""

    kind: Literal["subprocess"]

    def build(self):
        from ablate.runners.process import ProcessRunner, Slot  # lazy: loads torch

        return ProcessRunner(slots=[Slot("subprocess")], **self.process_options())


class WorkersConfig(_Processes):
    """N cells at once on one machine, one per GPU (or per CPU slot); cells claimed through file locks."""

    kind: Literal["workers"]
    workers: Annotated[int, Field(ge=1)] | Literal["auto"] = Field(
        "auto", description="'auto': one per GPU, else cores // threads")
    gpus: list[Annotated[int, Field(ge=0)]] | Literal["auto", "none"] = Field(
        "auto", description="GPU indices to spread workers over")
    threads_per_worker: int = Field(1, ge=1, description="OMP/MKL threads for each worker's process")

    def build(self):
        from ablate.runners.process import ProcessRunner  # lazy: loads torch

        return ProcessRunner(slots=worker_slots(self), reuse=True, **self.process_options())


class MultiGPUConfig(_Processes):
    """One cell at a time on several GPUs, launched with `accelerate launch` or `torchrun`."""

    kind: Literal["multigpu"]
    launcher: Literal["accelerate", "torchrun"] = "accelerate"
    gpus: int = Field(2, ge=1, description="processes (GPUs) per cell")
    mixed_precision: Literal["no", "bf16", "fp16"] = "bf16"
    main_process_port: int | None = Field(None, ge=1, le=65535, description="rendezvous port (default: free one)")
    extra_args: list[str] = Field(default_factory=list, description="appended to the launcher's own options")

    def build(self):
        from ablate.runners.multigpu import launcher_argv  # lazy: loads torch
        from ablate.runners.process import ProcessRunner, Slot

        return ProcessRunner(slots=[Slot(multigpu_slot_name(self.gpus))], launcher=launcher_argv(self),
                             **self.process_options())


class SlurmConfig(_Runner):
    """An array job over the pending cells, through submitit (cluster: 'local' runs it on this machine)."""

    kind: Literal["slurm"]
    cluster: Literal["slurm", "local", "debug"] | None = Field(None, description="None: slurm if sbatch exists")
    folder: str = Field("{home}/submitit/%j", description="job logs and pickles; {home} is the workspace home")
    partition: str | None = None
    timeout_min: int = Field(60, ge=1)
    gpus_per_node: int = Field(1, ge=0)
    nodes: int = Field(1, ge=1, description="nodes per cell; with several processes a cell trains data-parallel")
    tasks_per_node: int | None = Field(None, ge=1, description="processes per node (None: one per GPU, at least 1)")
    cpus_per_task: int = Field(8, ge=1)
    mem_gb: float | None = Field(None, gt=0)
    array_parallelism: int = Field(16, ge=1, description="at most this many cells at once")
    max_requeue: int = Field(3, ge=0, description="requeues after a timeout or preemption (resume from checkpoint)")
    wait: bool = Field(True, description="wait for the jobs and return their outcome; False: submit and return")
    slurm_additional_parameters: dict[str, str | int] = Field(default_factory=dict)
    setup: list[str] = Field(default_factory=list, description="shell lines run before each job (module load ...)")

    @field_validator("nodes")
    @classmethod
    def _one_node_here(cls, nodes: int, info: ValidationInfo) -> int:
        if nodes > 1 and info.data.get("cluster") in ("local", "debug"):
            raise ValueError(f"cluster: {info.data['cluster']} runs on this machine only, so nodes must be 1 "
                             "(tasks_per_node gives several processes on it)")
        return nodes

    def build(self):
        from ablate.runners.slurm import SlurmRunner  # lazy: loads submitit

        return SlurmRunner(self)


CONFIGS: tuple[type[_Runner], ...] = (LocalConfig, SubprocessConfig, WorkersConfig, MultiGPUConfig, SlurmConfig)
BY_KIND: dict[str, type[_Runner]] = {c.model_fields["kind"].annotation.__args__[0]: c for c in CONFIGS}
KINDS = list(BY_KIND)
RunnerConfig = Annotated[Union[CONFIGS], Field(discriminator="kind")]


def read_runner_config(path: Path) -> RunnerConfig:
    """Read and validate a runner file; GridError (file, key, allowed values) on any problem."""
    path = Path(path)
    if not path.is_file():
        near = sorted(p.name for p in path.parent.glob("*.yaml")) if path.parent.is_dir() else []
        raise GridError(path, "runner file not found" + (f" (runner files next to it: {', '.join(near)})"
                                                         if near else ""))
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        raise GridError(path, f"not valid YAML: {getattr(err, 'problem', err)}",
                        line=mark.line + 1 if mark else None) from None
    if not isinstance(raw, dict) or "kind" not in raw:
        raise GridError(path, "a runner file is a mapping with a 'kind'", key="kind", allowed=KINDS)
    if raw["kind"] not in KINDS:
        raise GridError(path, f"unknown runner kind {raw['kind']!r}", key="kind", allowed=KINDS, got=raw["kind"])
    try:
        cfg = TypeAdapter(RunnerConfig).validate_python(raw)
    except ValidationError as err:
        first = err.errors()[0]
        loc = [str(p) for p in first["loc"][1:]]            # drop the union tag
        key = loc[0] if loc else "kind"                        # runner files are flat (type tags may follow)
        model = BY_KIND[raw["kind"]]
        if first["type"] == "extra_forbidden":
            raise GridError(path, "unknown key for a runner of kind " + repr(raw["kind"]), key=key,
                            allowed=list(model.model_fields), got=key) from None
        allowed = None
        if first["type"] == "literal_error":
            expected = first.get("ctx", {}).get("expected", "")
            allowed = [a.strip().strip("'") for a in expected.replace(" or ", ", ").split(",") if a.strip()]
        raise GridError(path, f"{first['msg']} (got {first.get('input')!r})", key=key, allowed=allowed,
                        got=first.get("input")) from None
    cfg.check(path)
    return cfg


def load_runner_file(path: Path):
    """The runner a file describes: an object with `.run(grid, workspace) -> GridOutcome`."""
    cfg = read_runner_config(path)
    return build_runner(cfg)


def build_runner(cfg: _Runner):
    """The runner of a validated config (each kind's `build`; the runners load torch, so only when asked)."""
    return cfg.build()


def setup_commands(path: str | Path | None) -> list[str]:
    """The shell lines a runner file runs before each job (`setup`), for the dry run to show: a shared runner file
    runs them on the user's account."""
    return list(getattr(read_runner_config(Path(path)), "setup", [])) if path is not None else []


def multigpu_slot_name(processes: int, gpu_count: int | None = None) -> str:
    """What a multigpu cell runs on, as the progress line says it: GPUs when there are any, else processes."""
    if gpu_count is None:
        import torch  # lazy: only to count GPUs

        gpu_count = torch.cuda.device_count()
    plural = "" if processes == 1 else "s"
    return f"{processes} GPU{plural}" if gpu_count else f"{processes} process{'es' if plural else ''} (no GPU)"


def usable_cpus() -> int:
    """The cores this process may run on (its affinity mask, e.g. a Slurm or taskset allocation), not the machine's."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:   # macOS, Windows
        return os.cpu_count() or 1


def worker_slots(cfg: WorkersConfig, gpu_count: int | None = None, cpu_count: int | None = None) -> list:
    """One slot per worker: a GPU each (round-robin over `gpus`), or CPU threads each."""
    from ablate.runners.process import Slot  # lazy: loads torch

    if cfg.gpus == "none":
        gpus: list[int] = []
    elif cfg.gpus == "auto":
        if gpu_count is None:
            import torch  # lazy: only to count GPUs

            gpu_count = torch.cuda.device_count()
        gpus = list(range(gpu_count))
    else:
        gpus = list(cfg.gpus)
    cpu_count = cpu_count or usable_cpus()
    threads = str(cfg.threads_per_worker)
    n = cfg.workers if cfg.workers != "auto" else (len(gpus) or max(1, cpu_count // cfg.threads_per_worker))
    cpu_env = {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    if gpus:
        return [Slot(f"gpu{gpus[i % len(gpus)]}", {"CUDA_VISIBLE_DEVICES": str(gpus[i % len(gpus)]), **cpu_env})
                for i in range(n)]
    return [Slot(f"cpu{i}", {"CUDA_VISIBLE_DEVICES": "", **cpu_env}) for i in range(n)]
