"""Dataset readers: each returns plain arrays and crops, never model-specific tensors."""

from facegraph.datasets.aflw2000_3d import Aflw2000, load_aflw2000
from facegraph.datasets.faces68 import Faces68, load_faces68

__all__ = ["Aflw2000", "Faces68", "load_aflw2000", "load_faces68"]
