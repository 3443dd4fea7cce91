"""timm encoders (EVA-02, NFNet, ViT) built with random weights: shapes, resizing, layers, class token."""
import pytest
import torch

from ablate.config.schema import EncoderConfig
from ablate.models.encoders import NotCachedError, build_encoder

torch.set_num_threads(1)


def enc(tmp_path, name, **kw):
    return build_encoder(EncoderConfig(name=f"timm:{name}", **kw), tmp_path)


@pytest.mark.parametrize("name,resolution,grid,dim", [
    ("test_vit@random", 160, 10, 64),           # native
    ("test_vit@random", 64, 4, 64),             # position embeddings resampled by timm's set_input_size
    ("eva02_tiny_patch14_224@random", 56, 4, 192),
    ("test_nfnet@random", 64, 2, 192),          # a CNN: the last stage's map, flattened
])
def test_shapes(tmp_path, name, resolution, grid, dim):
    e = enc(tmp_path, name, resolution=resolution)
    out = e(torch.randn(2, 3, resolution, resolution))
    assert out.shape == (2, grid * grid, dim) and e.grid == (grid, grid) and e.dim == dim


def test_native_size_is_identity_and_other_size_resamples(tmp_path):
    e = enc(tmp_path, "test_vit@random", resolution=160)
    x = torch.randn(1, 3, 160, 160)
    with torch.no_grad():
        torch.testing.assert_close(e(x), e.model.forward_features(x)[:, 1:])
    small = enc(tmp_path, "test_vit@random", resolution=64)
    assert small.model.pos_embed.shape == (1, 1 + 16, 64)
    assert e.model.pos_embed.shape == (1, 1 + 100, 64)


def test_random_weights_are_seeded(tmp_path):
    a, b = enc(tmp_path, "test_vit@random", resolution=64), enc(tmp_path, "test_vit@random", resolution=64)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(a(x), b(x))
    assert a.feature_key() == b.feature_key()


def test_penultimate_and_cls(tmp_path):
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        last = enc(tmp_path, "test_vit@random", resolution=64)(x)
        pen = enc(tmp_path, "test_vit@random", resolution=64, feature_layer="penultimate")(x)
        cls = enc(tmp_path, "test_vit@random", resolution=64, keep_cls=True)(x)
        pen_cls = enc(tmp_path, "test_vit@random", resolution=64, feature_layer="penultimate", keep_cls=True)(x)
    assert last.shape == pen.shape == (1, 16, 64) and not torch.allclose(last, pen)
    assert cls.shape == pen_cls.shape == (1, 17, 64)
    torch.testing.assert_close(cls[:, 1:], last)
    torch.testing.assert_close(pen_cls[:, 1:], pen)
    cnn = enc(tmp_path, "test_nfnet@random", resolution=64, feature_layer="penultimate")
    assert cnn.grid == (4, 4) and cnn.dim == 96      # the stage before last: finer grid, fewer channels
    with pytest.raises(ValueError, match="no class token"):
        enc(tmp_path, "test_nfnet@random", resolution=64, keep_cls=True)


def test_resolution_must_fit_patch(tmp_path):
    with pytest.raises(ValueError, match="multiple of"):
        enc(tmp_path, "test_vit@random", resolution=72)


def test_offline_pretrained_fails_fast(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as C
    monkeypatch.setattr(C, "HF_HUB_CACHE", str(tmp_path / "empty"))
    with pytest.raises(NotCachedError, match="@random"):
        enc(tmp_path, "eva02_tiny_patch14_224", resolution=56)


def test_log_says_what_was_resampled(tmp_path, caplog):
    with caplog.at_level("INFO", logger="ablate.models.encoders.timm_encoder"):
        enc(tmp_path, "test_vit@random", resolution=64)
    assert "from a 10x10 to a 4x4 patch grid (160 -> 64 px)" in caplog.text
    caplog.clear()
    with caplog.at_level("INFO", logger="ablate.models.encoders.timm_encoder"):
        enc(tmp_path, "test_vit@random", resolution=160)
    assert "resampled" not in caplog.text and "feature grid 10x10" in caplog.text
