"""The click commands of `parareason bench …`, one module per benchmark.

Each parses its options and calls the benchmark's plain function in parareason/bench/
(which never imports cli/); cli/bench_cmd.py registers them lazily."""
