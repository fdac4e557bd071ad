# The ctest fixtures of the real-shape tests: a random-weight checkpoint of the real config NAME, in
# its own layout and dtype with its tokenizer (make_random.py), in WORK/NAME. One test per config
# (real_checkpoint_make_NAME), so that each config's checks start as soon as its checkpoint exists and
# run beside the others; real_configs_NAME and quant_real_shapes read them, real_checkpoint_clean_NAME
# removes them.
file(REMOVE_RECURSE ${WORK}/${NAME})
file(MAKE_DIRECTORY ${WORK})
execute_process(COMMAND ${PYTHON} ${SRC}/tests/checkpoints/make_random.py ${NAME} ${WORK}/${NAME}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(rc)
  message(FATAL_ERROR "${NAME}: make_random.py failed: ${out}${err}")
endif()
message(STATUS "${out}")
