// A test hook, not installed and not part of the API: holds the ring drain of
// every ring-mode journal of this process (journal_ring.cpp), so that the
// records appended meanwhile stay in <stream>/RING and nowhere else, the
// state a writer is in between an append and the drain's next batch. The
// tests of readers that read a live ring use it (tests/journal).
#pragma once

namespace blackbox::internal {

// While held, the drain writes nothing: buffered appends fill the ring, and
// durable appends, Sync, Scan and closing the journal wait. REQUIRES: let go
// (false) before any of those, or the process is ended by a signal.
// Thread-safe.
void HoldRingDrainForTesting(bool hold);

// While set, the drain writes its batches but releases no slot (of the ring
// or of its lanes): the state a kill between a batch's write and its release
// leaves. Closing the journal then never ends: the process must end some
// other way (_Exit, a signal). Thread-safe.
void SkipRingReleaseForTesting(bool skip);

// Makes every move of ring lanes (journal_ring.cpp) sleep this long between
// reading one lane and the next (0: not at all), so that appends land
// between the two reads. Thread-safe.
void DelayLaneScansForTesting(int microseconds);

}  // namespace blackbox::internal
