"""`make bench`: speed and memory of scoring and training, each figure a ratio of two timings
measured in this one run on phantoms, printed with its goal, and written to
``<out>/benchmarks.json`` and ``<out>/benchmarks.md`` (the table docs/benchmarks.md shows)."""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

from bench_tools import machine

MODULES = ("rheumtexture", "sjogrenus")


def _value(figure) -> str:
    if figure.unit == "MiB":
        return f"{figure.value:.1f} MiB"
    if figure.unit == "x":
        return f"{figure.value:.2f}"
    return f"{figure.value:.2g}" if figure.value < 0.01 else f"{figure.value:.3f}"


def table(figures) -> str:
    lines = ["| command | figure | measured | goal | holds |", "|---|---|---|---|---|"]
    for f in figures:
        goal = "(information)" if f.op == "info" else f"{f.op} {f.goal:g}" + (" MiB" if f.unit == "MiB" else "")
        holds = "" if f.op == "info" else "yes" if f.holds else "**no**"
        lines.append(f"| {f.module} | {f.name} | {_value(f)} | {goal} | {holds} |")
    return "\n".join(lines)


def markdown(figures, info: dict, elapsed: float) -> str:
    m = info
    return "\n".join([
        "# Benchmarks", "",
        f"Measured by `make bench` on {time.strftime('%Y-%m-%d')}: {m['cpu']}, {m['cores']} cores, "
        f"{m['memory_gib']} GiB, GPU: {m['gpu']}; Python {m['python']}, torch {m['torch']} "
        f"({m['torch_threads']} threads), MONAI {m['monai']}, ONNX Runtime {m['onnxruntime']}. "
        f"The run took {elapsed / 60:.1f} min.", "",
        table(figures), "",
        "Each figure divides two timings taken in the same run, so it carries over between machines better "
        "than seconds do; `benchmarks.json` beside this table keeps the timings and conditions of each.", ""])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="bench_output", help="folder for benchmarks.json and benchmarks.md")
    parser.add_argument("--only", choices=MODULES, action="append", help="run only this command's figures")
    parser.add_argument("--keep-work", action="store_true", help="keep the phantoms and bundles made for the run")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="rheum-bench-"))
    started = time.perf_counter()

    def log(message):
        print(f"[{time.perf_counter() - started:6.0f} s] {message}", flush=True)

    figures = []
    try:
        import os

        os.environ.setdefault("RHEUM_IMAGING_CACHE", str(work / "cache"))  # exports are part of what is measured
        for name in args.only or MODULES:
            module = __import__(f"bench_{name}")
            log(f"== {module.MODULE}")
            (work / name).mkdir()
            figures += module.run(work / name, log)
    finally:
        if args.keep_work:
            print(f"work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    elapsed = time.perf_counter() - started
    info = machine()
    (out / "benchmarks.json").write_text(json.dumps(
        {"machine": info, "seconds": elapsed, "figures": [f.as_dict() for f in figures]}, indent=2, default=str))
    (out / "benchmarks.md").write_text(markdown(figures, info, elapsed))
    print()
    print(table(figures))
    goals = [f for f in figures if f.op != "info"]
    print(f"\n{sum(f.holds for f in goals)} of {len(goals)} goals hold; wrote {out / 'benchmarks.json'} "
          f"and {out / 'benchmarks.md'} ({elapsed / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
