// The engines one server answers: what each negotiated at its handshake, and
// the runs that wait while another engine's run is in progress. A server runs
// one simulation at a time; engines that ask meanwhile queue up, first come,
// first served.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "ppx/transport.hpp"

namespace ppx {
namespace detail {

/// The routing ids of the Python engine's REQ sockets: "ppx", 8 random bytes
/// naming the engine, then a 4-byte count of the sockets it made (it makes a
/// new one after a timeout). ZeroMQ's own ids (pyprob's engines) look otherwise.
constexpr std::size_t kEngineTagSize = 3, kEngineIdSize = kEngineTagSize + 8 + 4;

/// The engine behind a routing id: the id less its socket count for a PPX
/// engine, the whole id for any other peer.
inline std::string engine_of(const std::string& identity) {
  const bool ppx =
      identity.size() == kEngineIdSize && identity.compare(0, kEngineTagSize, "ppx") == 0;
  return ppx ? identity.substr(0, kEngineIdSize - 4) : identity;
}

/// What one engine negotiated at its handshake.
struct Terms {
  bool compatible = true;            // the engine's major protocol version is ours
  bool error_report = false;         // the engine can receive Error messages
  bool multivariate_normal = false;  // ... and MultivariateNormal distributions
};

/// The terms of each engine (all the sockets of a PPX engine share them). An
/// engine never seen at a handshake gets the terms of the latest handshake, as
/// a single-engine server would give it.
class Peers {
 public:
  /// The terms of the engine with routing id ``identity``.
  Terms& of(const std::string& identity) {
    std::string engine = engine_of(identity);
    auto found = terms_.find(engine);
    if (found != terms_.end()) return found->second;
    if (terms_.size() >= kMaxPeers) terms_.clear();  // engines come and go: forget old ones
    return terms_.emplace(std::move(engine), latest_).first->second;
  }

  /// Record the handshake of ``identity``.
  void shook_hands(const std::string& identity, const Terms& terms) {
    latest_ = terms;
    of(identity) = terms;
  }

 private:
  static constexpr std::size_t kMaxPeers = 4096;
  std::unordered_map<std::string, Terms> terms_;
  Terms latest_;
};

/// A request and the engine it came from.
struct Request {
  Envelope from;
  std::vector<std::uint8_t> bytes;
};

/// Runs asked for by other engines while one is in progress, first come, first served.
class Waiting {
 public:
  /// Queue ``request``; false if the queue is full.
  bool push(Request request) {
    if (queue_.size() >= kMaxWaiting) return false;
    queue_.push_back(std::move(request));
    return true;
  }

  bool empty() const { return queue_.empty(); }

  /// The oldest waiting request; call only when not empty().
  Request pop() {
    Request oldest = std::move(queue_.front());
    queue_.pop_front();
    return oldest;
  }

  static constexpr std::size_t kMaxWaiting = 1024;  // as Python servers

 private:
  std::deque<Request> queue_;
};

using Clock = std::chrono::steady_clock;

/// How long a run waits for its engine's answer while other engines queue up,
/// before taking that engine for gone: $PPX_ENGINE_TIMEOUT seconds, default 10
/// (as Python servers: below the engines' own 30 s reply timeout).
inline Clock::duration engine_timeout() {
  const char* text = std::getenv("PPX_ENGINE_TIMEOUT");
  double seconds = 10.0;
  if (text != nullptr && *text != '\0') {
    char* end = nullptr;
    seconds = std::strtod(text, &end);
    if (*end != '\0' || !(seconds > 0)) {
      throw std::invalid_argument(std::string("PPX_ENGINE_TIMEOUT='") + text +
                                  "' must be a positive number of seconds");
    }
  }
  seconds = std::min(seconds, 1e9);  // "forever", without overflowing the clock's ticks
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

}  // namespace detail
}  // namespace ppx
