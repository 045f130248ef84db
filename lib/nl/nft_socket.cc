#include "nl/nft_socket.h"

#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <map>

#include <libnftnl/common.h>

#include "nl/destroy_window.h"
#include "nl/netns.h"
#include "util/log.h"

namespace podsteer::nl {

namespace {

constexpr size_t kRecvBuffer = 1 << 16;
// The default send buffer (wmem_default) is 208 KiB; larger batches ask for room.
constexpr size_t kSendBufferDefault = 128 * 1024;
// Receive-queue room to ask for per answer to a batch message, and how many answers the
// default queue (rmem_default, 208 KiB) takes with room to spare. Measured on 6.18: the
// default queue holds 256 capped error answers (~830 bytes of truesize each); the
// kernel doubles what is asked, so each answer gets 2 KiB.
constexpr size_t kAnswerRoom = 1024;
constexpr size_t kAnswersInDefaultBuffer = 128;
// Listings read again when the kernel marks them interrupted, before giving up (11).
constexpr int kDumpAttempts = 10;

// recvmsg with `flags`: the byte count, or -1 and errno (ENOSPC: a datagram larger than
// the buffer, which netlink would have truncated).
ssize_t receive(int fd, char* buf, size_t size, int flags) {
  sockaddr_nl from{};
  iovec iov{buf, size};
  msghdr msg{};
  msg.msg_name = &from;
  msg.msg_namelen = sizeof(from);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  ssize_t n = recvmsg(fd, &msg, flags);
  if (n >= 0 && (msg.msg_flags & MSG_TRUNC)) {
    errno = ENOSPC;
    return -1;
  }
  return n;
}

Error kernelError(const std::string& what, int err, const std::string& extack) {
  std::string msg = "nftables: " + what + ": " + std::strerror(err);
  if (!extack.empty()) msg += " (" + extack + ")";
  return makeError(ErrorCode::kNetlink, msg);
}

void appendMsg(std::vector<char>& out, const nlmsghdr* nlh) {
  const char* p = reinterpret_cast<const char*>(nlh);
  out.insert(out.end(), p, p + NLMSG_ALIGN(nlh->nlmsg_len));
}

// The kernel's extended-ack text (NLMSGERR_ATTR_MSG), when it sent one.
std::string extackMessage(const nlmsghdr* nlh) {
  if (!(nlh->nlmsg_flags & NLM_F_ACK_TLVS)) return {};
  const auto* err = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
  size_t offset = sizeof(nlmsgerr);
  if (!(nlh->nlmsg_flags & NLM_F_CAPPED)) offset += err->msg.nlmsg_len - sizeof(nlmsghdr);
  const char* base = static_cast<const char*>(mnl_nlmsg_get_payload(nlh)) + offset;
  const char* end = reinterpret_cast<const char*>(nlh) + nlh->nlmsg_len;
  for (const nlattr* a = reinterpret_cast<const nlattr*>(base);
       reinterpret_cast<const char*>(a) + sizeof(nlattr) <= end && a->nla_len >= sizeof(nlattr) &&
       reinterpret_cast<const char*>(a) + a->nla_len <= end;
       a = reinterpret_cast<const nlattr*>(reinterpret_cast<const char*>(a) + NLA_ALIGN(a->nla_len))) {
    if ((a->nla_type & NLA_TYPE_MASK) == NLMSGERR_ATTR_MSG)
      return std::string(reinterpret_cast<const char*>(a) + NLA_HDRLEN, a->nla_len - NLA_HDRLEN - 1);
  }
  return {};
}

std::vector<mnl_socket*>& parked() {
  static std::vector<mnl_socket*> sockets;
  return sockets;
}
bool gPark = false;
// A commit of this process deleted objects, and no parked socket was closed since.
bool gDeletedSinceClose = false;
// Open sockets of the node's namespace, and whether one is parked now: only their close
// can run the node's destroy work (nl/destroy_window.h).
std::vector<mnl_socket*>& nodeSockets() {
  static std::vector<mnl_socket*> sockets;
  return sockets;
}
bool gNodeSocketParked = false;

bool isDeletion(uint16_t type) {
  switch (type) {
  case NFT_MSG_DELTABLE: case NFT_MSG_DELCHAIN: case NFT_MSG_DELRULE: case NFT_MSG_DELSET:
  case NFT_MSG_DELSETELEM: case NFT_MSG_DELOBJ: case NFT_MSG_DELFLOWTABLE:
    return true;
  default:
    return false;
  }
}

// Test builds only (-Dfault_points=true): PODSTEER_FAULT=nft-no-answer-room shrinks the
// receive queue to the kernel's minimum before a commit, so a failed batch's answers
// overflow it and the ENOBUFS path runs.
bool noAnswerRoomForTests() {
#ifdef PODSTEER_FAULT_POINTS
  const char* want = ::getenv("PODSTEER_FAULT");
  return want != nullptr && std::strcmp(want, "nft-no-answer-room") == 0;
#else
  return false;
#endif
}

} // namespace

void closeNftSocket(mnl_socket* s) {
  auto& node = nodeSockets();
  const bool ofNode = std::erase(node, s) > 0;
  if (gPark) {
    parked().push_back(s);
    gNodeSocketParked = gNodeSocketParked || ofNode;
  } else {
    mnl_socket_close(s);
  }
}

void parkNftSocketCloses(bool park) {
  gPark = park;
  setDestroyWindowParking(park);
}

size_t parkedNftSocketCount() { return parked().size() + keptNodeDirectories(); }

void closeParkedSockets() {
  // Closing an nfnetlink socket makes the kernel finish the namespace's pending destroy
  // work (the objects a deleting commit removed, freed after an RCU grace period) while
  // it holds that namespace's nf_tables commit mutex: every other process's commit in
  // the namespace (the node's: other pods' ADD and DEL) waits that grace period too.
  // After a deleting commit, wait the grace period out here instead, holding nothing,
  // so the close finds the work done; and before closing a node socket while another
  // command's deletion is pending, wait for that (nl/destroy_window.h).
  const auto start = std::chrono::steady_clock::now();
  if (int n = waitBeforeClosing(gDeletedSinceClose && !parked().empty(), gNodeSocketParked); n > 0) {
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start);
    logDebug("waited " + std::to_string(n) + " grace period(s) before closing " + std::to_string(parked().size()) +
             " nftables socket(s): " + std::to_string(us.count()) + " us");
  }
  gDeletedSinceClose = false;
  gNodeSocketParked = false;
  for (auto* s : parked()) mnl_socket_close(s);
  parked().clear();
}

// Scratch space for building one message, reused by the batch's messages and grown to
// the largest bound asked for. Not zeroed (the builders write every byte they use,
// padding included): a zeroed buffer per message was a memset and fresh-page faults per
// rule on every ADD; pages past what a message uses are never touched.
char* NftBatch::scratch(size_t size) {
  // 16 KiB holds every message of an ordinary ADD (tables, sets, chains, rules, small
  // element lists): one allocation per batch; only long element lists grow it.
  size = std::max<size_t>(size, 16384);
  if (size > scratchSize_) {
    scratch_.reset(new char[size]);
    scratchSize_ = size;
  }
  return scratch_.get();
}

namespace {

// Netlink attributes carry their length in 16 bits, and each of our messages keeps its
// bulk (expressions, elements) in one nest: a message within this size cannot have
// overflowed a nest's length.
constexpr size_t kMaxMessage = UINT16_MAX;
constexpr size_t kHeaders = NLMSG_ALIGN(sizeof(nlmsghdr)) + NLMSG_ALIGN(sizeof(nfgenmsg));

// True when the attributes in [p, end) follow each other exactly to `end`, nests
// (NLA_F_NESTED, as libmnl marks them) included.
bool attributesTile(const char* p, const char* end, int depth) {
  while (p < end) {
    if (end - p < static_cast<ptrdiff_t>(NLA_HDRLEN)) return false;
    const auto* a = reinterpret_cast<const nlattr*>(p);
    if (a->nla_len < NLA_HDRLEN || a->nla_len > end - p) return false;
    if ((a->nla_type & NLA_F_NESTED) && (depth > 8 || !attributesTile(p + NLA_HDRLEN, p + a->nla_len, depth + 1)))
      return false;
    p += NLA_ALIGN(a->nla_len);
  }
  return p == end;
}

} // namespace

void NftBatch::add(uint16_t type, uint16_t family, uint16_t flags, size_t payloadBound, const PayloadBuilder& build,
                   std::string what, OpDetail detail) {
  if (error_) return; // the batch is refused anyway; the first problem is the one to report
  const size_t bound = kHeaders + payloadBound;
  // Twice the bound: a builder that writes past it (a wrong bound) still stays inside
  // the buffer, and the check below reports it.
  nlmsghdr* nlh = nftnl_nlmsg_build_hdr(scratch(2 * bound), type, family, flags, 0);
  build(nlh);
  deletes_ = deletes_ || isDeletion(type);
  const char* payload = static_cast<const char*>(mnl_nlmsg_get_payload(nlh)) + NLMSG_ALIGN(sizeof(nfgenmsg));
  const char* end = reinterpret_cast<const char*>(nlh) + nlh->nlmsg_len;
  std::string problem;
  if (nlh->nlmsg_len > bound)
    problem = std::to_string(nlh->nlmsg_len) + " bytes, over its bound of " + std::to_string(bound);
  else if (nlh->nlmsg_len > kMaxMessage)
    problem = std::to_string(nlh->nlmsg_len) + " bytes, more than a netlink attribute can describe";
  else if (payload > end || !attributesTile(payload, end, 0))
    problem = "attributes that do not tile the message";
  if (!problem.empty()) {
    error_ = makeError(ErrorCode::kInternal, "nftables: " + what + ": the message came out with " + problem +
                                                 "; nothing was sent (a podsteer bug: please report it)");
    return;
  }
  Op op;
  op.what = std::move(what);
  op.detail = detail;
  appendMsg(op.msg, nlh);
  ops_.push_back(std::move(op));
}

void NftBatch::forEachMessage(const std::function<void(const nlmsghdr*, const std::string&)>& f) const {
  for (const auto& op : ops_) f(reinterpret_cast<const nlmsghdr*>(op.msg.data()), op.what);
}

// One receive buffer per socket, allocated on first use and not zeroed: the kernel
// writes what it answers, and untouched pages are never faulted in.
char* NftSocket::recvBuffer() {
  if (!rbuf_) rbuf_.reset(new char[kRecvBuffer]);
  return rbuf_.get();
}

Result<NftSocket> NftSocket::open() {
  MnlSocketPtr s(mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC));
  if (!s) return makeError(ErrorCode::kNetlink, std::string("nftables: open netlink socket: ") + std::strerror(errno));
  if (mnl_socket_bind(s.get(), 0, MNL_SOCKET_AUTOPID) < 0)
    return makeError(ErrorCode::kNetlink, std::string("nftables: bind netlink socket: ") + std::strerror(errno));
  int one = 1;
  // Capped acks: an error answer carries the refused message's header, not the whole
  // message (an element message is up to ~40 KiB), so the answers of a failed batch stay
  // small. Extended acks carry the kernel's own explanation of a refusal.
  mnl_socket_setsockopt(s.get(), NETLINK_CAP_ACK, &one, sizeof(one));
  mnl_socket_setsockopt(s.get(), NETLINK_EXT_ACK, &one, sizeof(one));
  timeval tv{.tv_sec = 10, .tv_usec = 0};
  setsockopt(mnl_socket_get_fd(s.get()), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  uint32_t portId = mnl_socket_get_portid(s.get());
  const bool ofNode = inOwnNetns();
  if (ofNode) nodeSockets().push_back(s.get());
  NftSocket out(std::move(s), portId);
  out.node_ = ofNode;
  return out;
}

Result<NftSocket> NftSocket::openIn(int netnsFd) {
  NetnsGuard guard(netnsFd);
  if (!guard.status()) return guard.status().error();
  return open();
}

Status NftSocket::commit(const NftBatch& batch) {
  lastCommitErrno_ = 0;
  if (batch.error_) return *batch.error_;
  if (batch.empty()) return Status::success();
  std::vector<char> buf;
  size_t total = 2 * NLMSG_ALIGN(sizeof(nlmsghdr) + sizeof(nfgenmsg));
  for (const auto& op : batch.ops_) total += op.msg.size();
  buf.reserve(total);
  char* scratch = recvBuffer(); // free until the answers come
  std::map<uint32_t, const NftBatch::Op*> bySeq;

  const uint32_t beginSeq = ++seq_;
  appendMsg(buf, nftnl_batch_begin(scratch, beginSeq));
  size_t lastAt = 0;
  for (const auto& op : batch.ops_) {
    lastAt = buf.size();
    buf.insert(buf.end(), op.msg.begin(), op.msg.end());
    auto* nlh = reinterpret_cast<nlmsghdr*>(buf.data() + lastAt);
    nlh->nlmsg_seq = ++seq_;
    bySeq[nlh->nlmsg_seq] = &op;
  }
  // Only the last message asks for an acknowledgement. The kernel reports every failed
  // message anyway, processes the whole batch (collecting all its errors) before
  // answering, and answers in order; so the last message's answer closes the batch. An
  // ack per message would cost a kernel allocation and a recvmsg each.
  auto* last = reinterpret_cast<nlmsghdr*>(buf.data() + lastAt);
  last->nlmsg_flags |= NLM_F_ACK;
  const uint32_t lastSeq = last->nlmsg_seq;
  appendMsg(buf, nftnl_batch_end(scratch, ++seq_));

  const int fd = mnl_socket_get_fd(sock_.get());
  // The kernel applies a batch only as one datagram (one sendmsg is one transaction), so
  // the send buffer must hold it whole: the default (wmem_default, ~208 KiB) does for an
  // ordinary ADD; the largest configs make batches of several MiB.
  if (buf.size() > kSendBufferDefault) {
    const int want = static_cast<int>(std::min<size_t>(buf.size() + 4096, INT_MAX / 2));
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &want, sizeof(want)) < 0)
      setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &want, sizeof(want)); // capped by wmem_max
  }
  // Room for every answer. The kernel answers each refused message (a failed batch can
  // refuse hundreds: every rule that names a set that failed) and drops answers that do
  // not fit the receive queue, reporting ENOBUFS. With capped acks an answer takes well
  // under kAnswerRoom of the queue; the default queue holds an ordinary batch's.
  if (noAnswerRoomForTests()) {
    const int least = 1; // the kernel's minimum: a few answers
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &least, sizeof(least));
  } else if (batch.size() > kAnswersInDefaultBuffer) {
    const int want = static_cast<int>(std::min<size_t>((batch.size() + 2) * kAnswerRoom, INT_MAX / 2));
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &want, sizeof(want)) < 0)
      setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &want, sizeof(want)); // capped by rmem_max
  }
  // Before the commit, so that no command can close a node socket after it unwarned.
  if (node_ && batch.deletes()) openDeletionWindow();
  if (mnl_socket_sendto(sock_.get(), buf.data(), buf.size()) < 0) {
    const int err = errno;
    std::string msg = "nftables: send a batch of " + std::to_string(batch.size()) + " messages (" +
                      std::to_string(buf.size()) + " bytes): " + std::strerror(err);
    if (err == EMSGSIZE) msg += " (larger than the socket's send buffer may grow; raise net.core.wmem_max)";
    return makeError(ErrorCode::kNetlink, msg);
  }

  // The kernel processes the batch inside sendmsg: when it returns, every answer is
  // queued, or was dropped for want of room (the next receive reports ENOBUFS, then
  // returns what was queued: the first answers, the first error among them).
  std::optional<Error> first;
  uint32_t firstSeq = UINT32_MAX;
  char* rbuf = recvBuffer();
  bool closed = false, overrun = false;
  while (!closed) {
    ssize_t n = receive(fd, rbuf, kRecvBuffer, overrun ? MSG_DONTWAIT : 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == ENOBUFS && !overrun) {
        overrun = true; // read what is queued, without waiting for what was dropped
        continue;
      }
      if (overrun && errno == EAGAIN) break;
      if (first) break;
      return makeError(ErrorCode::kNetlink, std::string("nftables: receive acknowledgements: ") + std::strerror(errno));
    }
    int len = static_cast<int>(n);
    for (auto* nlh = reinterpret_cast<const nlmsghdr*>(rbuf); mnl_nlmsg_ok(nlh, len);
         nlh = mnl_nlmsg_next(nlh, &len)) {
      if (nlh->nlmsg_type != NLMSG_ERROR) continue;
      const auto* err = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
      int code = -err->error;
      if (nlh->nlmsg_seq == beginSeq) {
        // The batch as a whole was refused (e.g. EPERM): no per-message answers follow.
        lastCommitErrno_ = code;
        return kernelError("begin transaction", code, extackMessage(nlh));
      }
      auto it = bySeq.find(nlh->nlmsg_seq);
      if (it == bySeq.end()) continue;
      if (nlh->nlmsg_seq == lastSeq) closed = true;
      if (code == 0) continue;
      if (nlh->nlmsg_seq < firstSeq) {
        firstSeq = nlh->nlmsg_seq;
        lastCommitErrno_ = code;
        first = kernelError(it->second->describe(), code, extackMessage(nlh));
      }
    }
  }
  if (first) return *first;
  if (overrun && !closed)
    // Cannot happen while the queue starts empty (the first answer always fits), but
    // never guess: without the answers the outcome is unknown.
    return makeError(ErrorCode::kNetlink, "nftables: the answers to a batch of " + std::to_string(batch.size()) +
                                              " messages overflowed the receive buffer (ENOBUFS) before any "
                                              "could be read: the outcome is unknown");
  if (batch.deletes()) gDeletedSinceClose = true;
  return Status::success();
}

Status NftSocket::dump(uint16_t type, uint16_t family, const NftBatch::PayloadBuilder& build,
                       const MessageHandler& onMessage, const std::string& what) {
  // The listing is kept until it is known complete: a listing that other commands'
  // transactions interrupted (another pod's ADD on the node, CHECK takes no lock) may
  // miss or repeat objects, and is read again instead of being compared.
  std::vector<char> listing;
  const int fd = mnl_socket_get_fd(sock_.get());
  for (int attempt = 1; attempt <= kDumpAttempts; ++attempt) {
    listing.clear();
    char* rbuf = recvBuffer();
    const uint32_t seq = ++seq_;
    nlmsghdr* req = nftnl_nlmsg_build_hdr(rbuf, type, family, NLM_F_DUMP, seq);
    build(req);
    if (mnl_socket_sendto(sock_.get(), req, req->nlmsg_len) < 0) return kernelError(what, errno, "");
    bool interrupted = false, done = false;
    while (!done) {
      ssize_t n = receive(fd, rbuf, kRecvBuffer, 0);
      if (n < 0) {
        if (errno == EINTR) continue;
        return kernelError(what, errno, "");
      }
      int len = static_cast<int>(n);
      for (auto* m = reinterpret_cast<const nlmsghdr*>(rbuf); mnl_nlmsg_ok(m, len); m = mnl_nlmsg_next(m, &len)) {
        if (m->nlmsg_seq != seq || (m->nlmsg_pid != 0 && m->nlmsg_pid != portId_)) continue; // a late answer
        // The kernel sets this on a part of the listing when the objects changed since
        // the previous part (NLMSG_DONE included).
        if (m->nlmsg_flags & NLM_F_DUMP_INTR) interrupted = true;
        if (m->nlmsg_type == NLMSG_DONE) {
          done = true;
          break;
        }
        if (m->nlmsg_type == NLMSG_ERROR) {
          const int code = -static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(m))->error;
          // The table may be gone or in transition: ENOENT means "nothing to list".
          if (code == ENOENT) return Status::success();
          return kernelError(what, code, extackMessage(m));
        }
        if (m->nlmsg_type < NLMSG_MIN_TYPE) continue; // NLMSG_NOOP
        const char* p = reinterpret_cast<const char*>(m);
        listing.insert(listing.end(), p, p + NLMSG_ALIGN(m->nlmsg_len));
      }
    }
    if (interrupted) {
      logDebug("nftables: " + what + ": listing interrupted by a concurrent change (attempt " +
               std::to_string(attempt) + "); listing again");
      continue;
    }
    int len = static_cast<int>(listing.size());
    for (auto* m = reinterpret_cast<const nlmsghdr*>(listing.data()); mnl_nlmsg_ok(m, len);
         m = mnl_nlmsg_next(m, &len))
      onMessage(m);
    return Status::success();
  }
  return makeError(ErrorCode::kTryAgain, "nftables: " + what + ": the objects kept changing while the kernel listed "
                                             "them (" + std::to_string(kDumpAttempts) + " listings interrupted); try again");
}

Status NftSocket::get(uint16_t type, uint16_t family, const NftBatch::PayloadBuilder& build,
                      const MessageHandler& onMessage, bool& found, const std::string& what) {
  char* rbuf = recvBuffer();
  uint32_t seq = ++seq_;
  nlmsghdr* nlh = nftnl_nlmsg_build_hdr(rbuf, type, family, NLM_F_ACK, seq);
  build(nlh);
  if (mnl_socket_sendto(sock_.get(), nlh, nlh->nlmsg_len) < 0) return kernelError(what, errno, "");
  found = false;
  while (true) {
    ssize_t n = mnl_socket_recvfrom(sock_.get(), rbuf, kRecvBuffer);
    if (n < 0) {
      if (errno == EINTR) continue;
      return kernelError(what, errno, "");
    }
    int len = static_cast<int>(n);
    for (auto* m = reinterpret_cast<const nlmsghdr*>(rbuf); mnl_nlmsg_ok(m, len); m = mnl_nlmsg_next(m, &len)) {
      if (m->nlmsg_seq != seq) continue;
      if (m->nlmsg_type == NLMSG_ERROR) {
        int code = -static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(m))->error;
        if (code == 0) return Status::success();
        if (code == ENOENT) {
          found = false;
          return Status::success();
        }
        return kernelError(what, code, extackMessage(m));
      }
      found = true;
      onMessage(m);
    }
  }
}

} // namespace podsteer::nl
