// The encoder's messages, byte for byte, against what `nft --debug=netlink` sends for the
// same text (as google/nftables tests its messages): no kernel and no root needed.
//
// Each golden in tests/unit/golden/netlink/NAME.netlink is nft 1.0.6's own debug output
// for the nft text podsteer renders for the same table (a plan golden,
// tests/unit/golden/NAME.nft, or our own golden/netlink/NAME.nft), captured once with
// tests/unit/capture_netlink_golden.sh in a throwaway namespace. The test parses
// podsteer's messages back from their bytes with libnftnl, prints them as nft does, and
// compares whole tables: any change to any expression of any rule shows here.
//
// Where podsteer sends on purpose something else than nft 1.0.6, the nft side is rewritten
// by one of the named, narrow rules below before comparing (see `podsteerForm`); each says
// why: (1) whole-address loads for prefixes, (2) the kernel's dump form of nat, redirect
// and lookup, (3) no zero "end" element or user data in interval sets, (4) both ports of
// a port-range map (nft 1.0.6 sends only the first), (5) a `meta l4proto` dependency per
// port match. podsteer keeps its form because CHECK compares the kernel's rules with it,
// also for rules an earlier release wrote. Everything else must be identical.

#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_nat.h>
#include <linux/netfilter/nf_tables.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cni/env.h"
#include "config/netconf.h"
#include "config/pod.h"
#include "netlink_text.h"
#include "nl/nft_encode.h"
#include "nl/nft_table.h"
#include "plan/host.h"
#include "plan/plan.h"
#include "plan/render.h"
#include "plan_fixtures.h"

using nlohmann::json;
using namespace podsteer;
using test::NetlinkBlock;

namespace {

const std::string kGoldenDir = PODSTEER_GOLDEN_DIR;

std::string readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "<missing file " + path + ">";
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// ---- nft's form -> podsteer's form ---------------------------------------------------

std::vector<uint8_t> wordsToBytes(const std::string& words) {
  std::vector<uint8_t> out;
  std::istringstream in(words);
  for (std::string w; in >> w;) {
    uint32_t v = static_cast<uint32_t>(std::stoul(w, nullptr, 16));
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
  }
  return out;
}

std::string bytesToWords(const std::vector<uint8_t>& bytes) {
  std::string out;
  for (size_t i = 0; i < bytes.size(); i += 4) {
    uint32_t v = 0;
    for (size_t j = 0; j < 4 && i + j < bytes.size(); ++j) v |= uint32_t(bytes[i + j]) << (8 * j);
    char buf[16];
    std::snprintf(buf, sizeof(buf), "%s0x%08x", out.empty() ? "" : " ", v);
    out += buf;
  }
  return out;
}

// Rule 1, prefixes. For `ip daddr 198.51.100.0/24` nft loads only the prefix's bytes
// (`payload load 3b`); podsteer loads the whole address and masks it (`load 4b`, `bitwise`
// with 0xffffff00): the same match, in the form podsteer has always sent, so CHECK keeps
// recognising rules written by earlier releases.
std::string widenPrefixes(const std::string& rule) {
  static const std::regex load(R"(  \[ payload load (\d+)b @ network header \+ (\d+) => reg 1 \]\n)"
                               R"((  \[ bitwise reg 1 = \( reg 1 & ([0-9a-fx ]+?) \) \^ [0-9a-fx ]+? \]\n)?)"
                               R"(  \[ cmp (eq|neq) reg 1 ([0-9a-fx ]+?) \]\n)");
  std::string out;
  auto begin = rule.cbegin();
  for (std::sregex_iterator it(rule.begin(), rule.end(), load), end; it != end; ++it) {
    const std::smatch& m = *it;
    out.append(begin, m[0].first);
    begin = m[0].second;
    const size_t len = std::stoul(m[1]), offset = std::stoul(m[2]);
    const size_t full = (offset == 12 || offset == 16) ? 4 : 16; // IPv4 saddr/daddr, else IPv6
    if (len >= full) {
      out += m[0].str();
      continue;
    }
    std::vector<uint8_t> mask(full, 0), data = wordsToBytes(m[6]);
    if (m[3].matched) {
      std::vector<uint8_t> given = wordsToBytes(m[4]);
      std::copy(given.begin(), given.begin() + static_cast<long>(len), mask.begin());
    } else {
      std::fill(mask.begin(), mask.begin() + static_cast<long>(len), 0xff);
    }
    data.resize(full, 0);
    out += "  [ payload load " + std::to_string(full) + "b @ network header + " + std::to_string(offset) +
           " => reg 1 ]\n  [ bitwise reg 1 = ( reg 1 & " + bytesToWords(mask) + " ) ^ " +
           bytesToWords(std::vector<uint8_t>(full, 0)) + " ]\n  [ cmp " + m[5].str() + " reg 1 " +
           bytesToWords(data) + " ]\n";
  }
  out.append(begin, rule.cend());
  return out;
}

// Rule 2, the kernel's form of nat, redirect and lookup. nft leaves out what the kernel
// fills in (the top of a range equal to its bottom; NF_NAT_RANGE_MAP_IPS when there is an
// address; a lookup's flags of 0); podsteer sends the form the kernel dumps back, so CHECK
// compares like with like.
std::string kernelForm(std::string rule) {
  static const std::regex addr(R"(addr_min reg (\d+) (?!addr_max))");
  static const std::regex proto(R"(proto_min reg (\d+) (?!proto_max))");
  static const std::regex natFlags(R"((\[ nat \w+ ip6? addr_min .*?)(?: flags 0x([0-9a-f]+))? \])");
  if (rule.find("[ nat ") != std::string::npos) {
    std::smatch m;
    std::string out;
    for (std::string line; !rule.empty();) {
      size_t nl = rule.find('\n');
      line = rule.substr(0, nl + 1);
      rule.erase(0, nl + 1);
      if (std::regex_search(line, m, natFlags)) {
        const unsigned flags = (m[2].matched ? std::stoul(m[2], nullptr, 16) : 0) | NF_NAT_RANGE_MAP_IPS;
        char buf[32];
        std::snprintf(buf, sizeof(buf), " flags 0x%x ]", flags);
        line = m.prefix().str() + m[1].str() + buf + m.suffix().str();
      }
      out += line;
    }
    rule = out;
  }
  rule = std::regex_replace(rule, addr, "addr_min reg $1 addr_max reg $1 ");
  rule = std::regex_replace(rule, proto, "proto_min reg $1 proto_max reg $1 ");
  // The kernel dumps a lookup's flags also when they are 0; nft sends none then.
  static const std::regex lookup(R"((\[ lookup reg \d+ set \S+(?: dreg \d+)?) \])");
  return std::regex_replace(rule, lookup, "$1 0x0 ]");
}

// Rule 5, dependencies. nft checks `meta l4proto` once per rule: in `tcp dport != 15008
// tcp dport != 53` only the first port match has it. podsteer encodes every match on its
// own, dependency included (the form its rules have always had in the kernel, which
// CHECK compares against).
std::string repeatDependencies(const std::string& rule) {
  std::istringstream in(rule);
  std::vector<std::string> lines;
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  std::string out, lastL4;
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::string& l = lines[i];
    const bool l4 = l == "  [ meta load l4proto => reg 1 ]" && i + 1 < lines.size();
    if (l4) lastL4 = l + "\n" + lines[i + 1] + "\n";
    const bool transport = l.rfind("  [ payload load ", 0) == 0 && l.find("@ transport header") != std::string::npos;
    if (transport && !lastL4.empty() && (i < 2 || lines[i - 2] != "  [ meta load l4proto => reg 1 ]")) out += lastL4;
    out += l + "\n";
  }
  return out;
}

// Rule 3, interval sets. nft starts every interval set whose first range is above zero
// with an "end" element at key 0; the kernel needs none (its rbtree treats what lies
// below the first start as outside), and podsteer sends none.
// Also, nft notes in an element's user data that its range runs to the end of the key
// space (`userdata = { \x01\x04\x01... }`, for its own listing); the kernel does not
// read it, and podsteer sends none.
std::string dropZeroEnd(const std::string& elements) {
  static const std::regex zeroEnd(R"(\telement (?:00000000 )+ : 1 \[end\])");
  static const std::regex userdata(R"(  userdata = \{ [^}]* \})");
  return std::regex_replace(std::regex_replace(elements, zeroEnd, "", std::regex_constants::format_first_only),
                            userdata, "");
}

// Rule 4, port-range maps (`type ipv4_addr : interval inet_service`). nft 1.0.6 sends
// only a range's first port as an element's value (`nft list` then shows "60129-0") and
// a nat statement that reads one register; podsteer sends both ports (two 32-bit words)
// and takes the top of the range from the next 32-bit register (reg 9 after reg 1). The
// top port comes from the nft input the capture was made from.
struct PortMapElement {
  std::string set;
  uint16_t first = 0, last = 0;
};

std::vector<PortMapElement> portMapElements(const std::string& nftInput) {
  static const std::regex line(R"(add element \S+ \S+ (\S+) \{ .+? : (\d+)-(\d+) \})");
  std::vector<PortMapElement> out;
  for (std::sregex_iterator it(nftInput.begin(), nftInput.end(), line), end; it != end; ++it)
    out.push_back({(*it)[1], static_cast<uint16_t>(std::stoul((*it)[2])), static_cast<uint16_t>(std::stoul((*it)[3]))});
  return out;
}

std::string portWord(uint16_t port) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%08x", uint32_t((port >> 8) | ((port & 0xff) << 8)));
  return buf;
}

std::string portMapForm(const NetlinkBlock& b, std::vector<PortMapElement>& pending) {
  if (b.kind == NetlinkBlock::Kind::kRule) {
    static const std::regex masq(R"((lookup reg 1 set \S+ dreg 1 \]\n  \[ masq proto_min reg 1) )");
    return std::regex_replace(b.text, masq, "$1 proto_max reg 9 ");
  }
  if (b.kind != NetlinkBlock::Kind::kElements || pending.empty()) return b.text;
  const PortMapElement& e = pending.front();
  if (b.text.rfind(e.set + " ", 0) != 0) return b.text;
  const std::string nftValue = "  : " + portWord(e.first) + " 0 [end]";
  std::string text = b.text;
  const size_t at = text.find(nftValue);
  if (at == std::string::npos) return text;
  text.replace(at, nftValue.size(), "  : " + portWord(e.first) + " " + portWord(e.last) + " 0 [end]");
  pending.erase(pending.begin());
  return text;
}

std::vector<NetlinkBlock> podsteerForm(std::vector<NetlinkBlock> blocks, const std::string& nftInput) {
  std::vector<PortMapElement> pending = portMapElements(nftInput);
  for (auto& b : blocks) {
    b.text = portMapForm(b, pending);
    if (b.kind == NetlinkBlock::Kind::kRule) b.text = repeatDependencies(kernelForm(widenPrefixes(b.text)));
    if (b.kind == NetlinkBlock::Kind::kElements) b.text = dropZeroEnd(b.text);
  }
  return blocks;
}

// ---- comparing ------------------------------------------------------------------------

// nft sends a table's chains, then its sets (each with its own elements), then its rules,
// then the `add element` commands; podsteer's batch puts the sets first and adds a pod's
// elements in a batch of their own, grouped by set. The order within each group is kept
// (rules in chain order), except for the added elements, which are sorted.
std::string canonical(const std::vector<NetlinkBlock>& blocks) {
  std::vector<NetlinkBlock> chains, sets, rules, added;
  bool afterRules = false;
  for (const auto& b : blocks) {
    switch (b.kind) {
    case NetlinkBlock::Kind::kChain: chains.push_back(b); break;
    case NetlinkBlock::Kind::kSet: sets.push_back(b); break;
    case NetlinkBlock::Kind::kRule: rules.push_back(b), afterRules = true; break;
    case NetlinkBlock::Kind::kElements: (afterRules ? added : sets).push_back(b); break;
    }
  }
  std::sort(added.begin(), added.end(), [](const auto& a, const auto& b) { return a.text < b.text; });
  return "# chains\n" + test::joinBlocks(chains) + "# sets\n" + test::joinBlocks(sets) + "# rules\n" +
         test::joinBlocks(rules) + "# added elements\n" + test::joinBlocks(added);
}

// Chain names and policies, from the nft text the capture was made from.
std::vector<test::ChainFacts> chainFacts(const std::string& nftInput) {
  static const std::regex chain(R"(\tchain (\S+) \{\n(?:\t\ttype [^\n]*policy (accept|drop);)?)");
  std::vector<test::ChainFacts> out;
  for (std::sregex_iterator it(nftInput.begin(), nftInput.end(), chain), end; it != end; ++it)
    out.push_back({.name = (*it)[1],
                   .hasPolicy = (*it)[2].matched,
                   .policy = (*it)[2].matched ? ((*it)[2] == "accept" ? NF_ACCEPT : NF_DROP) : 0u});
  return out;
}

void checkAgainstNft(const std::string& name, const std::string& nftInput, const test::BatchText& ours) {
  INFO("golden " << kGoldenDir << "/netlink/" << name << ".netlink");
  CHECK(ours.errors.empty());
  const std::string nft = readFile(kGoldenDir + "/netlink/" + name + ".netlink");
  REQUIRE_MESSAGE(nft.find("[ ") != std::string::npos, "empty or missing capture: " << nft);
  const std::string want = canonical(podsteerForm(test::parseNftDebug(nft), nftInput));
  const std::string got = canonical(ours.blocks);
  if (const char* dir = std::getenv("PODSTEER_DUMP_NETLINK")) {
    std::ofstream(std::string(dir) + "/" + name + ".want") << want;
    std::ofstream(std::string(dir) + "/" + name + ".got") << got;
  }
  CHECK_MESSAGE(got == want, "podsteer's messages differ from nft's (PODSTEER_DUMP_NETLINK=dir writes both)");
  CHECK(ours.chains == chainFacts(nftInput));
}

// The plan golden's table and `add element` lines: the text nft was given.
std::string nftInputOf(const std::string& planGolden) {
  const std::string text = readFile(kGoldenDir + "/" + planGolden + ".nft");
  std::string out;
  std::istringstream in(text);
  bool inTable = false;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("table ", 0) == 0) inTable = true;
    if (inTable || line.rfind("add element ", 0) == 0) out += line + "\n";
    if (line == "}") inTable = false;
  }
  return out;
}

// A pod table, as ADD sends it (batchCreateTable), against nft's capture of its plan golden.
void checkPodTable(const std::string& name, const plan::Table& t) {
  const std::string input = nftInputOf(name);
  REQUIRE_MESSAGE(plan::renderTable(t) == input, "the config no longer renders golden/" << name << ".nft");
  nl::NftBatch batch;
  nl::batchCreateTable(batch, t);
  REQUIRE_FALSE(batch.error());
  checkAgainstNft(name, input, test::renderBatch(batch));
}

// ---- the plans of the plan golden tests (same configs as plan_test.cc/host_plan_test.cc)

using test::conf;
using test::kDualStack;
using test::kFull;
using test::kV4Only;
using test::pod;

plan::Table podTable(const json& extra) {
  NetConf c = conf(extra);
  auto p = plan::buildPlan(c, pod(c));
  REQUIRE_MESSAGE(p.ok(), p.error().msg);
  REQUIRE(p->podTable);
  return *p->podTable;
}


} // namespace

TEST_CASE("encode golden: default redirect, dual-stack pod") {
  checkPodTable("default_dualstack", podTable({{"redirect", json::object()}, {"prevResult", kDualStack}}));
}

TEST_CASE("encode golden: v4-only pod, DNS capture, excluded CIDRs and ports, inbound include list") {
  checkPodTable("v4_dns_excludes", podTable(test::goldenPodConfig("v4_dns_excludes")));
}

TEST_CASE("encode golden: limited includeOutboundCIDRs on a dual-stack pod") {
  checkPodTable("include_cidrs_dualstack", podTable(test::goldenPodConfig("include_cidrs_dualstack")));
}

TEST_CASE("encode golden: DNS capture to the configured servers") {
  checkPodTable("dns_servers_dualstack",
                podTable({{"redirect", {{"dnsPort", 15053}, {"dnsServers", {"10.96.0.10", "fd00:10:96::a", "10.96.0.11"}}}},
                          {"prevResult", kDualStack}}));
}

TEST_CASE("encode golden: egress gateways (dnat per family, reject with tcp reset)") {
  auto gateway = [](const json& g) {
    return json{{"egressGateway", g}, {"excludeOutboundCIDRs", {"10.0.0.0/8", "fd00:10::/32"}},
                {"includeInboundPorts", json::array()}};
  };
  checkPodTable("egress_v4_gateway_dualstack",
                podTable({{"redirect", gateway("192.0.2.10:3128")}, {"prevResult", kDualStack}}));
  checkPodTable("egress_gateways_dualstack",
                podTable({{"redirect", gateway({"[fd00:10:96::10]:3129", "192.0.2.10:3128"})}, {"prevResult", kDualStack}}));
}

TEST_CASE("encode golden: otherFamily drop on a v4-only pod") {
  checkPodTable("other_family_drop_v4only", podTable({{"redirect", {{"otherFamily", "drop"}}}, {"prevResult", kV4Only}}));
}

TEST_CASE("encode golden: Istio's options together") {
  checkPodTable("istio_options_dualstack", podTable(test::goldenPodConfig("istio_options_dualstack")));
}

TEST_CASE("encode golden: TPROXY interception") {
  checkPodTable("tproxy_dualstack", podTable({{"redirect", {{"interceptionMode", "TPROXY"}}}, {"prevResult", kDualStack}}));
  checkPodTable("tproxy_v4_options", podTable(test::goldenPodConfig("tproxy_v4_options")));
}

TEST_CASE("encode golden: pod table with an egress gateway and the firewall (interval sets)") {
  NetConf c = conf(kFull);
  auto p = plan::buildPlan(c, pod(c, "core-a", "upf-0"));
  REQUIRE(p.ok());
  REQUIRE(p->podTable);
  checkPodTable("full_pod_table", *p->podTable);
}

TEST_CASE("encode golden: node side of a mark-mode domain with hairpin and a port block") {
  NetConf c = conf(kFull);
  PodInfo member = pod(c, "core-a", "upf-0");
  auto p = plan::buildPlan(c, member);
  REQUIRE(p.ok());
  plan::addPortBlockElements(p->host, member.ips, *c.egressPortPool, 2);
  plan::HostBase base = plan::buildHostBase({c.routingDomains[0]}, true, c.egressPortPool);
  REQUIRE(base.table);
  const std::string input = nftInputOf("host_mark_domain");
  std::string rendered = plan::renderTable(*base.table);
  for (const auto& e : p->host.elements) rendered += e.text() + "\n";
  REQUIRE(rendered == input);
  // As ADD sends it: the shared part (sets, chains flushed and refilled), then the pod's
  // elements.
  nl::NftBatch batch;
  nl::batchEnsureBase(batch, *base.table);
  nl::batchAddElements(batch, *base.table, p->host.elements);
  REQUIRE_FALSE(batch.error());
  CHECK(batch.deletes()); // the flushes
  checkAgainstNft("host_mark_domain", input, test::renderBatch(batch));
  // The node's first pod (no table yet): the same messages without the flushes, so the
  // batch deletes nothing and no grace period is waited for after it.
  nl::NftBatch first;
  nl::batchEnsureBase(first, *base.table, /*tableAbsent=*/true);
  nl::batchAddElements(first, *base.table, p->host.elements);
  REQUIRE_FALSE(first.error());
  CHECK_FALSE(first.deletes());
  CHECK(first.size() == batch.size() - base.table->chains.size());
  checkAgainstNft("host_mark_domain", input, test::renderBatch(first));
}

// ---- every expression kind the encoder has ---------------------------------------------

namespace {

Cidr cidr(const char* text) { return *parseCidr(text); }

plan::Set set(std::string name, plan::SetKey key) {
  plan::Set s;
  s.name = std::move(name);
  s.key = key;
  return s;
}

plan::Chain chain(std::string name, std::optional<plan::BaseChain> base, std::vector<plan::Rule> rules) {
  return plan::Chain{.name = std::move(name), .base = std::move(base), .rules = std::move(rules)};
}

// One table with each match and statement kind (and both families where they differ),
// in chains of the hooks nft accepts them on.
plan::Table kindsTable() {
  using namespace plan;
  Table t;
  Set ports = set("kinds_ports", SetKey::kPort);
  ports.interval = true;
  ports.ports = {{22, 22}, {1000, 2000}, {65535, 65535}};
  Set v4 = set("kinds_v4", SetKey::kIpv4);
  v4.interval = true;
  v4.cidrs = {cidr("10.0.0.0/8"), cidr("192.0.2.1")};
  Set v6 = set("kinds_v6", SetKey::kIpv6);
  v6.interval = true;
  v6.cidrs = {cidr("fd00::/8"), cidr("2001:db8::1")};
  Set map4 = set("portpool_v4", SetKey::kIpv4), map6 = set("portpool_v6", SetKey::kIpv6);
  map4.portRangeMap = map6.portRangeMap = true;
  t.sets = {ports, v4, v6, set("dom_v4", SetKey::kIpv4), set("dom_v6", SetKey::kIpv6),
            set("pair_v4", SetKey::kIpv4Pair), set("pair_v6", SetKey::kIpv6Pair), map4, map6};
  const auto any = [](std::vector<Match> m, Statement s) { return Rule{std::move(m), std::move(s)}; };
  t.chains.push_back(chain(
      "matches", std::nullopt,
      {any({l4proto(kProtoUdp)}, acceptStmt()),
       any({iifname("eth0")}, acceptStmt()),
       any({oifname("lo", true)}, returnStmt()),
       any({skuid(1000)}, acceptStmt()),
       any({skgid(1000, true)}, returnStmt()),
       any({saddr(cidr("192.0.2.1"))}, acceptStmt()),
       any({daddr(cidr("10.0.0.0/8"), true)}, returnStmt()),
       any({daddr(cidr("10.96.0.0/12"))}, acceptStmt()),
       any({saddr(cidr("fd00::1"))}, acceptStmt()),
       any({daddr(cidr("fd00:10::/32"))}, acceptStmt()),
       any({daddr(cidr("fd00::/7"), true)}, returnStmt()),
       any({tcpDport({80, 80})}, acceptStmt()),
       any({tcpDport({80, 80}, true)}, returnStmt()),
       any({tcpDport({8000, 8100})}, acceptStmt()),
       any({tcpDport({8000, 8100}, true)}, returnStmt()),
       any({udpDport({53, 53})}, acceptStmt()),
       any({udpDport({9000, 9100}, true)}, returnStmt()),
       any({saddrInSet("dom_v4", Family::kIpv4)}, acceptStmt()),
       any({daddrInSet("dom_v6", Family::kIpv6)}, acceptStmt()),
       any({daddrInSet("kinds_v4", Family::kIpv4)}, acceptStmt()),
       any({saddrInSet("kinds_v6", Family::kIpv6)}, acceptStmt()),
       any({saddrDaddrInSet("pair_v4", Family::kIpv4)}, acceptStmt()),
       any({saddrDaddrInSet("pair_v6", Family::kIpv6)}, acceptStmt()),
       any({dportInSet("kinds_ports", kProtoTcp)}, acceptStmt()),
       any({dportInSet("kinds_ports", kProtoUdp)}, acceptStmt()),
       any({nfproto(Family::kIpv4)}, acceptStmt()),
       any({ctStateEstablishedRelated()}, acceptStmt()),
       any({ctStatusDnat()}, acceptStmt()),
       any({icmpv6Type(143, 143)}, acceptStmt()),
       any({icmpv6Type(1, 4)}, acceptStmt()),
       any({metaMark(1)}, acceptStmt()),
       any({metaMark(2, true)}, returnStmt()),
       any({ctMark(3)}, acceptStmt()),
       any({ctStateInvalid()}, dropStmt()),
       any({nfproto(Family::kIpv6)}, jumpStmt("other"))}));
  t.chains.push_back(chain("other", std::nullopt, {any({}, returnStmt())}));
  t.chains.push_back(chain(
      "nat_pre", BaseChain{.type = ChainType::kNat, .hook = Hook::kPrerouting, .priority = -100, .policyAccept = true},
      {any({l4proto(kProtoTcp)}, redirectStmt(15001)),
       any({nfproto(Family::kIpv4), l4proto(kProtoTcp)}, dnatStmt(cidr("192.0.2.10"), 3128)),
       any({nfproto(Family::kIpv6), l4proto(kProtoTcp)}, dnatStmt(cidr("fd00::10"), 3129))}));
  t.chains.push_back(chain(
      "nat_post", BaseChain{.type = ChainType::kNat, .hook = Hook::kPostrouting, .priority = 100, .policyAccept = true},
      {any({saddrInSet("dom_v4", Family::kIpv4)}, snatStmt(cidr("192.0.2.20"))),
       any({saddrInSet("dom_v6", Family::kIpv6)}, snatStmt(cidr("fd00::20"))),
       any({ctStatusDnat()}, masqueradeStmt()),
       // The plan gives a port map's source address its family check (nft would add it).
       any({l4proto(kProtoTcp), nfproto(Family::kIpv4)}, portMapNatStmt("portpool_v4", Family::kIpv4, std::nullopt)),
       any({l4proto(kProtoUdp), nfproto(Family::kIpv6)}, portMapNatStmt("portpool_v6", Family::kIpv6, std::nullopt))}));
  t.chains.push_back(chain(
      "filter_pre", BaseChain{.type = ChainType::kFilter, .hook = Hook::kPrerouting, .priority = -150, .policyAccept = false},
      {any({saddrInSet("dom_v4", Family::kIpv4)}, markSetStmt(0x2000, 0x3000)),
       any({daddr(cidr("127.0.0.1"), true), l4proto(kProtoTcp)}, tproxyStmt(Family::kIpv4, 15006, 1337)),
       any({daddr(cidr("::1"), true), l4proto(kProtoTcp)}, tproxyStmt(Family::kIpv6, 15006, 1337)),
       any({l4proto(kProtoTcp), metaMark(1337)}, ctMarkSaveStmt()),
       any({l4proto(kProtoTcp), ctStateEstablishedRelated()}, markAcceptStmt(1337))}));
  t.chains.push_back(chain(
      "route_out", BaseChain{.type = ChainType::kRoute, .hook = Hook::kOutput, .priority = -150, .policyAccept = true},
      {any({l4proto(kProtoTcp)}, markValueStmt(1338)),
       any({l4proto(kProtoTcp), ctMark(1337)}, ctMarkRestoreStmt())}));
  t.chains.push_back(chain("filter_out",
                           BaseChain{.type = ChainType::kFilter, .hook = Hook::kOutput, .priority = 0, .policyAccept = true},
                           {any({nfproto(Family::kIpv6), l4proto(kProtoTcp)}, rejectTcpResetStmt())}));
  return t;
}

std::vector<plan::HostElement> kindsElements() {
  using plan::SetKey;
  const Cidr a4 = cidr("10.244.1.5"), a6 = cidr("fd00:10:244:1::5");
  return {{"dom_v4", SetKey::kIpv4, {a4}, std::nullopt},
          {"pair_v6", SetKey::kIpv6Pair, {a6, a6}, std::nullopt},
          {"portpool_v4", SetKey::kIpv4, {a4}, PortRange{60001, 60064}},
          {"portpool_v6", SetKey::kIpv6, {a6}, PortRange{64937, 65000}}};
}

} // namespace

TEST_CASE("encode golden: every match and statement kind, every set kind") {
  const plan::Table t = kindsTable();
  std::string text = plan::renderTable(t);
  for (const auto& e : kindsElements()) text += e.text() + "\n";
  // The nft text the capture was made from is podsteer's own rendering of this table.
  const std::string path = kGoldenDir + "/netlink/encode_kinds.nft";
  if (const char* update = std::getenv("PODSTEER_UPDATE_GOLDEN"); update != nullptr && std::string(update) == "1")
    std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
  REQUIRE_MESSAGE(text == readFile(path), "renderTable no longer gives " << path);
  nl::NftBatch batch;
  nl::batchCreateTable(batch, t);
  nl::batchAddElements(batch, t, kindsElements());
  REQUIRE_FALSE(batch.error());
  checkAgainstNft("encode_kinds", text, test::renderBatch(batch));
}

// What nft 1.0.6 cannot send for us to compare with (rule 4): a port block with a
// snatAddress. Written out by hand; test_egress.py proves it with real packets.
TEST_CASE("encode: snat to an address with the source port range from the pod's block") {
  plan::Table t;
  plan::Chain c{.name = "postrouting", .base = std::nullopt, .rules = {}};
  auto text = [&](const plan::Rule& r) {
    std::string out;
    for (const auto& e : nl::ruleExpressions(nl::encodeRule(t, c, r).get())) out += e + "\n";
    return out;
  };
  CHECK(text({{plan::l4proto(plan::kProtoTcp)},
              plan::portMapNatStmt("portpool_v4", Family::kIpv4, *parseCidr("192.168.50.10"))}) ==
        "meta load l4proto => reg 1 \n"
        "cmp eq reg 1 0x00000006 \n"
        "payload load 4b @ network header + 12 => reg 1 \n"
        "lookup reg 1 set portpool_v4 dreg 1 0x0 \n"
        "immediate reg 2 0x0a32a8c0 \n"
        "nat snat ip addr_min reg 2 addr_max reg 2 proto_min reg 1 proto_max reg 9 flags 0x3 \n");
  CHECK(text({{}, plan::portMapNatStmt("portpool_v6", Family::kIpv6, *parseCidr("fd00:70::10"))}) ==
        "payload load 16b @ network header + 8 => reg 1 \n"
        "lookup reg 1 set portpool_v6 dreg 1 0x0 \n"
        "immediate reg 2 0x700000fd 0x00000000 0x00000000 0x10000000 \n"
        "nat snat ip6 addr_min reg 2 addr_max reg 2 proto_min reg 1 proto_max reg 9 flags 0x3 \n");
}

// What nft's debug print leaves out of a set: its key and value types and lengths (nft's
// datatype numbers: ipv4_addr 7, ipv6_addr 8, inet_service 13; a concatenation shifts
// the first by 6 bits) and its flags.
TEST_CASE("encode: set key types, lengths and flags") {
  plan::Table t;
  struct Want {
    plan::SetKey key;
    bool map, interval;
    uint32_t type, len, flags;
  };
  for (const Want& w : {Want{plan::SetKey::kIpv4, false, false, 7, 4, 0},
                        Want{plan::SetKey::kIpv6, false, false, 8, 16, 0},
                        Want{plan::SetKey::kIpv4Pair, false, false, (7 << 6) | 7, 8, 0},
                        Want{plan::SetKey::kIpv6Pair, false, false, (8 << 6) | 8, 32, 0},
                        Want{plan::SetKey::kPort, false, true, 13, 2, NFT_SET_INTERVAL},
                        Want{plan::SetKey::kIpv4, false, true, 7, 4, NFT_SET_INTERVAL},
                        Want{plan::SetKey::kIpv4, true, false, 7, 4, NFT_SET_MAP},
                        Want{plan::SetKey::kIpv6, true, false, 8, 16, NFT_SET_MAP}}) {
    plan::Set s;
    s.name = "s";
    s.key = w.key;
    s.portRangeMap = w.map;
    s.interval = w.interval;
    CAPTURE(plan::setKeyType(w.key));
    nl::SetPtr set = nl::encodeSet(t, s);
    CHECK(nftnl_set_get_u32(set.get(), NFTNL_SET_KEY_TYPE) == w.type);
    CHECK(nftnl_set_get_u32(set.get(), NFTNL_SET_KEY_LEN) == w.len);
    CHECK(nftnl_set_get_u32(set.get(), NFTNL_SET_FLAGS) == w.flags);
    CHECK(nftnl_set_is_set(set.get(), NFTNL_SET_DATA_TYPE) == w.map);
    if (w.map) {
      CHECK(nftnl_set_get_u32(set.get(), NFTNL_SET_DATA_TYPE) == 13); // inet_service
      CHECK(nftnl_set_get_u32(set.get(), NFTNL_SET_DATA_LEN) == 8);   // two ports, 4 bytes each
    }
    CHECK(nftnl_set_is_set(set.get(), NFTNL_SET_ID)); // the kernel wants one on a new set
  }
}
