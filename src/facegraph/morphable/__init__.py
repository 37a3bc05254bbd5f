"""3D morphable models: the Basel Face Model in 3DDFA's layout (62 parameters) and the Surrey Face Model."""

from facegraph.morphable.bfm import (
    BFM_ENV,
    N_LANDMARKS,
    N_PARAMS,
    MorphableModel,
    ParamWhitening,
    load_bfm,
    resolve_bfm_folder,
    split_params,
)
from facegraph.morphable.sfm import PcaShapeModel, load_sfm, load_sfm_blendshapes, read_ibug_mapping

__all__ = [
    "BFM_ENV",
    "N_LANDMARKS",
    "N_PARAMS",
    "MorphableModel",
    "ParamWhitening",
    "PcaShapeModel",
    "load_bfm",
    "load_sfm",
    "load_sfm_blendshapes",
    "read_ibug_mapping",
    "resolve_bfm_folder",
    "split_params",
]
