# What quantization costs at the real shapes: random weights of each real config (CKPTS/<name>, made by
# make_all.cmake),
# converted to f32, q8 and q4 (both byte layouts for mamba-130m), and each quantized model's logits over a 29-token
# text compared with the f32 model's (npy_compare: mean KL(p_f32 || p_q) over the steps, top-1 agreement).
#
#   bound (per model: mean KL <=, top-1 >=)    mamba-130m   mamba2-130m   rwkv7-0.1B   (measured KL, top-1)
#   q8 rows16                                  1e-2, 60 %   1e-2, 60 %    1e-2, 60 %   2.0e-3 76 % | 2.1e-3 72 % | 4.2e-3 79 %
#   q4 rows16 (and rows, mamba-130m)           0.11         0.11          0.25         0.096       | 0.099       | 0.203
#   q4 rows against q4 rows16                  1e-3         (not run)     (not run)    1.1e-4      | 2.7e-4      | 2.3e-4
#
# The weights are seeded and the numbers deterministic but for the kernels' summation order; the q4
# bounds leave 11-23 % above the measured KL. The q4 quantizer before its per-group scale search
# (absmax / 7) gave 0.114 | 0.113 | 0.279 and fails all three, as does one that truncates instead of
# rounding (0.163 | 0.165 | 0.451).
# Random weights give near-flat next-token distributions: the f32 model's two largest logits differ by a
# median 0.09, well inside q4's logit error, so q4's top-1 agreement here (0-17 %) measures ties and is
# not bounded; tests/golden/quant_test.cc bounds q4 top-1 on the trained demo model and the golden
# checkpoints, and rill eval bounds the demo model's bits per byte (quant_bits_per_byte).
# mamba2-130m (mamba_ssm's layout) has the shapes and the random weights of mamba2-130m-hf: not repeated.
set(text "The Eiffel tower is in Paris, and the river that flows through the city is the Seine. Tourists climb it every day.")
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK})
# The row layout (q4 rows) is converted for the first model only: its equality with rows16 is also
# bounded on the golden checkpoints and the demo model (quant_test, quant_bits_per_byte).
foreach(entry "mamba-130m-hf;0.11;rows" "mamba2-130m-hf;0.11" "rwkv7-0.1B-world;0.25")
  list(GET entry 0 name)
  list(GET entry 1 q4_kl)
  list(LENGTH entry with_rows)
  set(ckpt ${CKPTS}/${name})
  set(dir ${WORK}/${name})
  set(variants f32:rows16 q8:rows16 q4:rows16)
  set(checks "q8.rows16|f32.rows16|--kl|1e-2|--top1|0.6" "q4.rows16|f32.rows16|--kl|${q4_kl}")
  if(with_rows EQUAL 3)
    list(APPEND variants q4:rows)
    list(APPEND checks "q4.rows|f32.rows16|--kl|${q4_kl}" "q4.rows|q4.rows16|--kl|1e-3")
  endif()
  foreach(v ${variants})
    string(REPLACE ":" ";" v "${v}")
    list(GET v 0 dtype)
    list(GET v 1 layout)
    set(model ${dir}.${dtype}.${layout}.rill)
    execute_process(COMMAND ${RILL} convert ${ckpt} -o ${model} --dtype ${dtype} --quant-layout ${layout} -q
                    RESULT_VARIABLE rc ERROR_VARIABLE err)
    if(rc)
      message(FATAL_ERROR "${name}: convert --dtype ${dtype} --quant-layout ${layout} failed: ${err}")
    endif()
    execute_process(COMMAND ${RILL} logits ${model} --text "${text}" -o ${dir}.${dtype}.${layout}.npy
                    RESULT_VARIABLE rc ERROR_VARIABLE err)
    if(rc)
      message(FATAL_ERROR "${name}: logits of the ${dtype} ${layout} model failed: ${err}")
    endif()
    file(REMOVE ${model})
  endforeach()
  foreach(check IN LISTS checks)
    string(REPLACE "|" ";" check "${check}")
    list(GET check 0 got)
    list(GET check 1 want)
    list(SUBLIST check 2 -1 bounds)
    execute_process(COMMAND ${COMPARE} ${dir}.${got}.npy ${dir}.${want}.npy ${bounds} RESULT_VARIABLE rc
                    OUTPUT_VARIABLE out ERROR_VARIABLE err)
    message(STATUS "${name} ${got} against ${want}: ${out}")
    if(NOT rc EQUAL 0)
      message(FATAL_ERROR "${name}: ${got} against ${want} is outside ${bounds}: ${out}${err}")
    endif()
  endforeach()
  file(REMOVE ${dir}.f32.rows16.npy ${dir}.q8.rows16.npy ${dir}.q4.rows16.npy ${dir}.q4.rows.npy)
endforeach()
