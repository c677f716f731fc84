"""Run every benchmark in this folder (each prints a table of medians and ratios)."""
from __future__ import annotations

import runpy
import sys
from pathlib import Path

here = Path(__file__).parent
sys.path.insert(0, str(here))  # benchmarks/common.py
benches = sorted(p for p in here.glob("bench_*.py"))
if not benches:
    print("no benchmarks yet")
for p in benches:
    print(f"== {p.name}")
    sys.argv = [str(p), *sys.argv[1:]]
    runpy.run_path(str(p), run_name="__main__")
