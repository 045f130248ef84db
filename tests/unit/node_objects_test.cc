// The node flows (NodeObjects) against a recording fake kernel and a node directory in a
// temp dir: apply, remove, reference counting, the base digest cache, ownership, and
// every failure path. No root, no netlink.

#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "commands/host.h"
#include "commands/node_objects.h"
#include "config/netconf.h"
#include "config/pod.h"
#include "fake_node_kernel.h"
#include "plan/plan.h"
#include "state/legacy_state.h"
#include "state/node_layout.h"
#include "state/node_state.h"
#include "state/record.h"
#include "test_util.h"
#include "util/file_io.h"

namespace fs = std::filesystem;
using nlohmann::json;
using namespace podsteer;
using podsteer::test::FakeNodeKernel;

namespace {

const json kConf = json::parse(R"({
  "cniVersion": "1.0.0", "name": "podnet", "type": "podsteer", "hairpin": true,
  "routingDomains": [
    {"name": "sbi", "table": 200, "priority": 1000, "mark": "0x2000",
     "routes": [{"dst": "0.0.0.0/0", "gw": "192.168.50.1", "dev": "eth1"}], "namespaces": ["core-*"]},
    {"name": "oam", "table": 201, "priority": 1001, "match": "source",
     "routes": [{"dst": "0.0.0.0/0", "gw": "192.168.60.1", "dev": "eth2"}], "pods": ["oam-*"]}],
  "egressPortPool": {"ports": "60000-60255", "blockSize": 64, "destinations": ["198.51.100.0/24"],
                     "namespaces": ["core-*"]}
})");

using test::TempDir;

// Every file under `dir` (owner markers are symlinks), relative, sorted
// ("host/hairpin/podnet:c1:eth0", ...).
std::set<std::string> filesUnder(const fs::path& dir) {
  std::set<std::string> out;
  if (!fs::exists(dir)) return out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_symlink() || !e.is_directory()) out.insert(e.path().lexically_relative(dir).string());
  return out;
}

std::set<std::string> dirsUnder(const fs::path& dir) {
  std::set<std::string> out;
  if (!fs::exists(dir)) return out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (!e.is_symlink() && e.is_directory()) out.insert(e.path().lexically_relative(dir).string());
  return out;
}

// One node with its state in a temp dir, a fake kernel, and a stateDir for records.
struct Node {
  TempDir tmp;
  fs::path nodeDir = tmp.root / "node";
  fs::path stateDir = tmp.root / "state";
  state::NodeState state{nodeDir.string()};
  FakeNodeKernel kernel;
  NetConf conf;

  explicit Node(const json& j = kConf) {
    fs::create_directories(nodeDir);
    fs::create_directories(stateDir);
    json c = j;
    c["stateDir"] = stateDir.string();
    auto r = parseNetConf(c.dump());
    REQUIRE_MESSAGE(r.ok(), r.error().msg);
    conf = *r;
  }
  NodeObjects objects() { return NodeObjects(state, kernel); }
};

// A pod's planned membership (its port block claimed, as ADD does).
struct Pod {
  std::string containerId, ns, name, ip;
  std::string key() const { return state::attachmentUserKey("podnet", containerId, "eth0"); }
};

plan::HostMembership planFor(Node& node, const Pod& p, std::optional<uint32_t> block = std::nullopt) {
  NetConf c = node.conf;
  c.prevResult = json::parse(R"({"cniVersion":"1.0.0","ips":[{"address":")" + p.ip + R"(/24"}]})");
  CniEnv env;
  env.containerId = p.containerId;
  env.ifname = "eth0";
  env.args = {{"K8S_POD_NAMESPACE", p.ns}, {"K8S_POD_NAME", p.name}};
  PodInfo pod = podFromInvocation(env, c);
  auto plan = plan::buildPlan(c, pod);
  REQUIRE_MESSAGE(plan.ok(), plan.error().msg);
  plan::HostMembership m = plan->host;
  if (m.portPool) {
    auto b = block ? Result<uint32_t>(*block) : node.objects().claimPortBlock(p.key(), *c.egressPortPool, std::nullopt);
    REQUIRE(b.ok());
    plan::addPortBlockElements(m, pod.ips, *c.egressPortPool, *b);
  }
  return m;
}

Status applyPod(Node& node, const Pod& p, const plan::HostMembership& m, const plan::HostMembership& before = {}) {
  return node.objects().apply(p.key(), m, before, node.conf.routingDomains, node.conf.egressPortPool);
}

// The attachment's record, as ADD writes it (removal reads the other owner's).
void writeRecord(Node& node, const Pod& p, const plan::HostMembership& m) {
  state::AttachmentRecord rec;
  rec.network = "podnet";
  rec.containerId = p.containerId;
  rec.ifname = "eth0";
  rec.netns = "/var/run/netns/none";
  rec.cniVersion = "1.0.0";
  rec.ips = {p.ip + "/24"};
  rec.config = node.conf.stableJson;
  rec.host = membershipToJson(m);
  REQUIRE(state::RecordStore(node.stateDir.string()).write(rec).ok());
}

const Pod kA{"c1", "core-a", "upf-0", "10.244.1.5"};
const Pod kB{"c2", "core-a", "upf-1", "10.244.1.6"};
const Pod kOam{"c3", "default", "oam-0", "10.244.1.7"};
const Pod kPlain{"c4", "default", "web-0", "10.244.1.8"};

} // namespace

TEST_CASE("node layout: typed resources and the paths main wrote, spelled in one place") {
  using state::NodeResource;
  CHECK(NodeResource::hairpin().fileName() == "hairpin");
  CHECK(NodeResource::portPool().fileName() == "portpool");
  CHECK(NodeResource::routingDomain("sbi").fileName() == "domain-sbi");
  CHECK(NodeResource::fromFileName("domain-sbi") == NodeResource::routingDomain("sbi"));
  CHECK(NodeResource::fromFileName("portpool") == NodeResource::portPool());
  CHECK(NodeResource::fromFileName("hairpin") == NodeResource::hairpin());
  CHECK_FALSE(NodeResource::fromFileName("domain-").has_value());
  CHECK_FALSE(NodeResource::fromFileName("base.json").has_value());
  CHECK_FALSE(NodeResource::fromFileName("something").has_value());
  const state::NodeLayout l("/run/podsteer-node/c7");
  CHECK(l.userFile(NodeResource::routingDomain("sbi"), "net:c1:eth0") == "/run/podsteer-node/c7/host/domain-sbi/net:c1:eth0");
  CHECK(l.definitionFile(NodeResource::portPool()) == "/run/podsteer-node/c7/host/portpool.json");
  CHECK(l.baseDigestFile() == "/run/podsteer-node/c7/host/base.json");
  CHECK(l.ownerFile("10.0.0.5") == "/run/podsteer-node/c7/owners/10.0.0.5");
  CHECK(l.portBlockFile(3) == "/run/podsteer-node/c7/portblocks/3");
  CHECK(state::NodeLayout::resourceOfDefinition("domain-sbi.json") == NodeResource::routingDomain("sbi"));
  CHECK_FALSE(state::NodeLayout::resourceOfDefinition("base.json").has_value());
  CHECK(state::attachmentUserKey("net", "c1", "eth0") == "net:c1:eth0");
}

TEST_CASE("apply: a first ADD builds the base once, adds the pod's elements and the domain's rule and route, "
          "and files users, definitions, digest and claim where main did") {
  Node node;
  plan::HostMembership a = planFor(node, kA);
  REQUIRE(a.domain == "sbi");
  REQUIRE(a.hairpin);
  REQUIRE(a.portBlock == 0u);
  REQUIRE(applyPod(node, kA, a).ok());

  CHECK(node.kernel.table);
  CHECK(node.kernel.baseApplies == 1);
  for (const auto& e : a.elements) CHECK_MESSAGE(node.kernel.hasKey(e.set, e.keyText()), e.text());
  CHECK(node.kernel.rules.size() == 2); // the domain's fwmark rules, v4 and v6 (mark mode: none per pod)
  CHECK(node.kernel.routes.size() == 1);
  CHECK(filesUnder(node.nodeDir) == std::set<std::string>{
            "host/base.json", "host/domain-sbi.json", "host/domain-sbi/podnet:c1:eth0", "host/hairpin/podnet:c1:eth0",
            "host/portpool.json", "host/portpool/podnet:c1:eth0", "portblocks/0"});
  // The definitions keep main's format.
  auto def = json::parse(std::ifstream(node.nodeDir / "host/domain-sbi.json"));
  CHECK(def["markMask"].is_number_unsigned());
  CHECK(def["source"]["name"] == "sbi");
  CHECK(json::parse(std::ifstream(node.nodeDir / "host/portpool.json")) == kConf["egressPortPool"]);
  CHECK_FALSE(node.state.baseDigest().empty());
}

TEST_CASE("apply: a second pod in an existing domain sends only its elements (the digest cache): "
          "no base rebuild, no lookup, no rule or route") {
  Node node;
  REQUIRE(applyPod(node, kA, planFor(node, kA)).ok());
  const std::string digest = node.state.baseDigest();
  node.kernel.log.clear();
  plan::HostMembership b = planFor(node, kB);
  REQUIRE(b.portBlock == 1u);
  REQUIRE(applyPod(node, kB, b).ok());
  REQUIRE(node.kernel.log.size() == 1);
  CHECK(node.kernel.log[0].rfind("elements ", 0) == 0);
  CHECK(node.kernel.baseApplies == 1);
  CHECK(node.state.baseDigest() == digest);
}

TEST_CASE(
    "apply: the base digest is of this build and the definitions in use: another build's digest "
    "(main's, of the rendered base) re-asserts the base once; the next ADD sends only its elements") {
  Node node;
  REQUIRE(applyPod(node, kA, planFor(node, kA)).ok());
  const std::string digest = node.state.baseDigest();
  CHECK(digest == baseDigest(node.state.users(), node.state.users().activeResources()));
  node.state.recordBaseDigest("6192ec8768b0610b"); // what main recorded for such a base
  node.kernel.log.clear();
  REQUIRE(applyPod(node, kB, planFor(node, kB)).ok());
  CHECK(node.kernel.baseApplies == 2);
  CHECK(node.state.baseDigest() == digest);
  node.kernel.log.clear();
  Pod c = kB;
  c.containerId = "c5";
  c.name = "upf-2";
  c.ip = "10.244.1.9";
  REQUIRE(applyPod(node, c, planFor(node, c)).ok());
  CHECK(node.kernel.baseApplies == 2);
  REQUIRE(node.kernel.log.size() == 1);
  CHECK(node.kernel.log[0].rfind("elements ", 0) == 0);
}

TEST_CASE("apply: a base removed behind podsteer's back is rebuilt, with its rules and routes, on the next ADD") {
  Node node;
  REQUIRE(applyPod(node, kA, planFor(node, kA)).ok());
  node.kernel.dropTable();
  node.kernel.rules.clear();
  node.kernel.routes.clear();
  node.kernel.log.clear();
  plan::HostMembership b = planFor(node, kB);
  REQUIRE(applyPod(node, kB, b).ok());
  REQUIRE(node.kernel.log.size() >= 2);
  CHECK(node.kernel.log[0].rfind("elements ", 0) == 0); // optimistic, refused: base missing
  CHECK(node.kernel.log[1].rfind("base [", 0) == 0);
  CHECK(node.kernel.baseApplies == 2);
  CHECK(node.kernel.rules.size() == 2);
  CHECK(node.kernel.routes.size() == 1);
  for (const auto& e : b.elements) CHECK(node.kernel.hasKey(e.set, e.keyText()));
}

TEST_CASE("remove: a shared resource is retired only when its last user goes; then the node is as before") {
  Node node;
  plan::HostMembership a = planFor(node, kA), b = planFor(node, kB);
  REQUIRE(applyPod(node, kA, a).ok());
  REQUIRE(applyPod(node, kB, b).ok());
  writeRecord(node, kA, a);
  writeRecord(node, kB, b);

  struct stat digestBefore {
  }, digestAfter{};
  REQUIRE(::stat((node.nodeDir / "host/base.json").c_str(), &digestBefore) == 0);
  REQUIRE(node.objects().remove(node.stateDir.string(), kA.key(), a).ok());
  // The base stayed as it was: its digest is not written again (a DEL holds the node lock
  // while it writes; a rewrite is a temp file and a rename).
  REQUIRE(::stat((node.nodeDir / "host/base.json").c_str(), &digestAfter) == 0);
  CHECK(digestAfter.st_ino == digestBefore.st_ino);
  CHECK(node.kernel.table);
  CHECK(node.kernel.rules.size() == 2);
  CHECK(node.kernel.routes.size() == 1);
  for (const auto& e : a.elements)
    if (e.keyText().find(kA.ip) != std::string::npos) CHECK_FALSE(node.kernel.hasKey(e.set, e.keyText()));
  for (const auto& e : b.elements) CHECK(node.kernel.hasKey(e.set, e.keyText()));
  CHECK(filesUnder(node.nodeDir) == std::set<std::string>{"host/base.json", "host/domain-sbi.json",
                                                          "host/domain-sbi/podnet:c2:eth0", "host/hairpin/podnet:c2:eth0",
                                                          "host/portpool.json", "host/portpool/podnet:c2:eth0",
                                                          "portblocks/1"});

  REQUIRE(node.objects().remove(node.stateDir.string(), kB.key(), b).ok());
  CHECK(node.kernel.clean());
  CHECK(filesUnder(node.nodeDir).empty());
  CHECK(dirsUnder(node.nodeDir).empty());
}

TEST_CASE("remove: a source-mode pod's own rule goes with it; the domain's routes go with the last user") {
  Node node;
  plan::HostMembership o = planFor(node, kOam);
  REQUIRE(o.domain == "oam");
  REQUIRE(o.rules.size() == 1);
  REQUIRE(applyPod(node, kOam, o).ok());
  CHECK(node.kernel.rules.size() == 1);
  CHECK(node.kernel.routes.size() == 1);
  REQUIRE(node.objects().remove(node.stateDir.string(), kOam.key(), o).ok());
  CHECK(node.kernel.clean());
  CHECK(filesUnder(node.nodeDir).empty());
}

TEST_CASE("remove: never removes an element another attachment owns now (a late DEL after the address moved)") {
  Node node;
  plan::HostMembership a = planFor(node, kA);
  REQUIRE(applyPod(node, kA, a).ok());
  writeRecord(node, kA, a);
  // A's pod is gone without a DEL; B gets A's address (takeover made B the owner).
  Pod b2 = kB;
  b2.ip = kA.ip;
  plan::HostMembership b = planFor(node, b2);
  REQUIRE(applyPod(node, b2, b).ok());
  writeRecord(node, b2, b);
  REQUIRE(node.state.owners()
              .claim(kA.ip, state::AttachmentKey{"podnet", b2.containerId, "eth0", node.stateDir.string()})
              .ok());

  REQUIRE(node.objects().remove(node.stateDir.string(), kA.key(), a).ok());
  const auto domainSet = plan::domainSetName("sbi", Family::kIpv4);
  CHECK(node.kernel.hasKey(domainSet, kA.ip));
  CHECK(node.kernel.hasKey(plan::kHairpinSetV4, kA.ip + " . " + kA.ip));
  for (const auto& e : b.elements) CHECK(node.kernel.hasKey(e.set, e.keyText()));
  CHECK(node.kernel.rules.size() == 2);

  // Without the owner marker it would have gone: the same DEL against a node where A still
  // owns its address removes the element.
  Node other;
  plan::HostMembership a2 = planFor(other, kA);
  REQUIRE(applyPod(other, kA, a2).ok());
  writeRecord(other, kA, a2);
  REQUIRE(other.objects().remove(other.stateDir.string(), kA.key(), a2).ok());
  CHECK_FALSE(other.kernel.hasKey(domainSet, kA.ip));
}

TEST_CASE("apply: a changed domain definition removes the old route the new one does not have") {
  Node node;
  REQUIRE(applyPod(node, kA, planFor(node, kA)).ok());
  REQUIRE(node.kernel.routes.size() == 1);
  const plan::IpRoute oldRoute = node.kernel.routes[0];
  json changed = kConf;
  changed["routingDomains"][0]["routes"][0]["gw"] = "192.168.50.2";
  changed["stateDir"] = node.stateDir.string();
  auto c = parseNetConf(changed.dump());
  REQUIRE(c.ok());
  node.conf = *c;
  REQUIRE(applyPod(node, kB, planFor(node, kB)).ok());
  REQUIRE(node.kernel.routes.size() == 1);
  CHECK_FALSE(node.kernel.routes[0] == oldRoute);
  CHECK(node.kernel.routes[0].gw->addressString() == "192.168.50.2");
  CHECK(node.state.users().domainDefinition("sbi")->routes[0].gw->addressString() == "192.168.50.2");
}

TEST_CASE("apply: a repeated ADD that leaves the domain retires it and keeps the node's other resources") {
  Node node;
  plan::HostMembership a = planFor(node, kA);
  REQUIRE(applyPod(node, kA, a).ok());
  // The same attachment again, now in no domain and without the pool (a new config).
  json c = kConf;
  c["routingDomains"] = json::array();
  c.erase("egressPortPool");
  c["stateDir"] = node.stateDir.string();
  auto conf = parseNetConf(c.dump());
  REQUIRE(conf.ok());
  node.conf = *conf;
  plan::HostMembership now = planFor(node, kA);
  REQUIRE(now.domain.empty());
  REQUIRE(now.hairpin);
  REQUIRE(applyPod(node, kA, now, a).ok());
  CHECK(node.kernel.rules.empty());
  CHECK(node.kernel.routes.empty());
  CHECK(node.kernel.sets.count(plan::domainSetName("sbi", Family::kIpv4)) == 0);
  CHECK(node.kernel.hasKey(plan::kHairpinSetV4, kA.ip + " . " + kA.ip));
  CHECK(filesUnder(node.nodeDir) == std::set<std::string>{"host/base.json", "host/hairpin/podnet:c1:eth0"});
}

TEST_CASE("apply: the k-th kernel operation refused: the error names it, and the caller's undo leaves the node "
          "as before (for every k of a first ADD)") {
  // How many operations a first ADD makes.
  int total = 0;
  {
    Node node;
    REQUIRE(applyPod(node, kOam, planFor(node, kOam)).ok());
    total = node.kernel.calls;
  }
  REQUIRE(total >= 3); // base, route, pod rule
  for (int k = 1; k <= total; ++k) {
    CAPTURE(k);
    Node node;
    plan::HostMembership m = planFor(node, kOam);
    node.kernel.failAt = k;
    Status s = applyPod(node, kOam, m);
    REQUIRE_FALSE(s.ok());
    CHECK(s.error().code == ErrorCode::kNetlink);
    CHECK_MESSAGE(s.error().msg.find(node.kernel.log.back()) != std::string::npos, s.error().msg);
    CHECK(node.kernel.log.size() == static_cast<size_t>(k)); // nothing after the refused one
    // cmdAdd's rollback: remove what the attachment has now (and had before).
    REQUIRE(node.objects().remove(node.stateDir.string(), kOam.key(), m).ok());
    CHECK(node.kernel.clean());
    CHECK(filesUnder(node.nodeDir).empty());
  }
}

TEST_CASE("apply: a refused element change in an existing base changes nothing, and the undo keeps the other pod") {
  Node node;
  plan::HostMembership a = planFor(node, kA);
  REQUIRE(applyPod(node, kA, a).ok());
  writeRecord(node, kA, a);
  const auto before = node.kernel.sets;
  plan::HostMembership b = planFor(node, kB);
  node.kernel.failAt = node.kernel.calls + 1;
  Status s = applyPod(node, kB, b);
  REQUIRE_FALSE(s.ok());
  CHECK(test::startsWith(s.error().msg, "netlink: elements "));
  CHECK(node.kernel.sets == before);
  REQUIRE(node.objects().remove(node.stateDir.string(), kB.key(), b).ok());
  CHECK(node.kernel.sets == before);
  CHECK(node.kernel.rules.size() == 2);
  CHECK(filesUnder(node.nodeDir).count("host/domain-sbi/podnet:c1:eth0") == 1);
  CHECK(filesUnder(node.nodeDir).count("portblocks/1") == 0);
}

TEST_CASE("remove: a kernel error still completes the bookkeeping and reports the first error; a repeated "
          "remove finishes the kernel part") {
  Node node;
  plan::HostMembership a = planFor(node, kA);
  REQUIRE(applyPod(node, kA, a).ok());
  writeRecord(node, kA, a);
  node.kernel.log.clear();
  node.kernel.failAt = node.kernel.calls + 1; // the first kernel operation of the DEL
  Status s = node.objects().remove(node.stateDir.string(), kA.key(), a);
  REQUIRE_FALSE(s.ok());
  CHECK(s.error().msg.find("delete table") != std::string::npos);
  // Users, definitions and the claim are gone all the same: nothing leaks a block.
  CHECK(filesUnder(node.nodeDir).empty());
  CHECK(node.kernel.table); // the refused delete changed nothing
  CHECK(node.kernel.rules.empty()); // the later steps still ran
  REQUIRE(node.objects().remove(node.stateDir.string(), kA.key(), a).ok());
  CHECK(node.kernel.clean());
}

TEST_CASE("check: a missing element, rule or route is named; an intact node has no differences") {
  Node node;
  plan::HostMembership o = planFor(node, kOam);
  REQUIRE(applyPod(node, kOam, o).ok());
  auto clean = node.objects().check(o);
  REQUIRE(clean.ok());
  CHECK(clean->empty());
  node.kernel.rules.clear();
  node.kernel.sets.begin()->second.clear();
  auto diffs = node.objects().check(o);
  REQUIRE(diffs.ok());
  std::string all;
  for (const auto& d : *diffs) all += d + "\n";
  CHECK_MESSAGE(all.find("missing from set") != std::string::npos, all);
  CHECK_MESSAGE(all.find("host: rule `") != std::string::npos, all);
  node.kernel.failAt = node.kernel.calls + 1;
  CHECK_FALSE(node.objects().check(o).ok());
}

TEST_CASE("node files written by the previous binary (main's layout) are read and removed by this one") {
  Node node;
  // What main left for one pod in domain sbi with hairpin: users, definition, digest.
  plan::HostMembership a = planFor(node, kA, 2);
  a.portPool = false; // no pool files in this layout: only what is written below
  a.portBlock.reset();
  a.elements.erase(std::remove_if(a.elements.begin(), a.elements.end(),
                                  [](const plan::HostElement& e) { return e.set.rfind("portpool", 0) == 0; }),
                   a.elements.end());
  const auto& d = node.conf.routingDomains[0];
  fs::create_directories(node.nodeDir / "host/domain-sbi");
  fs::create_directories(node.nodeDir / "host/hairpin");
  std::ofstream(node.nodeDir / "host/domain-sbi/podnet:c1:eth0");
  std::ofstream(node.nodeDir / "host/hairpin/podnet:c1:eth0");
  std::ofstream(node.nodeDir / "host/domain-sbi.json") << json{{"source", d.source}, {"markMask", d.markMask}}.dump() << "\n";
  std::ofstream(node.nodeDir / "host/base.json") << "0123\n";
  // Its kernel objects.
  auto base = plan::buildHostBase({d}, true);
  REQUIRE(node.kernel.applyBase(*base.table, {}, a.elements).ok());
  for (const auto& r : base.rules) REQUIRE(node.kernel.addRule(r).ok());
  for (const auto& r : base.routes) REQUIRE(node.kernel.addRoute(r).ok());
  writeRecord(node, kA, a);

  REQUIRE(node.state.users().domainDefinition("sbi").has_value());
  auto diffs = node.objects().check(a);
  REQUIRE(diffs.ok());
  CHECK(diffs->empty());
  REQUIRE(node.objects().remove(node.stateDir.string(), kA.key(), a).ok());
  CHECK(node.kernel.clean());
  CHECK(filesUnder(node.nodeDir).empty());
  CHECK(dirsUnder(node.nodeDir).empty());
}

TEST_CASE("owner markers: a symlink to the owner's record; main's JSON files are read, replaced and released") {
  Node node;
  const state::AddressOwners owners = node.state.owners();
  const state::AttachmentKey a{"podnet", "c1", "eth0", node.stateDir.string()};
  const state::AttachmentKey b{"podnet", "c2", "eth0", node.stateDir.string()};
  REQUIRE(owners.claim("10.0.0.5", a).ok());
  const fs::path marker = node.nodeDir / "owners/10.0.0.5";
  REQUIRE(fs::is_symlink(marker));
  CHECK(fs::read_symlink(marker) == node.stateDir / "podnet/c1/eth0.json");
  CHECK(owners.ownerOf("10.0.0.5") == a);
  REQUIRE(owners.claim("10.0.0.5", a).ok()); // repeated: still one marker, still a's
  CHECK(owners.ownerOf("10.0.0.5") == a);

  // What main wrote: a file holding the owner as JSON.
  auto mainMarker = [&](const std::string& address, const state::AttachmentKey& k) {
    std::ofstream(node.nodeDir / "owners" / address)
        << json{{"stateDir", k.stateDir}, {"network", k.network}, {"containerId", k.containerId}, {"ifname", k.ifname}}
               .dump()
        << "\n";
  };
  mainMarker("10.0.0.6", b);
  CHECK(owners.ownerOf("10.0.0.6") == b);
  owners.release("10.0.0.6", a); // not a's: kept
  CHECK(owners.ownerOf("10.0.0.6") == b);
  REQUIRE(owners.claim("10.0.0.6", a).ok()); // the caller retired b: replaced whole
  CHECK(fs::is_symlink(node.nodeDir / "owners/10.0.0.6"));
  CHECK(owners.ownerOf("10.0.0.6") == a);
  mainMarker("10.0.0.7", b);
  owners.release("10.0.0.7", b);
  CHECK_FALSE(fs::exists(fs::symlink_status(node.nodeDir / "owners/10.0.0.7")));

  const auto all = owners.all();
  CHECK(all.size() == 2);
  owners.release("10.0.0.5", a);
  owners.release("10.0.0.6", a);
  CHECK(filesUnder(node.nodeDir).empty());
  CHECK(dirsUnder(node.nodeDir).empty());
}

TEST_CASE("port blocks: claims keep main's files; an exhausted pool is error 11 with its numbers") {
  Node node;
  for (uint32_t i = 0; i < 4; ++i) {
    auto b = node.objects().claimPortBlock("podnet:c" + std::to_string(i) + ":eth0", *node.conf.egressPortPool, std::nullopt);
    REQUIRE(b.ok());
    CHECK(*b == i);
  }
  auto full = node.objects().claimPortBlock("podnet:c9:eth0", *node.conf.egressPortPool, std::nullopt);
  REQUIRE_FALSE(full.ok());
  CHECK(full.error().code == ErrorCode::kTryAgain);
  CHECK_MESSAGE(full.error().msg.find("4 of 4 blocks in use") != std::string::npos, full.error().msg);
  std::ifstream in(node.nodeDir / "portblocks/2");
  std::stringstream text;
  text << in.rdbuf();
  CHECK(text.str() == "podnet:c2:eth0");
}

TEST_CASE("legacy layout: a stateDir of the release before node-wide state is moved into the node directory") {
  Node node;
  const fs::path s = node.stateDir;
  const auto& d = node.conf.routingDomains[0];
  fs::create_directories(s / "host/domain-sbi");
  fs::create_directories(s / "host/hairpin");
  fs::create_directories(s / "owners");
  fs::create_directories(s / "portblocks");
  std::ofstream(s / "host/domain-sbi/podnet:c1:eth0");
  std::ofstream(s / "host/hairpin/podnet:c1:eth0");
  std::ofstream(s / "host/domain-sbi.json") << json{{"source", d.source}, {"markMask", d.markMask}}.dump() << "\n";
  std::ofstream(s / "host/base.json") << "0123\n";
  std::ofstream(s / ("host/domain-sbi.json" + std::string(kTempInfix) + "77")) << "{";
  std::ofstream(s / "owners/10.244.1.5") << R"({"network":"podnet","containerId":"c1","ifname":"eth0"})" << "\n";
  std::ofstream(s / "portblocks/0") << "podnet:c1:eth0";
  std::ofstream(s / "portblocks/1"); // an empty claim of a killed ADD: nobody's
  // A record of the release before owner markers: its address gets one.
  plan::HostMembership b = planFor(node, kB, 3);
  writeRecord(node, kB, b);

  REQUIRE(state::hasLegacyLayout(s.string()));
  state::adoptLegacyState(s.string(), node.state);
  CHECK_FALSE(state::hasLegacyLayout(s.string()));
  CHECK(filesUnder(node.nodeDir) == std::set<std::string>{"host/domain-sbi.json", "host/domain-sbi/podnet:c1:eth0",
                                                          "host/hairpin/podnet:c1:eth0", "owners/10.244.1.5",
                                                          "owners/10.244.1.6", "portblocks/0"});
  CHECK(filesUnder(s) == std::set<std::string>{"podnet/c2/eth0.json"});
  auto a = node.state.owners().ownerOf("10.244.1.5");
  REQUIRE(a.has_value());
  CHECK(a->stateDir == s.string()); // the marker named no stateDir: it was this one's
  CHECK(node.state.owners().ownerOf("10.244.1.6") ==
        state::AttachmentKey{"podnet", "c2", "eth0", s.string()});
  CHECK(node.state.portBlocks().ownerOf(0) == "podnet:c1:eth0");
  CHECK(node.state.users().domainDefinition("sbi") == d);
}

TEST_CASE("the node's own state directory is /run/podsteer-node/c<netns cookie>") {
  CHECK(test::startsWith(state::NodeState::node().dir(), std::string(state::kNodeStateRoot) + "/c"));
  CHECK(state::nodeStateDir() == state::NodeState::node().dir());
}

TEST_CASE("removeAttachment (GC, takeover, uninstall): node objects of the record and of an unfinished reconcile, "
          "its address claims and its blocks go; another attachment's claim stays") {
  Node node;
  plan::HostMembership a = planFor(node, kA);
  REQUIRE(applyPod(node, kA, a).ok());
  // A reconcile moved A toward domain oam and died between its record and the kernel.
  plan::HostMembership pending = planFor(node, Pod{"c1", "default", "oam-9", kA.ip}, 0);
  REQUIRE(pending.domain == "oam");
  REQUIRE(applyPod(node, kA, pending, a).ok());
  // A block claimed by an ADD of A that was killed before its record named it.
  REQUIRE(node.state.portBlocks().adopt(3, kA.key()).ok());
  const state::AttachmentKey me{"podnet", kA.containerId, "eth0", node.stateDir.string()};
  const state::AttachmentKey other{"podnet", "c7", "eth0", node.stateDir.string()};
  REQUIRE(node.state.owners().claim(kA.ip, me).ok());
  REQUIRE(node.state.owners().claim("10.244.1.99", other).ok());
  state::AttachmentRecord rec;
  rec.network = "podnet";
  rec.containerId = kA.containerId;
  rec.ifname = "eth0";
  rec.ips = {kA.ip + "/24", "10.244.1.99/24"};
  rec.host = membershipToJson(a);
  rec.pendingHost = membershipToJson(pending);

  REQUIRE(node.objects().removeAttachment(node.stateDir.string(), rec).ok());
  CHECK(node.kernel.clean());
  CHECK(filesUnder(node.nodeDir) == std::set<std::string>{"owners/10.244.1.99"});
  CHECK(node.state.owners().ownerOf("10.244.1.99") == other);
}
