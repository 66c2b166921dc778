"""Loader throughput benchmark: ``python benchmarks/bench_data.py [--quick] [--out results.json]``,
the same as ``maest bench-data``. Measured results: the docstring of ``src/maest/bench_data.py``."""

from maest.bench_data import run

if __name__ == "__main__":
    run()
