"""The file suffixes facegraph reads, by kind of input (kept free of imports: the CLI needs them before
any model loads)."""

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm")
MESH_SUFFIXES = (".obj", ".ply", ".stl", ".off")
SCAN_LANDMARK_SUFFIXES = (".json", ".ljson", ".pp", ".csv")
"""Landmark formats that hold 3D points (``.pts`` is 2D only): what ``eval mesh`` pairs a scan with."""
PHOTO_LANDMARK_SUFFIXES = (".pts", ".mat")
"""A photo's annotation: 300-W's iBUG ``.pts``, AFLW2000-3D's ``.mat``."""
