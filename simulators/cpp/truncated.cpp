// A model whose distribution parameters are invalid for some latent values:
// the Gaussian with unknown mean, plus a draw whose scale is the mean itself.
//
//     mu     ~ Normal(1, sqrt 5)       name "mu"
//     spread ~ Normal(0, mu)           name "spread", uncontrolled: invalid for mu <= 0
//     obs_i  ~ Normal(mu, sqrt 2)      names "obs0", "obs1" (observed)
//     return mu
//
// A run with mu <= 0 fails with ppx::InvalidDistribution at "spread", which
// the engine receives as ppx.InvalidDistribution; MCMC rejects such proposals,
// so its posterior of mu is the conjugate Normal posterior truncated to mu > 0
// (spread, drawn from its prior and never proposed, leaves that posterior alone).
#include <cmath>

#include <ppx/ppx.hpp>

namespace {

double truncated() {
  const double mu = ppx::sample(ppx::Normal{1.0, std::sqrt(5.0)}, "mu");
  ppx::sample(ppx::Normal{0.0, mu}, "spread", /*control=*/false);
  ppx::observe(ppx::Normal{mu, std::sqrt(2.0)}, "obs0");
  ppx::observe(ppx::Normal{mu, std::sqrt(2.0)}, "obs1");
  return mu;
}

}  // namespace

int main(int argc, char** argv) { return ppx::Server("truncated", truncated).main(argc, argv); }
