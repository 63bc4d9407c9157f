// One run of the simulator function in progress: the target of ppx::sample,
// ppx::observe and ppx::tag. Each of them is one round trip to the engine: the
// draw goes out as the reply to the engine's pending request, and the engine's
// next request carries the value (SampleResult) or the acknowledgement.
#pragma once

#include <cstdint>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "ppx/channel.hpp"
#include "ppx/distributions.hpp"

namespace ppx {

/// Invalid distribution parameters at a draw (NaN, scale <= 0, probs off the
/// simplex); the engine receives it as an error of type "InvalidDistribution".
class InvalidDistribution : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

/// A distribution the connected engine cannot receive (MultivariateNormal for
/// an engine without the "multivariate_normal" capability).
class UnsupportedDistribution : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

namespace detail {

/// Unwinds the simulator function when the engine abandons the run or the
/// server stops. Not a std::exception, so that simulators catching those let it pass.
struct Abort {};

/// What the server does once a run was abandoned.
struct Abandoned {
  std::optional<std::vector<std::uint8_t>> reply;  // the answer to the pending request
  bool again = false;  // handle that request (still the channel's) as a new one
};

class Run {
 public:
  explicit Run(Channel& channel) : channel_(channel), previous_(current_) { current_ = this; }
  ~Run() { current_ = previous_; }
  Run(const Run&) = delete;
  Run& operator=(const Run&) = delete;

  /// The run in progress on this thread; ``what`` names the caller for the error.
  static Run& active(const char* what) {
    if (current_ == nullptr) {
      throw std::logic_error(std::string(what) + " called outside a run of ppx::Server");
    }
    return *current_;
  }

  std::string last_address;           // base address of the last (or failing) draw
  std::optional<Abandoned> abandoned;  // set once the run cannot go on

  template <class D>
  typename D::value_type sample(const D& dist, std::string_view name, bool control, bool replace,
                                std::string address) {
    const Site site = start_draw(dist, name, std::move(address));
    Builder& b = channel_.builder;
    finish(b, wire::MessageBody::Sample,
           wire::CreateSample(b, site.address, site.name, D::type, site.dist, control, 0, replace));
    const wire::Tensor* result =
        exchange(wire::MessageBody::SampleResult)->body_as_SampleResult()->result();
    const auto* data = result != nullptr ? result->data() : nullptr;
    const std::size_t size = value_size(dist);
    if (data == nullptr || data->size() != size) {
      abandon({channel_.error("ProtocolError",
                              "SampleResult for address '" + last_address + "' holds " +
                                  std::to_string(data ? data->size() : 0) + " values, not " +
                                  std::to_string(size),
                              last_address)});
    }
    if (!in_support(dist, data->data()[0])) {
      std::ostringstream number;
      number << data->data()[0];
      abandon({channel_.error("InvalidDistribution",
                              "SampleResult for address '" + last_address + "' is " +
                                  number.str() + ", outside the support of " + D::kind,
                              last_address)});
    }
    typename D::value_type value;
    read_value(data->data(), size, value);
    return value;
  }

  template <class D>
  void observe(const D& dist, const Tensor& value, std::string_view name, std::string address) {
    const Site site = start_draw(dist, name, std::move(address));
    Builder& b = channel_.builder;
    auto v = write_tensor(b, value);
    finish(b, wire::MessageBody::Observe,
           wire::CreateObserve(b, site.address, site.name, D::type, site.dist, v));
    exchange(wire::MessageBody::ObserveResult);
  }

  void tag(const Tensor& value, std::string_view name) {
    if (abandoned) throw Abort{};
    last_address = std::string(name);
    Builder& b = channel_.builder;
    b.Clear();
    auto a = b.CreateString(last_address);
    auto n = b.CreateString(last_address);
    auto v = write_tensor(b, value);
    finish(b, wire::MessageBody::Tag, wire::CreateTag(b, a, n, v));
    exchange(wire::MessageBody::TagResult);
  }

 private:
  /// The fields a Sample and an Observe share, already written.
  struct Site {
    flatbuffers::Offset<flatbuffers::String> address;
    flatbuffers::Offset<flatbuffers::String> name;
    Written dist;
  };

  /// Check ``dist`` (see begin), clear the builder and write the draw's
  /// address, name and distribution, in that order.
  template <class D>
  Site start_draw(const D& dist, std::string_view name, std::string address) {
    begin(dist, std::move(address));
    Builder& b = channel_.builder;
    b.Clear();
    auto a = b.CreateString(last_address);
    auto n = b.CreateString(name.data(), name.size());
    return {a, n, dist.write(b)};
  }

  /// Refuse what the engine must not receive, before anything is sent.
  template <class D>
  void begin(const D& dist, std::string address) {
    if (abandoned) throw Abort{};  // the simulator swallowed an Abort: unwind again
    last_address = std::move(address);
    if constexpr (std::is_same_v<D, MultivariateNormal>) {
      if (!channel_.terms().multivariate_normal) {
        throw UnsupportedDistribution(
            "the engine did not announce the 'multivariate_normal' extension (a PPX 1.0.0 "
            "peer such as pyprob cannot receive MultivariateNormal); address '" +
            last_address + "'");
      }
    }
    const Constraints constraints = dist.check();
    if (!constraints.ok()) {
      throw InvalidDistribution(std::string("invalid ") + D::kind + " parameters at address '" +
                                last_address + "' " + constraints.explain());
    }
  }

  /// Send the built message; return the engine's next request if it is of the
  /// ``expected`` type, otherwise abandon the run.
  const wire::Message* exchange(wire::MessageBody expected) {
    if (!channel_.send_built()) abandon({});  // the engine is gone
    switch (channel_.wait()) {
      case Heard::answer:
        break;
      case Heard::successor:  // the engine's new socket: its request starts over
        abandon({std::nullopt, true});
      case Heard::nothing:  // the server stops, or the engine kept others waiting
        abandon({});
    }
    std::string error;
    const wire::Message* reply = parse(channel_.request, error);
    if (reply == nullptr) abandon({channel_.error("ProtocolError", error, last_address)});
    const wire::MessageBody type = reply->body_type();
    if (type == expected) return reply;
    if (type == wire::MessageBody::Reset) abandon({channel_.reset()});
    if (type == wire::MessageBody::Run || type == wire::MessageBody::Handshake) {
      abandon({std::nullopt, true});  // the engine gave up on this run: start over
    }
    abandon({channel_.error("ProtocolError",
                            "expected " + body_name(expected) + ", got " + body_name(type),
                            last_address)});
  }

  [[noreturn]] void abandon(Abandoned what) {
    abandoned = std::move(what);
    throw Abort{};
  }

  Channel& channel_;
  Run* previous_;
  static inline thread_local Run* current_ = nullptr;
};

}  // namespace detail
}  // namespace ppx
