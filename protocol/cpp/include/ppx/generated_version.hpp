// Written by protocol/cpp/generate.sh: the flatc version that generated
// ppx_generated.h, whose flatbuffers headers it needs. Do not edit.
#pragma once
#define PPX_FLATC_VERSION_MAJOR 2
#define PPX_FLATC_VERSION_MINOR 0
#define PPX_FLATC_VERSION_REVISION 8
#define PPX_FLATC_VERSION_STRING "2.0.8"
