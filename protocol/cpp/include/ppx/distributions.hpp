// The distributions PPX carries, as plain aggregates: ppx::Normal{0.0, 1.0}.
// Those whose parameters are numbers are defined by PPX_SCALAR_DISTRIBUTION
// (fields, value type, constraints); Categorical and MultivariateNormal, whose
// parameters are vectors, are written out.
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
#include <tuple>
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

/// Write the table of a distribution whose parameters are numbers: each as a
/// scalar tensor, in field order, then the table itself with ``create``.
template <class Create, class... Numbers>
Written write_scalars(Builder& b, Create create, Numbers... numbers) {
  // a braced list is evaluated left to right: the tensors are written in field order
  const std::array<flatbuffers::Offset<wire::Tensor>, sizeof...(Numbers)> tensors{
      write_scalar(b, numbers)...};
  return std::apply([&](auto... offsets) { return create(b, offsets...).Union(); }, tensors);
}

}  // namespace detail

/// Defines the distribution KIND whose parameters are the numbers ``...``
/// (double fields, in the order of its table in ppx.fbs): its value type
/// VALUE, the constraints CHECKS (calls chained on a detail::Constraints),
/// and how it is written. KIND names its table and Distribution union member.
#define PPX_SCALAR_DISTRIBUTION(KIND, VALUE, CHECKS, ...)                  \
  struct KIND {                                                           \
    double __VA_ARGS__;                                                   \
    using value_type = VALUE;                                             \
    static constexpr const char* kind = #KIND;                            \
    static constexpr wire::Distribution type = wire::Distribution::KIND;  \
    detail::Constraints check() const {                                   \
      return std::move(detail::Constraints() CHECKS);                     \
    }                                                                     \
    detail::Written write(detail::Builder& b) const {                     \
      return detail::write_scalars(b, wire::Create##KIND, __VA_ARGS__);   \
    }                                                                     \
  }

/// Normal(mean, stddev): stddev > 0.
PPX_SCALAR_DISTRIBUTION(Normal, double, .real("mean", mean).positive("stddev", stddev), mean,
                        stddev);

/// Uniform(low, high): low < high.
PPX_SCALAR_DISTRIBUTION(Uniform, double,
                        .real("low", low).real("high", high).require(low < high,
                                                                     "low must be < high"),
                        low, high);

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
PPX_SCALAR_DISTRIBUTION(Poisson, std::int64_t, .nonnegative("rate", rate), rate);

/// Bernoulli(probs), values 0 and 1: probs in [0, 1].
PPX_SCALAR_DISTRIBUTION(Bernoulli, std::int64_t, .probability("probs", probs), probs);

/// Beta(concentration1, concentration0): both > 0.
PPX_SCALAR_DISTRIBUTION(Beta, double,
                        .positive("concentration1", concentration1)
                            .positive("concentration0", concentration0),
                        concentration1, concentration0);

/// Exponential(rate): rate > 0.
PPX_SCALAR_DISTRIBUTION(Exponential, double, .positive("rate", rate), rate);

/// Gamma(concentration, rate): both > 0.
PPX_SCALAR_DISTRIBUTION(Gamma, double,
                        .positive("concentration", concentration).positive("rate", rate),
                        concentration, rate);

/// LogNormal(loc, scale) of the underlying normal: scale > 0.
PPX_SCALAR_DISTRIBUTION(LogNormal, double, .real("loc", loc).positive("scale", scale), loc, scale);

/// Binomial(total_count, probs): total_count a non-negative integer, probs in [0, 1].
PPX_SCALAR_DISTRIBUTION(Binomial, std::int64_t,
                        .count("total_count", total_count).probability("probs", probs),
                        total_count, probs);

/// Weibull(scale, concentration): both > 0.
PPX_SCALAR_DISTRIBUTION(Weibull, double,
                        .positive("scale", scale).positive("concentration", concentration),
                        scale, concentration);

#undef PPX_SCALAR_DISTRIBUTION

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

/// Whether llround(value) lies in [low, high] (so: a number, and one that fits).
inline bool rounds_into(double value, double low, double high) {
  return value >= low - 0.5 && value < high + 0.5;  // false for NaN
}

/// Whether the engine's number ``value`` is a possible value of ``dist``. Only
/// counts and categories are checked: a simulator indexes arrays with them. A
/// continuous draw takes any number (the engine weighs one outside the support
/// itself, with log-probability -inf, as RMH does when it replays old values).
template <class D>
bool in_support(const D&, double) {
  return true;
}
inline bool in_support(const Categorical& dist, double value) {
  return rounds_into(value, 0, double(dist.probs.size()) - 1);
}
inline bool in_support(const Poisson&, double value) { return rounds_into(value, 0, 9e18); }
inline bool in_support(const Bernoulli&, double value) { return rounds_into(value, 0, 1); }
inline bool in_support(const Binomial& dist, double value) {
  return rounds_into(value, 0, dist.total_count);
}

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
