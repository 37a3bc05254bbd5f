"""What `facegraph image --out` writes for a photo."""

from __future__ import annotations

import json

import numpy as np

from facegraph.image.outputs import photo_output_paths, photo_record, write_photo_outputs
from facegraph.io import read_image
from facegraph.types import Face, HeadPose, Landmarks


def test_the_dense_face_is_written_with_each_vertex_coloured_from_the_photo(tmp_path):
    photo = np.zeros((40, 60, 3), np.uint8)
    photo[:20, :30] = (255, 0, 0)  # top left red, top right green, bottom blue
    photo[:20, 30:] = (0, 255, 0)
    photo[20:] = (0, 0, 255)
    vertices = np.array([[5.2, 4.9, 1.0], [44.0, 10.0, 2.0], [30.0, 35.0, 3.0], [-7.0, 90.0, 0.0]])
    expected = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (0, 0, 255)]  # the last: off the photo, clamped
    points = Landmarks(np.zeros((68, 3)))
    face = Face(
        np.array([0.0, 0.0, 60.0, 40.0]), 1.0, Landmarks(np.zeros((68, 2))), points, HeadPose(0.0, 0.0, 0.0),
        mesh_vertices=vertices, mesh_faces=np.array([[0, 1, 2], [1, 3, 2]]),
    )  # fmt: skip
    path = tmp_path / "p.jpg"
    write_photo_outputs(tmp_path, path, photo, [face], photo_record(path, photo, [face]))
    lines = (tmp_path / "p-face1.obj").read_text().splitlines()
    rows = [line.split()[1:] for line in lines if line.startswith("v ")]
    written = np.array(rows, dtype=np.float64)
    np.testing.assert_allclose(written[:, :3], vertices, atol=1e-6)
    np.testing.assert_allclose(written[:, 3:6] * 255, expected, atol=0.5)
    assert json.loads((tmp_path / "p.json").read_text())["faces"][0]["box"] == [0.0, 0.0, 60.0, 40.0]


def test_faces_with_meshes_are_also_drawn_shaded_over_the_photo(tmp_path):
    photo = np.full((40, 60, 3), 30, np.uint8)
    vertices = np.array([[10.0, 5.0, 0.0], [50.0, 5.0, 0.0], [50.0, 35.0, 0.0], [10.0, 35.0, 0.0]])
    zeros = Landmarks(np.zeros((68, 2))), Landmarks(np.zeros((68, 3))), HeadPose(0.0, 0.0, 0.0)
    face = Face(np.array([10.0, 5.0, 50.0, 35.0]), 1.0, *zeros, mesh_vertices=vertices,
                mesh_faces=np.array([[0, 1, 2], [0, 2, 3]]))  # fmt: skip
    path = tmp_path / "p.jpg"
    assert tmp_path / "p-mesh.png" in photo_output_paths(tmp_path, path, mesh=True)
    assert tmp_path / "p-mesh.png" not in photo_output_paths(tmp_path, path)
    write_photo_outputs(tmp_path, path, photo, [face], photo_record(path, photo, [face]))
    overlay = read_image(tmp_path / "p-mesh.png")
    assert (overlay[20, 30] > photo[20, 30]).all()  # drawn, lit head-on
    np.testing.assert_array_equal(overlay[2, 2], photo[2, 2])  # outside the mesh: the photo
    bare = Face(face.box, 1.0, *zeros)
    (tmp_path / "bare").mkdir()
    write_photo_outputs(tmp_path / "bare", path, photo, [bare], photo_record(path, photo, [bare]))
    assert not (tmp_path / "bare" / "p-mesh.png").exists()
