# The package through pip, as pyproject.toml documents it: a fresh venv over Debian's Python and
# packages, `pip install --no-build-isolation --no-deps` of the source tree (offline; setup.py builds
# the extension in the existing build tree BUILD), then the installed package used from another folder.
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK})
function(run)
  execute_process(COMMAND ${ARGN} WORKING_DIRECTORY ${WORK} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
  message(STATUS "${out}")
endfunction()
run(${PYTHON} -m venv --system-site-packages ${WORK}/venv)
run(${CMAKE_COMMAND} -E env RILL_CMAKE_BUILD_DIR=${BUILD} RILL_PIP_BUILD_BASE=${WORK}/pip
    ${WORK}/venv/bin/pip install -q --no-build-isolation --no-deps --no-index ${SRC})
run(${WORK}/venv/bin/python -c "
import os, numpy as np, rill
assert rill.__file__.startswith(os.path.realpath('${WORK}/venv')), rill.__file__
rill.convert('${SRC}/examples/demo_model/checkpoint', 'demo.rill', dtype='q8')
m = rill.Model('demo.rill')
l = m.session().prefill(m.tokenize('ROMEO:'))
assert l.shape == (256,) and np.isfinite(l).all()
print('installed rill at', rill.__file__)
")
