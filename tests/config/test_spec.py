"""Backbone specs: one parser for `zoo:`, `hf:`, `timm:` (with `@random` / `@file`) and `gguf:` names."""
from pathlib import Path

import pytest

from ablate.config.spec import Spec, SpecError, zoo_name
from ablate.models.families import families

ENCODER_FAMILIES, LLM_FAMILIES = families("encoder"), families("llm")


def test_families_names_and_timm_weights():
    assert Spec.parse("zoo:clip-s") == Spec("zoo", "clip-s")
    assert Spec.parse("hf:openai/clip-vit-base-patch16") == Spec("hf", "openai/clip-vit-base-patch16")
    assert Spec.parse("timm:eva02_base_patch14_224@random") == Spec("timm", "eva02_base_patch14_224", "random")
    assert Spec.parse("timm:vit_tiny_patch16_224@/w/x.safetensors").weights == "/w/x.safetensors"
    assert Spec.parse("gguf:/models/lm.gguf").path == Path("/models/lm.gguf")
    for text in ("zoo:clip-s", "timm:vit@random", "timm:vit@/w/x.bin", "hf:a/b", "gguf:lm.gguf"):
        assert str(Spec.parse(text)) == text   # round trip: the config keeps the string


def test_path_is_the_local_thing_a_spec_names(tmp_path):
    assert Spec.parse("zoo:clip-s").path is None
    assert Spec.parse("hf:openai/clip-vit-base-patch16").path is None          # a hub id
    assert Spec.parse(f"hf:{tmp_path}").path == tmp_path                      # an existing folder
    assert Spec.parse("hf:./not/there").path == Path("./not/there")            # written as a path
    assert Spec.parse("timm:vit@random").path is None
    assert Spec.parse(f"timm:vit@{tmp_path / 'w.pt'}").path == tmp_path / "w.pt"


@pytest.mark.parametrize("text, families", [("clip-s", ENCODER_FAMILIES), ("zoo:", ENCODER_FAMILIES),
                                            ("gguf:x.gguf", ENCODER_FAMILIES), ("timm:vit", LLM_FAMILIES),
                                            ("timm:@random", ENCODER_FAMILIES), ("HF:a/b", ENCODER_FAMILIES)])
def test_malformed_or_wrong_family_is_refused(text, families):
    with pytest.raises(SpecError, match="family:name" if text != "timm:@random" else "no timm model name"):
        Spec.parse(text, families)


def test_zoo_name_takes_either_form():
    assert zoo_name("zoo:lm-s") == zoo_name("lm-s") == "lm-s"
    with pytest.raises(SpecError):
        zoo_name("hf:lm-s")
