// The seam between the generic model/session code and one architecture.
// Each architecture is one file in this folder that fills one ArchOps.
#pragma once

#include "core/model_impl.h"
#include "format/views.h"

namespace rill {

struct ArchOps {
  Arch arch;
  // Bytes of model memory for this architecture's views (per-layer weights, state slots).
  size_t (*view_bytes)(const FileView& f);
  // Checks hyper-parameters and every tensor against them; binds views; fills state and scratch
  // sizes. `mem` holds view_bytes.
  Status (*bind)(const FileView& f, ModelImpl* m, unsigned char* mem, Error* err);
  // One token through the whole model. `state`/`scratch` are the session's; logits may be null
  // (head skipped). Token range was checked by the caller.
  void (*step)(const ModelImpl& m, unsigned char* state, unsigned char* scratch, int32_t token,
               float* logits);
};

const ArchOps* find_arch(Arch a);

extern const ArchOps kMamba1Ops;

}  // namespace rill
