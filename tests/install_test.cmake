# cmake --install into WORK/prefix, then build the examples against it as a user would, and run them:
#   - examples/stream_text (C++, find_package(rill), rill::rill_runtime);
#   - examples/c_consumer (C99, find_package(rill), rill::rill = librill.so);
#   - the same C program with plain `cc` and pkg-config against the static librill.a.
file(REMOVE_RECURSE ${WORK})
execute_process(COMMAND ${CMAKE_COMMAND} --install ${BUILD} --prefix ${WORK}/prefix RESULT_VARIABLE rc OUTPUT_QUIET)
if(rc)
  message(FATAL_ERROR "install failed")
endif()
foreach(f include/rill/rill.h include/rill/rill.hpp include/rill/extension.hpp lib/cmake/rill/rillConfig.cmake
          lib/librill.a lib/librill.so lib/librillcpp.a lib/pkgconfig/rill.pc)
  if(NOT EXISTS ${WORK}/prefix/${f})
    message(FATAL_ERROR "not installed: ${f}")
  endif()
endforeach()
execute_process(COMMAND ${RILL} convert ${SRC}/examples/demo_model/checkpoint -o ${WORK}/demo.rill --force
                RESULT_VARIABLE rc OUTPUT_QUIET ERROR_VARIABLE err)
if(rc)
  message(FATAL_ERROR "convert: ${err}")
endif()

function(run_checked what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(rc)
    message(FATAL_ERROR "${what} failed (${rc}):\n${out}\n${err}")
  endif()
  set(out "${out}" PARENT_SCOPE)
endfunction()

foreach(ex stream_text c_consumer)
  run_checked("${ex} configure" ${CMAKE_COMMAND} -S ${SRC}/examples/${ex} -B ${WORK}/${ex} -G Ninja
              -DCMAKE_PREFIX_PATH=${WORK}/prefix)
  run_checked("${ex} build" ${CMAKE_COMMAND} --build ${WORK}/${ex})
endforeach()
run_checked("stream_text" ${WORK}/stream_text/stream_text ${WORK}/demo.rill "ROMEO:" 40)
if(NOT out MATCHES "^ROMEO:")
  message(FATAL_ERROR "stream_text printed: ${out}")
endif()
run_checked("c_consumer (shared)" ${WORK}/c_consumer/c_consumer ${WORK}/demo.rill "ROMEO:" 40 0)
set(shared_out "${out}")
run_checked("rill run" ${RILL} run ${WORK}/demo.rill --prompt "ROMEO:" -n 40 --greedy)
if(NOT shared_out STREQUAL out)
  message(FATAL_ERROR "installed c_consumer and rill run --greedy differ:\n${shared_out}\n---\n${out}")
endif()

# Static: cc + pkg-config --static, no CMake.
find_program(PKG_CONFIG pkg-config)
if(PKG_CONFIG)
  set(ENV{PKG_CONFIG_PATH} ${WORK}/prefix/lib/pkgconfig)
  run_checked("pkg-config" ${PKG_CONFIG} --static --cflags --libs rill)
  string(STRIP "${out}" flags)
  separate_arguments(flags UNIX_COMMAND "${flags}")
  # -l:librill.a picks the static library although librill.so sits beside it.
  list(TRANSFORM flags REPLACE "^-lrill$" "-l:librill.a")
  run_checked("cc (static)" cc -std=c99 -Wall -Wextra -Werror -pedantic ${SRC}/examples/c_consumer/main.c ${flags}
              -o ${WORK}/c_consumer_static)
  run_checked("c_consumer (static)" ${WORK}/c_consumer_static ${WORK}/demo.rill "ROMEO:" 40 0)
  if(NOT shared_out STREQUAL out)
    message(FATAL_ERROR "static and shared c_consumer differ")
  endif()
  run_checked("ldd" ldd ${WORK}/c_consumer_static)
  if(out MATCHES "librill")
    message(FATAL_ERROR "the static consumer loads librill.so:\n${out}")
  endif()
  message(STATUS "c_consumer built with pkg-config against librill.a and ran")
else()
  message(FATAL_ERROR "pkg-config not found (scripts/setup.sh installs it)")
endif()
message(STATUS "installed: stream_text and c_consumer built with find_package(rill) and ran")
