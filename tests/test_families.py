"""A backbone family from outside the package joins through one file and one registry line: the dry run checks its
specs and patch grid with it, and a cell builds, trains and evaluates its encoder."""
from __future__ import annotations

import sys
import textwrap

import pytest
from tinyworld import IN_PROCESS, TINY_WORLD_YAML

from ablate.models.families import registry

TOY = '''
"""`toy:conv-<patch>`: a seeded random patch embedding (a test family: nothing to download, nothing cached)."""
import torch
from torch import nn

from ablate.config.errors import CellCheckError
from ablate.models.encoders.base import VisionEncoder
from ablate.models.families import Family

BUILT = []   # the specs built, for the test to see


class ToyEncoder(VisionEncoder):
    def __init__(self, cfg, patch):
        super().__init__(cfg, (0.5,) * 3, (0.5,) * 3, patch, identity=f"toy-conv-{patch}")
        with torch.random.fork_rng():
            torch.manual_seed(0)
            self.model = nn.Conv2d(3, 12, kernel_size=patch, stride=patch)

    def _features(self, pixel_values):
        return self.model(pixel_values).flatten(2).transpose(1, 2)


class Toy(Family):
    name = "toy"
    forms = {"encoder": "toy:conv-<patch>"}

    def check(self, spec, role, key):
        if not (spec.name.startswith("conv-") and spec.name[5:].isdigit()):
            raise CellCheckError(key, f"unknown toy encoder {str(spec)!r}", ["toy:conv-<patch>"], str(spec))

    def patch_size(self, spec):
        return int(spec.name[5:])

    def build_encoder(self, cfg, spec, cache_root):
        BUILT.append(str(spec))
        return ToyEncoder(cfg, self.patch_size(spec))
'''


def _grid(tmp_path, tiny_backbones, encoder: str, tokens: int = 16, steps: int = 2):
    path = tmp_path / "toy.yaml"
    path.write_text(f"""name: toy
base:
  encoder: {{name: "{encoder}", resolution: 32}}
  llm: {{name: "{tiny_backbones['llm']}"}}
  connector: {{tokens: {tokens}}}
  data: {{world: {{{TINY_WORLD_YAML}}}, max_length: 64}}
  train: {{steps: {steps}, batch_size: 4, lr: 0.003, log_every: 1}}
  eval: {{tasks: [world_vqa], limit: 4, bootstrap: 10, batch_size: 4, text_perplexity: 0}}
axes:
  connector.name: [avg-pool, mlp]
""")
    return path


@pytest.fixture
def toy_family(tmp_path, monkeypatch):
    """`my_families/toy.py` on the path and its one line in the registry."""
    (tmp_path / "my_families").mkdir()
    (tmp_path / "my_families" / "__init__.py").write_text("")
    (tmp_path / "my_families" / "toy.py").write_text(textwrap.dedent(TOY))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(registry.FAMILIES, "toy", "my_families.toy:Toy")
    import my_families.toy

    yield my_families.toy
    for name in ("my_families.toy", "my_families"):
        sys.modules.pop(name, None)


def test_a_registered_family_is_checked_by_the_dry_run(toy_family, tiny_backbones, tmp_path, capsys):
    from ablate.cli import main
    from ablate.models.families import forms

    assert forms("encoder")[-1] == "toy:conv-<patch>" and "toy" not in registry.families("llm")
    home = tmp_path / "home"
    assert main(["--home", str(home), "run", str(_grid(tmp_path, tiny_backbones, "toy:conv-8")), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "2 cells" in out and "connector=avg-pool" in out and "connector=mlp" in out
    assert toy_family.BUILT == [] and not home.exists()    # the grid came from the family, nothing was built

    # 32 px / patch 8 = a 4x4 grid: 16 patches cannot become 64 tokens (the family's patch size, no build)
    assert main(["run", str(_grid(tmp_path, tiny_backbones, "toy:conv-8", tokens=64)), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "connector.tokens" in err and "4x4 patch grid of toy:conv-8" in err
    # the family's own check refuses a name it does not know
    assert main(["run", str(_grid(tmp_path, tiny_backbones, "toy:pool-8")), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "encoder.name" in err and "unknown toy encoder 'toy:pool-8'" in err and "toy:conv-<patch>" in err


def test_without_its_registry_line_the_family_is_refused(tiny_backbones, tmp_path, capsys):
    from ablate.cli import main

    assert main(["run", str(_grid(tmp_path, tiny_backbones, "toy:conv-8")), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "encoder.name" in err and "zoo:<objective>-<size>" in err and "toy:" not in err.split("Allowed")[-1]


@pytest.mark.slow
def test_a_cell_trains_and_evaluates_on_a_registered_family(toy_family, tiny_backbones, tmp_path, workspace):
    import torch

    from ablate.cli import main
    from ablate.resolve import load_grid
    from ablate.tracking.results import results_frame
    from ablate.tracking.store import Store

    grid = _grid(tmp_path, tiny_backbones, "toy:conv-8")
    grid.write_text(grid.read_text().replace("connector.name: [avg-pool, mlp]", "connector.name: [avg-pool]"))
    torch.set_num_threads(1)
    assert main(["--home", str(workspace.home), "--reports", str(workspace.reports), "run", str(grid),
                 "--no-report", *IN_PROCESS]) == 0
    assert toy_family.BUILT and set(toy_family.BUILT) == {"toy:conv-8"}
    frame, _ = results_frame(Store(workspace.tracking_uri, workspace.artifacts), load_grid(grid))
    assert list(frame["status"]) == ["FINISHED"]
    assert frame["visual_tokens_per_image"].iloc[0] == 16
    assert frame["score/world_vqa/0shot"].notna().all()


def test_the_built_in_families_say_which_specs_need_the_hub(tmp_path):
    from ablate.models.families import spec_family

    def needs_hub(text: str) -> bool:
        spec, family = spec_family(text)
        return family.needs_hub(spec)

    assert needs_hub("hf:openai/clip-vit-base-patch16") and needs_hub("timm:vit_tiny_patch16_224")
    (tmp_path / "a@b").mkdir()
    assert not needs_hub(f"hf:{tmp_path}") and not needs_hub(f"hf:{tmp_path / 'a@b'}") and not needs_hub("hf:./x")
    assert not needs_hub("timm:vit_tiny_patch16_224@random") and not needs_hub("zoo:clip-s")
    assert not needs_hub(f"gguf:{tmp_path / 'lm@q4.gguf'}")
    assert spec_family("nope:x") is None and spec_family("HF:a/b") is None
