// What a server keeps between requests: the socket, the capabilities the
// engine negotiated at the handshake, the message builder and the last request.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "ppx/transport.hpp"
#include "ppx/wire.hpp"

namespace ppx {
namespace detail {

class Channel {
 public:
  Channel(const std::string& address, std::string name)
      : model_name(std::move(name)), socket_(address) {}

  std::string model_name;
  bool compatible = true;            // the engine's major protocol version is ours
  bool error_report = false;         // the engine can receive Error messages
  bool multivariate_normal = false;  // ... and MultivariateNormal distributions
  Builder builder{1024};
  std::vector<std::uint8_t> request;  // the request being answered

  /// Receive one request into ``request``; false after one slice without any.
  bool receive() { return socket_.receive(request); }

  /// Wait for the next request, slice after slice; false if a stop came first.
  bool wait() {
    while (!socket_.receive(request)) {
      if (stop_requested()) return false;
    }
    return true;
  }

  void send(const std::vector<std::uint8_t>& bytes) { socket_.send(bytes.data(), bytes.size()); }
  void send_built() { socket_.send(builder.GetBufferPointer(), builder.GetSize()); }

  /// The bytes of a Reset message.
  std::vector<std::uint8_t> reset() {
    builder.Clear();
    finish(builder, wire::MessageBody::Reset, wire::CreateReset(builder));
    return built();
  }

  /// The report of a failure: an Error message when the engine negotiated
  /// "error_report"; otherwise (a PPX 1.0.0 engine such as pyprob) a Reset,
  /// the text going to stderr since the engine cannot receive it.
  std::vector<std::uint8_t> error(const std::string& type, const std::string& text,
                                  const std::string& address) {
    if (!error_report) {
      std::fprintf(stderr, "ppx: %s: %s: %s\n", model_name.c_str(), type.c_str(), text.c_str());
      return reset();
    }
    builder.Clear();
    auto t = builder.CreateString(type);
    auto m = builder.CreateString(text);
    auto a = builder.CreateString(address);
    auto n = builder.CreateString("");
    finish(builder, wire::MessageBody::Error, wire::CreateError(builder, t, m, a, n));
    return built();
  }

 private:
  std::vector<std::uint8_t> built() const {
    const std::uint8_t* data = builder.GetBufferPointer();
    return {data, data + builder.GetSize()};
  }

  Socket socket_;
};

}  // namespace detail
}  // namespace ppx
