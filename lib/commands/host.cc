#include "commands/host.h"

namespace podsteer {

nlohmann::json membershipToJson(const plan::HostMembership& m) {
  nlohmann::json elements = nlohmann::json::array(), rules = nlohmann::json::array();
  for (const auto& e : m.elements) elements.push_back(e.toJson());
  for (const auto& r : m.rules) rules.push_back(r.toJson());
  nlohmann::json j = {{"domain", m.domain}, {"hairpin", m.hairpin}, {"elements", elements}, {"rules", rules},
                      {"portPool", m.portPool}};
  if (m.portBlock) j["portBlock"] = *m.portBlock;
  return j;
}

plan::HostMembership membershipFromJson(const nlohmann::json& j) {
  plan::HostMembership m;
  if (!j.is_object()) return m;
  m.domain = j.value("domain", "");
  m.hairpin = j.value("hairpin", false);
  m.portPool = j.value("portPool", false);
  if (j.contains("portBlock") && j["portBlock"].is_number_unsigned()) m.portBlock = j["portBlock"].get<uint32_t>();
  if (j.contains("elements") && j["elements"].is_array())
    for (const auto& e : j["elements"])
      if (auto el = plan::HostElement::fromJson(e)) m.elements.push_back(*el);
  if (j.contains("rules") && j["rules"].is_array())
    for (const auto& r : j["rules"])
      if (auto rule = plan::IpRule::fromJson(r)) m.rules.push_back(*rule);
  return m;
}

} // namespace podsteer
