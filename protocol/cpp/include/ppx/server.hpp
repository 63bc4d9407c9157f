// ppx::Server: serves a simulator function over PPX, the C++ twin of
// ppx/server.py. It binds a ZeroMQ ROUTER socket and answers requests: a
// Handshake with the model's name, each Run by calling the function once.
// Several engines may share it: runs are served one at a time, in the order
// asked (see channel.hpp). A failing run (an exception, invalid distribution
// parameters, a confused engine) is reported to the engine and the server
// keeps serving; SIGTERM and SIGINT stop it cleanly (socket closed, ipc file
// removed, exit code 0). With $PPX_CURVE_SECRET and $PPX_CURVE_CLIENTS set it
// serves over CurveZMQ (curve.hpp), which binding beyond loopback requires.
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
  /// SIGTERM or SIGINT; returns 0 then. CurveZMQ when $PPX_CURVE_SECRET and
  /// $PPX_CURVE_CLIENTS name keys. Throws std::invalid_argument for an address
  /// beyond loopback without ``allow_remote`` and CURVE keys, or for bad keys;
  /// std::runtime_error if it cannot be bound.
  int serve(const std::string& address, bool allow_remote = false) {
    const std::optional<detail::CurveKeys> curve = detail::curve_keys_from_env();
    detail::check_bind_address(address, allow_remote, curve.has_value());
    detail::StopSignals signals;
    detail::Channel channel(address, model_name_, curve ? &*curve : nullptr);
    const std::string security =
        curve ? " (CurveZMQ; admitted client keys: " + std::to_string(curve->clients.size()) + ")"
              : "";
    std::fprintf(stderr, "ppx: serving '%s' at %s%s\n", model_name_.c_str(), address.c_str(),
                 security.c_str());
    bool again = false;  // the last request cut a run short: handle it as a new one
    while (!detail::stop_requested()) {
      const bool ready = again ? channel.handle_now() : channel.receive();
      again = ready && handle(channel);
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

  /// Answer one request; true if it cut a run short and is to be handled again.
  bool handle(detail::Channel& channel) { return !channel.answer_without_run() && run(channel); }

  /// Run the simulator once and answer with its result or its failure; true
  /// if the engine cut the run short with a request to handle as a new one.
  bool run(detail::Channel& channel) {
    if (!channel.terms().compatible) {
      channel.send(channel.error("HandshakeError",
                                 "incompatible protocol versions; handshake again", ""));
      return false;
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
      return run.abandoned->again;
    }
    if (failure) {
      channel.send(channel.error(failure->first, failure->second, run.last_address));
      return false;
    }
    detail::Builder& b = channel.builder;
    b.Clear();
    auto tensor = detail::write_tensor(b, result);
    detail::finish(b, wire::MessageBody::RunResult, wire::CreateRunResult(b, tensor));
    channel.send_built();
    return false;
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
