#!/usr/bin/python3
"""A copy of the sensor demo's checkpoint whose decoder bias is NaN: a model that returns NaN on every
step, for the control loop's fail-safe test (tests/control_loop/failsafe_test.cmake).

    make_nan_checkpoint.py SRC_CHECKPOINT OUT_DIR
"""
import os
import shutil
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
from st_io import read_safetensors, write_safetensors  # noqa: E402

src, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
t = read_safetensors(os.path.join(src, "model.safetensors"))
t["decoder.bias"][:] = np.nan
write_safetensors(os.path.join(out, "model.safetensors"), t)
shutil.copy(os.path.join(src, "config.json"), out)
