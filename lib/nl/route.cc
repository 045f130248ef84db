#include "nl/route.h"

#include <linux/fib_rules.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netlink/attr.h>
#include <netlink/errno.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/route.h>
#include <netlink/route/rule.h>
#include <netlink/socket.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <utility>

#include "nl/handles.h"

namespace podsteer::nl {

namespace {

using RulePtrNl = std::unique_ptr<rtnl_rule, CDeleter<rtnl_rule_put>>;
using RoutePtrNl = std::unique_ptr<rtnl_route, CDeleter<rtnl_route_put>>;
using AddrPtr = std::unique_ptr<nl_addr, CDeleter<nl_addr_put>>;
using CachePtr = std::unique_ptr<nl_cache, CDeleter<nl_cache_free>>;
using AddrObjPtr = std::unique_ptr<rtnl_addr, CDeleter<rtnl_addr_put>>;
using MsgPtr = std::unique_ptr<nl_msg, CDeleter<nlmsg_free>>;

int af(Family f) { return f == Family::kIpv4 ? AF_INET : AF_INET6; }

AddrPtr toNlAddr(const Cidr& c) {
  nl_addr* a = nl_addr_build(af(c.family), c.addr.data(), c.addrLen());
  if (a != nullptr) nl_addr_set_prefixlen(a, c.prefixLen);
  return AddrPtr(a);
}

Error rtnlError(const std::string& what, int err) {
  return makeError(ErrorCode::kNetlink, "rtnetlink: " + what + ": " + nl_geterror(err));
}

RulePtrNl buildRule(const plan::IpRule& r) {
  RulePtrNl rule(rtnl_rule_alloc());
  rtnl_rule_set_family(rule.get(), af(r.family));
  rtnl_rule_set_prio(rule.get(), r.priority);
  rtnl_rule_set_table(rule.get(), r.table);
  rtnl_rule_set_action(rule.get(), FR_ACT_TO_TBL);
  rtnl_rule_set_protocol(rule.get(), plan::kRouteProtocol);
  if (r.mask != 0) {
    rtnl_rule_set_mark(rule.get(), r.mark);
    rtnl_rule_set_mask(rule.get(), r.mask);
  }
  if (r.src) {
    AddrPtr a = toNlAddr(*r.src);
    rtnl_rule_set_src(rule.get(), a.get());
  }
  return rule;
}

Result<RoutePtrNl> buildRoute(const plan::IpRoute& r) {
  RoutePtrNl route(rtnl_route_alloc());
  rtnl_route_set_family(route.get(), af(r.dst.family));
  rtnl_route_set_table(route.get(), r.table);
  rtnl_route_set_protocol(route.get(), plan::kRouteProtocol);
  rtnl_route_set_type(route.get(), RTN_UNICAST);
  AddrPtr dst = toNlAddr(r.dst);
  rtnl_route_set_dst(route.get(), dst.get());
  rtnl_nexthop* nh = rtnl_route_nh_alloc();
  if (!r.dev.empty()) {
    unsigned idx = if_nametoindex(r.dev.c_str());
    if (idx == 0) {
      rtnl_route_nh_free(nh);
      return makeError(ErrorCode::kNetlink, "rtnetlink: " + r.text() + ": no such device " + r.dev);
    }
    rtnl_route_nh_set_ifindex(nh, static_cast<int>(idx));
  }
  if (r.gw) {
    AddrPtr gw = toNlAddr(*r.gw);
    rtnl_route_nh_set_gateway(nh, gw.get());
  }
  rtnl_route_add_nexthop(route.get(), nh);
  rtnl_route_set_scope(route.get(), r.gw ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK);
  return route;
}

// lo is interface 1 in every network namespace (the kernel creates it first), so the
// index needs no lookup in the pod's namespace.
constexpr int kLoopbackIfindex = 1;

Cidr defaultRoute(Family f) { return *parseCidr(f == Family::kIpv4 ? "0.0.0.0/0" : "::/0"); }

// `local default dev lo table T`: every destination is delivered locally.
RoutePtrNl buildLocalRoute(const plan::PodRoute& r) {
  RoutePtrNl route(rtnl_route_alloc());
  rtnl_route_set_family(route.get(), af(r.family));
  rtnl_route_set_table(route.get(), r.table);
  rtnl_route_set_protocol(route.get(), plan::kRouteProtocol);
  rtnl_route_set_type(route.get(), RTN_LOCAL);
  rtnl_route_set_scope(route.get(), RT_SCOPE_HOST);
  AddrPtr dst = toNlAddr(defaultRoute(r.family));
  rtnl_route_set_dst(route.get(), dst.get());
  rtnl_nexthop* nh = rtnl_route_nh_alloc();
  rtnl_route_nh_set_ifindex(nh, kLoopbackIfindex);
  rtnl_route_add_nexthop(route.get(), nh);
  return route;
}

bool sameAddr(nl_addr* a, const std::optional<Cidr>& c) {
  if (!c || c->prefixLen == 0) return a == nullptr || nl_addr_get_prefixlen(a) == 0;
  if (a == nullptr) return false;
  AddrPtr want = toNlAddr(*c);
  return nl_addr_cmp(a, want.get()) == 0;
}

AddrObjPtr buildLoAddress(const Cidr& a) {
  AddrObjPtr addr(rtnl_addr_alloc());
  rtnl_addr_set_ifindex(addr.get(), kLoopbackIfindex);
  rtnl_addr_set_family(addr.get(), af(a.family));
  AddrPtr local = toNlAddr(a);
  rtnl_addr_set_local(addr.get(), local.get());
  rtnl_addr_set_prefixlen(addr.get(), a.prefixLen);
  // lo does no duplicate address detection anyway; say so, as `ip addr add ... nodad`.
  if (a.family == Family::kIpv6) rtnl_addr_set_flags(addr.get(), IFA_F_NODAD);
  return addr;
}

std::string loAddressText(const Cidr& a) {
  return std::string(a.family == Family::kIpv4 ? "ip" : "ip -6") + " addr add " + a.toString() + " dev lo";
}

// ---- the pod interface's addresses: one dump, parsed as it comes ---------------------

constexpr size_t kReceiveBuffer = 16384;
// Listings read again when the kernel marks them interrupted.
constexpr int kDumpAttempts = 10;

Error podRtnlError(const std::string& what, int err) {
  return makeError(ErrorCode::kNetlink, "rtnetlink: " + what + " in the pod netns: " + std::strerror(err));
}

// Sends the dump request `msg` and hands each answer of its sequence number to `onAnswer`
// until the dump's end. 0, or -errno (the kernel's answer or the socket's). A dump the
// kernel marked interrupted (NLM_F_DUMP_INTR: the objects changed between its parts, so it
// may miss some) is read to its end, so the socket is clean for the next request, and is
// -EAGAIN; `onAnswer` may have seen part of it.
template <typename OnAnswer>
int dumpExchange(nl_sock* sock, nl_msg* msg, char* buf, OnAnswer onAnswer) {
  nlmsghdr* request = nlmsg_hdr(msg);
  request->nlmsg_seq = nl_socket_use_seq(sock);
  const uint32_t seq = request->nlmsg_seq;
  if (nl_send(sock, msg) < 0) return errno != 0 ? -errno : -EIO;
  const int fd = nl_socket_get_fd(sock);
  bool interrupted = false;
  while (true) {
    const ssize_t n = ::recv(fd, buf, kReceiveBuffer, MSG_TRUNC);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    if (static_cast<size_t>(n) > kReceiveBuffer) return -ENOSPC;
    int left = static_cast<int>(n);
    for (auto* m = reinterpret_cast<nlmsghdr*>(buf); nlmsg_ok(m, left); m = nlmsg_next(m, &left)) {
      if (m->nlmsg_seq != seq) continue;
      if (m->nlmsg_flags & NLM_F_DUMP_INTR) interrupted = true;
      if (m->nlmsg_type == NLMSG_ERROR || m->nlmsg_type == NLMSG_DONE) {
        const int err = nlmsg_datalen(m) >= static_cast<int>(sizeof(int)) ? *static_cast<int*>(nlmsg_data(m)) : 0;
        if (err < 0) return err;
        return interrupted ? -EAGAIN : 0;
      }
      if (!interrupted) onAnswer(m);
    }
  }
}

// The interface's address in an RTM_NEWADDR message, when it is on interface `index`:
// IFA_LOCAL on point-to-point links, IFA_ADDRESS otherwise.
std::optional<Cidr> addressOf(nlmsghdr* m, int index) {
  const auto* ifa = static_cast<const ifaddrmsg*>(nlmsg_data(m));
  if (m->nlmsg_type != RTM_NEWADDR || static_cast<int>(ifa->ifa_index) != index) return std::nullopt;
  nlattr* tb[IFA_MAX + 1] = {};
  if (nlmsg_parse(m, sizeof(ifaddrmsg), tb, IFA_MAX, nullptr) < 0) return std::nullopt;
  const nlattr* own = tb[IFA_LOCAL] != nullptr ? tb[IFA_LOCAL] : tb[IFA_ADDRESS];
  if (own == nullptr) return std::nullopt;
  const size_t len = static_cast<size_t>(nla_len(own));
  if (!((ifa->ifa_family == AF_INET && len == 4) || (ifa->ifa_family == AF_INET6 && len == 16))) return std::nullopt;
  Cidr c;
  c.family = ifa->ifa_family == AF_INET ? Family::kIpv4 : Family::kIpv6;
  std::memcpy(c.addr.data(), nla_data(own), len);
  c.prefixLen = c.maxPrefix();
  return c;
}

} // namespace

Result<RouteSocket> RouteSocket::open() {
  nl_sock* s = nl_socket_alloc();
  if (s == nullptr) return makeError(ErrorCode::kNetlink, "rtnetlink: cannot allocate a socket");
  if (int err = nl_connect(s, NETLINK_ROUTE); err < 0) {
    nl_socket_free(s);
    return rtnlError("connect", err);
  }
  return RouteSocket(s);
}

RouteSocket::RouteSocket(RouteSocket&& o) noexcept : sock_(std::exchange(o.sock_, nullptr)) {}
RouteSocket& RouteSocket::operator=(RouteSocket&& o) noexcept {
  if (this != &o) {
    if (sock_ != nullptr) nl_socket_free(sock_);
    sock_ = std::exchange(o.sock_, nullptr);
  }
  return *this;
}
RouteSocket::~RouteSocket() {
  if (sock_ != nullptr) nl_socket_free(sock_);
}

Status RouteSocket::addRule(const plan::IpRule& r) {
  RulePtrNl rule = buildRule(r);
  // NLM_F_EXCL: the kernel compares protocol too, so only our own twin counts as present.
  int err = rtnl_rule_add(sock_, rule.get(), NLM_F_CREATE | NLM_F_EXCL);
  if (err < 0 && err != -NLE_EXIST) return rtnlError("add rule `" + r.text() + "`", err);
  return Status::success();
}

Status RouteSocket::deleteRule(const plan::IpRule& r) {
  RulePtrNl rule = buildRule(r);
  int err = rtnl_rule_delete(sock_, rule.get(), 0);
  if (err < 0 && err != -NLE_OBJ_NOTFOUND && err != -NLE_NOADDR)
    return rtnlError("delete rule `" + r.text() + "`", err);
  return Status::success();
}

Result<bool> RouteSocket::hasRule(const plan::IpRule& r) {
  strictChecking(false); // its listing is a libnl cache dump
  nl_cache* raw = nullptr;
  if (int err = rtnl_rule_alloc_cache(sock_, af(r.family), &raw); err < 0) return rtnlError("list rules", err);
  CachePtr cache(raw);
  for (nl_object* o = nl_cache_get_first(cache.get()); o != nullptr; o = nl_cache_get_next(o)) {
    auto* k = reinterpret_cast<rtnl_rule*>(o);
    uint8_t proto = 0;
    rtnl_rule_get_protocol(k, &proto);
    // The cache may hold both families, whatever family it was asked for.
    if (rtnl_rule_get_family(k) != af(r.family) || proto != plan::kRouteProtocol ||
        rtnl_rule_get_prio(k) != r.priority || rtnl_rule_get_table(k) != r.table)
      continue;
    if (r.mask != 0 && (rtnl_rule_get_mark(k) != r.mark || rtnl_rule_get_mask(k) != r.mask)) continue;
    if (!sameAddr(rtnl_rule_get_src(k), r.src)) continue;
    return true;
  }
  return false;
}

Status RouteSocket::addRoute(const plan::IpRoute& r) {
  auto route = buildRoute(r);
  if (!route) return route.error();
  int err = rtnl_route_add(sock_, route->get(), NLM_F_CREATE | NLM_F_EXCL);
  if (err == -NLE_EXIST) {
    auto ours = hasRoute(r);
    if (!ours) return ours.error();
    if (*ours) return Status::success();
    return makeError(ErrorCode::kNetlink, "rtnetlink: " + r.text() + ": a route for " + r.dst.toString() +
                                              " that podsteer did not create is already in table " +
                                              std::to_string(r.table));
  }
  if (err < 0) return rtnlError("add route `" + r.text() + "`", err);
  return Status::success();
}

Status RouteSocket::deleteRoute(const plan::IpRoute& r) {
  auto route = buildRoute(r);
  if (!route) {
    // The device is gone, and the kernel removed its routes with it.
    return Status::success();
  }
  int err = rtnl_route_delete(sock_, route->get(), 0);
  if (err < 0 && err != -NLE_OBJ_NOTFOUND && err != -NLE_NOADDR)
    return rtnlError("delete route `" + r.text() + "`", err);
  return Status::success();
}

Result<bool> RouteSocket::hasRoute(const plan::IpRoute& r) {
  strictChecking(false); // its listing is a libnl cache dump
  nl_cache* raw = nullptr;
  if (int err = rtnl_route_alloc_cache(sock_, af(r.dst.family), 0, &raw); err < 0) return rtnlError("list routes", err);
  CachePtr cache(raw);
  for (nl_object* o = nl_cache_get_first(cache.get()); o != nullptr; o = nl_cache_get_next(o)) {
    auto* k = reinterpret_cast<rtnl_route*>(o);
    if (rtnl_route_get_family(k) != af(r.dst.family) || rtnl_route_get_table(k) != r.table ||
        rtnl_route_get_protocol(k) != plan::kRouteProtocol)
      continue;
    if (!sameAddr(rtnl_route_get_dst(k), r.dst)) continue;
    return true;
  }
  return false;
}

Status RouteSocket::addPodRoute(const plan::PodRoute& r) {
  // The route first: a marked packet must never meet the rule without its table.
  RoutePtrNl route = buildLocalRoute(r);
  int err = rtnl_route_add(sock_, route.get(), NLM_F_CREATE | NLM_F_EXCL);
  if (err == -NLE_EXIST) {
    auto have = checkPodRoute(r);
    if (!have) return have.error();
    for (const auto& missing : *have)
      if (missing.find(" route ") != std::string::npos)
        return makeError(ErrorCode::kNetlink, "rtnetlink: " + r.routeText() + ": a default route that podsteer did "
                                                  "not create is already in table " + std::to_string(r.table),
                         "choose another redirect.inboundTProxyRouteTable");
  } else if (err < 0) {
    return rtnlError("add route `" + r.routeText() + "`", err);
  }
  return addRule(r.rule());
}

Status RouteSocket::deletePodRoute(const plan::PodRoute& r) {
  if (auto s = deleteRule(r.rule()); !s) return s;
  RoutePtrNl route = buildLocalRoute(r);
  int err = rtnl_route_delete(sock_, route.get(), 0);
  if (err < 0 && err != -NLE_OBJ_NOTFOUND && err != -NLE_NOADDR)
    return rtnlError("delete route `" + r.routeText() + "`", err);
  return Status::success();
}

Result<bool> RouteSocket::addLoAddress(const Cidr& a) {
  AddrObjPtr addr = buildLoAddress(a);
  int err = rtnl_addr_add(sock_, addr.get(), NLM_F_CREATE | NLM_F_EXCL);
  if (err == -NLE_EXIST) return false;
  if (err < 0) return rtnlError("`" + loAddressText(a) + "`", err);
  return true;
}

Status RouteSocket::deleteLoAddress(const Cidr& a) {
  AddrObjPtr addr = buildLoAddress(a);
  int err = rtnl_addr_delete(sock_, addr.get(), 0);
  if (err < 0 && err != -NLE_OBJ_NOTFOUND && err != -NLE_NOADDR && err != -NLE_NODEV)
    return rtnlError("delete `" + loAddressText(a) + "`", err);
  return Status::success();
}

Result<bool> RouteSocket::hasLoAddress(const Cidr& a) {
  strictChecking(false); // its listing is a libnl cache dump
  nl_cache* raw = nullptr;
  if (int err = rtnl_addr_alloc_cache(sock_, &raw); err < 0) return rtnlError("list addresses", err);
  CachePtr cache(raw);
  AddrPtr want = toNlAddr(a);
  for (nl_object* o = nl_cache_get_first(cache.get()); o != nullptr; o = nl_cache_get_next(o)) {
    auto* k = reinterpret_cast<rtnl_addr*>(o);
    if (rtnl_addr_get_ifindex(k) != kLoopbackIfindex || rtnl_addr_get_family(k) != af(a.family)) continue;
    nl_addr* local = rtnl_addr_get_local(k);
    if (local != nullptr && nl_addr_cmp_prefix(local, want.get()) == 0 && nl_addr_get_prefixlen(local) == a.prefixLen)
      return true;
  }
  return false;
}

Result<std::vector<std::string>> RouteSocket::checkPodRoute(const plan::PodRoute& r) {
  strictChecking(false); // its listing is a libnl cache dump
  std::vector<std::string> missing;
  auto rule = hasRule(r.rule());
  if (!rule) return rule.error();
  if (!*rule) missing.push_back(r.ruleText() + ": missing");
  nl_cache* raw = nullptr;
  if (int err = rtnl_route_alloc_cache(sock_, af(r.family), 0, &raw); err < 0) return rtnlError("list routes", err);
  CachePtr cache(raw);
  bool found = false;
  for (nl_object* o = nl_cache_get_first(cache.get()); o != nullptr && !found; o = nl_cache_get_next(o)) {
    auto* k = reinterpret_cast<rtnl_route*>(o);
    if (rtnl_route_get_family(k) != af(r.family) || rtnl_route_get_table(k) != r.table ||
        rtnl_route_get_protocol(k) != plan::kRouteProtocol || rtnl_route_get_type(k) != RTN_LOCAL)
      continue;
    if (!sameAddr(rtnl_route_get_dst(k), std::nullopt)) continue;
    found = rtnl_route_get_nnexthops(k) == 1 &&
            rtnl_route_nh_get_ifindex(rtnl_route_nexthop_n(k, 0)) == kLoopbackIfindex;
  }
  if (!found) missing.push_back(r.routeText() + ": missing");
  return missing;
}

void RouteSocket::strictChecking(bool on) {
  if (strict_ == on) return;
  int value = on ? 1 : 0;
  // Best effort: kernels before 4.20 lack it (an address dump is then filtered here).
  ::setsockopt(nl_socket_get_fd(sock_), SOL_NETLINK, NETLINK_GET_STRICT_CHK, &value, sizeof(value));
  strict_ = on;
}

Result<std::optional<std::vector<Cidr>>> RouteSocket::interfaceAddresses(const std::string& ifname) {
  // The interface's index from the socket's namespace: SIOCGIFINDEX answers from the
  // name hash alone, where RTM_GETLINK has the kernel build the whole link message.
  if (ifname.empty() || ifname.size() >= IFNAMSIZ) return std::optional<std::vector<Cidr>>{};
  ifreq ifr{};
  std::memcpy(ifr.ifr_name, ifname.data(), ifname.size());
  if (::ioctl(nl_socket_get_fd(sock_), SIOCGIFINDEX, &ifr) != 0) {
    if (errno == ENODEV) return std::optional<std::vector<Cidr>>{};
    return podRtnlError("look up interface " + ifname, errno);
  }
  const int index = ifr.ifr_ifindex;
  if (index <= 0) return std::optional<std::vector<Cidr>>{};
  auto buf = std::make_unique<char[]>(kReceiveBuffer);

  // Strict checking makes the kernel apply the dump's ifa_index filter itself: the answer
  // holds the pod interface's few addresses in one message, instead of every address of
  // the netns (a pod with thousands on another interface made a multi-message listing that
  // other changes kept interrupting). The answers are filtered here as well.
  strictChecking(true);
  std::vector<Cidr> out;
  for (int attempt = 1;; ++attempt) {
    MsgPtr dump(nlmsg_alloc_simple(RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP));
    ifaddrmsg ifa{};
    ifa.ifa_family = AF_UNSPEC;
    ifa.ifa_index = static_cast<uint32_t>(index);
    if (!dump || nlmsg_append(dump.get(), &ifa, sizeof(ifa), NLMSG_ALIGNTO) < 0)
      return podRtnlError("list addresses of " + ifname, ENOMEM);
    out.clear();
    const int e = dumpExchange(sock_, dump.get(), buf.get(), [&](nlmsghdr* m) {
      if (auto c = addressOf(m, index)) out.push_back(*c);
    });
    if (e >= 0) break;
    if (e != -EAGAIN || attempt == kDumpAttempts)
      return podRtnlError("list addresses of " + ifname + (e == -EAGAIN ? " (the addresses kept changing)" : ""), -e);
  }
  return std::optional<std::vector<Cidr>>{out};
}

} // namespace podsteer::nl
