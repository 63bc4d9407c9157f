// A rejection-sampling loop whose acceptance rate depends on a latent, the C++ twin
// of simulators/rejection.py:
//
//     c ~ Categorical(0.5, 0.5)                           name "c"
//     repeat: x ~ Normal(0, 1) until x > threshold[c]      name "x", replace = true
//     obs ~ Normal(x, 0.5)                                name "obs" (observed)
//     return c
//
// with thresholds (0, 1.5); ppx.simulators.rejection.exact_posterior gives p(c | obs).
#include <cstdint>

#include <ppx/ppx.hpp>

namespace {

double rejection() {
  constexpr double thresholds[] = {0.0, 1.5};
  const std::int64_t c = ppx::sample(ppx::Categorical{{0.5, 0.5}}, "c");
  double x = 0.0;
  do {
    x = ppx::sample(ppx::Normal{0.0, 1.0}, "x", /*control=*/true, /*replace=*/true);
  } while (x <= thresholds[c]);
  ppx::observe(ppx::Normal{x, 0.5}, "obs");
  return static_cast<double>(c);
}

}  // namespace

int main(int argc, char** argv) { return ppx::Server("rejection", rejection).main(argc, argv); }
