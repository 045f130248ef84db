#include "nl/link_addresses.h"

#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "nl/handles.h"

namespace podsteer::nl {

namespace {

constexpr size_t kBuffer = 16384;

Error rtnlError(const std::string& what, int err) {
  return makeError(ErrorCode::kNetlink, "rtnetlink: " + what + " in the pod netns: " + std::strerror(err));
}

struct AddrScan {
  int index;
  std::vector<Cidr>* out;
};

int onAddress(const nlmsghdr* nlh, void* data) {
  auto* scan = static_cast<AddrScan*>(data);
  const auto* ifa = static_cast<const ifaddrmsg*>(mnl_nlmsg_get_payload(nlh));
  if (static_cast<int>(ifa->ifa_index) != scan->index) return MNL_CB_OK;
  const nlattr* local = nullptr;
  const nlattr* address = nullptr;
  const auto* tail = static_cast<const char*>(mnl_nlmsg_get_payload_tail(nlh));
  for (auto* a = static_cast<const nlattr*>(mnl_nlmsg_get_payload_offset(nlh, sizeof(*ifa)));
       mnl_attr_ok(a, static_cast<int>(tail - reinterpret_cast<const char*>(a))); a = mnl_attr_next(a)) {
    if (mnl_attr_get_type(a) == IFA_LOCAL) local = a;
    else if (mnl_attr_get_type(a) == IFA_ADDRESS) address = a;
  }
  // IFA_LOCAL is the interface's own address on point-to-point links; IFA_ADDRESS otherwise.
  const nlattr* own = local != nullptr ? local : address;
  if (own == nullptr) return MNL_CB_OK;
  const size_t len = mnl_attr_get_payload_len(own);
  if (!((ifa->ifa_family == AF_INET && len == 4) || (ifa->ifa_family == AF_INET6 && len == 16))) return MNL_CB_OK;
  Cidr c;
  c.family = ifa->ifa_family == AF_INET ? Family::kIpv4 : Family::kIpv6;
  std::memcpy(c.addr.data(), mnl_attr_get_payload(own), len);
  c.prefixLen = c.maxPrefix();
  scan->out->push_back(c);
  return MNL_CB_OK;
}

int onLink(const nlmsghdr* nlh, void* data) {
  *static_cast<int*>(data) = static_cast<const ifinfomsg*>(mnl_nlmsg_get_payload(nlh))->ifi_index;
  return MNL_CB_OK;
}

// Listings read again when the kernel marks them interrupted.
constexpr int kDumpAttempts = 10;

// Sends `nlh` and runs `cb` over the answers: for a dump until its end, otherwise over the
// one answer (the object asked for, or the error). A dump the kernel marked interrupted
// (NLM_F_DUMP_INTR: the objects changed between its parts, so it may miss some) is read
// to its end, so the socket is clean for the next request, and reported as -1 with errno
// EAGAIN; `cb` may have seen part of it.
int exchange(mnl_socket* s, char* buf, nlmsghdr* nlh, mnl_cb_t cb, void* data) {
  const uint32_t seq = nlh->nlmsg_seq, portId = mnl_socket_get_portid(s);
  const bool dump = (nlh->nlmsg_flags & NLM_F_DUMP) == NLM_F_DUMP;
  if (mnl_socket_sendto(s, nlh, nlh->nlmsg_len) < 0) return -1;
  bool interrupted = false;
  while (true) {
    ssize_t n = mnl_socket_recvfrom(s, buf, kBuffer);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (dump) {
      // libmnl stops at a message marked interrupted and leaves the rest unread: look
      // first, and drain an interrupted dump up to its end.
      bool end = false;
      int len = static_cast<int>(n);
      for (auto* m = reinterpret_cast<const nlmsghdr*>(buf); mnl_nlmsg_ok(m, len); m = mnl_nlmsg_next(m, &len)) {
        if (m->nlmsg_seq != seq) continue;
        if (m->nlmsg_flags & NLM_F_DUMP_INTR) interrupted = true;
        if (m->nlmsg_type == NLMSG_DONE || m->nlmsg_type == NLMSG_ERROR) end = true;
      }
      if (interrupted) {
        if (!end) continue;
        errno = EAGAIN;
        return -1;
      }
    }
    int r = mnl_cb_run(buf, static_cast<size_t>(n), seq, portId, cb, data);
    if (r <= MNL_CB_STOP || !dump) return r;
  }
}

} // namespace

RtnlSocket::RtnlSocket(mnl_socket* s) : sock_(s), buf_(new char[kBuffer]) {}

Result<RtnlSocket> RtnlSocket::open() {
  mnl_socket* s = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
  if (s == nullptr) return rtnlError("open a socket", errno);
  RtnlSocket out(s);
  if (mnl_socket_bind(s, 0, MNL_SOCKET_AUTOPID) < 0) return rtnlError("bind a socket", errno);
  // Strict checking makes the kernel apply the address dump's ifa_index filter itself: the
  // answer holds the pod interface's few addresses in one message, instead of every
  // address of the netns (a pod with thousands on another interface made a multi-message
  // listing that other changes kept interrupting). Best effort: kernels before 4.20 lack
  // it, and the reply is then filtered here as before.
  int one = 1;
  mnl_socket_setsockopt(s, NETLINK_GET_STRICT_CHK, &one, sizeof(one));
  return out;
}

Result<std::optional<std::vector<Cidr>>> RtnlSocket::interfaceAddresses(const std::string& ifname) {
  mnl_socket* sock = sock_.get();
  char* buf = buf_.get();
  alignas(nlmsghdr) char req[512];

  nlmsghdr* nlh = mnl_nlmsg_put_header(req);
  nlh->nlmsg_type = RTM_GETLINK;
  nlh->nlmsg_flags = NLM_F_REQUEST; // the answer is the link, or an error: no ack to wait for
  nlh->nlmsg_seq = 1;
  auto* ifi = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifinfomsg)));
  ifi->ifi_family = AF_UNSPEC;
  mnl_attr_put_strz(nlh, IFLA_IFNAME, ifname.c_str());
  mnl_attr_put_u32(nlh, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
  int index = 0;
  if (exchange(sock, buf, nlh, onLink, &index) < 0) {
    if (errno == ENODEV) return std::optional<std::vector<Cidr>>{};
    return rtnlError("look up interface " + ifname, errno);
  }
  if (index == 0) return std::optional<std::vector<Cidr>>{};

  std::vector<Cidr> out;
  for (int attempt = 1;; ++attempt) {
    nlh = mnl_nlmsg_put_header(req);
    nlh->nlmsg_type = RTM_GETADDR;
    nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    nlh->nlmsg_seq = static_cast<uint32_t>(1 + attempt);
    auto* ifa = static_cast<ifaddrmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifaddrmsg)));
    ifa->ifa_family = AF_UNSPEC;
    ifa->ifa_index = static_cast<uint32_t>(index);
    out.clear();
    AddrScan scan{index, &out};
    if (exchange(sock, buf, nlh, onAddress, &scan) >= 0) break;
    if (errno != EAGAIN || attempt == kDumpAttempts)
      return rtnlError("list addresses of " + ifname + (errno == EAGAIN ? " (the addresses kept changing)" : ""),
                       errno);
  }
  return std::optional<std::vector<Cidr>>{out};
}

} // namespace podsteer::nl
