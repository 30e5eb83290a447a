"""One-off measurements behind a constant or a sentence of the docs, not benchmark rows (see benchmarks/README.md)."""
