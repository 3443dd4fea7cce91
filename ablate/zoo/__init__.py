"""Tiny backbones pretrained here on the embedded world: `zoo:{clip,siglip,aim,random}-{s,m}`, `zoo:lm-{s,m}`."""
from ablate.zoo.build import build_zoo, ensure_built, model_dir, zoo_status
from ablate.zoo.data import ZooData
from ablate.zoo.recipes import RECIPES, EncoderRecipe, LMRecipe, recipe_for, recipe_hash

__all__ = ["build_zoo", "ensure_built", "model_dir", "zoo_status", "ZooData", "RECIPES", "EncoderRecipe",
           "LMRecipe", "recipe_for", "recipe_hash"]
