"""The robustness suite: bad and unusual inputs, built here, each run through the command line.

Every case ends in exit 0 with a correct result, or exit 2 with one line naming the file and the
problem; never a traceback, never a changed input, never a temporary file left behind.
``benchmarks/robustness.py`` reports how many cases there are.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from facegraph.cli import main
from facegraph.demo import sample_path
from facegraph.image.synergynet import bundled_weights as photo_weights
from facegraph.io import read_mesh, write_mesh
from facegraph.mesh.landmarker import bundled_weights as mesh_weights
from facegraph.types import Mesh

BOX = "180,60,300,200"  # the astronaut's face: photo cases skip the detector with it
ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Case:
    """``build`` writes the inputs into a folder and returns the command line; ``exit`` is 0 or 2.

    For 2, ``says`` is in the one error line and ``names`` (a file name) too; for 0, ``check`` gets the
    folder and the standard output and asserts the result.
    """

    name: str
    build: Callable[[Path], list[str]]
    exit: int
    says: str = ""
    names: str = ""
    check: Callable[[Path, str], None] | None = None


def photo(folder: Path, name: str = "face.jpg") -> Path:
    path = folder / name
    shutil.copy(sample_path("astronaut.jpg"), path)
    return path


def scan(folder: Path, name: str = "james.obj") -> Path:
    path = folder / name
    shutil.copy(sample_path("james.obj"), path)
    return path


def image(*args: object) -> list[str]:
    return ["image", *map(str, args), "--quiet"]


def one_face(folder: Path, stdout: str) -> None:
    faces = json.loads((folder / "faces.json").read_text())["faces"]
    assert len(faces) == 1 and np.isfinite(faces[0]["points_2d"]).all()


def landmarks_out(folder: Path, stdout: str) -> None:
    report = json.loads((folder / "out.json").read_text())
    assert np.array(report["points"]).shape == (68, 3) and np.isfinite(report["points"]).all()


def with_bytes(name: str, data: bytes | Callable[[Path], bytes]) -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        path = folder / name
        path.write_bytes(data(folder) if callable(data) else data)
        return path

    return write


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header(width: int, height: int, rows: bytes = b"") -> bytes:
    """A greyscale PNG whose header says ``width`` x ``height``, with ``rows`` as its (compressed) data."""
    ihdr = png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + ihdr + png_chunk(b"IDAT", rows) + png_chunk(b"IEND", b"")


def decompression_bomb() -> bytes:
    """Just over the pixel count Pillow refuses: zeros, a few hundred kilobytes compressed."""
    side = 13_500
    squeeze, block = zlib.compressobj(1), bytes((side + 1) * 500)
    data = b"".join(squeeze.compress(block) for _ in range(side // 500)) + squeeze.flush()
    return png_header(side, side, data)


def colour_mode(mode: str, suffix: str) -> Callable[[Path], Path]:
    """The astronaut in an unusual colour mode."""

    def write(folder: Path) -> Path:
        rgb = Image.open(sample_path("astronaut.jpg"))
        converted = rgb.convert("I;16") if mode == "I;16" else rgb.convert(mode)
        path = folder / f"odd{suffix}"
        converted.save(path)
        return path

    return write


def photo_cases() -> list[Case]:
    truncated = with_bytes("cut.jpg", lambda f: sample_path("astronaut.jpg").read_bytes()[:6000])
    cases = [
        ("empty photo", with_bytes("empty.jpg", b""), 2, "empty.jpg"),
        ("truncated photo", truncated, 2, "cut.jpg"),
        ("text disguised as a photo", with_bytes("notes.png", b"just some text\n" * 20), 2, "notes.png"),
        ("photo with a huge header", with_bytes("huge.png", png_header(100_000, 100_000)), 2, "huge.png"),
        ("decompression bomb", with_bytes("bomb.png", lambda f: decompression_bomb()), 2, "bomb.png"),
        ("a JPEG named .png", lambda f: photo(f, "really-a-jpeg.png"), 0, ""),
    ]
    cases += [(f"{mode} photo", colour_mode(mode, suffix), 0, "") for mode, suffix in ODD_MODES]
    built = []
    for name, make, code, file_name in cases:
        built.append(
            Case(
                name,
                lambda folder, make=make: image(make(folder), "--box", BOX, "--json", folder / "faces.json"),
                code,
                names=file_name,
                check=one_face if code == 0 else None,
            )
        )
    return built


ODD_MODES = (("I;16", ".png"), ("CMYK", ".jpg"), ("P", ".png"), ("1", ".bmp"), ("LA", ".png"), ("L", ".pgm"))


def write_user_file(folder: Path, name: str = "mine.json") -> Path:
    (folder / name).write_text('{"my": "notes"}\n')
    return folder / name


def twice(argv: Callable[[Path], list[str]]) -> Callable[[Path], list[str]]:
    """Run the command once while building, so the case is its second run."""

    def build(folder: Path) -> list[str]:
        first = argv(folder)
        assert main(first) == 0
        return first

    return build


def output_cases() -> list[Case]:
    def same_stems(folder: Path) -> list[str]:
        for sub in ("a", "b"):
            (folder / sub).mkdir()
            photo(folder / sub)
        return image(folder / "a", folder / "b", "--box", BOX, "--out", folder / "out")

    def photo_under_out(folder: Path) -> list[str]:
        return image(photo(folder), "--box", BOX, "--out", folder)

    def rerun_out(folder: Path) -> list[str]:
        return image(folder / "face.jpg", "--box", BOX, "--out", folder / "out")

    def folder_into_itself(folder: Path) -> list[str]:
        photo(folder)
        return image(folder, "--box", BOX, "--out", folder)

    def one_photo_read(folder: Path, stdout: str) -> None:  # not the first run's annotated PNG
        assert stdout.count("face 1:") == 1, stdout
        annotated_jpg_out(folder, stdout)

    def annotated_jpg_out(folder: Path, stdout: str) -> None:
        assert (folder / "face-annotated.png").is_file() and (folder / "face.json").is_file()

    return [
        Case(
            "--json names the photo",
            lambda f: image(photo(f), "--box", BOX, "--json", f / "face.jpg"),
            2,
            "is an input of this run",
            "face.jpg",
        ),
        Case(
            "--json into a missing folder",
            lambda f: image(photo(f), "--box", BOX, "--json", f / "no/x.json"),
            2,
            "the folder does not exist",
            "no",
        ),
        Case(
            "--json inside a file",
            lambda f: image(photo(f), "--box", BOX, "--json", f / "face.jpg/x.json"),
            2,
            "is a file, not a folder",
            "face.jpg",
        ),
        Case(
            "--json onto a user's file",
            lambda f: image(photo(f), "--box", BOX, "--json", write_user_file(f)),
            2,
            "pass --overwrite",
            "mine.json",
        ),
        Case(
            "--json onto a user's file with --overwrite",
            lambda f: [*image(photo(f), "--box", BOX, "--json", f / "faces.json"), "--overwrite"],
            0,
            check=one_face,
        ),
        Case(
            "--out names a file",
            lambda f: image(photo(f), "--box", BOX, "--out", write_user_file(f)),
            2,
            "is a file, not a folder",
            "mine.json",
        ),
        Case("two photos of one name into one --out", same_stems, 2, "written twice", "face-annotated.png"),
        Case("--out holds the photo named", photo_under_out, 0, check=annotated_jpg_out),
        Case("a second run into the same --out", lambda f: (photo(f), twice(rerun_out)(f))[1], 0),
        Case("a folder into itself, twice", twice(folder_into_itself), 0, check=one_photo_read),
        Case(
            "--box off the photo",
            lambda f: image(photo(f), "--box=-500,-500,-100,-100"),
            2,
            "outside the 512x512 photo",
            "face.jpg",
        ),
        Case(
            "--box a thousand times the photo",
            lambda f: image(photo(f), "--box=-100000,-100000,100000,100000"),
            2,
            "outside the 512x512 photo",
            "face.jpg",
        ),
        Case("--min-score nan", lambda f: image(photo(f), "--min-score", "nan"), 2, "finite number"),
    ]


def stray_vertex(folder: Path) -> Path:
    mesh = read_mesh(sample_path("james.obj"), normals=False)
    vertices = np.vstack([mesh.vertices, [[1e6, 0.0, 0.0]]])
    write_mesh(folder / "stray.obj", Mesh(vertices, mesh.faces))
    return folder / "stray.obj"


def as_stl(folder: Path) -> Path:
    write_mesh(folder / "james.stl", read_mesh(sample_path("james.obj"), normals=False))
    return folder / "james.stl"


def nan_vertex(folder: Path) -> Path:
    text = sample_path("james.obj").read_text().replace("\nv ", "\nv nan ", 1)
    (folder / "nan.obj").write_text(text.replace("\nv nan ", "\nv nan 0 0 #", 1))
    return folder / "nan.obj"


def scan_cases() -> list[Case]:
    def mesh(make: Callable[[Path], Path]) -> Callable[[Path], list[str]]:
        return lambda f: ["mesh", str(make(f)), "--json", str(f / "out.json"), "--quiet"]

    def pieces_as_in_the_obj(folder: Path, stdout: str) -> None:
        landmarks_out(folder, stdout)  # an STL stores each triangle's corners apart: welded, james has 6
        assert "the mesh has 6 separate pieces" in stdout, stdout

    def names_stray(folder: Path, stdout: str) -> None:
        landmarks_out(folder, stdout)
        assert "vertex 75" in stdout or "1 vertex" in stdout or "outlying" in stdout, stdout

    def out_beside_scans(folder: Path) -> list[str]:
        scan(folder)
        shutil.copy(sample_path("james.json"), folder / "james.json")
        return ["mesh", str(folder), "--out", str(folder), "--quiet"]

    def earlier_outputs_inside(folder: Path) -> list[str]:
        (folder / "scans").mkdir()
        write_mesh(folder / "scans" / "face.obj", read_mesh(scan(folder), normals=False))  # ours: a scan
        assert main(["mesh", str(folder / "scans"), "--out", str(folder / "scans" / "out"), "--quiet"]) == 0
        return ["mesh", str(folder / "scans"), "--json", str(folder / "out.json"), "--quiet"]

    def json_to_stdout(folder: Path, stdout: str) -> None:
        assert np.array(json.loads(stdout)["points"]).shape == (68, 3)

    metres = with_bytes("metres.obj", lambda f: _scaled_obj(0.001))
    return [
        Case("a scan", mesh(scan), 0, check=landmarks_out),
        Case("empty scan", mesh(with_bytes("empty.obj", b"")), 2, names="empty.obj"),
        Case(
            "random bytes as a scan",
            mesh(with_bytes("noise.obj", np.random.default_rng(0).bytes(4096))),
            2,
            names="noise.obj",
        ),
        Case(
            "truncated binary PLY",
            mesh(with_bytes("cut.ply", lambda f: _binary_ply()[:5000])),
            2,
            names="cut.ply",
        ),
        Case(
            "a photo disguised as a scan",
            mesh(with_bytes("face.ply", sample_path("astronaut.jpg").read_bytes())),
            2,
            names="face.ply",
        ),
        Case("a NaN vertex", mesh(nan_vertex), 2, "NaN", "nan.obj"),
        Case(
            "three vertices",
            mesh(with_bytes("tri.obj", b"v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")),
            2,
            "too few",
            "tri.obj",
        ),
        Case("a scan in metres", mesh(metres), 2, "--units m", "metres.obj"),
        Case("one stray vertex", mesh(stray_vertex), 0, check=names_stray),
        Case("a binary STL", mesh(as_stl), 0, check=pieces_as_in_the_obj),
        Case("--out over the annotations", out_beside_scans, 2, "annotation beside james.obj", "james.json"),
        Case(
            "a scan folder holding an earlier run's outputs",
            earlier_outputs_inside,
            0,
            check=landmarks_out,  # one scan's report: its landmark cloud in out/ was left out
        ),
        Case("--json -", lambda f: ["mesh", str(scan(f)), "--json", "-", "--quiet"], 0, check=json_to_stdout),
    ]


def _scaled_obj(factor: float) -> bytes:
    mesh = read_mesh(sample_path("james.obj"), normals=False)
    lines = [f"v {x:.9g} {y:.9g} {z:.9g}" for x, y, z in mesh.vertices * factor]
    lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in mesh.faces]
    return ("\n".join(lines) + "\n").encode()


def _binary_ply() -> bytes:
    import trimesh

    mesh = read_mesh(sample_path("james.obj"), normals=False)
    return trimesh.Trimesh(mesh.vertices, mesh.faces, process=False).export(file_type="ply")


BILLION_LAUGHS = (
    '<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">' for i in range(1, 10)
    )
    + ']>\n<PickedPoints><point x="&lol9;" y="0" z="0" name="0"/></PickedPoints>\n'
)


def landmark_cases() -> list[Case]:
    def convert(
        make: Callable[[Path], Path], out: str = "out.json", *extra: str
    ) -> Callable[[Path], list[str]]:
        return lambda f: ["convert", str(make(f)), str(f / out), *extra]

    def pts(folder: Path) -> Path:
        shutil.copy(sample_path("einstein.pts"), folder / "einstein.pts")
        return folder / "einstein.pts"

    def beside_photo(folder: Path) -> list[str]:
        shutil.copy(sample_path("einstein.jpg"), folder / "einstein.jpg")
        return ["convert", str(pts(folder)), str(folder / "einstein.pts"), "--overwrite"]

    def annotation_beside_photo(folder: Path) -> list[str]:
        photo(folder, "other.jpg")
        (folder / "other.pts").write_text(sample_path("einstein.pts").read_text())
        return ["convert", str(pts(folder)), str(folder / "other.pts"), "--overwrite"]

    cut = with_bytes("cut.pts", lambda f: sample_path("einstein.pts").read_bytes()[:300])
    return [
        Case("empty landmark file", convert(with_bytes("empty.pts", b"")), 2, names="empty.pts"),
        Case("truncated landmark file", convert(cut), 2, names="cut.pts"),
        Case(
            "an XML entity bomb", convert(with_bytes("bomb.pp", BILLION_LAUGHS.encode())), 2, names="bomb.pp"
        ),
        Case(
            "--scheme bogus",
            convert(pts, "out.json", "--scheme", "bogus"),
            2,
            "unknown --scheme",
            "einstein.pts",
        ),
        Case("convert onto its own input", beside_photo, 2, "is an input of this run", "einstein.pts"),
        Case(
            "convert onto an annotation",
            annotation_beside_photo,
            2,
            "annotation beside other.jpg",
            "other.pts",
        ),
    ]


class Payload:
    """A pickle that would create a file if it ever ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def weights_cases() -> list[Case]:
    def hostile(folder: Path) -> list[str]:
        for name in ("mb05_120x120.pth", "param_mean_std_62d_120x120.pkl"):
            with open(folder / name, "wb") as handle:
                pickle.dump({"state_dict": Payload(folder / "PWNED")}, handle)
        basis = folder / "bfm"
        basis.mkdir()
        rng = np.random.default_rng(0)
        np.savetxt(basis / "u_base.txt", rng.normal(0, 50, 204))
        np.savetxt(basis / "w_shp_base.txt", rng.normal(0, 1, (204, 40)))
        np.savetxt(basis / "w_exp_base.txt", rng.normal(0, 1, (204, 10)))
        return image(photo(folder), "--box", BOX, "--model", "3ddfa-v2-mb05", "--weights",
                     folder / "mb05_120x120.pth", "--bfm", basis)  # fmt: skip

    def spoiled(source: Path, name: str, spoil: Callable[[dict], None]) -> Callable[[Path], Path]:
        def write(folder: Path) -> Path:
            tensors = load_file(str(source))
            with safe_open(str(source), framework="pt") as handle:
                metadata = handle.metadata()
            spoil(tensors)
            save_file(tensors, str(folder / name), metadata=metadata)
            return folder / name

        return write

    def first_nan(tensors: dict) -> None:
        key = sorted(k for k in tensors if tensors[k].is_floating_point())[0]
        tensors[key] = tensors[key].clone().fill_(float("nan"))

    def drop_one(tensors: dict) -> None:
        del tensors[sorted(tensors)[0]]

    def photo_with(make: Callable[[Path], Path]) -> Callable[[Path], list[str]]:
        return lambda f: image(photo(f), "--box", BOX, "--weights", make(f))

    def scan_with(make: Callable[[Path], Path]) -> Callable[[Path], list[str]]:
        return lambda f: ["mesh", str(scan(f)), "--weights", str(make(f)), "--quiet"]

    nan_photo = spoiled(photo_weights(), "nan.safetensors", first_nan)
    nan_mesh = spoiled(mesh_weights(), "nan.safetensors", first_nan)
    mesh_as_photo = spoiled(mesh_weights(), "mesh.safetensors", lambda t: None)
    photo_as_mesh = spoiled(photo_weights(), "photo.safetensors", lambda t: None)
    cut = with_bytes("cut.safetensors", lambda f: photo_weights().read_bytes()[:100_000])

    def onnx_nan(folder: Path) -> list[str]:
        return ["export", "onnx", str(folder / "m.onnx"), "--weights", str(nan_photo(folder))]

    return [
        Case("a hostile pickle as weights", hostile, 2, names="_120x120.p"),
        Case("NaN photo weights", photo_with(nan_photo), 2, "NaN", "nan.safetensors"),
        Case("NaN mesh weights", scan_with(nan_mesh), 2, "NaN", "nan.safetensors"),
        Case(
            "a photo weights file missing a tensor",
            photo_with(spoiled(photo_weights(), "short.safetensors", drop_one)),
            2,
            "missing",
            "short.safetensors",
        ),
        Case(
            "a mesh weights file missing a tensor",
            scan_with(spoiled(mesh_weights(), "short.safetensors", drop_one)),
            2,
            "missing",
            "short.safetensors",
        ),
        Case(
            "mesh weights for photos",
            photo_with(mesh_as_photo),
            2,
            "holds mesh landmarker weights, not SynergyNet weights",
            "mesh.safetensors",
        ),
        Case(
            "photo weights for scans",
            scan_with(photo_as_mesh),
            2,
            "holds SynergyNet weights, not mesh landmarker weights",
            "photo.safetensors",
        ),
        Case("truncated weights", photo_with(cut), 2, names="cut.safetensors"),
        Case("ONNX export of NaN weights", onnx_nan, 2, names="nan.safetensors"),
    ]


def training_cases() -> list[Case]:
    def no_bfm(folder: Path) -> list[str]:
        return ["train", "mesh", "--out", str(folder / "run"), "--bfm", str(folder / "nowhere"), "--quiet"]

    def earlier_run(folder: Path) -> list[str]:
        (folder / "run").mkdir()
        (folder / "run" / "last.pt").write_bytes(b"an earlier run")
        return ["train", "mesh", "--out", str(folder / "run"), "--bfm", str(folder / "nowhere"), "--quiet"]

    return [
        Case("train mesh without a BFM", no_bfm, 2, "BFM folder not found", "nowhere"),
        Case("train mesh into an earlier run", earlier_run, 2, "pass --resume", "run"),
    ]


CASES = photo_cases() + output_cases() + scan_cases() + landmark_cases() + weights_cases() + training_cases()


def checksums(folder: Path) -> dict[Path, str]:
    """Every file and folder under ``folder``: a file's SHA-256, a folder's empty string."""
    return {
        p: "" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
        for p in folder.rglob("*")
        if not p.is_symlink()
    }


def run(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # an option's error, from the parser
        return int(exc.code)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_case(case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = case.build(tmp_path)
    capsys.readouterr()
    before = checksums(tmp_path)
    code = run(argv)
    out, err = capsys.readouterr()
    after = checksums(tmp_path)
    assert code == case.exit, err
    assert "Traceback" not in err
    if case.exit == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("facegraph"), err
        assert case.says in lines[0] and case.names in lines[0], lines[0]
        assert after == before, "a refused command wrote or changed something"
    else:
        assert "arning" not in err, err  # no library's raw warning
        assert {p: after.get(p) for p in before} == before, "an input changed"
        assert not [p for p in after if ".tmp" in p.name], "a temporary file was left"
        if case.check is not None:
            case.check(tmp_path, out)


SIGNAL_SCRIPT = """
import os, signal, sys
from PIL import Image
from facegraph.cli import main

saves, real = [], Image.Image.save
def save(self, fp, *args, **kwargs):
    saves.append(fp)
    if len(saves) == {after}:
        os.kill(os.getpid(), signal.{signal})
    return real(self, fp, *args, **kwargs)
Image.Image.save = save
sys.exit(main(sys.argv[1:]))
"""


def test_sigterm_while_a_photo_is_written_ends_cleanly(tmp_path: Path) -> None:
    first, second = photo(tmp_path, "first.jpg"), photo(tmp_path, "second.jpg")
    before = checksums(tmp_path)
    script = SIGNAL_SCRIPT.replace("{after}", "2").replace("{signal}", "SIGTERM")
    argv = [str(first), str(second), "--box", BOX, "--out", str(tmp_path / "out"), "--quiet"]
    done = subprocess.run(
        [sys.executable, "-c", script, "image", *argv], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert done.returncode == 143 and done.stderr.strip() == "facegraph: interrupted", done.stderr
    assert {p: h for p, h in checksums(tmp_path).items() if p in before} == before
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["first-annotated.png", "first.json"]  # the complete photo's outputs stay


EARLY_SCRIPT = """
import os, signal, sys
import facegraph.cli as cli

build = cli.build_parser
def interrupted_build():
    os.kill(os.getpid(), signal.SIGINT)
    return build()
cli.build_parser = interrupted_build
sys.exit(cli.main(sys.argv[1:]))
"""


def test_ctrl_c_before_the_command_starts_is_no_traceback(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", EARLY_SCRIPT, "export", "onnx", str(tmp_path / "m.onnx")],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )  # fmt: skip
    assert done.returncode == 130 and done.stderr.strip() == "facegraph: interrupted", done.stderr
    assert not list(tmp_path.iterdir())
