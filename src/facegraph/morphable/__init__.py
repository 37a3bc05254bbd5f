"""3D morphable models: the Basel Face Model in 3DDFA's layout and its 62-number parameters."""

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

__all__ = [
    "BFM_ENV",
    "N_LANDMARKS",
    "N_PARAMS",
    "MorphableModel",
    "ParamWhitening",
    "load_bfm",
    "resolve_bfm_folder",
    "split_params",
]
