#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cni/error.h"
#include "nl/handles.h"

struct nlmsghdr;

namespace podsteer::nl {

// The rest of an operation's description, rendered only if the kernel refuses the
// message (rules are many, and their text is only wanted in an error). `arg` must
// outlive the commit.
struct OpDetail {
  std::string (*render)(const void* arg) = nullptr;
  const void* arg = nullptr;
};

// One nftables transaction: every message between BATCH_BEGIN and BATCH_END is applied
// atomically by the kernel, or none is. Each message remembers what it does, so a kernel
// error is reported with the operation that caused it.
class NftBatch {
public:
  using PayloadBuilder = std::function<void(nlmsghdr*)>;

  // Appends one message: `type` is NFT_MSG_*, `what` a human description ("add rule ...")
  // that `detail`, when given, completes. `payloadBound` is the most bytes `build` can
  // write after the nfgenmsg header (nft_encode.h's *PayloadBound). The message is built
  // in a scratch buffer of twice that size and checked afterwards: one that came out
  // larger than its bound or than a netlink attribute can describe (64 KiB), or whose
  // attributes do not tile it, is not added; the batch then holds an error() and commit
  // refuses it, so an encoding bug is a reported error (code 102), not memory corruption
  // or a message the kernel would misread.
  void add(uint16_t type, uint16_t family, uint16_t flags, size_t payloadBound, const PayloadBuilder& build,
           std::string what, OpDetail detail = OpDetail());
  bool empty() const { return ops_.empty(); }
  // Whether committing it deletes kernel objects (the kernel then frees them after an RCU
  // grace period; see closeParkedSockets).
  bool deletes() const { return deletes_; }
  size_t size() const { return ops_.size(); }
  // The first message that could not be built within its bound (nullopt: none).
  const std::optional<Error>& error() const { return error_; }
  // Each message as built, in order (tests and the fuzzer look at the bytes).
  void forEachMessage(const std::function<void(const nlmsghdr*, const std::string& what)>& f) const;

private:
  friend class NftSocket;
  struct Op {
    std::string what;
    OpDetail detail;
    std::vector<char> msg; // one netlink message, seq filled in at send time
    std::string describe() const { return detail.render ? what + " " + detail.render(detail.arg) : what; }
  };
  char* scratch(size_t size);
  std::vector<Op> ops_;
  std::unique_ptr<char[]> scratch_;
  size_t scratchSize_ = 0;
  std::optional<Error> error_;
  bool deletes_ = false;
};

// An nfnetlink socket bound in the namespace it was created in.
class NftSocket {
public:
  // Opens a socket in the calling thread's current netns.
  static Result<NftSocket> open();
  // Opens a socket in `netnsFd` and returns to the caller's netns.
  static Result<NftSocket> openIn(int netnsFd);

  // Sends the batch and waits for every acknowledgement. The first kernel error is
  // returned (code 100) naming the operation; the kernel has then applied nothing.
  Status commit(const NftBatch& batch);
  // The kernel's errno for the first refused message of the last commit (0: none), for
  // callers that try the likely batch first and fall back on a known refusal.
  int lastCommitErrno() const { return lastCommitErrno_; }

  // A dump request (NLM_F_DUMP); `onMessage` gets each reply message.
  using MessageHandler = std::function<void(const nlmsghdr*)>;
  Status dump(uint16_t type, uint16_t family, const NftBatch::PayloadBuilder& build,
              const MessageHandler& onMessage, const std::string& what);
  // A single GET request; ENOENT is reported through `found` (false), not as an error.
  Status get(uint16_t type, uint16_t family, const NftBatch::PayloadBuilder& build, const MessageHandler& onMessage,
             bool& found, const std::string& what);

private:
  explicit NftSocket(MnlSocketPtr s, uint32_t portId) : sock_(std::move(s)), portId_(portId) {}
  char* recvBuffer();
  MnlSocketPtr sock_;
  std::unique_ptr<char[]> rbuf_;
  uint32_t portId_ = 0;
  uint32_t seq_ = 0;
  int lastCommitErrno_ = 0;
  bool node_ = false; // made in the process's own namespace (the node's)
};

} // namespace podsteer::nl
