// Gaussian with unknown mean, the C++ twin of simulators/gaussian.py:
//
//     mu    ~ Normal(1, sqrt 5)       name "mu"
//     obs_i ~ Normal(mu, sqrt 2)      names "obs0", "obs1" (observed)
//     return mu
//
// Given obs0 = 8 and obs1 = 9 the posterior of mu is Normal(7.25, sqrt(5/6) = 0.9129).
#include <cmath>

#include <ppx/ppx.hpp>

namespace {

double gaussian_unknown_mean() {
  const double mu = ppx::sample(ppx::Normal{1.0, std::sqrt(5.0)}, "mu");
  ppx::observe(ppx::Normal{mu, std::sqrt(2.0)}, "obs0");
  ppx::observe(ppx::Normal{mu, std::sqrt(2.0)}, "obs1");
  return mu;
}

}  // namespace

int main(int argc, char** argv) {
  return ppx::Server("gaussian", gaussian_unknown_mean).main(argc, argv);
}
