// What a server keeps between requests: the socket, the engines it knows (what
// each negotiated at its handshake) and the runs waiting their turn, the
// message builder and the request being answered with the engine that sent it.
//
// One run at a time: while an engine's run is in progress, the requests of
// other engines are answered at once when they need no run (a Handshake, a
// Reset, a malformed message) and queued when they are a Run.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "ppx/peers.hpp"
#include "ppx/transport.hpp"
#include "ppx/wire.hpp"

namespace ppx {

constexpr const char* kProtocolVersion = "1.1.0";
constexpr const char* kSystemName = "ppx (C++)";

namespace detail {

inline std::string major_version(const std::string& version) {
  return version.substr(0, version.find('.'));
}

/// The peer behind an envelope: its ROUTER identity.
inline const std::string& identity(const Envelope& envelope) {
  static const std::string none;
  return envelope.empty() ? none : envelope.front();
}

/// Whether two envelopes come from one engine: the same socket, or two
/// sockets of one PPX engine (which makes a new one when it gives up on a reply).
inline bool same_engine(const Envelope& a, const Envelope& b) {
  return !a.empty() && !b.empty() && std::equal(a.begin() + 1, a.end(), b.begin() + 1, b.end()) &&
         engine_of(a.front()) == engine_of(b.front());
}

/// What a run heard from its engine.
enum class Heard {
  answer,     // the next request of the run's engine (its socket's)
  successor,  // a request from a new socket of that engine: the old one is gone
  nothing,    // a stop came first, or the engine stayed silent while others waited
};

class Channel {
 public:
  /// Serve at ``address``, a CURVE server admitting only ``curve->clients`` if given.
  Channel(const std::string& address, std::string name, const CurveKeys* curve)
      : model_name(std::move(name)), engine_timeout_(engine_timeout()), socket_(address, curve) {}

  std::string model_name;
  Builder builder{1024};
  std::vector<std::uint8_t> request;  // the request being answered
  Envelope peer;                      // the engine that sent it

  /// What the engine of the current request negotiated.
  Terms& terms() { return peers_.of(identity(peer)); }

  /// The next request between runs: the oldest waiting run, else one from the
  /// socket; false after one slice without any.
  bool receive() {
    if (waiting_.empty()) return socket_.receive(peer, request);
    Request next = waiting_.pop();
    peer = std::move(next.from);
    request = std::move(next.bytes);
    return true;
  }

  /// After a run that the current request cut short: true to handle that request
  /// now, false if it was answered or queued behind the runs already waiting
  /// (an engine that starts over does not jump the queue).
  bool handle_now() {
    if (waiting_.empty()) return true;
    if (!answer_without_run()) queue();
    return false;
  }

  /// During a run: wait for the next request of the run's engine, answering or
  /// queueing those of other engines meanwhile. Nothing if a stop came first, or
  /// if the engine stayed silent for $PPX_ENGINE_TIMEOUT while others waited.
  Heard wait() {
    const Envelope engine = peer;
    const Clock::time_point since = Clock::now();
    for (;;) {
      if (socket_.receive(peer, request)) {
        if (peer == engine) return Heard::answer;
        if (same_engine(peer, engine)) return Heard::successor;
        if (!answer_without_run()) queue();
        peer = engine;
      } else if (stop_requested()) {
        return Heard::nothing;
      }
      if (!waiting_.empty() && Clock::now() - since > engine_timeout_) {
        std::fprintf(stderr,
                     "ppx: %s: an engine stayed silent mid-run while others waited; "
                     "its run is abandoned\n",
                     model_name.c_str());
        return Heard::nothing;
      }
    }
  }

  /// Answer the current request if it needs no run (a Handshake, a Reset, a
  /// malformed message, one that belongs in a run); false for a Run.
  bool answer_without_run() {
    std::string why;
    const wire::Message* message = parse(request, why);
    if (message == nullptr) {
      send(error("ProtocolError", why, ""));
      return true;
    }
    switch (message->body_type()) {
      case wire::MessageBody::Run:
        return false;
      case wire::MessageBody::Handshake:
        handshake(*message->body_as_Handshake());
        return true;
      case wire::MessageBody::Reset:
        send(reset());
        return true;
      default:
        send(error("ProtocolError",
                   "unexpected " + body_name(message->body_type()) + " outside a run", ""));
        return true;
    }
  }

  /// Send to the engine of the current request; false if it is gone.
  bool send(const std::vector<std::uint8_t>& bytes) {
    return socket_.send(peer, bytes.data(), bytes.size());
  }
  bool send_built() { return socket_.send(peer, builder.GetBufferPointer(), builder.GetSize()); }

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
    if (!terms().error_report) {
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
  /// Queue the current request, a Run, for its turn (or refuse it: too many wait).
  void queue() {
    if (waiting_.push({peer, request})) return;
    send(error("ServerBusy",
               "more than " + std::to_string(Waiting::kMaxWaiting) +
                   " runs already wait for this server; try again later",
               ""));
  }

  /// Negotiate as ppx/server.py does: an engine without protocol_version is a
  /// PPX 1.0.0 engine (pyprob) and gets a 1.0.0 answer, without extensions.
  void handshake(const wire::Handshake& hello) {
    const flatbuffers::String* version = hello.protocol_version();
    Terms agreed;
    agreed.compatible =
        major_version(version ? version->str() : "1.0.0") == major_version(kProtocolVersion);
    if (const auto* capabilities = hello.capabilities()) {
      for (const flatbuffers::String* capability : *capabilities) {
        agreed.error_report |= capability->str() == "error_report";
        agreed.multivariate_normal |= capability->str() == "multivariate_normal";
      }
    }
    peers_.shook_hands(identity(peer), agreed);
    builder.Clear();
    auto system = builder.CreateString(kSystemName);
    auto model = builder.CreateString(model_name);
    flatbuffers::Offset<wire::HandshakeResult> reply;
    if (version == nullptr) {
      reply = wire::CreateHandshakeResult(builder, system, model);
    } else {
      auto ours = builder.CreateString(kProtocolVersion);
      auto capabilities = builder.CreateVectorOfStrings({"error_report", "multivariate_normal"});
      reply = wire::CreateHandshakeResult(builder, system, model, ours, capabilities);
    }
    finish(builder, wire::MessageBody::HandshakeResult, reply);
    send_built();
  }

  std::vector<std::uint8_t> built() const {
    const std::uint8_t* data = builder.GetBufferPointer();
    return {data, data + builder.GetSize()};
  }

  Clock::duration engine_timeout_;
  Socket socket_;
  Peers peers_;
  Waiting waiting_;
};

}  // namespace detail
}  // namespace ppx
