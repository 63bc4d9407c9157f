// The C++ simulator of benchmarks/roundtrip.py: `--draws K` draws of
// Normal(0, 1) named "x" per run, to time one served draw of a C++ simulator.
#include <string>

#include <ppx/ppx.hpp>

int main(int argc, char** argv) {
  const ppx::CommandLine line =
      ppx::parse_command_line(argc, argv, "ipc:///tmp/ppx-roundtrip", {{"draws", "1000"}});
  const long draws = std::stol(line.options.at("draws"));
  ppx::Server server("roundtrip_cpp", [draws] {
    for (long i = 0; i < draws; ++i) ppx::sample(ppx::Normal{0.0, 1.0}, "x");
  });
  return server.main(line);
}
