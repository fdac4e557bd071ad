// Required<F>: a function-table entry that must be filled by name. It has no default, so a table
// initialised with designated initializers (`.rmsnorm = rmsnorm`) that leaves it out does not compile,
// and naming every entry means two entries of the same type cannot be swapped silently.
#pragma once

namespace rill {

template <class F>
struct Required {
  F* fn;
  constexpr Required(F* f) : fn(f) {}  // NOLINT: implicit, so `.entry = function` reads as a table
  Required(decltype(nullptr)) = delete;  // `.entry = nullptr` does not compile either
  template <class... A>
  decltype(auto) operator()(A&&... a) const {
    return fn(static_cast<A&&>(a)...);
  }
  constexpr operator F*() const { return fn; }
};

}  // namespace rill
