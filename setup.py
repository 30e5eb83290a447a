"""Build of the compiled extensions (``skmfnet._training._kernel``, ``skmfnet._row_sums``,
``skmfnet._training._gibbs_rows``); the rest: ``pyproject.toml``.

``pip install .``, ``pip install -e .`` and ``python -m build`` compile the
Cython kernel with the machine's C compiler, as scikit-learn, Surprise and
implicit build theirs: nothing compiles when a user fits.  A machine
without a C compiler fails here, at install, with the compiler's error
(see ``docs/installation.rst``); there is no slower pure-Python fallback.
"""

import sys

from Cython.Build import cythonize
from setuptools import Extension, setup

if sys.platform == "win32":
    flags = ["/O2"]
else:
    # no -ffast-math: linked into a shared library it would change the
    # floating-point mode of the whole process (flush-to-zero)
    flags = ["-O3", "-fno-math-errno", "-fno-trapping-math"]

setup(
    ext_modules=cythonize(
        [
            Extension("skmfnet._training._kernel", ["skmfnet/_training/_kernel.pyx"], extra_compile_args=flags),
            Extension("skmfnet._row_sums", ["skmfnet/_row_sums.pyx"], extra_compile_args=flags),
            Extension("skmfnet._training._gibbs_rows", ["skmfnet/_training/_gibbs_rows.pyx"],
                      extra_compile_args=flags),
        ],
        compiler_directives={"language_level": "3"},
    )
)
