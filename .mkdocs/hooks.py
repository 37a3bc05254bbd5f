"""MkDocs hook: publish pages that live outside docs/ without copying them into it.

benchmarks/RESULTS.md (written by the benchmark scripts), the curves it names under benchmarks/results/
and the model cards beside the shipped weights are added to the build as if they were in docs/,
under the site paths below. `mkdocs serve` watches the originals.
"""

from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parent.parent

# site path -> file in the repository
PAGES = {
    "benchmarks/RESULTS.md": "benchmarks/RESULTS.md",
    "model-cards/synergynet.md": "src/facegraph/data/weights/synergynet.md",
    "model-cards/facegraph-mesh.md": "src/facegraph/data/weights/facegraph-mesh.md",
    "model-cards/faceboxes.md": "src/facegraph/data/weights/faceboxes.md",
    "model-cards/blazeface_short.md": "src/facegraph/data/weights/blazeface_short.md",
}
IMAGES = "benchmarks/results"


def _sources() -> dict[str, Path]:
    sources = {uri: ROOT / path for uri, path in PAGES.items()}
    for image in sorted((ROOT / IMAGES).glob("*.png")):
        sources[f"{IMAGES}/{image.name}"] = image
    return sources


def on_files(files, config):
    for uri, path in _sources().items():
        if not path.is_file():
            raise FileNotFoundError(f"docs hook: {path} is missing")
        files.append(File.generated(config, uri, abs_src_path=str(path)))
    return files


def on_serve(server, config, builder):
    for path in PAGES.values():
        server.watch(str(ROOT / path))
    server.watch(str(ROOT / IMAGES))
    return server


def on_page_markdown(markdown, page, config, files):
    # RESULTS.md folds its commands into <details> blocks; let Markdown render their code blocks.
    if page.file.src_uri == "benchmarks/RESULTS.md":
        markdown = markdown.replace("<details>", '<details markdown="1">')
    return markdown
