// Reading a stream's write-ahead logs on their own, past damage.
//
// When RocksDB opens a database with kPointInTimeRecovery (the journal's
// mode, so that a torn last record after a crash does not stop the open), it
// replays each log up to the first record that fails its checksum and drops
// every record after it, in that log and in the later ones, without a word.
// RocksDB's own log reader (internal, not installed) also gives up on the
// rest of a 32 KiB block after a bad checksum, so its public views
// (GetUpdatesSince, kSkipAnyCorruptedRecords) cannot see what lies behind the
// damage either. This reads the log format itself (RocksDB's wiki, "Write
// Ahead Log File Format"): 32 KiB blocks of records, each with a 7-byte
// header (masked CRC32C of type and payload, length, type), a logical record
// in one FULL or in FIRST, MIDDLE…, LAST fragments. After a record that fails
// its checksum it looks, byte by byte, for the next record whose checksum
// holds, and decodes the write batches it finds with RocksDB's public
// WriteBatch.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace blackbox::internal {

struct WalScan {
  // A damaged record followed by an intact one. (Damage with nothing intact
  // after it looks exactly like the torn last record of a crash and costs
  // nothing at open that the crash did not.)
  struct Damage {
    std::string file;     // the log
    uint64_t offset = 0;  // the byte where the damage starts
  };
  std::vector<Damage> damages;
  // The journal seqs (keys of the default column family) put by intact
  // records after a damage, in its log and the later ones (less those deleted
  // again by a later record), each with the index in `damages` of the last
  // damage before it.
  std::map<uint64_t, size_t> seqs_after;
};

// Scans every `*.log` of `dir` in file-number order. A log that cannot be
// read (removed by a live writer meanwhile) is skipped.
WalScan ScanWals(const std::string& dir);

}  // namespace blackbox::internal
