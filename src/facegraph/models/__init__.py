"""Landmark models: the registry, the peers and the shared crop-to-3DMM regressor."""

from facegraph.models.crop_regressor import CropPrediction, CropRegressor, MirrorAveraged
from facegraph.models.registry import MODELS, ModelSpec, get_model_spec, load_model

__all__ = [
    "MODELS",
    "CropPrediction",
    "CropRegressor",
    "MirrorAveraged",
    "ModelSpec",
    "get_model_spec",
    "load_model",
]
