"""`kgpt reproduce --ray local` against the in-process run: wall time and identical files.

usage: python benchmarks/ray_local.py DATA_DIR OUT [--preset quick|cut] [--variants ...] [--cpus_per_cell N]

Runs the same study twice, in this process and then as Ray tasks on a local cluster,
into OUT/inprocess and OUT/ray, and compares every predictions file and checkpoint byte
for byte. ``cut`` is the quick preset's two settings with a 1-layer, 32-wide model and
one epoch per stage: the same code path on the real files in minutes where a shared CPU
cannot give the quick preset its hour. Prints one JSON line (also OUT/summary.json).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from kgpt.cli import main
from kgpt.presets import PRESETS, Preset, Setting

CUT = Preset("cut", tuple(
    Setting(s.name, pretrain_epochs=1, finetune_epochs=1, model={"n_layer": 1, "n_head": 2, "n_embd": 32})
    for s in PRESETS["quick"].settings
))


def timed_run(args: list[str]) -> float:
    t0 = time.perf_counter()
    if main(args) != 0:
        raise SystemExit(f"failed: kgpt {' '.join(args)}")
    return round(time.perf_counter() - t0, 1)


def compare(a: Path, b: Path) -> dict[str, bool]:
    """Every predictions file and checkpoint of ``a``: is ``b``'s the same bytes?"""
    names = sorted(p.relative_to(a).as_posix() for sub in ("predictions", "checkpoints") for p in (a / sub).glob("*"))
    return {n: (b / n).is_file() and (a / n).read_bytes() == (b / n).read_bytes() for n in names}


def run(data: Path, out: Path, preset: str, variants: list[str], cpus: int) -> dict:
    PRESETS.setdefault("cut", CUT)
    common = ["reproduce", "--data_dir", str(data), "--preset", preset, "--variants", *variants, "--device", "cpu",
              "--cpus_per_cell", str(cpus)]
    here = timed_run([*common, "--out", str(out / "inprocess")])
    there = timed_run([*common, "--out", str(out / "ray"), "--ray", "local"])
    same = compare(out / "inprocess", out / "ray")
    return {"preset": preset, "variants": variants, "cpus_per_cell": cpus, "in_process_s": here, "ray_local_s": there,
            "identical": all(same.values()), "files": same}


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data_dir", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--preset", default="cut")
    p.add_argument("--variants", nargs="+", default=["vanilla"])
    p.add_argument("--cpus_per_cell", type=int, default=1)
    a = p.parse_args()
    summary = run(a.data_dir, a.out, a.preset, a.variants, a.cpus_per_cell)
    (a.out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary))
