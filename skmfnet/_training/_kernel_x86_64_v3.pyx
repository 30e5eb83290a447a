# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The compiled epoch of :mod:`skmfnet._training._kernel`, built for x86-64-v3 CPUs (AVX2, FMA).

The same source (included below), compiled by ``setup.py`` with
``-march=x86-64-v3 -ffp-contract=off``: wider vectors, the same
arithmetic, so the same tables bit for bit.  Imported only where
:func:`skmfnet._training._kernel.cpu_supports_x86_64_v3` holds (see
:mod:`skmfnet._training._schedule`).
"""

include "_kernel.pyx"
