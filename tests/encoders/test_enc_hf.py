"""Every transformers family loads by local path; shapes, grids, interpolation, layers, class tokens, offline."""

import pytest
import torch
import transformers as T
from PIL import Image

from ablate.config.schema import EncoderConfig
from ablate.models.encoders import NotCachedError, build_encoder
from ablate.models.encoders.posembed import resize_table

torch.set_num_threads(1)
TINY = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=2, patch_size=8)
FAMILIES = {
    "clip": (T.CLIPVisionModel, T.CLIPVisionConfig, dict(image_size=32), 1),
    "siglip": (T.SiglipVisionModel, T.SiglipVisionConfig, dict(image_size=32), 0),
    "siglip2": (T.Siglip2VisionModel, T.Siglip2VisionConfig, dict(num_patches=16), 0),
    "aimv2": (T.Aimv2VisionModel, T.Aimv2VisionConfig, dict(image_size=32), 0),
    "dinov2": (T.Dinov2Model, T.Dinov2Config, dict(image_size=32), 1),
    "dinov2reg": (T.Dinov2WithRegistersModel, T.Dinov2WithRegistersConfig,
                  dict(image_size=32, num_register_tokens=2), 1),
}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf")
    out = {}
    for name, (model_cls, cfg_cls, extra, _) in FAMILIES.items():
        torch.manual_seed(0)
        model_cls(cfg_cls(**TINY, **extra)).save_pretrained(root / name)
        out[name] = root / name
    return out


def enc(path, **kw):
    kw.setdefault("resolution", 32)
    return build_encoder(EncoderConfig(name=f"hf:{path}", **kw), cache_root=path.parent)


@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("resolution,grid", [(32, 4), (48, 6), (64, 8)])
def test_shapes_and_grid(saved, family, resolution, grid):
    e = enc(saved[family], resolution=resolution)
    out = e(torch.randn(2, 3, resolution, resolution))
    assert out.shape == (2, grid * grid, 32)
    assert e.grid == (grid, grid) and e.dim == 32 and e.patch_size == 8


@pytest.mark.parametrize("family", ["clip", "siglip", "aimv2", "dinov2", "dinov2reg", "siglip2"])
def test_native_resolution_is_identity(saved, family):
    """At the pre-training size the features are the raw model's, untouched."""
    model_cls, _, _, n_prefix = FAMILIES[family]
    e = enc(saved[family], resolution=32)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ours = e(x)
        if family == "siglip2":
            ref = model_cls.from_pretrained(saved[family])(**e._patchify(x)).last_hidden_state
        else:
            ref = model_cls.from_pretrained(saved[family])(pixel_values=x).last_hidden_state
    skip = n_prefix + (2 if family == "dinov2reg" else 0)
    torch.testing.assert_close(ours, ref[:, skip:])


@pytest.mark.parametrize("family", ["clip", "siglip"])
@pytest.mark.parametrize("resolution", [48, 64])
def test_interpolation_matches_transformers_bicubic(saved, family, resolution):
    """Load-time interpolation equals transformers' per-call `interpolate_pos_encoding` (bicubic)."""
    model_cls = FAMILIES[family][0]
    e = enc(saved[family], resolution=resolution)
    x = torch.randn(2, 3, resolution, resolution)
    with torch.no_grad():
        ref = model_cls.from_pretrained(saved[family])(pixel_values=x, interpolate_pos_encoding=True).last_hidden_state
        ours = e(x)
    torch.testing.assert_close(ours, ref[:, FAMILIES[family][3]:], atol=1e-5, rtol=1e-4)
    grid = resolution // 8
    table = e.model.embeddings.position_embedding.weight
    assert table.shape == (grid * grid + FAMILIES[family][3], 32)


def test_resize_table_identity_and_corners():
    table = torch.randn(1 + 16, 8)
    torch.testing.assert_close(resize_table(table, 1, (4, 4)), table)
    big = resize_table(table, 1, (8, 8))
    assert big.shape == (65, 8)
    torch.testing.assert_close(big[0], table[0])                    # class row kept
    const = torch.ones(16, 3) * 2.5                                  # a constant table stays constant
    torch.testing.assert_close(resize_table(const, 0, (7, 5)), torch.full((35, 3), 2.5))


@pytest.mark.parametrize("family", ["clip", "dinov2", "siglip"])
def test_penultimate_differs_from_last(saved, family):
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        last, pen = enc(saved[family])(x), enc(saved[family], feature_layer="penultimate")(x)
    assert last.shape == pen.shape and not torch.allclose(last, pen)


def test_keep_cls(saved):
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        with_cls = enc(saved["clip"], resolution=32, keep_cls=True)(x)
        ref = T.CLIPVisionModel.from_pretrained(saved["clip"])(pixel_values=x).last_hidden_state
        reg = enc(saved["dinov2reg"], resolution=32, keep_cls=True)(x)
    assert with_cls.shape == (2, 17, 32)
    torch.testing.assert_close(with_cls, ref)
    assert reg.shape == (2, 17, 32)                                  # class kept, 2 registers dropped
    with pytest.raises(ValueError, match="no class token"):
        enc(saved["siglip"], keep_cls=True)


def test_preprocess_uses_model_mean_std_and_slices(saved, tmp_path):
    white = Image.new("RGB", (40, 40), (255, 255, 255))
    clip = enc(saved["clip"], resolution=32)
    px = clip.preprocess([white])
    assert px.shape == (1, 3, 32, 32)
    assert px[0, 0, 0, 0].item() == pytest.approx((1 - 0.48145466) / 0.26862954, rel=1e-5)   # OpenAI CLIP
    assert enc(saved["siglip"]).preprocess([white])[0, 0, 0, 0].item() == pytest.approx(1.0)  # SigLIP: 0.5 / 0.5
    sliced = enc(saved["clip"], resolution=32, image_handling="slice", max_slices=4)
    px, layouts = sliced.preprocess_with_layout([Image.new("RGB", (32, 96)), Image.new("RGB", (64, 64)),
                                                  Image.new("RGB", (10, 10))])
    assert layouts == [(3, 1), (2, 2), (0, 0)]
    assert px.shape == (4 + 5 + 1, 3, 32, 32)


def test_feature_key_tracks_what_changes_features(saved):
    k = enc(saved["clip"]).feature_key()
    assert k == enc(saved["clip"]).feature_key()
    others = {enc(saved["clip"], resolution=48).feature_key(),
              enc(saved["clip"], feature_layer="penultimate").feature_key(),
              enc(saved["clip"], keep_cls=True).feature_key(), enc(saved["clip"], image_handling="pad").feature_key(),
              enc(saved["siglip"]).feature_key()}
    assert k not in others and len(others) == 5


def test_offline_missing_hub_id_fails_fast(tmp_path, monkeypatch, no_network):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    import huggingface_hub.constants as C
    monkeypatch.setattr(C, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(NotCachedError, match="not in the local Hugging Face cache") as err:
        build_encoder(EncoderConfig(name="hf:google/siglip-base-patch16-224"), tmp_path)
    assert no_network == []   # fails at once: no connection tried, no retries
    message = str(err.value)
    assert "local folder" in message and "huggingface-cli download google/siglip-base-patch16-224" in message


def test_bad_spec_names_the_forms(tmp_path):
    with pytest.raises(ValueError, match="zoo:<objective>-<size>"):
        build_encoder(EncoderConfig(name="clip-s"), tmp_path)
    with pytest.raises(FileNotFoundError):
        build_encoder(EncoderConfig(name="hf:/no/such/folder"), tmp_path)


def test_log_says_what_was_adapted(saved, caplog):
    """The run log names the interpolation (from -> to grid) and the dtype; nothing is said at the native size."""
    with caplog.at_level("INFO", logger="ablate.models.encoders.hf"):
        enc(saved["clip"], resolution=48)
    assert "position embeddings interpolated (bicubic) from a 4x4 to a 6x6 patch grid" in caplog.text
    assert "dtype torch.float32" in caplog.text
    caplog.clear()
    with caplog.at_level("INFO", logger="ablate.models.encoders.hf"):
        enc(saved["clip"], resolution=32)
    assert "interpolated" not in caplog.text and "4x4 patches" in caplog.text
