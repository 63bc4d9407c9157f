// A test bed for failures and extensions: the engine picks what a run does by
// conditioning the draw "mode" (observe={"mode": k}); under the prior it is 0.
//
//     mode 0: x ~ Normal(0, 1), an unnamed Uniform(0, 1) draw (call-site
//             address), a tag "twice_x" and an observe with a value; returns x
//     mode 1: throws std::runtime_error("detector geometry not loaded")
//     mode 2: a Normal with a NaN mean at "broken" (InvalidDistribution)
//     mode 3: a MultivariateNormal at "v" (needs the "multivariate_normal"
//             capability, which pyprob 1.0.0 engines do not have); returns v
#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <vector>

#include <ppx/ppx.hpp>

namespace {

std::vector<double> faulty() {
  const double x = ppx::sample(ppx::Normal{0.0, 1.0}, "x");
  const std::int64_t mode = ppx::sample(ppx::Categorical{{1.0, 0.0, 0.0, 0.0}}, "mode");
  if (mode == 1) throw std::runtime_error("detector geometry not loaded");
  if (mode == 2) ppx::sample(ppx::Normal{std::numeric_limits<double>::quiet_NaN(), 1.0}, "broken");
  if (mode == 3) return ppx::sample(ppx::MultivariateNormal{{0.0, 1.0}, {1.0, 0.5, 0.5, 2.0}}, "v");
  const double u = ppx::sample(ppx::Uniform{0.0, 1.0});
  ppx::tag(2 * x, "twice_x");
  ppx::observe(ppx::Normal{x + u, 1.0}, 0.5, "y");
  return {x};
}

}  // namespace

int main(int argc, char** argv) { return ppx::Server("faulty", faulty).main(argc, argv); }
