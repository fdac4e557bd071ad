# The control loop fails safe (examples/control_loop): run with --no-rt at 1 kHz against the simulated
# pendulum, it must never let a failed step or a non-finite estimate reach the actuator.
#   1. A model that returns NaN on every step (the sensor demo with a NaN decoder bias): every period
#      gets the safe command, the estimator is reset once, and the pendulum's state stays finite (one
#      NaN torque would make it NaN for good).
#   2. The real model with the sensor reading NaN for 50 periods (each step refused, kNonFinite): the
#      last good estimate is held for --hold 20 periods, then 30 periods of the safe command and one
#      reset, and the loop goes on.
# Variables: LOOP (control_loop), RILL (the CLI), PYTHON (Debian's, with numpy), SRC, WORK.
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK})
function(run_ok)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(rc)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
  set(OUT "${out}" PARENT_SCOPE)
endfunction()
# summary line -> variables S_<key>
function(parse_summary text)
  string(REGEX MATCH "summary: [^\n]*" line "${text}")
  if(NOT line)
    message(FATAL_ERROR "no summary line in:\n${text}")
  endif()
  string(REPLACE "summary: " "" line "${line}")
  string(REPLACE " " ";" pairs "${line}")
  foreach(p ${pairs})
    string(REPLACE "=" ";" kv "${p}")
    list(GET kv 0 k)
    list(GET kv 1 v)
    set(S_${k} ${v} PARENT_SCOPE)
  endforeach()
endfunction()
function(expect what got want)
  if(NOT "${got}" STREQUAL "${want}")
    message(FATAL_ERROR "${what}: ${got}, expected ${want}\n${OUT}")
  endif()
endfunction()

run_ok(${PYTHON} ${SRC}/tests/control_loop/make_nan_checkpoint.py ${SRC}/examples/sensor_demo/checkpoint ${WORK}/nan_ckpt)
# The converter refuses the NaN bias by name unless told to keep it.
execute_process(COMMAND ${RILL} convert ${WORK}/nan_ckpt -o ${WORK}/nan.rill --force RESULT_VARIABLE rc ERROR_VARIABLE err)
string(FIND "${err}" "tensor decoder.bias holds NaN at element 0" at)
if(NOT rc EQUAL 1 OR at EQUAL -1 OR EXISTS ${WORK}/nan.rill)
  message(FATAL_ERROR "a NaN decoder bias was not refused by name (${rc}): ${err}")
endif()
run_ok(${RILL} convert ${WORK}/nan_ckpt -o ${WORK}/nan.rill --force --allow-non-finite)
run_ok(${RILL} convert ${SRC}/examples/sensor_demo/checkpoint -o ${WORK}/pendulum.rill --force)

run_ok(${LOOP} ${WORK}/nan.rill --no-rt --steps 1500 --hold 20)
parse_summary("${OUT}")
expect("NaN model: steps" ${S_steps} 1500)
expect("NaN model: non-finite estimates" ${S_nonfinite_estimates} 1500)
expect("NaN model: periods held (no good estimate ever)" ${S_held} 0)
expect("NaN model: periods at the safe command" ${S_safe} 1500)
expect("NaN model: estimator resets" ${S_resets} 1)
expect("NaN model: plant state finite" ${S_plant_finite} 1)
message(STATUS "NaN model: 1500 periods, all at the safe command, plant finite")

run_ok(${LOOP} ${WORK}/pendulum.rill --no-rt --steps 2500 --hold 20 --sensor-nan 1200,50)
parse_summary("${OUT}")
expect("sensor NaN: refused steps" ${S_refused} 50)
expect("sensor NaN: periods held" ${S_held} 20)
expect("sensor NaN: periods at the safe command" ${S_safe} 30)
expect("sensor NaN: estimator resets" ${S_resets} 1)
expect("sensor NaN: non-finite estimates" ${S_nonfinite_estimates} 0)
expect("sensor NaN: plant state finite" ${S_plant_finite} 1)
string(REGEX MATCH "tracking RMSE [0-9.]+" tracking "${OUT}")
message(STATUS "sensor NaN: 50 refused steps, 20 held, 30 safe, 1 reset; ${tracking}")
