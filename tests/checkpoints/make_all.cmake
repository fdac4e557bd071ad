# The ctest fixture of the real-shape tests: a random-weight checkpoint of each real config, in its
# own layout and dtype with its tokenizer (make_random.py), in WORK/<name>. real_configs and
# quant_real_shapes read them; real_checkpoints_clean removes them.
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK})
foreach(name mamba-130m-hf mamba2-130m mamba2-130m-hf rwkv7-0.1B-world granite-4.0-h-350m granite-4.0-h-1b
             nemotron-h-4b-base-8k)
  execute_process(COMMAND ${PYTHON} ${SRC}/tests/checkpoints/make_random.py ${name} ${WORK}/${name}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(rc)
    message(FATAL_ERROR "${name}: make_random.py failed: ${out}${err}")
  endif()
  message(STATUS "${out}")
endforeach()
