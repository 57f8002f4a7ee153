// The event schema in binary form (events.bfbs, made by flatc from
// schemas/events.fbs at build time), for the tests that check a field list
// against the schema itself: tests/tools/event_json_test.cpp (the event
// JSON) and tests/state/snapshot_test.cpp (the snapshot codec).
#pragma once

#include <flatbuffers/reflection.h>

#include <fstream>
#include <iterator>
#include <string>

namespace blackbox::testing {

// Reads and verifies the schema at `path` into `bytes`, which must outlive
// the result. nullptr when the file is missing or fails the verifier.
inline const reflection::Schema* LoadEventSchema(const std::string& path, std::string& bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return nullptr;
  bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  flatbuffers::Verifier verifier(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  if (!reflection::VerifySchemaBuffer(verifier)) return nullptr;
  return reflection::GetSchema(bytes.data());
}

}  // namespace blackbox::testing
