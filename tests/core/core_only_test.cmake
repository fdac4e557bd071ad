# The core without the extension: convert a golden fixture with the CLI, then run rill_core_only (linked
# against the core objects alone) on it.
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK})
execute_process(COMMAND ${RILL} convert ${SRC}/tests/golden/mamba2_groups -o ${WORK}/m.rill -q RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "convert failed")
endif()
execute_process(COMMAND ${CORE} ${WORK}/m.rill ${SRC}/tests/golden/mamba2_groups RESULT_VARIABLE rc OUTPUT_VARIABLE out)
message(STATUS "${out}")
if(rc)
  message(FATAL_ERROR "rill_core_only failed (${rc}): ${out}")
endif()
