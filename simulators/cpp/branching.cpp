// Branching model, the C++ twin of simulators/branching.py: the number and the
// names of the draws depend on an earlier draw.
//
//     r ~ Poisson(4)                                     name "r"
//     if r > 4:  u ~ Normal(0, 1), loc = 6 + u           name "u"
//     else:      z_k ~ Normal(0, 1), k = 0 .. r-1        names "z0" .. "z{r-1}"
//                loc = 1 + fibonacci(3 r) + sum z_k
//     obs ~ Normal(loc, 2)                               name "obs" (observed)
//     return r
//
// ppx.simulators.branching.exact_posterior(obs) gives p(r | obs) by enumeration.
#include <cstdint>
#include <string>

#include <ppx/ppx.hpp>

namespace {

/// pyprob's Fibonacci numbers: 1, 1, 1, 2, 3, 5, 8, ... for n = 0, 1, 2, ...
std::int64_t fibonacci(std::int64_t n) {
  std::int64_t previous = 1, current = 1;
  for (std::int64_t i = 2; i < n; ++i) {
    const std::int64_t next = previous + current;
    previous = current;
    current = next;
  }
  return current;
}

std::int64_t branching() {
  const std::int64_t r = ppx::sample(ppx::Poisson{4.0}, "r");
  double loc;
  if (r > 4) {
    loc = 6.0 + ppx::sample(ppx::Normal{0.0, 1.0}, "u");
  } else {
    loc = 1.0 + double(fibonacci(3 * r));
    for (std::int64_t k = 0; k < r; ++k) {
      loc += ppx::sample(ppx::Normal{0.0, 1.0}, "z" + std::to_string(k));
    }
  }
  ppx::observe(ppx::Normal{loc, 2.0}, "obs");
  return r;
}

}  // namespace

int main(int argc, char** argv) { return ppx::Server("branching", branching).main(argc, argv); }
