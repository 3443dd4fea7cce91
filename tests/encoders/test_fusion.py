"""Fused encoders (`encoder.name: "a+b"`) and several feature layers (`encoder.feature_layer: [last, -2]`): each
encoder at its own resolution and normalisation, grids pooled to the smallest, features concatenated per patch; the
dry run checks token counts against the fused grid; a fusion trains, caches its features and reloads."""
from __future__ import annotations

import pytest
import torch
import transformers as T
from PIL import Image
from tinyworld import TINY_WORLD_YAML

from ablate.config.errors import GridError
from ablate.config.fusion import members
from ablate.config.schema import EncoderConfig
from ablate.models.encoders import build_encoder
from ablate.models.features import FeatureCache, ImageFeatures
from ablate.resolve import load_grid

TINY = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=2, image_size=32)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """A CLIP tower with 8 px patches (OpenAI-CLIP normalisation) and a DINOv2 with 16 px patches (ImageNet's)."""
    root = tmp_path_factory.mktemp("fusion")
    torch.manual_seed(0)
    T.CLIPVisionModel(T.CLIPVisionConfig(**TINY, patch_size=8)).save_pretrained(root / "clip")
    T.Dinov2Model(T.Dinov2Config(**TINY, patch_size=16)).save_pretrained(root / "dino")
    return f"hf:{root / 'clip'}", f"hf:{root / 'dino'}"


def _pool2(x: torch.Tensor, side: int, factor: int) -> torch.Tensor:
    """(n, side*side, d) -> (n, (side/factor)^2, d): the mean of each factor x factor block, written out."""
    n, _, d = x.shape
    s = side // factor
    return x.reshape(n, s, factor, s, factor, d).mean(dim=(2, 4)).reshape(n, s * s, d)


def test_a_fusion_concatenates_each_encoders_features_on_the_smallest_grid(pair, tmp_path):
    clip, dino = pair
    fused = build_encoder(EncoderConfig(name=f"{clip}+{dino}", resolution=64), tmp_path)
    a = build_encoder(EncoderConfig(name=clip, resolution=64), tmp_path)
    b = build_encoder(EncoderConfig(name=dino, resolution=64), tmp_path)
    assert (a.grid, b.grid) == ((8, 8), (4, 4))
    assert fused.grid == (4, 4) and fused.dim == 64 and fused.n_tokens == 16
    images = [Image.new("RGB", (40, 40), (200, 30, 30)), Image.new("RGB", (40, 40), (10, 90, 250))]
    pixels = fused.preprocess(images)
    # each encoder's own normalisation: the fused pixels are the two encoders' own preprocessing, side by side
    assert torch.equal(pixels, torch.cat([a.preprocess(images).flatten(1), b.preprocess(images).flatten(1)], 1))
    assert a.mean != b.mean
    with torch.no_grad():
        out = fused(pixels)
        want = torch.cat([_pool2(a(a.preprocess(images)), 8, 2), b(b.preprocess(images))], dim=-1)
    assert out.shape == (2, 16, 64)
    torch.testing.assert_close(out, want)


def test_each_fused_encoder_can_have_its_own_resolution(pair, tmp_path):
    clip, dino = pair
    cfg = EncoderConfig(name=f"{clip} + {dino}", resolution=64, resolutions=[32, 128])
    assert [(m.name, m.resolution) for m in members(cfg)] == [(clip, 32), (dino, 128)]
    fused = build_encoder(cfg, tmp_path)
    assert [m.grid for m in fused.members] == [(4, 4), (8, 8)] and fused.grid == (4, 4)
    pixels = fused.preprocess([Image.new("RGB", (50, 50), "white")])
    assert pixels.shape == (1, 3 * 32 * 32 + 3 * 128 * 128)
    assert fused(pixels).shape == (1, 16, 64)


def test_a_fusions_features_are_cached_under_their_own_key(pair, tmp_path):
    clip, dino = pair
    fused = build_encoder(EncoderConfig(name=f"{clip}+{dino}", resolution=64), tmp_path)
    other = build_encoder(EncoderConfig(name=f"{clip}+{dino}", resolution=64, resolutions=[64, 32]), tmp_path)
    alone = build_encoder(EncoderConfig(name=clip, resolution=64), tmp_path)
    assert len({fused.feature_key(), other.feature_key(), alone.feature_key()}) == 3
    path = tmp_path / "img.png"
    Image.new("RGB", (48, 48), (0, 200, 0)).save(path)
    cache = FeatureCache()
    features = ImageFeatures(fused, cache, frozen=True)
    first = features([str(path)])
    again = features([str(path), str(path)])
    assert (cache.misses, cache.hits) == (1, 2) and len(cache) == 1
    assert torch.equal(again[:1], first) and torch.equal(again[1:], first) and first.shape == (1, 16, 64)


def test_a_list_of_feature_layers_concatenates_them(pair, tmp_path):
    clip, _ = pair
    image = [Image.new("RGB", (32, 32), (90, 90, 10))]

    def features(layer):
        enc = build_encoder(EncoderConfig(name=clip, resolution=32, feature_layer=layer), tmp_path)
        with torch.no_grad():
            return enc, enc(enc.preprocess(image))

    (_, last), (_, pen), (_, minus2), (_, first) = (features(x) for x in ("last", "penultimate", -2, 0))
    enc, both = features(["last", "penultimate", 0])
    assert enc.dim == 96 and both.shape == (1, 16, 96)
    torch.testing.assert_close(both, torch.cat([last, pen, first], dim=-1))
    torch.testing.assert_close(minus2, pen)                    # -2: the second-to-last hidden state
    assert not torch.allclose(last, pen)


def _grid(tmp_path, tiny_backbones, encoder: str, tokens: int = 16, extra: str = "", alone: bool = True,
          axes: str = "") -> str:
    path = tmp_path / "fusion.yaml"
    path.write_text(f"""name: fusion
base:
  encoder: {{name: "{tiny_backbones['encoder']}", resolution: 64{extra}}}
  llm: {{name: "{tiny_backbones['llm']}"}}
  connector: {{name: avg-pool, tokens: {tokens}}}
  data: {{world: {{{TINY_WORLD_YAML}}}, max_length: 96}}
  train: {{steps: 6, batch_size: 4, checkpoint_every: 3, lr: 0.003}}
  eval: {{tasks: [world_vqa], limit: 6, bootstrap: 0, batch_size: 6, n_predictions: 0}}
axes:
  encoder.name: [{f'"{tiny_backbones["encoder"]}", ' if alone else ""}"{encoder}"]
{axes}""")
    return str(path)


def test_the_dry_run_checks_token_counts_against_the_fused_grid(pair, tmp_path, tiny_backbones):
    _, dino = pair
    fusion = f"{tiny_backbones['encoder']}+{dino}"
    grid = load_grid(_grid(tmp_path, tiny_backbones, fusion, tokens=16))       # 8x8 and 4x4 -> 4x4: 16 tokens
    alone, fused = grid.cells
    assert alone.id != fused.id and fused.config.encoder.name == fusion
    assert "resolutions" not in alone.config.canonical_json() or alone.config.encoder.resolutions is None
    with pytest.raises(GridError, match=r"cannot make 64 tokens from the 4x4 patch grid") as err:
        load_grid(_grid(tmp_path, tiny_backbones, fusion, tokens=64))          # the CLIP alone could (8x8)
    assert err.value.key == "connector.tokens"


@pytest.mark.parametrize("extra, key, says", [
    (", resolutions: [64]", "encoder.resolutions", "1 values for the 2 fused encoders"),
    (", image_handling: slice", "encoder.image_handling", "takes each image whole"),
    (", keep_cls: true", "encoder.keep_cls", "patch features only"),
])
def test_the_dry_run_refuses_what_a_fusion_cannot_do(pair, tmp_path, tiny_backbones, extra, key, says):
    _, dino = pair
    with pytest.raises(GridError, match=says) as err:
        load_grid(_grid(tmp_path, tiny_backbones, f"{tiny_backbones['encoder']}+{dino}", extra=extra, alone=False))
    assert err.value.key == key


def test_a_fusion_of_zoo_encoders_is_checked_without_building_them(tmp_path, tiny_backbones):
    fusion = "zoo:clip-read-s+zoo:random-s"      # both patch 8 (their recipes): 12x12 at 96 px, 8x8 at 64
    grid = load_grid(_grid(tmp_path, tiny_backbones, fusion, tokens=64, alone=False))
    assert grid.cells[0].config.encoder.name == fusion
    assert load_grid(_grid(tmp_path, tiny_backbones, fusion, 144, ", resolutions: [96, 160]", alone=False)).cells
    with pytest.raises(GridError, match=r"cannot make 144 tokens from the 8x8 patch grid"):
        load_grid(_grid(tmp_path, tiny_backbones, fusion, 144, ", resolutions: [96, 64]", alone=False))
    with pytest.raises(GridError, match="unknown zoo model 'zoo:clip-xl'"):
        load_grid(_grid(tmp_path, tiny_backbones, "zoo:clip-read-s+zoo:clip-xl"))
    with pytest.raises(GridError, match="two or more different encoders"):
        load_grid(_grid(tmp_path, tiny_backbones, "zoo:clip-read-s+zoo:clip-read-s"))


@pytest.mark.slow
def test_a_fused_cell_trains_caches_its_features_and_reloads_from_its_checkpoint(pair, tmp_path, tiny_backbones,
                                                                                 workspace):
    from ablate.checkpoint import load_for_eval
    from ablate.runners import run_cells

    torch.set_num_threads(1)
    _, dino = pair
    grid = load_grid(_grid(tmp_path, tiny_backbones, f"{tiny_backbones['encoder']}+{dino}", alone=False,
                           axes="  train.seed: [0, 1]\n"))
    fused, other = grid.cells
    cache = FeatureCache()
    assert run_cells(grid, [fused], workspace, feature_cache=cache).finished == [fused.id]
    computed = cache.misses
    assert computed > 0 and len(cache) == computed
    assert run_cells(grid, [other], workspace, feature_cache=cache).finished == [other.id]
    assert cache.hits > 0                      # the second cell reused the frozen fusion's features
    assert all(feat.shape == (1, 16, 64) for feat in cache._store.values())
    from safetensors.torch import load_file

    final = workspace.checkpoints(fused.id) / "final"
    model = load_for_eval(final, workspace.cache, device="cpu")   # the frozen fusion rebuilt, its digest checked
    assert model.encoder.grid == (4, 4) and model.encoder.dim == 64
    saved = load_file(final / "model.safetensors")
    connector = {k.removeprefix("connector."): v for k, v in saved.items() if k.startswith("connector.")}
    assert connector and all(torch.equal(model.connector.state_dict()[k], v) for k, v in connector.items())
    assert not any(k.startswith("encoder.") for k in saved)        # frozen: rebuilt from its specs, not stored
    with torch.no_grad():
        visual = model._visual_from_pil([Image.new("RGB", (64, 64), (250, 250, 0))])
    assert visual.shape[-2] == 16 and torch.isfinite(visual).all()


@pytest.mark.slow
def test_a_fusion_of_two_zoo_encoders_builds(tmp_path):
    cfg = EncoderConfig(name="zoo:clip-read-s+zoo:random-s", resolution=96, resolutions=[160, 96])
    fused = build_encoder(cfg, tmp_path / "cache")
    assert [m.grid for m in fused.members] == [(20, 20), (12, 12)] and fused.grid == (12, 12)
    with torch.no_grad():
        out = fused(fused.preprocess([Image.new("RGB", (192, 192), "black")]))
    assert out.shape == (1, 144, fused.members[0].dim + fused.members[1].dim)


def test_a_frozen_fusion_runs_in_bf16(pair, tmp_path):
    """`train.frozen_bf16` casts the frozen encoder's weights: every fused encoder and the pooling follow."""
    clip, dino = pair
    fused = build_encoder(EncoderConfig(name=f"{clip}+{dino}", resolution=64), tmp_path)
    pixels = fused.preprocess([Image.new("RGB", (64, 64), (30, 120, 220))])
    with torch.no_grad():
        full = fused(pixels)
        half = fused.to(torch.bfloat16)(pixels.to(torch.bfloat16))
    assert half.dtype == torch.bfloat16 and half.shape == full.shape == (1, 16, 64)
    torch.testing.assert_close(half.float(), full, atol=0.1, rtol=0.05)
