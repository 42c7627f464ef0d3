"""Speed and quality benchmarks, run on demand; figures in RESULTS.md."""
