#!/usr/bin/env bash
# The sensor demo: set up, build, convert the bundled S4D pendulum estimator, stream the held-out run
# through it (rill stream), check the outputs against the trainer's own and report RMSE against the
# baselines (examples/sensor_demo/report.py; writes out/sensor_demo.svg), then run the 1 kHz control
# loop for 10 s and print its latency histogram. Extra arguments go to the control loop, e.g.
#   scripts/sensor_demo.sh --steps 1000000
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh -DRILL_BUILD_TESTS=OFF
mkdir -p out
build/bin/rill convert examples/sensor_demo/checkpoint -o out/pendulum.rill --force
build/bin/rill inspect out/pendulum.rill
echo
build/bin/rill stream out/pendulum.rill --inputs examples/sensor_demo/heldout_inputs.npy -o out/pendulum_estimates.npy
/usr/bin/python3 examples/sensor_demo/report.py out/pendulum_estimates.npy --svg out/sensor_demo.svg
echo
build/examples/control_loop/control_loop out/pendulum.rill "$@"
