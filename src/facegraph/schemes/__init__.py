"""Landmark schemes (iBUG 68 / 51, WFLW 98, AFLW 21, five-point): registry, flips, conversions and the
eye distances NME normalises by."""

from facegraph.schemes.registry import (
    AFLW21_IBUG68_PAIRS,
    Scheme,
    convert,
    correspondence,
    eye_centres,
    flip,
    get_scheme,
    list_conversions,
    list_schemes,
    normalisation_distance,
    normalisation_points,
)

__all__ = [
    "AFLW21_IBUG68_PAIRS",
    "Scheme",
    "convert",
    "correspondence",
    "eye_centres",
    "flip",
    "get_scheme",
    "list_conversions",
    "list_schemes",
    "normalisation_distance",
    "normalisation_points",
]
