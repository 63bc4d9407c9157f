// ppx::Server: serves a simulator function over PPX, the C++ twin of
// ppx/server.py. It binds a ZeroMQ REP socket and answers requests: a
// Handshake with the model's name, each Run by calling the function once.
// A failing run (an exception, invalid distribution parameters, a confused
// engine) is reported to the engine and the server keeps serving; SIGTERM and
// SIGINT stop it cleanly (socket closed, ipc file removed, exit code 0).
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <optional>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

#if defined(__GNUG__)
#include <cxxabi.h>
#endif

#include "ppx/command_line.hpp"
#include "ppx/run.hpp"

namespace ppx {

constexpr const char* kProtocolVersion = "1.1.0";
constexpr const char* kSystemName = "ppx (C++)";

namespace detail {

/// The readable type of an exception, e.g. "std::runtime_error".
inline std::string type_name(const std::exception& error) {
  const char* mangled = typeid(error).name();
#if defined(__GNUG__)
  int status = 0;
  char* readable = abi::__cxa_demangle(mangled, nullptr, nullptr, &status);
  std::string name = status == 0 && readable != nullptr ? readable : mangled;
  std::free(readable);
  return name;
#else
  return mangled;
#endif
}

inline std::string major_version(const std::string& version) {
  return version.substr(0, version.find('.'));
}

}  // namespace detail

class Server {
 public:
  /// ``simulator``: a callable without arguments that calls ppx::sample /
  /// observe / tag and returns its result (void, a number, a
  /// std::vector<double> or a ppx::Tensor); ``model_name`` is what engines see.
  template <class F>
  Server(std::string model_name, F simulator)
      : model_name_(std::move(model_name)), simulator_(wrap(std::move(simulator))) {}

  /// Serve at ``address`` (ipc:///tmp/name or tcp://127.0.0.1:PORT) until
  /// SIGTERM or SIGINT; returns 0 then. Throws std::invalid_argument for an
  /// address beyond loopback without ``allow_remote``, std::runtime_error if
  /// it cannot be bound.
  int serve(const std::string& address, bool allow_remote = false) {
    detail::check_bind_address(address, allow_remote);
    detail::StopSignals signals;
    detail::Channel channel(address, model_name_);
    std::fprintf(stderr, "ppx: serving '%s' at %s\n", model_name_.c_str(), address.c_str());
    std::optional<std::vector<std::uint8_t>> next;
    while (!detail::stop_requested()) {
      if (next) {
        channel.request.swap(*next);
        next.reset();
      } else if (!channel.receive()) {
        continue;
      }
      next = handle(channel);
    }
    return 0;
  }

  /// serve() as a program's main: 0 after a stop signal, 1 if it cannot serve.
  int main(const CommandLine& line) {
    try {
      return serve(line.address, line.allow_remote);
    } catch (const std::exception& error) {
      std::fprintf(stderr, "ppx: %s: %s\n", model_name_.c_str(), error.what());
      return 1;
    }
  }

  /// serve() with the command line `--address ADDR [--allow-remote]`.
  int main(int argc, char** argv) {
    return main(parse_command_line(argc, argv, "ipc:///tmp/ppx-" + model_name_));
  }

 private:
  template <class F>
  static std::function<Tensor()> wrap(F simulator) {
    return [simulator = std::move(simulator)]() mutable -> Tensor {
      if constexpr (std::is_void_v<std::invoke_result_t<F&>>) {
        simulator();
        return no_value();
      } else {
        return to_tensor(simulator());
      }
    };
  }

  /// Answer one request; returns a request to handle next (a run was cut short by it).
  std::optional<std::vector<std::uint8_t>> handle(detail::Channel& channel) {
    std::string error;
    const wire::Message* message = detail::parse(channel.request, error);
    if (message == nullptr) {
      channel.send(channel.error("ProtocolError", error, ""));
      return std::nullopt;
    }
    switch (message->body_type()) {
      case wire::MessageBody::Handshake:
        handshake(channel, *message->body_as_Handshake());
        return std::nullopt;
      case wire::MessageBody::Run:
        return run(channel);
      case wire::MessageBody::Reset:
        channel.send(channel.reset());
        return std::nullopt;
      default:
        channel.send(channel.error(
            "ProtocolError", "unexpected " + detail::body_name(message->body_type()) + " outside a run",
            ""));
        return std::nullopt;
    }
  }

  /// Negotiate as ppx/server.py does: an engine without protocol_version is a
  /// PPX 1.0.0 engine (pyprob) and gets a 1.0.0 answer, without extensions.
  void handshake(detail::Channel& channel, const wire::Handshake& hello) {
    const flatbuffers::String* version = hello.protocol_version();
    channel.compatible = detail::major_version(version ? version->str() : "1.0.0") ==
                         detail::major_version(kProtocolVersion);
    channel.error_report = channel.multivariate_normal = false;
    if (const auto* capabilities = hello.capabilities()) {
      for (const flatbuffers::String* capability : *capabilities) {
        channel.error_report |= capability->str() == "error_report";
        channel.multivariate_normal |= capability->str() == "multivariate_normal";
      }
    }
    detail::Builder& b = channel.builder;
    b.Clear();
    auto system = b.CreateString(kSystemName);
    auto model = b.CreateString(model_name_);
    flatbuffers::Offset<wire::HandshakeResult> reply;
    if (version == nullptr) {
      reply = wire::CreateHandshakeResult(b, system, model);
    } else {
      auto ours = b.CreateString(kProtocolVersion);
      auto capabilities = b.CreateVectorOfStrings({"error_report", "multivariate_normal"});
      reply = wire::CreateHandshakeResult(b, system, model, ours, capabilities);
    }
    detail::finish(b, wire::MessageBody::HandshakeResult, reply);
    channel.send_built();
  }

  /// Run the simulator once and answer with its result or its failure.
  std::optional<std::vector<std::uint8_t>> run(detail::Channel& channel) {
    if (!channel.compatible) {
      channel.send(channel.error("HandshakeError",
                                 "incompatible protocol versions; handshake again", ""));
      return std::nullopt;
    }
    detail::Run run(channel);
    Tensor result;
    std::optional<std::pair<std::string, std::string>> failure;  // error type, message
    try {
      result = simulator_();
    } catch (const detail::Abort&) {
    } catch (const InvalidDistribution& error) {
      failure.emplace("InvalidDistribution", error.what());
    } catch (const UnsupportedDistribution& error) {
      failure.emplace("UnsupportedDistribution", error.what());
    } catch (const std::exception& error) {
      failure.emplace(detail::type_name(error), describe(error, run.last_address));
    } catch (...) {
      failure.emplace("unknown", "the simulator threw something that is not a std::exception" +
                                     where(run.last_address));
    }
    if (run.abandoned) {  // the engine gave up on the run: its word counts, not ours
      if (run.abandoned->reply) channel.send(*run.abandoned->reply);
      return std::move(run.abandoned->pending);
    }
    if (failure) {
      channel.send(channel.error(failure->first, failure->second, run.last_address));
      return std::nullopt;
    }
    detail::Builder& b = channel.builder;
    b.Clear();
    auto tensor = detail::write_tensor(b, result);
    detail::finish(b, wire::MessageBody::RunResult, wire::CreateRunResult(b, tensor));
    channel.send_built();
    return std::nullopt;
  }

  static std::string where(const std::string& address) {
    return address.empty() ? "" : "; last draw recorded at address '" + address + "'";
  }

  static std::string describe(const std::exception& error, const std::string& address) {
    return detail::type_name(error) + ": " + error.what() + where(address);
  }

  std::string model_name_;
  std::function<Tensor()> simulator_;
};

}  // namespace ppx
