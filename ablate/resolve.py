"""From a grid file to validated, identified cells: `load_grid(path) -> Grid`.

`ablate.config` reads and expands a grid as plain data; this module sits above the registries (world, zoo, models,
evaluation) and does what needs them, before anything is built or written:
- checks each cell against the registries: backbone specs (`Spec`) that name a zoo model, a local folder or file, or
  weights in the Hugging Face cache; connector names, options and token counts against the encoder's patch grid
  (read from the zoo recipe or the encoder's `config.json`, never by building a model); task names; local data
  files; a resolution that is not a multiple of the patch is a warning;
- gives each cell its id, its *training identity*: the hash of its canonical config without the `eval` block, plus
  what its names stand for (`provenance`: the world's hash, and the recipe hash of each zoo backbone), so a cell
  whose world or zoo recipe changed is a new cell, and a cell whose evaluation settings changed is the same trained
  model (its evaluations are keyed apart: `ablate.evaluation.keys`). `legacy_cell_id` is the id cells had before
  (the eval block included), by which runs made then are recognised;
- checks each custom task's files before anything trains (`ablate.evaluation.checks`): the file parses, every named
  column is there, the answers have a usable shape, the first images open.

Checks and hashes are computed once per distinct encoder / connector / world within a call, so a grid of tens of
thousands of cells validates in seconds. Heavy libraries are imported only for what a grid names (timm for `timm:`
encoders, transformers for an `hf:` encoder that is neither local nor cached while online).
"""
from __future__ import annotations

import glob
import hashlib
import json
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from ablate.config import fusion
from ablate.config.errors import CellCheckError
from ablate.config.grid import Cell, Grid, expand_grid
from ablate.config.schema import CellConfig, EncoderConfig
from ablate.config.spec import Spec, SpecError
from ablate.config.stages import plan
from ablate.data.conversation import check_file as conversation_check
from ablate.data.vqa import QuestionFileError, check_instruction_source
from ablate.evaluation.checks import check_custom_task, check_fewshot_template, plan_warnings
from ablate.evaluation.tasks import known_task_names
from ablate.models import families
from ablate.world.identity import world_hash

MAX_CELLS = 1000   # `ablate run` refuses bigger grids unless told `--max-cells N`

# The dotted keys of `CellConfig` when ids took their present form (list items as `key[].field`). A key added to the
# schema later enters an id only when a cell sets it to something other than its default, so adding a setting (with
# a default that does what the code did before) changes no id and no finished cell is run again.
ID_KEYS = frozenset("""
encoder encoder.name encoder.resolution encoder.feature_layer encoder.keep_cls encoder.image_handling
encoder.max_slices connector connector.name connector.tokens connector.options llm llm.name data data.mixture
data.sources data.sources[].kind data.sources[].path data.sources[].format data.sources[].image_column
data.sources[].text_column data.world data.world.seed data.world.image_size data.world.n_train data.world.n_pretrain
data.world.n_test data.world.n_demo data.world.n_text_docs data.world.n_interleaved_docs data.world.words_per_image
data.world.n_words data.max_length train train.steps train.batch_size train.lr train.warmup_ratio
train.weight_decay train.grad_clip train.lr_multipliers train.seed train.precision train.checkpoint_every
train.log_every train.feature_cache eval eval.tasks eval.shots eval.limit eval.batch_size eval.max_new_tokens
eval.bootstrap eval.text_perplexity eval.fewshot_seed eval.fewshot_template eval.custom_tasks
eval.custom_tasks[].name eval.custom_tasks[].path eval.custom_tasks[].demo_path eval.custom_tasks[].image_root
eval.custom_tasks[].image_column eval.custom_tasks[].question_column eval.custom_tasks[].answers_column
eval.custom_tasks[].id_column eval.custom_tasks[].type_column eval.custom_tasks[].prompt eval.custom_tasks[].metric
eval.n_predictions
""".split())


def load_grid(path: str | Path, max_cells: int | None = None) -> Grid:
    """Read, expand, check and identify a grid file. Raises `GridError` (file, line, key, allowed) before anything
    runs or is written. `max_cells`: refuse grids with more cells (None: `ablate.config.grid.CELL_CEILING`)."""
    expanded = expand_grid(path, max_cells)
    resolver = Resolver()
    warnings: dict[str, None] = {}
    for check in (resolver.check, resolver.check_connector, resolver.check_lora):   # these import torch: last
        for config, labels in expanded.points:
            try:
                warnings.update(dict.fromkeys(check(config)))
            except CellCheckError as err:
                raise expanded.error(err.key, err.message, labels, err.allowed, err.got) from None
    cells = [Cell(config, labels, resolver.cell_id(config, text))
             for (config, labels), text in zip(expanded.points, expanded.canonical)]
    _one_trained_model_per_cell(expanded, cells)
    return Grid(name=expanded.name, path=expanded.path, cells=cells, axes=expanded.axes, base=expanded.base,
                description=expanded.description, fixed=expanded.fixed, warnings=tuple(warnings))


def make_cell(config: CellConfig, axes: dict[str, Any]) -> Cell:
    """A cell for a config made in code (e.g. a tuning trial), with its id."""
    return Cell(config, axes, cell_id(config))


def cell_id(config: CellConfig) -> str:
    """The cell's training identity: everything that changes the trained weights (not the `eval` block)."""
    return Resolver().cell_id(config)


def legacy_cell_id(config: CellConfig) -> str:
    """The id this config had before evaluation was keyed apart from training (the eval block included): runs
    tagged with it were made then, and are recognised as this cell's (`ablate.commands.adopt_legacy_runs`)."""
    return Resolver().legacy_cell_id(config)


def _one_trained_model_per_cell(expanded, cells: list[Cell]) -> None:
    """Two points that differ only in their `eval` block are one trained model: refuse the grid, naming the axis."""
    seen: dict[str, dict] = {}
    for cell in cells:
        if cell.id in seen:
            other = seen[cell.id]
            keys = [k for k in cell.axes if cell.axes[k] != other.get(k)] or ["eval"]
            raise expanded.error(keys[0], "cells that differ only in their evaluation settings are one trained model "
                                 "(a cell's id leaves the eval block out): list the tasks and shot counts in one "
                                 "eval block instead of sweeping them", cell.axes)
        seen[cell.id] = cell.axes


def identity_json(config: CellConfig, canonical: str | None = None, with_eval: bool = False) -> str:
    """The canonical JSON an id hashes: without the `eval` block unless `with_eval` (the legacy id), and without
    keys added to the schema after `ID_KEYS` while they hold their default."""
    data = json.loads(config.canonical_json() if canonical is None else canonical)
    if not with_eval:
        data.pop("eval", None)
    if _SCHEMA_HAS_NEW_KEYS:
        _drop_new_defaults(data, _NEW_KEYS if type(config) is CellConfig else _new_key_plan(type(config)))
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def _model_of(annotation) -> tuple[type[BaseModel] | None, str]:
    """The config block a field holds (`(Block, "")`), or holds a list of (`(Block, "[]")`)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, ""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is list and args and isinstance(args[0], type) and issubclass(args[0],
                                                                                                     BaseModel):
        return args[0], "[]"
    return None, ""


def _schema_keys(model: type[BaseModel], prefix: str = "") -> set[str]:
    keys = set()
    for name, info in model.model_fields.items():
        keys.add(prefix + name)
        block, suffix = _model_of(info.annotation)
        if block is not None:
            keys |= _schema_keys(block, f"{prefix}{name}{suffix}.")
    return keys


def _new_key_plan(model: type[BaseModel], prefix: str = "") -> dict:
    """Where keys added after `ID_KEYS` are, once per schema: field -> ("new", default as JSON) or ("block",
    plan of the block, whether it is a list of blocks), for the fields that are new or lead to one."""
    plan = {}
    for name, info in model.model_fields.items():
        key = prefix + name
        if key not in ID_KEYS:
            default = info.get_default(call_default_factory=True)
            plan[name] = ("new", default.model_dump(mode="json") if isinstance(default, BaseModel) else default)
            continue
        block, suffix = _model_of(info.annotation)
        if block is not None:
            inner = _new_key_plan(block, f"{key}{suffix}.")
            if inner:
                plan[name] = ("block", inner, bool(suffix))
    return plan


def _drop_new_defaults(data: dict, plan: dict) -> None:
    for name, step in plan.items():
        if name not in data:
            continue
        if step[0] == "new":
            if data[name] == step[1]:
                del data[name]
        elif step[2] and isinstance(data[name], list):
            for item in data[name]:
                if isinstance(item, dict):
                    _drop_new_defaults(item, step[1])
        elif isinstance(data[name], dict):
            _drop_new_defaults(data[name], step[1])


_SCHEMA_HAS_NEW_KEYS = bool(_schema_keys(CellConfig) - ID_KEYS)
_NEW_KEYS = _new_key_plan(CellConfig)


def provenance(config: CellConfig) -> dict[str, str]:
    """What the config's names stand for beyond their text: the world's hash (settings, vocabulary, generator
    version) and the recipe hash of each zoo backbone."""
    return Resolver().provenance(config)


class Resolver:
    """Checks and ids with per-instance memos (one instance per grid: a later call sees changed recipes)."""

    def __init__(self):
        self._memo: dict[tuple, Any] = {}

    def _once(self, key: tuple, compute):
        if key not in self._memo:
            try:
                self._memo[key] = (compute(), None)
            except CellCheckError as err:
                self._memo[key] = (None, err)
        value, err = self._memo[key]
        if err is not None:
            raise err
        return value

    # ids -----------------------------------------------------------------------------------------------------
    def provenance(self, config: CellConfig) -> dict[str, str]:
        out = {"world": self._once(("world", config.data.world), lambda: world_hash(config.data.world))}
        for text in (*fusion.member_names(config.encoder.name), config.llm.name):
            found = families.spec_family(text)     # a malformed name is reported by the checks, not here
            if found is not None:
                value = self._once(("provenance of", text), lambda: found[1].provenance(found[0]))
                if value is not None:
                    out[text] = value
        return out

    def cell_id(self, config: CellConfig, canonical: str | None = None) -> str:
        """The training identity. `canonical`: the config's `canonical_json()` when already known (it is the
        costly part)."""
        return self._hash(config, identity_json(config, canonical))

    def legacy_cell_id(self, config: CellConfig, canonical: str | None = None) -> str:
        return self._hash(config, identity_json(config, canonical, with_eval=True))

    def _hash(self, config: CellConfig, text: str) -> str:
        names = (config.data.world, config.encoder.name, config.llm.name)   # all that provenance depends on
        blob = text + self._once(("provenance", *names),
                                 lambda: json.dumps(self.provenance(config), sort_keys=True))
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    # checks --------------------------------------------------------------------------------------------------
    def check(self, config: CellConfig) -> list[str]:
        """Everything but the connector: raise `CellCheckError` for the first problem; return warnings (text) for
        what will run but may surprise."""
        self._once(("llm", config.llm.name), lambda: _check_spec("llm.name", config.llm.name, families.LLM))
        _, warnings = self._once(("encoder", config.encoder), lambda: _check_encoder(config.encoder))
        warnings = [*warnings, *self._once(("sources", tuple(config.data.sources)), lambda: _check_sources(config))]
        warnings += self._check_stages(config)
        self._once(("chat template", config.llm.name, config.llm.chat_template), lambda: _check_chat_template(config))
        warnings += _frozen_adapters(config)
        self._once(("eval", config.eval.model_dump_json()), lambda: _check_eval(config))
        warnings += [f"eval.custom_tasks: custom task {c.name!r} is not in eval.tasks, so it never runs (list it "
                     "in eval.tasks to evaluate it)"
                     for c in config.eval.custom_tasks if c.name not in config.eval.tasks]
        warnings += plan_warnings(config.eval)
        for custom in config.eval.custom_tasks:   # the files, read once per task whatever the grid sweeps
            self._once(("custom task", custom.model_dump_json()), lambda: _check_custom_data(custom))
        return warnings

    def _check_stages(self, config: CellConfig) -> list[str]:
        """Each stage's data (the cell's, for a cell without stages): every kind its mixture weighs has data, and
        its sources' files are there (instruction question files read on their first rows)."""
        warnings = []
        for stage in plan(config.train):
            prefix = "data" if config.train.stages is None else f"train.stages.{stage.index}.data"
            data = stage.data(config.data)
            if stage.sources is not None:
                warnings += self._once(("sources", tuple(stage.sources)),
                                       lambda: _check_sources(config, stage.sources, prefix))
            for source in data.sources:
                if source.kind == "instruction":
                    self._once(("instruction", source), lambda: _check_question_file(source, prefix))
            weighed = [kind for kind, weight in data.mixture.items() if weight > 0]
            given = list(dict.fromkeys(s.kind for s in data.sources))
            if data.sources and any(kind not in given for kind in weighed):
                kind = next(kind for kind in weighed if kind not in given)
                where = "" if config.train.stages is None else f"stage {stage.name!r}: "
                key = f"{prefix}.mixture" if stage.mixture is not None or config.train.stages is None else \
                    f"{prefix}.sources"
                raise CellCheckError(key, f"{where}the mixture weighs {kind!r} but the sources hold no {kind} data "
                                          "(with data.sources, each kind of the mixture needs a source of that kind;"
                                          " leave sources empty for the embedded world's data)", given, kind)
            unused = [s.path for s in data.sources if s.kind not in weighed]
            if unused:
                warnings.append(f"{prefix}.sources: {', '.join(unused)} not trained on (the mixture gives "
                                f"{'its kind' if len(unused) == 1 else 'their kinds'} no weight)")
        return warnings

    def check_lora(self, config: CellConfig) -> list[str]:
        """`llm.lora.target_modules` against the LLM's module names, read from a build on the meta device (no
        weights: a zoo LLM from its recipe, an `hf:` one from its `config.json`; imports torch and transformers)."""
        lora = config.llm.lora
        if lora is not None and lora.target_modules:
            self._once(("lora", config.llm.name, tuple(lora.target_modules)), lambda: _check_lora_targets(config))
        return []

    def check_connector(self, config: CellConfig) -> list[str]:
        """The connector's name, options and token count against the encoder's patch grid (imports the connectors,
        hence torch)."""
        grid, _ = self._once(("encoder", config.encoder), lambda: _check_encoder(config.encoder))
        connector = config.connector
        self._once(("connector", connector.name, connector.tokens, grid, _frozen(connector.options)),
                   lambda: _check_connector(config, grid))
        return []


def _frozen(options: dict) -> tuple:
    return tuple(sorted(options.items()))


def _check_spec(key: str, text: str, role: str) -> Spec:
    """`text` parsed as a spec of a family that fills `role`, and checked by that family (the file is there, the
    weights are cached offline, the zoo knows the name)."""
    try:
        spec, family = families.parse(text, role)
    except SpecError:
        raise CellCheckError(key, f"{text!r} is not a spec of the form family:name", families.forms(role),
                             text) from None
    family.check(spec, role, key)
    return spec


def _check_encoder(encoder: EncoderConfig) -> tuple[tuple[int, int] | None, list[str]]:
    """The encoder's patch grid at its resolution (None: unknown before it is built) and warnings; a fusion's
    (ablate.config.fusion): each encoder checked at its own resolution, the grid the smallest of theirs."""
    for key, message, allowed in fusion.problems(encoder):
        raise CellCheckError(key, message, allowed)
    grids, warnings = [], []
    for member in fusion.members(encoder):
        spec = _check_spec("encoder.name", member.name, families.ENCODER)
        if spec.family == "timm" and member.feature_layer not in ("last", "penultimate"):
            raise CellCheckError("encoder.feature_layer", f"{member.name}: timm encoders give the last or the "
                                 "penultimate layer's features", ["last", "penultimate"], member.feature_layer)
        grid, said = families.patch_grid(families.family(spec.family).patch_size(spec), member.resolution,
                                         member.name)
        grids.append(grid)
        warnings += said
    return (None if None in grids else fusion.fused_grid(grids)), warnings


def _check_chat_template(config: CellConfig) -> None:
    """`llm.chat_template: true` needs a chat template in the LLM's tokenizer (its family reads it without
    loading the model, where it can)."""
    if config.llm.chat_template:
        spec, family = families.parse(config.llm.name, families.LLM)
        family.check_chat_template(spec)


def _frozen_adapters(config: CellConfig) -> list[str]:
    """A warning for `llm.lora` on an LLM that trains in no stage: the adapters never train."""
    llm = config.llm
    if llm.lora is not None and not any(stage.trains("llm") for stage in plan(config.train)):
        return [f"llm.lora is set but train.lr_multipliers.llm is 0 in every stage: the adapters never train "
                f"({llm.name})"]
    return []


def _check_connector(config: CellConfig, grid: tuple[int, int] | None) -> None:
    # lazy: connectors are torch modules; checked last so that every other refusal comes without torch
    from ablate.models.connectors import check_tokens, connector_class, connector_names
    from ablate.models.connectors.base import resolve_options

    connector = config.connector
    names = connector_names()
    if connector.name not in names:
        raise CellCheckError("connector.name", f"unknown connector {connector.name!r}", names, connector.name)
    defaults = connector_class(connector.name).OPTIONS
    try:
        resolve_options(connector.name, defaults, dict(connector.options))
    except ValueError as err:
        unknown = next((k for k in connector.options if k not in defaults), None)
        raise CellCheckError("connector.options", str(err), list(defaults) if unknown else None, unknown) from None
    if grid is None:      # a timm encoder: its grid is known once built; the build checks the count
        return
    try:
        check_tokens(connector.name, connector.tokens, grid, dict(connector.options))
    except ValueError as err:
        raise CellCheckError(
            "connector.tokens",
            f"{connector.name} cannot make {connector.tokens} tokens from the {grid[0]}x{grid[1]} "
            f"patch grid of {config.encoder.name} at {config.encoder.resolution} px: {err}",
        ) from None
    _build_connector_on_meta(config, grid)


def _build_connector_on_meta(config: CellConfig, grid: tuple[int, int]) -> None:
    """Build the connector on the meta device (no memory, no compute) where the encoder's and the LLM's widths are
    known without building them (a zoo encoder; a zoo LLM or an `hf:` one's config.json): what only its
    constructor checks (`depth: 0`, heads that do not divide the width) is refused now, not when the cell starts."""
    import torch  # lazy: as the connectors

    from ablate.models.connectors import build_connector
    from ablate.models.sizes import llm_dims
    from ablate.zoo.recipes import RECIPES, EncoderRecipe

    try:
        spec = Spec.parse(config.encoder.name)
    except SpecError:
        return
    recipe = RECIPES.get(spec.name) if spec.family == "zoo" else None
    llm = llm_dims(config.llm.name)
    if not isinstance(recipe, EncoderRecipe) or llm is None:
        return
    try:
        with torch.device("meta"):
            build_connector(config.connector, recipe.width, llm[0], grid)
    except ValueError as err:
        raise CellCheckError("connector.options", f"connector {config.connector.name} cannot be built with these "
                             f"options: {err}") from None
    except Exception:  # noqa: BLE001 - an operation the meta device lacks: the build at the cell's start checks it
        return


def _check_lora_targets(config: CellConfig) -> None:
    names = _llm_module_names(config.llm.name)
    if names is None:   # a GGUF file, or a hub id not in the cache: the build checks the names
        return
    linear = sorted({name.rsplit(".", 1)[-1] for name, kind in names.items() if kind == "Linear"})
    for target in config.llm.lora.target_modules:   # peft's rule: the module's name, or its last dotted parts
        if not any(name == target or name.endswith("." + target) for name in names):
            raise CellCheckError("llm.lora.target_modules", f"no module of {config.llm.name} is named {target!r} "
                                 "(LoRA adapts linear layers, named by the last part of their name)", linear, target)


def _llm_module_names(name: str) -> dict[str, str] | None:
    """`{module name: class name}` of an LLM built on the meta device from its config (its family reads it); None
    when its config cannot be read offline."""
    found = families.spec_family(name)
    config = found[1].llm_config(found[0]) if found is not None else None
    if config is None:
        return None
    import torch  # lazy: only for grids that name LoRA target modules
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return {module_name: type(module).__name__ for module_name, module in model.named_modules() if module_name}


def _check_eval(config: CellConfig) -> None:
    allowed = known_task_names(config.eval)
    builtin = known_task_names()
    for custom in config.eval.custom_tasks:
        if custom.name in builtin:
            raise CellCheckError("eval.custom_tasks.name", f"custom task {custom.name!r} has the name of a built-in "
                                 "task, which would run instead of it: give it another name", got=custom.name)
    for task in config.eval.tasks:
        if task not in allowed:
            raise CellCheckError("eval.tasks", f"unknown task {task!r}", allowed, task)
    names = [c.name for c in config.eval.custom_tasks]
    for name in names:
        if names.count(name) > 1:
            raise CellCheckError("eval.custom_tasks", f"two custom tasks are named {name!r}: names must be unique")
    if any(shots for shots in config.eval.shots):
        try:
            check_fewshot_template(config.eval.fewshot_template)
        except QuestionFileError as err:
            raise CellCheckError("eval.fewshot_template", str(err)) from None


def _check_custom_data(custom) -> None:
    """A custom task's files hold what its settings name (`ablate.evaluation.checks`), before anything trains."""
    try:
        check_custom_task(custom)
    except QuestionFileError as err:
        raise CellCheckError(f"eval.custom_tasks.{err.field}", str(err), err.allowed) from None


def _check_sources(config: CellConfig, sources=None, prefix: str = "data") -> list[str]:
    """Local data sources must be there (the loader's rules: a file, a glob that matches, a folder with data), and
    their first rows read as training reads them (`ablate.data.sources.sample_problems`): a missing column, or no
    usable row among them, is an error; some rows that training would skip, a warning."""
    warnings = []
    for source in config.data.sources if sources is None else sources:
        if source.format == "hub" or source.kind == "instruction":   # instruction: `_check_question_file`
            continue
        if source.kind == "conversation" and (problem := conversation_check(source)):
            raise CellCheckError(f"{prefix}.sources.path", problem)
        local = Path(source.path).expanduser()
        if source.format == "imagefolder":
            ok = local.is_dir()
            what = "image folder"
        elif local.is_dir():
            pattern = {"json": "*.jsonl", "parquet": "*.parquet", "webdataset": "*.tar"}[source.format]
            ok = bool(glob.glob(str(local / pattern)))
            what = f"folder with {pattern} files"
        elif any(c in source.path for c in "*?["):
            ok = bool(glob.glob(str(local)))
            what = "file matching"
        else:
            ok = local.is_file()
            what = "file"
        if not ok:
            raise CellCheckError(f"{prefix}.sources.path", f"{source.kind} source: no {what} {str(local)!r} "
                                                      f"(relative paths are read from {Path.cwd()})")
        warnings += _check_sample(source, prefix)
    return warnings


def _check_sample(source, prefix: str) -> list[str]:
    """A source's first rows: an error when none can train or a column is missing, a warning when some cannot."""
    from ablate.data.sources import sample_problems
    from ablate.data.validate import SourceError

    try:
        read, undecodable, mismatched, example = sample_problems(source)
    except SourceError as err:
        raise CellCheckError(f"{prefix}.sources", str(err)) from None
    except Exception as err:  # noqa: BLE001 - json / pyarrow / tar readers raise many types: all "cannot be read"
        raise CellCheckError(f"{prefix}.sources.path", f"{source.kind} source {source.path!r} cannot be read "
                                                       f"({type(err).__name__}: {str(err).strip()[:300]})") from None
    bad = undecodable + mismatched
    if not bad:
        return []
    where = f" ({example})" if example else ""
    what = ", ".join(part for part in (
        f"{undecodable} with an image that cannot be decoded{where}" if undecodable else "",
        f"{mismatched} whose <image> markers do not match their images" if mismatched else "") if part)
    if bad == read:
        raise CellCheckError(f"{prefix}.sources.path", f"{source.kind} source {source.path!r}: none of its first "
                                                       f"{read} rows can train ({what})")
    return [f"{prefix}.sources: {source.path}: {bad} of its first {read} rows cannot train ({what}); training "
            "skips such rows when it meets them and logs the counts"]


def _check_question_file(source, prefix: str) -> None:
    """An instruction source's question file, image folder, columns and answers (`ablate.data.vqa`)."""
    try:
        check_instruction_source(source)
    except QuestionFileError as err:
        raise CellCheckError(f"{prefix}.sources.{err.field}", str(err), err.allowed) from None
