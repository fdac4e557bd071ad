# Damaged files through the CLI: f32, q8 and q4 models of every architecture, ROUNDS rounds of random
# 8-byte overwrites in the first 4 KiB, each run through rill inspect and rill logits (rill stream for
# the vector model) (hostile_cli.cc).
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK})
set(models)
foreach(ck mamba1_hf_f16_tied mamba2_groups rwkv7_fla_world recurrent_gemma_awkward s4d_postnorm_mean)
  foreach(dt f32 q8 q4)
    set(name ${ck}_${dt})
    if(ck MATCHES "^s4d")
      set(name ${ck}_${dt}_vector)  # the driver streams it (hostile_cli.cc)
    endif()
    execute_process(COMMAND ${RILL} convert ${SRC}/tests/golden/${ck} -o ${WORK}/${name}.rill --dtype ${dt} -q
                    RESULT_VARIABLE rc)
    if(rc)
      message(FATAL_ERROR "convert ${ck} ${dt} failed")
    endif()
    list(APPEND models ${WORK}/${name}.rill)
  endforeach()
endforeach()
execute_process(COMMAND ${DRIVER} ${RILL} ${WORK} ${ROUNDS} 1 ${SRC}/tests/golden/s4d_postnorm_mean/inputs.npy ${models}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
message(STATUS "${out}")
if(rc)
  message(FATAL_ERROR "damaged files: ${out}\n${err}")
endif()
