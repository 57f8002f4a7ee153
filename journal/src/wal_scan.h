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
#include <string_view>
#include <vector>

namespace blackbox::internal {

struct WalScan {
  // A damaged record followed by an intact one. (Damage with nothing intact
  // after it looks exactly like the torn last record of a crash and costs
  // nothing at open that the crash did not.)
  struct Damage {
    std::string file;     // the log
    uint64_t offset = 0;  // the byte where the damage starts
    bool operator==(const Damage&) const = default;
  };
  std::vector<Damage> damages;
  // The journal seqs (keys of the default column family) put by intact
  // records after a damage, in its log and the later ones (less those deleted
  // again by a later record), each with the index in `damages` of the last
  // damage before it.
  std::map<uint64_t, size_t> seqs_after;
};

// Scans every `*.log` of `dir` in file-number order. A log that cannot be
// read (removed by a live writer meanwhile) is skipped. Each log is read up
// to WalEnd, and zeros from a record's start to that end are its end, not
// damage. Damage found is looked for again in a second reading (and a third
// when the two differ): a writer filling a log while it is read can leave a
// page not yet written before one that is (see WalEnd), which is not
// damage and is gone at the next reading.
WalScan ScanWals(const std::string& dir);

// Where the records of a write-ahead log can end. The journal's logs are
// preallocated with their size (owner_only_fs.cpp), so one that a writer is
// still filling, or one a killed writer left, ends in zeros never written.
// This is the end of the 32 KiB block that holds the last non-zero byte (or
// the size of `data`, when sooner): the journal's own scan reads that far.
uint64_t WalEnd(std::string_view data);

// Where RocksDB's reading of a log stops (NewSequentialFile of the journal's
// filesystem), so that a preallocated log reads as a log that grew with
// every append did:
//   - after the last record, when zeros follow it. RocksDB's log reader takes
//     a zero header for a preallocated file's padding and skips the rest of
//     its 32 KiB block, then goes on: a reader beside a live writer that
//     read zeros ahead of the writer and then a block the writer filled
//     meanwhile would miss what was written in between;
//   - at the last non-zero byte, when the last record is torn (a process
//     killed in the middle of its write): read as cut short, it is the torn
//     tail of a crash; followed by zeros it would fail its checksum before
//     more bytes, which the journal's strict open takes for damage. So too
//     a header cut short (a write cut at a page boundary inside the header
//     of a batch's next fragment): followed by zeros it would read as a
//     zero header in the middle of the batch;
//   - at the end of the block of the last non-zero byte when what comes
//     before is not a chain of records (damage): RocksDB finds it as before.
uint64_t WalReadEnd(std::string_view data);
// The same for the open file `fd` of `size` bytes.
uint64_t WalReadEnd(int fd, uint64_t size);

}  // namespace blackbox::internal
