"""Builds only the Cython extensions in csrc/ into ``m5stream._native``.

All metadata lives in pyproject.toml; this file exists because setuptools needs code to
describe compiled extensions.
"""

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

_COMMON = {
    "include_dirs": [numpy.get_include(), "csrc/m5stream/_native"],
    "extra_compile_args": ["-O3"],
    "define_macros": [("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
}

extensions = [
    Extension("m5stream._native.sampler", ["csrc/m5stream/_native/sampler.pyx"], **_COMMON),
    Extension("m5stream._native.tarscan", ["csrc/m5stream/_native/tarscan.pyx"], **_COMMON),
    Extension("m5stream._native.textcol", ["csrc/m5stream/_native/textcol.pyx"], **_COMMON),
    # libjpeg-turbo (>= 1.5 for jpeg_crop_scanline / jpeg_skip_scanlines) from the system
    Extension(
        "m5stream._native.imgops",
        [
            "csrc/m5stream/_native/imgops.pyx",
            "csrc/m5stream/_native/m5jpeg.c",
            "csrc/m5stream/_native/m5resample.c",
        ],
        libraries=["jpeg"],
        **_COMMON,
    ),
]

setup(
    ext_modules=cythonize(
        extensions,
        include_path=["csrc"],
        compiler_directives={
            "language_level": "3",
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
        },
    ),
)
