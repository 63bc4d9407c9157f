// PPX for C++ simulators: header-only, C++17, needs libzmq and the flatbuffers
// headers of the flatc version that generated ppx_generated.h (2.0.8).
//
//     #include <cmath>
//     #include <ppx/ppx.hpp>
//
//     double gaussian() {
//       double mu = ppx::sample(ppx::Normal{1.0, std::sqrt(5.0)}, "mu");
//       ppx::observe(ppx::Normal{mu, std::sqrt(2.0)}, "obs0");
//       ppx::observe(ppx::Normal{mu, std::sqrt(2.0)}, "obs1");
//       return mu;
//     }
//
//     int main(int argc, char** argv) {  // --address ADDR, as ppx.RemoteModel.spawn passes
//       return ppx::Server("gaussian", gaussian).main(argc, argv);
//     }
//
// Distributions: Normal, Uniform, Categorical, Poisson, Bernoulli, Beta,
// Exponential, Gamma, LogNormal, Binomial, Weibull, and MultivariateNormal
// for engines that announce the "multivariate_normal" capability. Wire
// protocol: PPX 1.1.0, compatible with pyprob 1.0.0 engines (see wire.hpp).
// Serving beyond loopback (--allow-remote) requires CurveZMQ keys (see curve.hpp).
#pragma once

#include "ppx/command_line.hpp"
#include "ppx/distributions.hpp"
#include "ppx/primitives.hpp"
#include "ppx/server.hpp"
