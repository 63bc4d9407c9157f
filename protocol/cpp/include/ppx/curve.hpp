// CurveZMQ for a server: encryption, and only the engines it admits (the C++
// twin of protocol/curve.py). A simulator reachable beyond loopback is a
// remote-code door, so binding there requires it (check_bind_address).
//
// Keys are the ZeroMQ certificate files that `ppx keys FOLDER` writes, named by
//
//   PPX_CURVE_SECRET   the server's secret certificate (FOLDER/server.key_secret)
//   PPX_CURVE_CLIENTS  a folder of the client public certificates admitted (FOLDER/clients)
//
// The server socket becomes a CURVE server, and a ZAP handler (RFC 27) on its
// context admits a client only if its public key is one of the folder's *.key
// files (read once, at start). A plain TCP client fails the handshake itself.
#pragma once

#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include <zmq.h>

namespace ppx {
namespace detail {

constexpr const char* kCurveSecretEnv = "PPX_CURVE_SECRET";
constexpr const char* kCurveClientsEnv = "PPX_CURVE_CLIENTS";

/// A CURVE key in binary, as a ZAP request carries a client's.
using CurveKey = std::array<std::uint8_t, 32>;
/// The length of a key in Z85 text, as certificate files and ZeroMQ's options hold it.
constexpr std::size_t kZ85KeySize = 40;

/// What a CURVE server needs: its own key pair and the public keys it admits.
struct CurveKeys {
  std::string public_key, secret_key;  // the server's, Z85
  std::vector<CurveKey> clients;
};

/// The key that ``z85`` spells, or nothing if it is not a 40-character Z85 key.
inline std::optional<CurveKey> decode_key(const std::string& z85) {
  CurveKey key{};
  if (z85.size() != kZ85KeySize || zmq_z85_decode(key.data(), z85.c_str()) == nullptr) return {};
  return key;
}

/// The public-key and secret-key of a certificate file (secret empty if
/// absent), parsed as pyzmq's zmq.auth.load_certificate parses it. ``env``,
/// the variable that named the file, starts each error message.
inline std::pair<std::string, std::string> read_certificate(const std::filesystem::path& path,
                                                            const std::string& env) {
  const std::string where = env + ": '" + path.string() + "'";
  if (!std::filesystem::is_regular_file(path)) {
    throw std::invalid_argument(env + ": CURVE key file '" + path.string() + "' does not exist");
  }
  std::ifstream file(path);
  if (!file) throw std::invalid_argument(where + " cannot be read (permissions?)");
  std::string public_key, secret_key, line;
  while (std::getline(file, line)) {
    const auto start = line.find_first_not_of(" \t\r");
    if (start == std::string::npos || line[start] == '#') continue;
    line.erase(0, start);
    const auto equals = line.find('=');
    if (equals == std::string::npos) continue;
    const std::string value = line.substr(equals + 1);
    const char* const quoting = " \t\r'\"";  // around the value: "KEY" in ZPL
    const auto first = value.find_first_not_of(quoting), last = value.find_last_not_of(quoting);
    const std::string key = first == std::string::npos ? "" : value.substr(first, last - first + 1);
    if (line.rfind("public-key", 0) == 0) public_key = key;
    if (line.rfind("secret-key", 0) == 0) secret_key = key;
  }
  if (public_key.empty()) {
    throw std::invalid_argument(where + " is not a ZeroMQ certificate file: it has no public-key");
  }
  for (const std::string* key : {&public_key, &secret_key}) {
    if (!key->empty() && !decode_key(*key)) {
      throw std::invalid_argument(where + " is not a ZeroMQ certificate file: its " +
                                  (key == &public_key ? "public" : "secret") +
                                  "-key is not a 40-character Z85 key");
    }
  }
  return {public_key, secret_key};
}

/// The server's CURVE keys from $PPX_CURVE_SECRET and $PPX_CURVE_CLIENTS, or
/// nothing if neither is set. Throws std::invalid_argument, naming the variable
/// and the file, if only one is set or a file is missing or malformed.
inline std::optional<CurveKeys> curve_keys_from_env() {
  const char* secret = std::getenv(kCurveSecretEnv);
  const char* clients = std::getenv(kCurveClientsEnv);
  const bool has_secret = secret != nullptr && *secret != '\0';
  const bool has_clients = clients != nullptr && *clients != '\0';
  if (!has_secret && !has_clients) return {};
  if (!has_secret || !has_clients) {
    throw std::invalid_argument(std::string("CURVE serving needs both ") + kCurveSecretEnv +
                                " and " + kCurveClientsEnv + " set; only " +
                                (has_secret ? kCurveSecretEnv : kCurveClientsEnv) + " is");
  }
  if (!zmq_has("curve")) {
    throw std::invalid_argument(std::string(kCurveSecretEnv) +
                                " is set but this libzmq was built without CURVE (libsodium)");
  }
  CurveKeys keys;
  std::tie(keys.public_key, keys.secret_key) = read_certificate(secret, kCurveSecretEnv);
  const std::string where = std::string(kCurveSecretEnv) + ": '" + secret + "'";
  if (keys.secret_key.empty()) {
    throw std::invalid_argument(where +
                                " holds no CURVE secret key: give the *.key_secret file "
                                "`ppx keys` made");
  }
  // Clients hold a copy of this public key: one not derived from the secret
  // key (an edited file) would fail every handshake without a word.
  char derived[kZ85KeySize + 1] = {};
  if (zmq_curve_public(derived, keys.secret_key.c_str()) != 0 || keys.public_key != derived) {
    throw std::invalid_argument(where + ": its public-key does not belong to its secret-key");
  }
  const std::filesystem::path folder = clients;
  if (!std::filesystem::is_directory(folder)) {
    throw std::invalid_argument(std::string(kCurveClientsEnv) + ": '" + folder.string() +
                                "' is not a folder of client public keys (*.key)");
  }
  for (const auto& entry : std::filesystem::directory_iterator(folder)) {
    if (entry.path().extension() != ".key") continue;
    keys.clients.push_back(*decode_key(read_certificate(entry.path(), kCurveClientsEnv).first));
  }
  if (keys.clients.empty()) {
    throw std::invalid_argument(std::string(kCurveClientsEnv) + ": CURVE clients folder '" +
                                folder.string() +
                                "' holds no client public keys (*.key): copy there the "
                                "client.key that `ppx keys` made");
  }
  return keys;
}

/// The ZAP handler (RFC 27) of one context: a thread answering ZeroMQ's
/// requests to authenticate, admitting a CURVE client only if its public key
/// is in ``clients``. Destroying it shuts its context down (zmq_ctx_shutdown),
/// which ends the thread's wait; the context's owner then closes its other
/// sockets and terminates it.
class ZapHandler {
 public:
  ZapHandler(void* context, std::vector<CurveKey> clients)
      : context_(context), clients_(std::move(clients)) {
    // Bound here, before the caller's server socket binds: a CURVE server that
    // finds no handler at this address admits every client.
    socket_ = zmq_socket(context_, ZMQ_REP);
    if (socket_ == nullptr || zmq_bind(socket_, "inproc://zeromq.zap.01") != 0) {
      const std::string why = zmq_strerror(zmq_errno());
      if (socket_ != nullptr) zmq_close(socket_);
      throw std::runtime_error("cannot start the CURVE authenticator (ZAP handler): " + why);
    }
    // SIGTERM and SIGINT blocked in the handler's thread (it inherits this
    // mask), so that they reach the serving thread and interrupt its receive.
    sigset_t stops, before;
    sigemptyset(&stops);
    sigaddset(&stops, SIGTERM);
    sigaddset(&stops, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stops, &before);
    thread_ = std::thread([this] { serve(); });
    pthread_sigmask(SIG_SETMASK, &before, nullptr);
  }
  ~ZapHandler() {
    zmq_ctx_shutdown(context_);
    thread_.join();
  }
  ZapHandler(const ZapHandler&) = delete;
  ZapHandler& operator=(const ZapHandler&) = delete;

 private:
  void serve() {
    std::vector<std::string> request;
    while (receive(request)) reply(request);
    zmq_close(socket_);
  }

  /// The next request's frames; false once the context is shut down.
  bool receive(std::vector<std::string>& frames) {
    frames.clear();
    zmq_msg_t part;
    zmq_msg_init(&part);
    do {
      while (zmq_msg_recv(&part, socket_, 0) < 0) {
        if (zmq_errno() == EINTR) continue;
        zmq_msg_close(&part);
        return alive(zmq_errno());
      }
      frames.emplace_back(static_cast<const char*>(zmq_msg_data(&part)), zmq_msg_size(&part));
    } while (zmq_msg_more(&part));
    zmq_msg_close(&part);
    return true;
  }

  /// Answer [version, request id, domain, address, identity, mechanism,
  /// credentials...]: 200 for a CURVE client whose key is admitted, else 400.
  void reply(const std::vector<std::string>& request) {
    const bool admitted = request.size() >= 7 && request[0] == "1.0" && request[5] == "CURVE" &&
                          admits(request[6]);
    const std::string frames[] = {"1.0",
                                  request.size() > 1 ? request[1] : "",
                                  admitted ? "200" : "400",
                                  admitted ? "OK" : "client key not admitted",
                                  "",   // user id
                                  ""};  // metadata
    constexpr std::size_t count = sizeof frames / sizeof frames[0];
    for (std::size_t i = 0; i < count; ++i) {
      const int more = i + 1 < count ? ZMQ_SNDMORE : 0;
      while (zmq_send(socket_, frames[i].data(), frames[i].size(), more) < 0) {
        if (zmq_errno() != EINTR) {
          alive(zmq_errno());
          return;  // shut down: the next receive says so too
        }
      }
    }
  }

  bool admits(const std::string& credentials) const {
    return credentials.size() == CurveKey().size() &&
           std::any_of(clients_.begin(), clients_.end(), [&](const CurveKey& key) {
             return std::equal(key.begin(), key.end(),
                               reinterpret_cast<const std::uint8_t*>(credentials.data()));
           });
  }

  /// False for a shut-down context. Any other failure aborts the process: a
  /// CURVE server whose handler is gone would admit every client.
  static bool alive(int error) {
    if (error == ETERM) return false;
    std::fprintf(stderr, "ppx: the CURVE authenticator failed (%s); stopping\n",
                 zmq_strerror(error));
    std::abort();
  }

  void* context_;
  void* socket_ = nullptr;
  std::vector<CurveKey> clients_;
  std::thread thread_;
};

}  // namespace detail
}  // namespace ppx
