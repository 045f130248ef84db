#include "state/node_layout.h"

namespace podsteer::state {

namespace {

constexpr const char* kHairpinName = "hairpin";
constexpr const char* kPortPoolName = "portpool";
constexpr const char* kDomainPrefix = "domain-";

} // namespace

std::string NodeResource::fileName() const {
  switch (kind) {
  case Kind::kHairpin: return kHairpinName;
  case Kind::kPortPool: return kPortPoolName;
  case Kind::kDomain: return kDomainPrefix + domain;
  }
  return {};
}

std::optional<NodeResource> NodeResource::fromFileName(const std::string& name) {
  if (name == kHairpinName) return hairpin();
  if (name == kPortPoolName) return portPool();
  const std::string prefix = kDomainPrefix;
  if (name.size() > prefix.size() && name.compare(0, prefix.size(), prefix) == 0)
    return routingDomain(name.substr(prefix.size()));
  return std::nullopt;
}

std::string NodeResource::text() const {
  switch (kind) {
  case Kind::kHairpin: return "hairpin";
  case Kind::kPortPool: return "port pool";
  case Kind::kDomain: return "routing domain " + domain;
  }
  return {};
}

bool NodeLayout::isDefinitionName(const std::string& name) { return name.ends_with(kDefinitionSuffix); }

std::optional<NodeResource> NodeLayout::resourceOfDefinition(const std::string& name) {
  if (!isDefinitionName(name) || isBaseDigestName(name)) return std::nullopt;
  return NodeResource::fromFileName(name.substr(0, name.size() - std::string(kDefinitionSuffix).size()));
}

std::string attachmentUserKey(const std::string& network, const std::string& containerId, const std::string& ifname) {
  return network + ":" + containerId + ":" + ifname;
}

} // namespace podsteer::state
