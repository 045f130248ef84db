#pragma once

// What `podsteer doctor` reads from the node it runs in (the calling thread's netns), over
// netlink only: rules that set fwmark bits, ip rules, routes, links, and the sysctls the
// kernel keeps per namespace. Plain values, so the checks in doctor.cc stay simple.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "cni/error.h"

namespace podsteer::doctor {

// A rule of a foreign nftables table (anything but podsteer's own `inet podsteer`) that
// writes the packet mark: native `meta mark set ...` or iptables-nft's MARK target.
struct MarkWriter {
  std::string table;   // "ip nat"
  std::string chain;
  uint64_t handle = 0;
  uint32_t bits = 0;   // the mark bits the rule may set or clear
  std::string how;     // "meta mark set", "xt MARK"
};

struct NodeRule {
  int family = 0; // AF_INET, AF_INET6
  uint32_t priority = 0;
  uint32_t table = 0;
  uint8_t protocol = 0;
  std::string text; // `ip rule` style
};

struct NodeRoute {
  int family = 0;
  uint32_t table = 0;
  uint8_t protocol = 0;
  std::string text; // `ip route` style
};

struct NodeLink {
  std::string name;
  int index = 0;
  bool up = false;
  int master = 0;        // ifindex of the bridge it is a port of (0: none)
  bool isBridge = false;
  bool hairpin = false;  // as a bridge port: hairpin mode (reflective relay) on
};

struct NodeView {
  std::vector<MarkWriter> markWriters;
  std::vector<NodeRule> rules;
  std::vector<NodeRoute> routes;
  std::map<std::string, NodeLink> links; // by name
};

// Reads the node. Errors are netlink failures (code 100), with what was being read.
Result<NodeView> readNode();

// A sysctl of this netns under /proc/sys ("net/ipv4/conf/all/rp_filter"); -1 when absent.
// (/proc/sys/net shows the namespace of the process that opens it: no exec, no netlink.)
int readSysctl(const std::string& path);

} // namespace podsteer::doctor
