"""Dataset readers: each returns plain arrays and crops, never model-specific tensors."""

from facegraph.datasets.aflw2000_3d import Aflw2000, load_aflw2000
from facegraph.datasets.faces68 import Faces68, load_faces68
from facegraph.datasets.scans import (
    ScanRecord,
    facescape_records,
    folder_records,
    headspace_records,
    load_scan,
    read_vertex_indices,
    split_by_subject,
)

__all__ = [
    "Aflw2000",
    "Faces68",
    "ScanRecord",
    "facescape_records",
    "folder_records",
    "headspace_records",
    "load_aflw2000",
    "load_faces68",
    "load_scan",
    "read_vertex_indices",
    "split_by_subject",
]
