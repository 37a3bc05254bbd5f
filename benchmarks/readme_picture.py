"""The README's picture of several faces in different poses: scikit-image's "camera" photo (a man in
near profile behind a camcorder; CC0, Lav Varshney) beside the bundled astronaut portrait (NASA, public
domain), analysed as ``facegraph image --mesh`` does with the default detector. Above: boxes, 68
landmarks and head-pose axes; below: the dense faces shaded over the photo. Needs the BFM's dense
bases (``facegraph setup bfm`` or ``--bfm DIR``). Writes docs/faces-in-every-pose.jpg.
"""

from __future__ import annotations

import argparse
import io
import zipfile

import numpy as np
from PIL import Image

from common import HERE
from detection_sets import scikit_image_wheel
from facegraph.demo import sample_path
from facegraph.image import FaceAnalyzer
from facegraph.image.detectors import make_detector
from facegraph.io.images import write_image
from facegraph.viz.annotate import annotate_faces
from facegraph.viz.render import render_meshes

OUTPUT = HERE.parent / "docs" / "faces-in-every-pose.jpg"
SIDE = 512  # both photos are this size
SHOWN = 0.75  # the picture is saved at this scale


def group_photo() -> np.ndarray:
    """The camera photo and the astronaut portrait side by side, (512, 1024, 3) uint8 RGB."""
    with zipfile.ZipFile(scikit_image_wheel()) as wheel:
        camera = Image.open(io.BytesIO(wheel.read("skimage/data/camera.png"))).convert("RGB")
    astronaut = Image.open(sample_path("astronaut.jpg")).convert("RGB").resize((SIDE, SIDE))
    return np.concatenate([np.asarray(camera), np.asarray(astronaut)], axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bfm", help="the BFM folder (default: the one `facegraph setup bfm` installed)")
    rgb = group_photo()
    faces = FaceAnalyzer(bfm=parser.parse_args().bfm).analyze(rgb, mesh=True)
    hog = make_detector("dlib-hog").detect(rgb)
    for face in faces:
        yaw, pitch, roll = face.pose.yaw, face.pose.pitch, face.pose.roll
        print(f"face at {np.round(face.box).tolist()}: yaw {yaw:+.1f}, pitch {pitch:+.1f}, roll {roll:+.1f}")
    print(f"{len(faces)} faces found; dlib-hog finds {len(hog)}")
    meshes = [(f.mesh_vertices, f.mesh_faces) for f in faces]
    both = np.concatenate([annotate_faces(rgb, faces), render_meshes(rgb, meshes)], axis=0)
    size = (round(both.shape[1] * SHOWN), round(both.shape[0] * SHOWN))
    write_image(OUTPUT, np.asarray(Image.fromarray(both).resize(size, Image.LANCZOS)))
    print(f"wrote {OUTPUT}")


if __name__ == "__main__":
    main()
