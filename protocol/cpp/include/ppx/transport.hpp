// ZeroMQ for the simulator side: a bound REP socket that receives in short
// slices, the loopback-only rule for bind addresses, and SIGTERM / SIGINT
// turned into a stop request (the same behaviour as ppx/server.py).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include <zmq.h>

namespace ppx {
namespace detail {

/// Longest uninterruptible wait of a server, in milliseconds.
constexpr int kReceiveSliceMs = 200;

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

/// Refuse to bind beyond loopback unless ``allow_remote`` (as ppx.protocol.transport).
inline void check_bind_address(const std::string& address, bool allow_remote) {
  const auto separator = address.find("://");
  const std::string scheme = address.substr(0, separator);
  if (separator == std::string::npos ||
      (scheme != "ipc" && scheme != "tcp" && scheme != "inproc")) {
    throw std::invalid_argument("PPX address '" + address +
                                "' must look like ipc:///tmp/name or tcp://127.0.0.1:5555");
  }
  if (scheme != "tcp" || allow_remote) return;
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
  if (!loopback) {
    throw std::invalid_argument(
        "refusing to bind '" + address +
        "': it is reachable beyond this machine. Use 127.0.0.1 or ipc://, or pass "
        "allow_remote (--allow-remote) to expose it.");
  }
}

/// A bound REP socket with its own context; closing it removes an ipc:// file.
class Socket {
 public:
  explicit Socket(const std::string& address) : address_(address) {
    context_ = zmq_ctx_new();
    socket_ = zmq_socket(context_, ZMQ_REP);
    const int linger = 0;
    const int timeout = kReceiveSliceMs;
    zmq_setsockopt(socket_, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(socket_, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
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

  /// The next request into ``into``; false after one slice without any (or a signal).
  bool receive(std::vector<std::uint8_t>& into) {
    zmq_msg_t message;
    zmq_msg_init(&message);
    const int size = zmq_msg_recv(&message, socket_, 0);
    if (size < 0) {
      const int error = zmq_errno();
      zmq_msg_close(&message);
      if (error == EAGAIN || error == EINTR) return false;
      throw std::runtime_error(std::string("PPX receive failed: ") + zmq_strerror(error));
    }
    const auto* data = static_cast<const std::uint8_t*>(zmq_msg_data(&message));
    into.assign(data, data + size);  // a copy: aligned, and ours after the message is closed
    zmq_msg_close(&message);
    return true;
  }

  /// Send one reply.
  void send(const std::uint8_t* data, std::size_t size) {
    while (zmq_send(socket_, data, size, 0) < 0) {
      if (zmq_errno() != EINTR) {
        throw std::runtime_error(std::string("PPX send failed: ") + zmq_strerror(zmq_errno()));
      }
    }
  }

 private:
  void close() {
    if (socket_ != nullptr) zmq_close(socket_);
    if (context_ != nullptr) zmq_ctx_term(context_);
    socket_ = context_ = nullptr;
  }

  std::string address_;
  void* context_ = nullptr;
  void* socket_ = nullptr;
};

}  // namespace detail
}  // namespace ppx
