// ZeroMQ for the simulator side: a bound ROUTER socket that receives in short
// slices and knows which engine sent each request (so that several engines can
// share one server), CurveZMQ on it when keys are given (curve.hpp), the
// loopback-only rule for bind addresses, the largest message accepted, and
// SIGTERM / SIGINT turned into a stop request (the same behaviour as ppx/server.py).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <zmq.h>

#include "ppx/curve.hpp"

namespace ppx {
namespace detail {

/// Longest uninterruptible wait of a server, in milliseconds.
constexpr int kReceiveSliceMs = 200;

/// How long a reply may wait for an engine that does not read, in milliseconds.
constexpr int kSendTimeoutMs = 1000;

/// Set by SIGTERM / SIGINT while a server runs.
inline volatile std::sig_atomic_t stop_signal = 0;

inline bool stop_requested() { return stop_signal != 0; }

extern "C" inline void on_stop_signal(int signum) { stop_signal = signum; }

/// While alive, SIGTERM and SIGINT request a stop instead of killing the process.
/// Without SA_RESTART, so that a blocked receive returns (EINTR) at once.
class StopSignals {
 public:
  StopSignals() {
    stop_signal = 0;
    struct sigaction action {};
    action.sa_handler = on_stop_signal;
    sigemptyset(&action.sa_mask);
    sigaction(SIGTERM, &action, &old_term_);
    sigaction(SIGINT, &action, &old_int_);
  }
  ~StopSignals() {
    sigaction(SIGTERM, &old_term_, nullptr);
    sigaction(SIGINT, &old_int_, nullptr);
  }
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

 private:
  struct sigaction old_term_ {};
  struct sigaction old_int_ {};
};

/// Refuse to bind beyond loopback unless ``allow_remote`` (as
/// ppx.protocol.transport) and ``curve``: the server has CURVE keys.
inline void check_bind_address(const std::string& address, bool allow_remote, bool curve) {
  const auto separator = address.find("://");
  const std::string scheme = address.substr(0, separator);
  if (separator == std::string::npos ||
      (scheme != "ipc" && scheme != "tcp" && scheme != "inproc")) {
    throw std::invalid_argument("PPX address '" + address +
                                "' must look like ipc:///tmp/name or tcp://127.0.0.1:5555");
  }
  if (scheme != "tcp" || (allow_remote && curve)) return;
  const std::string rest = address.substr(separator + 3);
  std::string host = rest.substr(0, rest.rfind(':'));
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  in_addr v4{};
  in6_addr v6{};
  const bool loopback = host == "localhost" ||
                        (inet_pton(AF_INET, host.c_str(), &v4) == 1 &&
                         (ntohl(v4.s_addr) >> 24) == 127) ||
                        (inet_pton(AF_INET6, host.c_str(), &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6));
  if (!loopback && !allow_remote) {
    throw std::invalid_argument(
        "refusing to bind '" + address +
        "': it is reachable beyond this machine. Use 127.0.0.1 or ipc://, or pass "
        "allow_remote (--allow-remote), with CurveZMQ keys, to expose it.");
  }
  if (!loopback) {  // whoever reaches the port would drive the simulator
    throw std::invalid_argument(
        "refusing to bind '" + address + "' without CurveZMQ: beyond loopback only admitted " +
        "engines may connect. Run `ppx keys FOLDER` and set " + kCurveSecretEnv +
        "=FOLDER/server.key_secret and " + kCurveClientsEnv + "=FOLDER/clients.");
  }
}

/// Who sent a request: the routing frames a ROUTER socket puts before it (the
/// engine's identity, then the empty delimiter of a REQ socket). A reply goes
/// back behind the same frames.
using Envelope = std::vector<std::string>;

/// The default of $PPX_MAX_MESSAGE_BYTES: 256 MiB.
constexpr std::int64_t kDefaultMaxMessageBytes = std::int64_t{256} << 20;

/// The largest message part a server accepts: $PPX_MAX_MESSAGE_BYTES (a
/// positive integer, as for Python servers) or 256 MiB. ZeroMQ drops the
/// connection of a peer that sends more, without the server seeing it.
inline std::int64_t max_message_bytes() {
  const char* text = std::getenv("PPX_MAX_MESSAGE_BYTES");
  if (text == nullptr || *text == '\0') return kDefaultMaxMessageBytes;
  char* end = nullptr;
  errno = 0;
  const long long bytes = std::strtoll(text, &end, 10);
  if (errno != 0 || *end != '\0' || bytes <= 0) {
    throw std::invalid_argument(std::string("PPX_MAX_MESSAGE_BYTES='") + text +
                                "' must be a positive number of bytes");
  }
  return bytes;
}

/// A bound ROUTER socket with its own context, a CURVE server admitting only
/// ``curve->clients`` when ``curve`` is given; closing it removes an ipc:// file.
class Socket {
 public:
  Socket(const std::string& address, const CurveKeys* curve) : address_(address) {
    const std::int64_t max_size = max_message_bytes();
    const int linger = 0, timeout = kReceiveSliceMs, mandatory = 1, send_timeout = kSendTimeoutMs;
    context_ = zmq_ctx_new();
    try {
      if (curve != nullptr) zap_.emplace(context_, curve->clients);  // before the bind
    } catch (...) {
      close();
      throw;
    }
    socket_ = zmq_socket(context_, ZMQ_ROUTER);
    zmq_setsockopt(socket_, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(socket_, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    zmq_setsockopt(socket_, ZMQ_SNDTIMEO, &send_timeout, sizeof send_timeout);
    zmq_setsockopt(socket_, ZMQ_ROUTER_MANDATORY, &mandatory, sizeof mandatory);
    zmq_setsockopt(socket_, ZMQ_MAXMSGSIZE, &max_size, sizeof max_size);
    if (curve != nullptr && !make_curve_server(*curve)) {
      const std::string why = zmq_strerror(zmq_errno());
      close();
      throw std::runtime_error("cannot make the socket a CURVE server: " + why);
    }
    if (zmq_bind(socket_, address.c_str()) != 0) {
      const std::string why = zmq_strerror(zmq_errno());
      close();
      throw std::runtime_error("cannot bind " + address + ": " + why);
    }
  }
  ~Socket() {
    close();
    if (address_.rfind("ipc://", 0) == 0) ::unlink(address_.c_str() + 6);
  }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;

  /// The next request into ``into`` (its last frame) and who sent it into
  /// ``from`` (the frames before); false after one slice without any (or a signal).
  bool receive(Envelope& from, std::vector<std::uint8_t>& into) {
    zmq_msg_t part;
    zmq_msg_init(&part);
    if (!receive_part(part, true)) return false;
    from.clear();
    for (;;) {
      const auto* data = static_cast<const char*>(zmq_msg_data(&part));
      const std::size_t size = zmq_msg_size(&part);
      if (!zmq_msg_more(&part)) {  // a copy: aligned, and ours after the part is closed
        into.assign(data, data + size);
        zmq_msg_close(&part);
        return true;
      }
      from.emplace_back(data, size);
      receive_part(part, false);  // the rest of a message arrives with its first part
    }
  }

  /// Send one reply behind ``to``; false if that engine is gone (or not reading).
  bool send(const Envelope& to, const std::uint8_t* data, std::size_t size) {
    for (std::size_t i = 0; i < to.size(); ++i) {
      if (!send_part(to[i].data(), to[i].size(), ZMQ_SNDMORE)) return false;
    }
    return send_part(data, size, 0);
  }

 private:
  /// The socket's CURVE options (Z85 keys, as ZeroMQ takes them); false if one is refused.
  bool make_curve_server(const CurveKeys& keys) {
    const int server = 1;
    return zmq_setsockopt(socket_, ZMQ_CURVE_SECRETKEY, keys.secret_key.data(), kZ85KeySize) == 0 &&
           zmq_setsockopt(socket_, ZMQ_CURVE_PUBLICKEY, keys.public_key.data(), kZ85KeySize) == 0 &&
           zmq_setsockopt(socket_, ZMQ_CURVE_SERVER, &server, sizeof server) == 0;
  }

  /// One message part into ``part``; false if none came within a slice
  /// (``first``: later parts of a message are there already).
  bool receive_part(zmq_msg_t& part, bool first) {
    while (zmq_msg_recv(&part, socket_, 0) < 0) {
      const int error = zmq_errno();
      if (error == EAGAIN || error == EINTR) {
        if (!first) continue;  // ZeroMQ delivers the parts of a message together
        zmq_msg_close(&part);
        return false;
      }
      zmq_msg_close(&part);
      throw std::runtime_error(std::string("PPX receive failed: ") + zmq_strerror(error));
    }
    return true;
  }

  /// Send one part; false if its engine cannot be reached (ROUTER_MANDATORY).
  bool send_part(const void* data, std::size_t size, int flags) {
    while (zmq_send(socket_, data, size, flags) < 0) {
      const int error = zmq_errno();
      if (error == EHOSTUNREACH || error == EAGAIN) return false;
      if (error != EINTR) {
        throw std::runtime_error(std::string("PPX send failed: ") + zmq_strerror(error));
      }
    }
    return true;
  }

  void close() {
    zap_.reset();  // it shuts the context down, ending its thread's wait
    if (socket_ != nullptr) zmq_close(socket_);
    if (context_ != nullptr) zmq_ctx_term(context_);
    socket_ = context_ = nullptr;
  }

  std::string address_;
  void* context_ = nullptr;
  std::optional<ZapHandler> zap_;
  void* socket_ = nullptr;
};

}  // namespace detail
}  // namespace ppx
