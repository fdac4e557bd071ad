// rill_cuda_tests: the device suite (device_test.cc) on the CUDA backend. Where there is no CUDA device
// (or the build carries no code for it), it says so and exits 77, which ctest reports as "Skipped":
// these tests never pass without having run.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>

#include "backend/backend.h"

int main(int argc, char** argv) {
  const rill::BackendImpl* cuda = rill::find_backend(rill::Backend::kCuda);
  rill::Error e;
  if (!cuda || !cuda->device) {
    std::printf("rill_cuda_tests: SKIPPED, this build has no CUDA backend\n");
    return 77;
  }
  if (cuda->device->probe(0, &e) != rill::Status::kOk) {
    std::printf("rill_cuda_tests: SKIPPED, no usable CUDA device: %s\n", e.message);
    return 77;
  }
  doctest::Context ctx(argc, argv);
  ctx.setOption("test-suite", "device");
  return ctx.run();
}
