"""Loader throughput benchmark: ``python benchmarks/bench_data.py [--quick] [--out results.json]``,
the same as ``maest bench-data``. Measured results: benchmarks/README.md."""

from maest.bench.data import run

if __name__ == "__main__":
    run()
