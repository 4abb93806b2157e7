"""Builds only the Cython extensions in csrc/ into ``m5stream._native``.

All metadata lives in pyproject.toml; this file exists because setuptools needs code to
describe compiled extensions.
"""

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

_COMMON = {
    "include_dirs": [numpy.get_include(), "csrc/m5stream_native"],
    "extra_compile_args": ["-O3"],
    "define_macros": [("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
}

extensions = [
    Extension("m5stream._native.sampler", ["csrc/m5stream_native/sampler.pyx"], **_COMMON),
    Extension("m5stream._native.tarscan", ["csrc/m5stream_native/tarscan.pyx"], **_COMMON),
]

setup(
    ext_modules=cythonize(
        extensions,
        include_path=["csrc/m5stream_native"],
        compiler_directives={
            "language_level": "3",
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
        },
    ),
)
