"""Speed measurements outside the test suite: the CPU benchmarks (`pytest benchmarks --benchmark-only`) and the
GPU benchmark (`python benchmarks/gpu.py`, code in gpubench/)."""
