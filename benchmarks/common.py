"""What every benchmark script shares: the machine's description and RESULTS.md's sections."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
OUT = HERE / "results"


def machine() -> str:
    """CPU model, core count, OS and torch version, for the 'measured on' line."""
    cpu = platform.processor() or "unknown CPU"
    vectors = torch.backends.cpu.get_cpu_capability()  # speed figures differ 2-5x between them
    if Path("/proc/cpuinfo").is_file():
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        names = [line for line in lines if line.startswith("model name")]
        cpu = names[0].split(":", 1)[1].strip() if names else cpu
        flags = next(
            (set(line.split(":", 1)[1].split()) for line in lines if line.startswith("flags")), set()
        )
        # int8 and bfloat16 kernels (ONNX Runtime's quantised convolutions, autocast) depend on these
        extras = [
            name
            for name, names in (("VNNI", {"avx512_vnni", "avx_vnni"}), ("BF16", {"avx512_bf16"}))
            if flags & names
        ]
        vectors = ", ".join([vectors, *extras])
    system = f"{platform.system()} {platform.release()}"
    return f"{cpu} ({vectors}), {os.cpu_count()} cores, {system}, torch {torch.__version__}"


def write_section(section: str, body: str) -> None:
    """Replace (or append) the block between ``<!-- section:start -->`` and ``<!-- section:end -->``."""
    start, end = f"<!-- {section}:start -->", f"<!-- {section}:end -->"
    text = RESULTS.read_text() if RESULTS.is_file() else "# Benchmark results\n\n"
    block = f"{start}\n{body.rstrip()}\n{end}"
    if start in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    tmp = RESULTS.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(RESULTS)
