"""Build of the compiled extensions (``skmfnet._training._kernel`` and, on x86-64, its
``_kernel_x86_64_v3`` build, ``skmfnet._row_sums``, ``skmfnet._training._gibbs_rows``);
the rest: ``pyproject.toml``.

``pip install .``, ``pip install -e .`` and ``python -m build`` compile the
Cython kernel with the machine's C compiler, as scikit-learn, Surprise and
implicit build theirs: nothing compiles when a user fits.  A machine
without a C compiler fails here, at install, with the compiler's error
(see ``docs/installation.rst``); there is no slower pure-Python fallback.
"""

import platform
import sys

from Cython.Build import cythonize
from setuptools import Extension, setup

if sys.platform == "win32":
    flags = ["/O2"]
else:
    # no -ffast-math: linked into a shared library it would change the
    # floating-point mode of the whole process (flush-to-zero); no fused
    # multiply-adds: both builds of the kernel compute every value alike
    flags = ["-O3", "-fno-math-errno", "-fno-trapping-math", "-ffp-contract=off"]

# the kernel again for x86-64-v3 CPUs (AVX2), chosen at run time by the CPU's
# features (skmfnet._training._schedule): GCC >= 11 or Clang >= 12
x86_64_v3 = [] if sys.platform == "win32" or platform.machine().lower() not in ("x86_64", "amd64") else [
    Extension("skmfnet._training._kernel_x86_64_v3", ["skmfnet/_training/_kernel_x86_64_v3.pyx"],
              extra_compile_args=flags + ["-march=x86-64-v3"]),
]

setup(
    ext_modules=cythonize(
        x86_64_v3 + [
            Extension("skmfnet._training._kernel", ["skmfnet/_training/_kernel.pyx"], extra_compile_args=flags),
            Extension("skmfnet._row_sums", ["skmfnet/_row_sums.pyx"], extra_compile_args=flags),
            Extension("skmfnet._training._gibbs_rows", ["skmfnet/_training/_gibbs_rows.pyx"],
                      extra_compile_args=flags),
        ],
        compiler_directives={"language_level": "3"},
    )
)
