// The simulator-side API: ppx::sample, ppx::observe, ppx::tag.
//
// Addresses: a draw's base address is its ``name`` when given, otherwise its
// call site "file:function:line" (the file without its directories, so that
// builds in different folders agree). The engine appends the distribution
// kind and an instance counter itself (mu__Normal__1), as for Python
// simulators. The call site comes from __builtin_FILE / __builtin_FUNCTION /
// __builtin_LINE default arguments (g++ and clang, C++17 and later), not
// std::source_location, whose function_name() differs between compilers and
// would make addresses depend on the build.
#pragma once

#include <cstring>
#include <string>
#include <string_view>

#include "ppx/run.hpp"

namespace ppx {

/// Where a draw was made: filled in at the caller's call site by default arguments.
class Site {
 public:
  explicit Site(const char* file = __builtin_FILE(), const char* function = __builtin_FUNCTION(),
                int line = __builtin_LINE())
      : file_(file), function_(function), line_(line) {}

  /// The base address "file:function:line".
  std::string address() const {
    const char* slash = std::strrchr(file_, '/');
    return std::string(slash != nullptr ? slash + 1 : file_) + ':' + function_ + ':' +
           std::to_string(line_);
  }

 private:
  const char* file_;
  const char* function_;
  int line_;
};

namespace detail {
inline std::string base_address(std::string_view name, const Site& site) {
  return name.empty() ? site.address() : std::string(name);
}
}  // namespace detail

/// Draw a value that the engine sees and may choose (``control = false``: it
/// is drawn from the prior and never proposed; ``replace = true``: a draw of a
/// rejection-sampling loop, drawn again until accepted, as Python's
/// ``ppx.sample(..., replace=True)``). Returns the engine's value: double,
/// std::int64_t for counts and categories, std::vector<double> for
/// MultivariateNormal. A count or category outside the distribution's support
/// (a category >= the number of probs, say) never reaches the simulator: the
/// run fails, and the engine sees an "InvalidDistribution" error (a rejection
/// for MCMC).
///
///     double mu = ppx::sample(ppx::Normal{1.0, std::sqrt(5.0)}, "mu");
template <class D>
typename D::value_type sample(const D& dist, std::string_view name = {}, bool control = true,
                              bool replace = false, Site site = Site()) {
  return detail::Run::active("ppx::sample")
      .sample(dist, name, control, replace, detail::base_address(name, site));
}

/// Condition on an observation whose value the engine supplies (by ``name``).
///
///     ppx::observe(ppx::Normal{mu, std::sqrt(2.0)}, "obs0");
template <class D>
void observe(const D& dist, std::string_view name = {}, Site site = Site()) {
  detail::Run::active("ppx::observe")
      .observe(dist, no_value(), name, detail::base_address(name, site));
}

/// Condition on ``value``; a value the engine supplies for ``name`` takes precedence.
template <class D>
void observe(const D& dist, const typename D::value_type& value, std::string_view name = {},
             Site site = Site()) {
  detail::Run::active("ppx::observe")
      .observe(dist, detail::value_tensor(value), name, detail::base_address(name, site));
}

/// Record ``value`` (a number, a std::vector<double> or a ppx::Tensor) under
/// ``name`` in the trace; no randomness involved.
template <class T>
void tag(const T& value, std::string_view name) {
  detail::Run::active("ppx::tag").tag(to_tensor(value), name);
}

}  // namespace ppx
