"""Side-by-side benchmarks of the gateway (run: `python -m bench`, or `bench/run`)."""
