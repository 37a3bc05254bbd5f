"""Reading and writing the files users bring: photos, landmark files and meshes.

Every problem with a user's file raises :class:`facegraph.errors.InputError` naming the file, and every
writer replaces its output atomically.
"""

from facegraph.io.atomic import atomic_path, write_atomic
from facegraph.io.images import read_image, write_image
from facegraph.io.landmarks import (
    SCHEME_SIZES,
    read_csv,
    read_json,
    read_landmarks,
    read_ljson,
    read_pp,
    read_pts,
    write_csv,
    write_json,
    write_landmarks,
    write_ljson,
    write_pp,
    write_pts,
)
from facegraph.io.meshes import read_mesh, vertex_normals, write_mesh, write_points_ply

__all__ = [
    "SCHEME_SIZES",
    "atomic_path",
    "read_csv",
    "read_image",
    "read_json",
    "read_landmarks",
    "read_ljson",
    "read_mesh",
    "read_pp",
    "read_pts",
    "vertex_normals",
    "write_atomic",
    "write_csv",
    "write_image",
    "write_json",
    "write_landmarks",
    "write_ljson",
    "write_mesh",
    "write_points_ply",
    "write_pp",
    "write_pts",
]
