#pragma once

// Where the node-wide state lives on disk, in one place: every path and every resource
// name below a node directory is spelled here and nowhere else. The layout is the one
// the previous releases wrote (a node upgrades with pods running, so the next binary
// reads and removes what the last one left):
//
//   <node>/host/<resource>/<network>:<containerId>:<ifname>   users of a shared resource
//   <node>/host/<resource>.json                               its definition
//   <node>/host/base.json                                     digest of the committed base
//   <node>/owners/<address>                                   the one owner of an address
//                                         (a symlink to its record; main wrote a JSON file)
//   <node>/portblocks/<index>                                 egress port block claims
//
// <node> is <kNodeStateRoot>/<node identity> (state/node_state.h); the release before the
// node-wide state kept the same tree under each stateDir, so NodeLayout(stateDir) names
// that one (state/legacy_state.h).

#include <array>
#include <compare>
#include <cstdint>
#include <optional>
#include <string>

namespace podsteer::state {

inline constexpr const char* kNodeStateRoot = "/run/podsteer-node";

// A shared node resource: what users are counted for, and what goes when the last one
// leaves. Hairpin and the port pool are one per node; routing domains are per name.
struct NodeResource {
  enum class Kind { kHairpin, kPortPool, kDomain };
  Kind kind = Kind::kHairpin;
  std::string domain; // kDomain only: the routing domain's name

  static NodeResource hairpin() { return {Kind::kHairpin, {}}; }
  static NodeResource portPool() { return {Kind::kPortPool, {}}; }
  static NodeResource routingDomain(std::string name) { return {Kind::kDomain, std::move(name)}; }
  // The name on disk ("hairpin", "portpool", "domain-<name>") and back; nullopt for a
  // name that is none of these.
  std::string fileName() const;
  static std::optional<NodeResource> fromFileName(const std::string& name);
  // For people: "hairpin", "port pool", "routing domain sbi".
  std::string text() const;
  auto operator<=>(const NodeResource&) const = default;
};

// The paths below one node directory.
class NodeLayout {
public:
  explicit NodeLayout(std::string dir) : dir_(std::move(dir)) {}
  const std::string& dir() const { return dir_; }

  std::string hostDir() const { return dir_ + "/host"; }
  std::string usersDir(const NodeResource& r) const { return hostDir() + "/" + r.fileName(); }
  std::string userFile(const NodeResource& r, const std::string& userKey) const {
    return usersDir(r) + "/" + userKey;
  }
  std::string definitionFile(const NodeResource& r) const { return hostDir() + "/" + r.fileName() + kDefinitionSuffix; }
  std::string baseDigestFile() const { return hostDir() + "/" + kBaseDigestName; }
  // Whether a name in hostDir() is a definition or the digest (not a resource's users).
  static bool isDefinitionName(const std::string& name);
  static bool isBaseDigestName(const std::string& name) { return name == kBaseDigestName; }
  // The resource a definition file in hostDir() is for.
  static std::optional<NodeResource> resourceOfDefinition(const std::string& name);

  std::string ownersDir() const { return dir_ + "/owners"; }
  std::string ownerFile(const std::string& address) const { return ownersDir() + "/" + address; }

  std::string portBlocksDir() const { return dir_ + "/portblocks"; }
  std::string portBlockFile(uint32_t index) const { return portBlocksDir() + "/" + std::to_string(index); }
  // The temporary a claim is written to before it is linked to a free index.
  std::string portBlockClaimBase() const { return portBlocksDir() + "/claim"; }

  // Every subdirectory (GC removes the empty ones).
  std::array<std::string, 3> subdirectories() const { return {portBlocksDir(), ownersDir(), hostDir()}; }

private:
  static constexpr const char* kDefinitionSuffix = ".json";
  static constexpr const char* kBaseDigestName = "base.json";
  std::string dir_;
};

// The key a user of a shared resource, and a port-block claim, is filed under.
std::string attachmentUserKey(const std::string& network, const std::string& containerId, const std::string& ifname);

} // namespace podsteer::state
