"""The life of a run: settings and presets, the command line, the run loop, its folder and
checkpoints, provenance, threads and the ranks under torchrun."""
