// The distributions PPX carries, as plain aggregates: ppx::Normal{0.0, 1.0}.
//
// Each one knows its wire table (write), its value type (double for the
// continuous ones, std::int64_t for counts and categories, std::vector<double>
// for MultivariateNormal) and the constraints of its parameters (check), the
// same as torch's argument validation that the Python engine applies: a
// simulator learns about a NaN or a negative scale at the draw that made it.
#pragma once

#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "ppx/wire.hpp"

namespace ppx {
namespace detail {

/// Checks parameters, remembering them so that a failure can list them all.
/// Allocates nothing unless a constraint fails.
class Constraints {
 public:
  Constraints& real(const char* name, const double& x) { return scalar(name, x, x == x, "a number"); }
  Constraints& positive(const char* name, const double& x) { return scalar(name, x, x > 0, "> 0"); }
  Constraints& nonnegative(const char* name, const double& x) {
    return scalar(name, x, x >= 0, ">= 0");
  }
  Constraints& probability(const char* name, const double& x) {
    return scalar(name, x, x >= 0 && x <= 1, "in [0, 1]");
  }
  Constraints& count(const char* name, const double& x) {
    return scalar(name, x, x >= 0 && std::floor(x) == x, "a non-negative integer");
  }
  /// A vector parameter; its constraints follow as require(...).
  Constraints& vector(const char* name, const std::vector<double>& x) {
    remember(name, x.data(), x.size());
    return *this;
  }
  /// A constraint that no single-number check says: ``why`` is the complete reason.
  Constraints& require(bool ok, const char* why) {
    if (!ok && reason_.empty()) reason_ = why;
    return *this;
  }

  bool ok() const { return reason_.empty(); }

  /// "mean=nan, stddev=1" followed by the reason, e.g. "mean must be a number".
  std::string explain() const {
    std::ostringstream out;
    out.precision(10);
    out << '(';
    for (std::size_t i = 0; i < count_; ++i) {
      const Param& p = params_[i];
      out << (i ? ", " : "") << p.name << '=';
      if (p.size == 1 && !p.vector) {
        out << p.data[0];
      } else {
        out << '[';
        for (std::size_t j = 0; j < p.size && j < 8; ++j) out << (j ? ", " : "") << p.data[j];
        out << (p.size > 8 ? ", ...]" : "]");
      }
    }
    out << "): " << reason_;
    return out.str();
  }

 private:
  struct Param {
    const char* name;
    const double* data;
    std::size_t size;
    bool vector;
  };

  Constraints& scalar(const char* name, const double& x, bool ok, const char* must_be) {
    remember(name, &x, 1, false);
    if (!ok && reason_.empty()) reason_ = std::string(name) + " must be " + must_be;
    return *this;
  }
  void remember(const char* name, const double* data, std::size_t size, bool vector = true) {
    if (count_ < params_.size()) params_[count_++] = {name, data, size, vector};
  }

  std::array<Param, 2> params_{};
  std::size_t count_ = 0;
  std::string reason_;
};

/// Whether every entry is >= 0 and they sum to 1 within torch's simplex tolerance.
inline bool simplex(const std::vector<double>& p) {
  double sum = 0;
  for (double x : p) {
    if (!(x >= 0)) return false;
    sum += x;
  }
  return !p.empty() && std::abs(sum - 1) < 1e-6;
}

/// Whether the row-major d x d matrix is symmetric and positive definite (Cholesky).
inline bool positive_definite(const std::vector<double>& a, std::size_t d) {
  for (std::size_t i = 0; i < d; ++i)
    for (std::size_t j = 0; j < i; ++j)
      if (!(std::abs(a[i * d + j] - a[j * d + i]) <= 1e-6)) return false;
  std::vector<double> l(d * d, 0.0);
  for (std::size_t j = 0; j < d; ++j) {
    double pivot = a[j * d + j];
    for (std::size_t k = 0; k < j; ++k) pivot -= l[j * d + k] * l[j * d + k];
    if (!(pivot > 0)) return false;
    l[j * d + j] = std::sqrt(pivot);
    for (std::size_t i = j + 1; i < d; ++i) {
      double sum = a[i * d + j];
      for (std::size_t k = 0; k < j; ++k) sum -= l[i * d + k] * l[j * d + k];
      l[i * d + j] = sum / l[j * d + j];
    }
  }
  return true;
}

inline bool all_real(const std::vector<double>& x) {
  for (double v : x)
    if (v != v) return false;
  return true;
}

/// A union member of the Distribution table, type-erased for Sample / Observe.
using Written = flatbuffers::Offset<void>;

}  // namespace detail

/// Normal(mean, stddev): stddev > 0.
struct Normal {
  double mean;
  double stddev;
  using value_type = double;
  static constexpr const char* kind = "Normal";
  static constexpr wire::Distribution type = wire::Distribution::Normal;
  detail::Constraints check() const {
    return std::move(detail::Constraints().real("mean", mean).positive("stddev", stddev));
  }
  detail::Written write(detail::Builder& b) const {
    auto m = detail::write_scalar(b, mean);
    auto s = detail::write_scalar(b, stddev);
    return wire::CreateNormal(b, m, s).Union();
  }
};

/// Uniform(low, high): low < high.
struct Uniform {
  double low;
  double high;
  using value_type = double;
  static constexpr const char* kind = "Uniform";
  static constexpr wire::Distribution type = wire::Distribution::Uniform;
  detail::Constraints check() const {
    return std::move(
        detail::Constraints().real("low", low).real("high", high).require(low < high,
                                                                          "low must be < high"));
  }
  detail::Written write(detail::Builder& b) const {
    auto lo = detail::write_scalar(b, low);
    auto hi = detail::write_scalar(b, high);
    return wire::CreateUniform(b, lo, hi).Union();
  }
};

/// Categorical(probs) over 0 .. K-1: probs >= 0, summing to 1.
struct Categorical {
  std::vector<double> probs;
  using value_type = std::int64_t;
  static constexpr const char* kind = "Categorical";
  static constexpr wire::Distribution type = wire::Distribution::Categorical;
  detail::Constraints check() const {
    return std::move(detail::Constraints().vector("probs", probs).require(
        detail::simplex(probs), "probs must be non-negative and sum to 1"));
  }
  detail::Written write(detail::Builder& b) const {
    auto p = detail::write_vector(b, probs);
    return wire::CreateCategorical(b, p).Union();
  }
};

/// Poisson(rate): rate >= 0.
struct Poisson {
  double rate;
  using value_type = std::int64_t;
  static constexpr const char* kind = "Poisson";
  static constexpr wire::Distribution type = wire::Distribution::Poisson;
  detail::Constraints check() const {
    return std::move(detail::Constraints().nonnegative("rate", rate));
  }
  detail::Written write(detail::Builder& b) const {
    auto r = detail::write_scalar(b, rate);
    return wire::CreatePoisson(b, r).Union();
  }
};

/// Bernoulli(probs), values 0 and 1: probs in [0, 1].
struct Bernoulli {
  double probs;
  using value_type = std::int64_t;
  static constexpr const char* kind = "Bernoulli";
  static constexpr wire::Distribution type = wire::Distribution::Bernoulli;
  detail::Constraints check() const {
    return std::move(detail::Constraints().probability("probs", probs));
  }
  detail::Written write(detail::Builder& b) const {
    auto p = detail::write_scalar(b, probs);
    return wire::CreateBernoulli(b, p).Union();
  }
};

/// Beta(concentration1, concentration0): both > 0.
struct Beta {
  double concentration1;
  double concentration0;
  using value_type = double;
  static constexpr const char* kind = "Beta";
  static constexpr wire::Distribution type = wire::Distribution::Beta;
  detail::Constraints check() const {
    return std::move(detail::Constraints()
                         .positive("concentration1", concentration1)
                         .positive("concentration0", concentration0));
  }
  detail::Written write(detail::Builder& b) const {
    auto c1 = detail::write_scalar(b, concentration1);
    auto c0 = detail::write_scalar(b, concentration0);
    return wire::CreateBeta(b, c1, c0).Union();
  }
};

/// Exponential(rate): rate > 0.
struct Exponential {
  double rate;
  using value_type = double;
  static constexpr const char* kind = "Exponential";
  static constexpr wire::Distribution type = wire::Distribution::Exponential;
  detail::Constraints check() const {
    return std::move(detail::Constraints().positive("rate", rate));
  }
  detail::Written write(detail::Builder& b) const {
    auto r = detail::write_scalar(b, rate);
    return wire::CreateExponential(b, r).Union();
  }
};

/// Gamma(concentration, rate): both > 0.
struct Gamma {
  double concentration;
  double rate;
  using value_type = double;
  static constexpr const char* kind = "Gamma";
  static constexpr wire::Distribution type = wire::Distribution::Gamma;
  detail::Constraints check() const {
    return std::move(
        detail::Constraints().positive("concentration", concentration).positive("rate", rate));
  }
  detail::Written write(detail::Builder& b) const {
    auto c = detail::write_scalar(b, concentration);
    auto r = detail::write_scalar(b, rate);
    return wire::CreateGamma(b, c, r).Union();
  }
};

/// LogNormal(loc, scale) of the underlying normal: scale > 0.
struct LogNormal {
  double loc;
  double scale;
  using value_type = double;
  static constexpr const char* kind = "LogNormal";
  static constexpr wire::Distribution type = wire::Distribution::LogNormal;
  detail::Constraints check() const {
    return std::move(detail::Constraints().real("loc", loc).positive("scale", scale));
  }
  detail::Written write(detail::Builder& b) const {
    auto l = detail::write_scalar(b, loc);
    auto s = detail::write_scalar(b, scale);
    return wire::CreateLogNormal(b, l, s).Union();
  }
};

/// Binomial(total_count, probs): total_count a non-negative integer, probs in [0, 1].
struct Binomial {
  double total_count;
  double probs;
  using value_type = std::int64_t;
  static constexpr const char* kind = "Binomial";
  static constexpr wire::Distribution type = wire::Distribution::Binomial;
  detail::Constraints check() const {
    return std::move(
        detail::Constraints().count("total_count", total_count).probability("probs", probs));
  }
  detail::Written write(detail::Builder& b) const {
    auto n = detail::write_scalar(b, total_count);
    auto p = detail::write_scalar(b, probs);
    return wire::CreateBinomial(b, n, p).Union();
  }
};

/// Weibull(scale, concentration): both > 0.
struct Weibull {
  double scale;
  double concentration;
  using value_type = double;
  static constexpr const char* kind = "Weibull";
  static constexpr wire::Distribution type = wire::Distribution::Weibull;
  detail::Constraints check() const {
    return std::move(
        detail::Constraints().positive("scale", scale).positive("concentration", concentration));
  }
  detail::Written write(detail::Builder& b) const {
    auto s = detail::write_scalar(b, scale);
    auto c = detail::write_scalar(b, concentration);
    return wire::CreateWeibull(b, s, c).Union();
  }
};

/// MultivariateNormal(mean, covariance), covariance row-major d x d, symmetric
/// positive definite. A PPX extension: only engines that announced the
/// "multivariate_normal" capability can receive it (pyprob cannot).
struct MultivariateNormal {
  std::vector<double> mean;
  std::vector<double> covariance;
  using value_type = std::vector<double>;
  static constexpr const char* kind = "MultivariateNormal";
  static constexpr wire::Distribution type = wire::Distribution::MultivariateNormal;
  detail::Constraints check() const {
    const std::size_t d = mean.size();
    const bool square = d > 0 && covariance.size() == d * d;
    return std::move(
        detail::Constraints()
            .vector("mean", mean)
            .vector("covariance", covariance)
            .require(d > 0, "mean must not be empty")
            .require(square, "covariance must hold d * d values for a mean of d values")
            .require(detail::all_real(mean) && detail::all_real(covariance),
                     "mean and covariance must be numbers")
            .require(!square || detail::positive_definite(covariance, d),
                     "covariance must be symmetric positive definite"));
  }
  detail::Written write(detail::Builder& b) const {
    const auto d = static_cast<std::int32_t>(mean.size());
    auto m = detail::write_vector(b, mean);
    auto c = detail::write_tensor(b, covariance.data(), covariance.size(), {d, d});
    return wire::CreateMultivariateNormal(b, m, c).Union();
  }
};

namespace detail {

/// How many numbers a value of ``dist`` holds (1 but for MultivariateNormal).
template <class D>
std::size_t value_size(const D&) {
  return 1;
}
inline std::size_t value_size(const MultivariateNormal& dist) { return dist.mean.size(); }

/// A value as a tensor of the wire.
inline Tensor value_tensor(double value) { return to_tensor(value); }
inline Tensor value_tensor(std::int64_t value) { return to_tensor(value); }
inline Tensor value_tensor(const std::vector<double>& value) { return to_tensor(value); }

/// The engine's value (``data`` of ``size`` numbers) as the distribution's value type.
inline void read_value(const double* data, std::size_t, double& out) { out = data[0]; }
inline void read_value(const double* data, std::size_t, std::int64_t& out) {
  out = std::llround(data[0]);
}
inline void read_value(const double* data, std::size_t size, std::vector<double>& out) {
  out.assign(data, data + size);
}

}  // namespace detail
}  // namespace ppx
