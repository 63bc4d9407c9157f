// The raw C++ baseline of benchmarks/roundtrip.py: a libzmq REP echo server
// answering every request with REPLY_SIZE bytes; an empty request stops it.
//
//     pingpong ADDRESS REPLY_SIZE
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <zmq.h>

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s ADDRESS REPLY_SIZE\n", argv[0]);
    return 2;
  }
  void* context = zmq_ctx_new();
  void* socket = zmq_socket(context, ZMQ_REP);
  const int linger = 0;
  zmq_setsockopt(socket, ZMQ_LINGER, &linger, sizeof linger);
  if (zmq_bind(socket, argv[1]) != 0) {
    std::fprintf(stderr, "pingpong: cannot bind %s: %s\n", argv[1], zmq_strerror(zmq_errno()));
    return 1;
  }
  const std::vector<char> reply(std::strtoul(argv[2], nullptr, 10), 'r');
  std::vector<char> request(1 << 16);
  int received;
  while ((received = zmq_recv(socket, request.data(), request.size(), 0)) > 0) {
    zmq_send(socket, reply.data(), reply.size(), 0);
  }
  if (received == 0) zmq_send(socket, "", 0, 0);  // acknowledge the stop request
  zmq_close(socket);
  zmq_ctx_term(context);
  return 0;
}
