"""How defaults and benchmark constants were chosen, on training ratings only (see benchmarks/README.md)."""
