#include "commands/doctor_node.h"

#include <arpa/inet.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netlink/netlink.h>
#include <netlink/route/link.h>
#include <netlink/route/link/bridge.h>
#include <netlink/route/route.h>
#include <netlink/route/rule.h>
#include <sys/socket.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "nl/handles.h"
#include "nl/nft_socket.h"
#include "plan/ir.h"
#include "util/file_io.h"

namespace podsteer::doctor {

namespace {

using CachePtr = std::unique_ptr<nl_cache, nl::CDeleter<nl_cache_free>>;
using SockPtr = std::unique_ptr<nl_sock, nl::CDeleter<nl_socket_free>>;

Error rtnlError(const std::string& what, int err) {
  return makeError(ErrorCode::kNetlink, "rtnetlink: " + what + ": " + nl_geterror(err));
}

std::string familyName(uint32_t f) {
  switch (f) {
  case NFPROTO_IPV4: return "ip";
  case NFPROTO_IPV6: return "ip6";
  case NFPROTO_INET: return "inet";
  case NFPROTO_ARP: return "arp";
  case NFPROTO_BRIDGE: return "bridge";
  case NFPROTO_NETDEV: return "netdev";
  default: return std::to_string(f);
  }
}

uint32_t dataU32(const nftnl_expr* e, uint16_t attr) {
  uint32_t len = 0;
  const void* p = nftnl_expr_get(e, attr, &len);
  uint32_t v = 0;
  if (p != nullptr) std::memcpy(&v, p, len < sizeof(v) ? len : sizeof(v));
  return v; // host order, as nft encodes meta mark values
}

// Follows the mark through one rule's registers: a load of the mark (meta load) adds no
// bits, an immediate sets its value's bits, a bitwise `(r & mask) ^ xor` sets or clears
// the bits of ~mask | xor. `meta mark set` from a register then writes those bits.
struct RuleScan {
  std::map<uint32_t, uint32_t> regBits;
  uint32_t bits = 0;
  std::string how;
};

int scanExpr(nftnl_expr* e, void* data) {
  auto* scan = static_cast<RuleScan*>(data);
  const char* name = nftnl_expr_get_str(e, NFTNL_EXPR_NAME);
  if (name == nullptr) return 0;
  const std::string n = name;
  if (n == "immediate" && nftnl_expr_is_set(e, NFTNL_EXPR_IMM_DATA)) {
    scan->regBits[nftnl_expr_get_u32(e, NFTNL_EXPR_IMM_DREG)] = dataU32(e, NFTNL_EXPR_IMM_DATA);
  } else if (n == "bitwise") {
    const uint32_t sreg = nftnl_expr_get_u32(e, NFTNL_EXPR_BITWISE_SREG);
    const uint32_t dreg = nftnl_expr_get_u32(e, NFTNL_EXPR_BITWISE_DREG);
    uint32_t bits = scan->regBits.count(sreg) ? scan->regBits[sreg] : 0;
    const bool boolean = !nftnl_expr_is_set(e, NFTNL_EXPR_BITWISE_OP) || nftnl_expr_get_u32(e, NFTNL_EXPR_BITWISE_OP) == 0;
    if (boolean) bits |= ~dataU32(e, NFTNL_EXPR_BITWISE_MASK) | dataU32(e, NFTNL_EXPR_BITWISE_XOR);
    else bits = 0xffffffffu; // a shift moves bits anywhere
    scan->regBits[dreg] = bits;
  } else if (n == "meta") {
    const uint32_t key = nftnl_expr_get_u32(e, NFTNL_EXPR_META_KEY);
    if (nftnl_expr_is_set(e, NFTNL_EXPR_META_DREG)) {
      scan->regBits[nftnl_expr_get_u32(e, NFTNL_EXPR_META_DREG)] = 0;
    } else if (key == NFT_META_MARK && nftnl_expr_is_set(e, NFTNL_EXPR_META_SREG)) {
      const uint32_t sreg = nftnl_expr_get_u32(e, NFTNL_EXPR_META_SREG);
      scan->bits |= scan->regBits.count(sreg) ? scan->regBits[sreg] : 0;
      scan->how = "meta mark set";
    }
  } else if (n == "target") {
    // iptables-nft keeps MARK as an xtables target: rev 2's info is {mark, mask}, the new
    // mark being (old & ~mask) ^ mark (--set-xmark, --or-mark, --and-mark, --set-mark).
    const char* tg = nftnl_expr_get_str(e, NFTNL_EXPR_TG_NAME);
    if (tg != nullptr && std::string(tg) == "MARK") {
      uint32_t len = 0;
      const auto* info = static_cast<const uint32_t*>(nftnl_expr_get(e, NFTNL_EXPR_TG_INFO, &len));
      if (info != nullptr && len >= 8) scan->bits |= info[0] | info[1];
      else if (info != nullptr && len >= 4) scan->bits |= info[0];
      scan->how = "xt MARK";
    }
  }
  // Any other expression that loads a register (payload, ct, ...) leaves it out of the
  // map: mark bits copied from elsewhere are not judged (e.g. `meta mark set ct mark`).
  return 0;
}

Status readMarkWriters(NodeView& view) {
  auto sock = nl::NftSocket::open();
  if (!sock) return sock.error();
  return sock->dump(
      NFT_MSG_GETRULE, NFPROTO_UNSPEC,
      [](nlmsghdr* m) {
        nl::RulePtr filter(nftnl_rule_alloc());
        nftnl_rule_nlmsg_build_payload(m, filter.get());
      },
      [&](const nlmsghdr* m) {
        nl::RulePtr r(nftnl_rule_alloc());
        if (nftnl_rule_nlmsg_parse(m, r.get()) < 0) return;
        const uint32_t fam = nftnl_rule_get_u32(r.get(), NFTNL_RULE_FAMILY);
        const std::string table = nftnl_rule_get_str(r.get(), NFTNL_RULE_TABLE);
        if (fam == NFPROTO_INET && table == plan::kTableName) return; // ours
        RuleScan scan;
        nftnl_expr_foreach(r.get(), scanExpr, &scan);
        if (scan.how.empty()) return;
        view.markWriters.push_back({familyName(fam) + " " + table, nftnl_rule_get_str(r.get(), NFTNL_RULE_CHAIN),
                                    nftnl_rule_get_u64(r.get(), NFTNL_RULE_HANDLE), scan.bits, scan.how});
      },
      "list the node's nftables rules");
}

std::string addrText(nl_addr* a) {
  if (a == nullptr) return "all";
  char buf[128];
  return nl_addr2str(a, buf, sizeof(buf));
}

std::string hex(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "0x%x", v);
  return buf;
}

Status readRulesAndRoutes(nl_sock* sock, NodeView& view) {
  for (int family : {AF_INET, AF_INET6}) {
    nl_cache* raw = nullptr;
    if (int err = rtnl_rule_alloc_cache(sock, family, &raw); err < 0) return rtnlError("list rules", err);
    CachePtr rules(raw);
    for (nl_object* o = nl_cache_get_first(rules.get()); o != nullptr; o = nl_cache_get_next(o)) {
      auto* k = reinterpret_cast<rtnl_rule*>(o);
      if (rtnl_rule_get_family(k) != family) continue;
      NodeRule r;
      r.family = family;
      r.priority = rtnl_rule_get_prio(k);
      r.table = rtnl_rule_get_table(k);
      rtnl_rule_get_protocol(k, &r.protocol);
      r.text = std::string(family == AF_INET6 ? "-6 " : "") + std::to_string(r.priority) +
               ": from " + addrText(rtnl_rule_get_src(k));
      if (rtnl_rule_get_mark(k) != 0) r.text += " fwmark " + hex(rtnl_rule_get_mark(k)) + "/" + hex(rtnl_rule_get_mask(k));
      r.text += " lookup " + std::to_string(r.table) + " proto " + std::to_string(r.protocol);
      view.rules.push_back(std::move(r));
    }
    raw = nullptr;
    if (int err = rtnl_route_alloc_cache(sock, family, 0, &raw); err < 0) return rtnlError("list routes", err);
    CachePtr routes(raw);
    for (nl_object* o = nl_cache_get_first(routes.get()); o != nullptr; o = nl_cache_get_next(o)) {
      auto* k = reinterpret_cast<rtnl_route*>(o);
      if (rtnl_route_get_family(k) != family) continue;
      NodeRoute r;
      r.family = family;
      r.table = rtnl_route_get_table(k);
      r.protocol = rtnl_route_get_protocol(k);
      nl_addr* dst = rtnl_route_get_dst(k);
      r.text = std::string(family == AF_INET6 ? "-6 " : "") +
               (dst == nullptr || nl_addr_get_prefixlen(dst) == 0 ? "default" : addrText(dst));
      if (rtnl_route_get_nnexthops(k) > 0) {
        rtnl_nexthop* nh = rtnl_route_nexthop_n(k, 0);
        if (nl_addr* gw = rtnl_route_nh_get_gateway(nh)) r.text += " via " + addrText(gw);
        char name[IF_NAMESIZE] = {};
        if (int idx = rtnl_route_nh_get_ifindex(nh); idx > 0 && if_indextoname(idx, name) != nullptr)
          r.text += std::string(" dev ") + name;
      }
      r.text += " table " + std::to_string(r.table) + " proto " + std::to_string(r.protocol);
      view.routes.push_back(std::move(r));
    }
  }
  return Status::success();
}

Status readLinks(nl_sock* sock, NodeView& view) {
  nl_cache* raw = nullptr;
  if (int err = rtnl_link_alloc_cache(sock, AF_UNSPEC, &raw); err < 0) return rtnlError("list links", err);
  CachePtr links(raw);
  for (nl_object* o = nl_cache_get_first(links.get()); o != nullptr; o = nl_cache_get_next(o)) {
    auto* k = reinterpret_cast<rtnl_link*>(o);
    NodeLink l;
    l.name = rtnl_link_get_name(k) ? rtnl_link_get_name(k) : "";
    l.index = rtnl_link_get_ifindex(k);
    l.up = (rtnl_link_get_flags(k) & IFF_UP) != 0;
    l.master = rtnl_link_get_master(k);
    const char* type = rtnl_link_get_type(k);
    l.isBridge = type != nullptr && std::string(type) == "bridge";
    view.links[l.name] = l;
  }
  // Bridge ports' hairpin mode comes with the AF_BRIDGE listing (IFLA_PROTINFO).
  raw = nullptr;
  if (int err = rtnl_link_alloc_cache(sock, AF_BRIDGE, &raw); err < 0) return rtnlError("list bridge ports", err);
  CachePtr ports(raw);
  for (nl_object* o = nl_cache_get_first(ports.get()); o != nullptr; o = nl_cache_get_next(o)) {
    auto* k = reinterpret_cast<rtnl_link*>(o);
    const char* name = rtnl_link_get_name(k);
    if (name == nullptr) continue;
    auto it = view.links.find(name);
    if (it != view.links.end() && rtnl_link_bridge_has_ext_info(k))
      it->second.hairpin = (rtnl_link_bridge_get_flags(k) & RTNL_BRIDGE_HAIRPIN_MODE) != 0;
  }
  return Status::success();
}

} // namespace

Result<NodeView> readNode() {
  NodeView view;
  if (auto s = readMarkWriters(view); !s) return s.error();
  SockPtr sock(nl_socket_alloc());
  if (!sock) return makeError(ErrorCode::kNetlink, "rtnetlink: cannot allocate a socket");
  if (int err = nl_connect(sock.get(), NETLINK_ROUTE); err < 0) return rtnlError("connect", err);
  if (auto s = readRulesAndRoutes(sock.get(), view); !s) return s.error();
  if (auto s = readLinks(sock.get(), view); !s) return s.error();
  return view;
}

int readSysctl(const std::string& path) {
  auto text = readFile("/proc/sys/" + path);
  if (!text || text->empty()) return -1;
  return std::atoi(text->c_str());
}

} // namespace podsteer::doctor
