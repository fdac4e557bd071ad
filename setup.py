"""Builds the extension rill._rill with the project's own CMake (the runtime, the converter and the
module), so pip gets exactly what scripts/build.sh builds. Offline: CMake, a C++20 compiler, pybind11
and the Python headers come from Debian (scripts/setup.sh)."""
import glob
import os
import shutil
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))


class CMakeExtension(Extension):
    def __init__(self, name):
        super().__init__(name, sources=[])


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        # RILL_CMAKE_BUILD_DIR: an existing build of this tree (scripts/build.sh's) to build the target in,
        # instead of configuring a new one (the test suite uses it to avoid compiling everything twice).
        build = os.environ.get("RILL_CMAKE_BUILD_DIR")
        if not build:
            build = os.path.abspath(os.path.join(self.build_temp, "cmake"))
            subprocess.check_call(["cmake", "-S", HERE, "-B", build, "-DCMAKE_BUILD_TYPE=Release", "-DRILL_BUILD_TESTS=OFF",
                                   "-DRILL_BUILD_EXAMPLES=OFF", "-DRILL_PYTHON=ON",
                                   f"-DPython3_EXECUTABLE={sys.executable}"])
        subprocess.check_call(["cmake", "--build", build, "--target", "_rill", "-j", str(os.cpu_count() or 1)])
        built = glob.glob(os.path.join(build, "python", "rill", "_rill*.so"))
        if not built:
            raise RuntimeError("the CMake build made no rill/_rill*.so")
        dest = self.get_ext_fullpath(ext.name)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        shutil.copyfile(built[0], dest)


setup(packages=["rill"], package_dir={"": "python"}, package_data={"rill": ["py.typed", "__init__.pyi"]},
      ext_modules=[CMakeExtension("rill._rill")],
      cmdclass={"build_ext": CMakeBuild},
      options={"build": {"build_base": os.environ.get("RILL_PIP_BUILD_BASE", os.path.join(HERE, "build-pip"))},
               "egg_info": {"egg_base": os.environ.get("RILL_PIP_BUILD_BASE", os.path.join(HERE, "build-pip"))}})
