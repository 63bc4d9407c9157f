// The command line of a C++ simulator binary: `--address ADDR` (what
// ppx.RemoteModel.spawn appends), `--allow-remote`, and the simulator's own
// `--name VALUE` options.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>

namespace ppx {

struct CommandLine {
  std::string address;
  bool allow_remote = false;
  std::map<std::string, std::string> options;  // the simulator's own, by name without "--"
};

namespace detail {
inline void usage(std::FILE* to, const char* program, const CommandLine& defaults) {
  std::fprintf(to, "usage: %s [--address ADDR] [--allow-remote]", program);
  for (const auto& [name, value] : defaults.options) {
    std::fprintf(to, " [--%s VALUE]", name.c_str());
  }
  std::fprintf(to, "\n  --address ADDR   ZeroMQ address to serve on (default: %s)\n",
               defaults.address.c_str());
  std::fprintf(to,
               "  --allow-remote   allow binding beyond loopback (e.g. tcp://*:5555); needs\n"
               "                   CurveZMQ keys: PPX_CURVE_SECRET and PPX_CURVE_CLIENTS\n"
               "                   (`ppx keys FOLDER` makes them)\n");
  for (const auto& [name, value] : defaults.options) {
    std::fprintf(to, "  --%s VALUE (default: %s)\n", name.c_str(), value.c_str());
  }
}
}  // namespace detail

/// Parse `--name VALUE` / `--name=VALUE` arguments. ``options`` names the
/// simulator's own options with their defaults. Prints usage and exits for
/// --help (0) and for bad arguments (2).
inline CommandLine parse_command_line(int argc, char** argv, std::string default_address,
                                      std::map<std::string, std::string> options = {}) {
  CommandLine line{std::move(default_address), false, std::move(options)};
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      detail::usage(stdout, argv[0], line);
      std::exit(0);
    }
    if (arg == "--allow-remote") {
      line.allow_remote = true;
      continue;
    }
    std::string name, value;
    const auto equals = arg.find('=');
    if (arg.rfind("--", 0) == 0 && equals != std::string::npos) {
      name = arg.substr(2, equals - 2);
      value = arg.substr(equals + 1);
    } else if (arg.rfind("--", 0) == 0 && i + 1 < argc) {
      name = arg.substr(2);
      value = argv[++i];
    }
    if (name == "address") {
      line.address = value;
    } else if (!name.empty() && line.options.count(name) != 0) {
      line.options[name] = value;
    } else {
      std::fprintf(stderr, "%s: unexpected argument '%s'\n", argv[0], arg.c_str());
      detail::usage(stderr, argv[0], line);
      std::exit(2);
    }
  }
  return line;
}

}  // namespace ppx
