"""A cell's run record: what a rerun needs and what explains a difference between two runs of the same cell.

`collect` gathers, without mlflow (the training code must import without it):
- `versions`: torch, transformers, lmms-eval, mlflow, ablate and Python (package metadata, nothing imported);
- `code`: the git commit of the ablate source tree and whether tracked files differed from it (`dirty`);
- `device`: the CPU (model, vendor, family / model / stepping, its SIMD flags), the host, the cores, torch's
  intra-op and inter-op thread counts, `OMP_NUM_THREADS`, the accelerator (GPU names, driver, CUDA runtime);
- `files`: a fingerprint of every data and question file the cell reads (the embedded world's files, question
  sets and images, local `data.sources` and stage sources, custom-task question and demonstration files, local
  backbone folders and the zoo backbones' weights): `sha256` of the content; files over `FULL_HASH_BYTES` are
  fingerprinted by sha256 over their size, first and last `SAMPLE_BYTES` (`sampled: true`): cheap for large
  shards, and still different after any append or rewrite of a header; a folder is one digest over its files'
  names and digests (`files: N`), and over names, sizes and mtimes alone when it holds more than `MAX_TREE_FILES`;
- `prompts`: each evaluation task's prompt as the model reads it, rendered on the task's first question (with
  its demonstrations for k-shot: images show as `<image>`), and the templates it was rendered from;
- `config`: the resolved cell config (every default filled in).

`tags` turns a record into MLflow tags: MLflow's own `mlflow.source.git.commit` and `ablate.env.*` (one line
each, what the report compares across cells); the whole record goes to the run as `run_record.json`. A finished run
evaluated again later gets `evaluation_tags` (the machine and commit of that evaluation).
"""
from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

RECORD_FILE = "run_record.json"
ENV_TAG = "ablate.env."
LIBRARIES = ("torch", "transformers", "lmms-eval", "mlflow", "ablate")
FULL_HASH_BYTES = 64 * 2**20
SAMPLE_BYTES = 4 * 2**20
MAX_TREE_FILES = 20_000
SIMD = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "amx_bf16",
        "amx_tile", "asimd", "sve")   # the flags that change which kernels oneDNN / MKL / OpenBLAS pick
SOURCE = Path(__file__).resolve().parent


def versions() -> dict[str, str]:
    out = {}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    out["python"] = sys.version.split()[0]
    return out


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], check=False, capture_output=True, text=True, cwd=SOURCE, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def code() -> dict:
    """The commit of the source tree ablate runs from, `dirty` when tracked files differ from it (None: not a git
    checkout, e.g. an installed wheel)."""
    commit = _git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None}
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def _cpuinfo() -> dict[str, str]:
    info: dict[str, str] = {}
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return info
    for line in text.split("\n\n")[0].splitlines():   # the first processor speaks for all
        key, _, value = line.partition(":")
        info.setdefault(key.strip(), value.strip())
    return info


def device() -> dict:
    """CPU, host, threads and accelerator; torch is imported (the cell has loaded it already)."""
    import torch

    info = _cpuinfo()
    flags = info.get("flags", info.get("Features", "")).split()
    cpu = info.get("model name") or platform.processor() or platform.machine()
    out = {"cpu": cpu, "cpu_vendor": info.get("vendor_id", ""),
           "cpu_id": "/".join(info.get(k, "?") for k in ("cpu family", "model", "stepping")) if info else "",
           "cpu_simd": [f for f in SIMD if f in flags], "cpu_flags": flags,
           "host": platform.node(), "os": platform.platform(), "arch": platform.machine(),
           "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
           "torch_interop_threads": torch.get_num_interop_threads(),
           "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "gpus": [], "gpu_driver": None,
           "cuda": torch.version.cuda}
    if torch.cuda.is_available():
        out["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        try:
            smi = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"], check=False,
                                 capture_output=True, text=True, timeout=10)
            out["gpu_driver"] = smi.stdout.strip().splitlines()[0] if smi.returncode == 0 and smi.stdout else None
        except (OSError, subprocess.SubprocessError):
            pass
    return out


def machine_label(dev: dict) -> str:
    """One line: `AMD EPYC (avx2, fma; 2 cores, 2 threads), CPU only` or with the GPUs and driver."""
    simd = ", ".join(s for s in dev.get("cpu_simd", []) if s in ("avx2", "avx512f", "avx512_bf16", "amx_bf16",
                                                                  "asimd", "sve")) or "no AVX2"
    gpus = dev.get("gpus") or []
    accel = "CPU only" if not gpus else ", ".join(dict.fromkeys(gpus)) + (
        f" x{len(gpus)}" if len(gpus) > 1 else "") + (f" (driver {dev['gpu_driver']})" if dev.get("gpu_driver") else "")
    threads = dev.get("torch_threads")
    return (f"{dev.get('cpu') or 'unknown CPU'} ({simd}; {dev.get('cores')} cores, {threads} "
            f"thread{'s' * (threads != 1)}), {accel}")


def file_digest(path: Path) -> dict:
    """`{"sha256", "bytes"}` of a file; over `FULL_HASH_BYTES`, of its size, head and tail (`sampled: true`)."""
    size = path.stat().st_size
    digest = hashlib.sha256()
    with path.open("rb") as f:
        if size <= FULL_HASH_BYTES:
            for chunk in iter(lambda: f.read(2**20), b""):
                digest.update(chunk)
            return {"sha256": digest.hexdigest(), "bytes": size}
        digest.update(str(size).encode())
        digest.update(f.read(SAMPLE_BYTES))
        f.seek(size - SAMPLE_BYTES)
        digest.update(f.read(SAMPLE_BYTES))
    return {"sha256": digest.hexdigest(), "bytes": size, "sampled": True}


def fingerprint(path: Path) -> dict:
    """A file's digest (`file_digest`), or one digest over a folder's files (`files`: how many)."""
    path = Path(path)
    if path.is_file():
        return file_digest(path)
    if not path.is_dir():
        return {"missing": True}
    files = sorted(p for p in path.rglob("*") if p.is_file())
    digest, size = hashlib.sha256(), 0
    stats_only = len(files) > MAX_TREE_FILES
    for p in files:
        stat = p.stat()
        size += stat.st_size
        part = f"{stat.st_size}:{stat.st_mtime_ns}" if stats_only else file_digest(p)["sha256"]
        digest.update(f"{p.relative_to(path).as_posix()}\0{part}\n".encode())
    out = {"sha256": digest.hexdigest(), "bytes": size, "files": len(files)}
    return out | ({"by": "names, sizes and mtimes"} if stats_only else {})


def used_files(cfg, world=None, cache_root: Path | None = None) -> dict[str, Path]:
    """Name -> file or folder of everything the cell reads: the world's files, local data sources (the cell's and
    its stages'), custom-task files, local and zoo backbones."""
    from ablate.config.spec import Spec

    out: dict[str, Path] = {}
    if world is not None:
        root = Path(world.root)
        for p in sorted(root.glob("*.json*")):
            out[f"world/{p.name}"] = p
        for p in sorted((root / "questions").glob("*")):
            out[f"world/questions/{p.name}"] = p
        out["world/images"] = root / "images"
        out["world/tokenizer"] = root / "tokenizer"
    sources = list(cfg.data.sources) + [s for stage in cfg.train.stages or [] for s in (stage.data.sources or [])]
    for source in sources:
        if source.format != "hub":
            out[f"data/{source.kind}:{source.path}"] = Path(source.path).expanduser()
    for custom in cfg.eval.custom_tasks:
        out[f"task/{custom.name}"] = Path(custom.path).expanduser()
        if custom.demo_path:
            out[f"task/{custom.name}/demo"] = Path(custom.demo_path).expanduser()
    for part in ("encoder", "llm"):
        spec = Spec.parse(getattr(cfg, part).name)
        if spec.family == "zoo" and cache_root is not None:
            from ablate.zoo import model_dir

            out[f"{part}:{spec.name}"] = model_dir(getattr(cfg, part).name, cache_root)
        elif spec.path is not None:
            out[f"{part}:{spec.path}"] = Path(spec.path)
    return out


def prompts(cfg, world=None) -> dict:
    """Each (task, shots)'s prompt on its first question, as the model reads it, and the templates."""
    from ablate.data.vqa import first_records
    from ablate.evaluation.taskfns import TaskFns
    from ablate.evaluation.tasks import plan

    out: dict = {"templates": {"fewshot_template": cfg.eval.fewshot_template,
                               **{f"task/{c.name}": c.prompt for c in cfg.eval.custom_tasks},
                               **{f"data/instruction:{s.path}": s.prompt for s in cfg.data.sources
                                  if s.kind == "instruction"}},
                 "rendered": {}}
    try:
        planned = plan(cfg.eval, world)
    except (OSError, ValueError, TypeError) as err:
        out["rendered"]["(none)"] = f"not rendered: {type(err).__name__}: {err}"
        return out
    for task in planned:
        if task.spec is None:
            out["rendered"][task.lmms_name] = "(a benchmark: lmms-eval's own prompt)"
            continue
        try:
            fns = TaskFns(task.spec)
            first = first_records(Path(task.spec.data_file), 1)
            text = fns.doc_to_text(first[0]) if first else "(no question)"
            out["rendered"][task.lmms_name] = _framed(text)
        except Exception as err:  # noqa: BLE001 - the record never stops a cell; the evaluation reports its own errors
            out["rendered"][task.lmms_name] = f"not rendered: {type(err).__name__}: {err}"
    return out


def _framed(text: str) -> str:
    """A conversation task's context (its turns, as lmms-eval passes them) in the plain frame the model reads, the
    closing `<eos>` of each earlier reply written out; any other prompt as it is."""
    from ablate.data.conversation import EOS, prompt_pieces
    from ablate.evaluation.spec import conversation_turns

    turns = conversation_turns(text)
    if turns is None:
        return text
    return "".join("<eos>" if piece == EOS else piece for piece in prompt_pieces(turns))


def collect(cfg, world=None, cache_root: Path | None = None) -> dict:
    """The run record of a cell about to train (`cfg`: its `CellConfig`; `world`: the built embedded world)."""
    files = {}
    for name, path in used_files(cfg, world, cache_root).items():
        try:
            files[name] = {"path": str(path), **fingerprint(path)}
        except OSError as err:
            files[name] = {"path": str(path), "error": f"{type(err).__name__}: {err}"}
    return {"versions": versions(), "code": code(), "device": device(), "files": files,
            "prompts": prompts(cfg, world), "config": cfg.model_dump(mode="json")}


def tags(record: dict) -> dict[str, str]:
    """MLflow tags of a record: `mlflow.source.git.commit` (MLflow's own key), `ablate.env.*` one line each."""
    dev, code_ = record["device"], record["code"]
    out = {f"{ENV_TAG}{name}": version for name, version in record["versions"].items()}
    out |= {f"{ENV_TAG}machine": machine_label(dev), f"{ENV_TAG}cpu": dev.get("cpu") or "",
            f"{ENV_TAG}cpu_simd": ", ".join(dev.get("cpu_simd", [])) or "none",
            f"{ENV_TAG}threads": str(dev.get("torch_threads")), f"{ENV_TAG}host": dev.get("host") or "",
            f"{ENV_TAG}gpus": ", ".join(dev.get("gpus") or []) or "none",
            f"{ENV_TAG}gpu_driver": dev.get("gpu_driver") or "none",
            f"{ENV_TAG}commit": code_["commit"] or "unknown", f"{ENV_TAG}dirty": str(code_["dirty"]).lower(),
            f"{ENV_TAG}data": data_digest(record["files"])}
    if code_["commit"]:
        out["mlflow.source.git.commit"] = code_["commit"]
    return out


def evaluation_tags() -> dict[str, str]:
    """Where and at which commit a finished run was last evaluated again (`ablate eval`, or `ablate run` on new
    tasks): `ablate.env.evaluated_on`, `ablate.env.evaluated_at_commit`, beside the training's own record."""
    return {f"{ENV_TAG}evaluated_on": machine_label(device()),
            f"{ENV_TAG}evaluated_at_commit": code()["commit"] or "unknown"}


def data_digest(files: dict) -> str:
    """One short digest over every file fingerprint (the same data gives the same 12 hex digits)."""
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(f"{name}\0{files[name].get('sha256', files[name].get('error', 'missing'))}\n".encode())
    return digest.hexdigest()[:12]


def describe(record: dict) -> list[str]:
    """The record as the lines `ablate show` prints."""
    v, c, d = record.get("versions", {}), record.get("code", {}), record.get("device", {})
    lines = ["versions: " + ", ".join(f"{k} {val}" for k, val in v.items()),
             f"code: commit {c.get('commit') or 'unknown'}" + (" (tracked files changed: dirty)" if c.get("dirty")
                                                              else " (clean)" if c.get("dirty") is False else ""),
             f"machine: {machine_label(d)}",
             f"  cpu: {d.get('cpu')} (vendor {d.get('cpu_vendor') or '?'}, family/model/stepping "
             f"{d.get('cpu_id') or '?'}); SIMD: {', '.join(d.get('cpu_simd', [])) or 'none'}",
             f"  host {d.get('host')}, {d.get('os')}; {d.get('cores')} cores; torch threads {d.get('torch_threads')} "
             f"(inter-op {d.get('torch_interop_threads')}), OMP_NUM_THREADS {d.get('omp_num_threads') or 'unset'}",
             f"  GPUs: {', '.join(d.get('gpus') or []) or 'none'}" + (
                 f" (driver {d['gpu_driver']}, CUDA {d.get('cuda')})" if d.get("gpus") else "")]
    files = record.get("files", {})
    lines.append(f"files ({len(files)}; digest {data_digest(files)}):")
    for name, f in files.items():
        what = f.get("error") or ("missing" if f.get("missing") else
                                  f"sha256 {f['sha256'][:16]}  {f['bytes']:,} bytes" +
                                  (f", {f['files']} files" if "files" in f else "") +
                                  (" (head and tail)" if f.get("sampled") else ""))
        lines.append(f"  {name}: {what}  {f.get('path', '')}")
    p = record.get("prompts", {})
    lines.append("prompts (each task's first question, as the model reads it):")
    for name, text in p.get("rendered", {}).items():
        lines.append(f"  {name}: {text!r}")
    for name, text in p.get("templates", {}).items():
        lines.append(f"  template {name}: {text!r}")
    lines.append("config (resolved):")
    lines += [f"  {key} = {value}" for key, value in _flat(record.get("config", {}))]
    return lines


def _flat(tree, prefix: str = ""):
    if isinstance(tree, dict) and tree:
        for key, value in tree.items():
            yield from _flat(value, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, tree
