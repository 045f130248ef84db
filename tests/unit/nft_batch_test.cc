// NftBatch and the encoder without a kernel: messages at the config caps stay within
// their bounds and within what a netlink attribute can describe, set elements are split
// over several messages with each range whole, and a message that comes out larger than
// its bound (or malformed) becomes the batch's error instead of being sent.

#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>

#include <cstring>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cni/env.h"
#include "config/netconf.h"
#include "config/pod.h"
#include "nl/nft_encode.h"
#include "nl/nft_socket.h"
#include "nl/nft_table.h"
#include "plan/plan.h"

using nlohmann::json;
using namespace podsteer;

namespace {

const json kDualStack = {{"cniVersion", "1.0.0"},
                         {"ips", {{{"address", "10.244.1.5/24"}}, {{"address", "fd00:10:244:1::5/64"}}}}};

plan::Table podTable(const json& extra) {
  json j = {{"cniVersion", "1.0.0"}, {"name", "podnet"}, {"type", "podsteer"}, {"prevResult", kDualStack}};
  j.merge_patch(extra);
  auto conf = parseNetConf(j.dump());
  REQUIRE_MESSAGE(conf.ok(), conf.error().msg);
  auto plan = plan::buildPlan(*conf, podFromInvocation(CniEnv{}, *conf));
  REQUIRE(plan.ok());
  REQUIRE(plan->podTable);
  return *plan->podTable;
}

json peers(size_t n) {
  json out = json::array();
  for (size_t i = 0; i < n; ++i) {
    char buf[64];
    std::snprintf(buf, sizeof(buf), "fd00:%zx::1/128", i + 1);
    out.push_back(buf);
  }
  return out;
}

struct ElementMessage {
  std::string set;
  size_t elements = 0;
  size_t ends = 0; // interval end elements
  uint32_t len = 0;
};

// Read back by walking the attributes (libnftnl 1.2.4's own parser refuses elements
// that carry flags).
std::vector<ElementMessage> elementMessages(const nl::NftBatch& batch) {
  std::vector<ElementMessage> out;
  batch.forEachMessage([&](const nlmsghdr* nlh, const std::string&) {
    if ((nlh->nlmsg_type & 0xff) != NFT_MSG_NEWSETELEM) return;
    ElementMessage m;
    m.len = nlh->nlmsg_len;
    const auto* tail = static_cast<const char*>(mnl_nlmsg_get_payload_tail(nlh));
    for (auto* a = static_cast<const nlattr*>(mnl_nlmsg_get_payload_offset(nlh, sizeof(nfgenmsg)));
         mnl_attr_ok(a, static_cast<int>(tail - reinterpret_cast<const char*>(a))); a = mnl_attr_next(a)) {
      if (mnl_attr_get_type(a) == NFTA_SET_ELEM_LIST_SET) m.set = mnl_attr_get_str(a);
      if (mnl_attr_get_type(a) != NFTA_SET_ELEM_LIST_ELEMENTS) continue;
      mnl_attr_parse_nested(
          a,
          [](const nlattr* elem, void* data) {
            auto* msg = static_cast<ElementMessage*>(data);
            ++msg->elements;
            mnl_attr_parse_nested(
                elem,
                [](const nlattr* field, void* d) {
                  if (mnl_attr_get_type(field) == NFTA_SET_ELEM_FLAGS &&
                      (ntohl(mnl_attr_get_u32(field)) & NFT_SET_ELEM_INTERVAL_END))
                    ++static_cast<ElementMessage*>(d)->ends;
                  return MNL_CB_OK;
                },
                msg);
            return MNL_CB_OK;
          },
          &m);
    }
    out.push_back(m);
  });
  return out;
}

} // namespace

TEST_CASE("NftBatch: issue 12's 256 IPv6 peers go in several element messages, each range whole") {
  plan::Table t = podTable({{"firewall", {{"ingress", {{{"protocol", "tcp"}, {"ports", {80}}, {"from", peers(256)}}}}}}});
  nl::NftBatch batch;
  nl::batchCreateTable(batch, t);
  REQUIRE_FALSE(batch.error());
  size_t total = 0, messages = 0;
  for (const auto& m : elementMessages(batch)) {
    if (m.set != "fw_in_0_v6") continue;
    ++messages;
    total += m.elements;
    CHECK(m.elements <= nl::kMaxElementsPerMessage);
    CHECK(m.ends * 2 == m.elements); // every start with its end
    CHECK(m.len < 16384);
  }
  CHECK(total == 512);
  CHECK(messages == 4);
}

TEST_CASE("NftBatch: the largest firewall encodes, every message within 64 KiB") {
  json rules = json::array();
  json ports = json::array();
  for (int p = 0; p < 256; ++p) ports.push_back(1 + 2 * p);
  for (int i = 0; i < 64; ++i) rules.push_back({{"protocol", "tcp"}, {"ports", ports}, {"from", peers(256)}});
  plan::Table t = podTable({{"firewall", {{"ingress", rules}}}});
  nl::NftBatch batch;
  nl::batchReplaceTable(batch, t);
  REQUIRE_FALSE(batch.error());
  size_t elements = 0;
  batch.forEachMessage([&](const nlmsghdr* nlh, const std::string& what) {
    INFO(what);
    CHECK(nlh->nlmsg_len <= UINT16_MAX);
  });
  for (const auto& m : elementMessages(batch)) elements += m.elements;
  CHECK(elements == 64 * (512 + 512));
}

TEST_CASE("NftBatch: a message larger than its bound is the batch's error, and nothing more is added") {
  nl::NftBatch batch;
  auto attrs = [](size_t n) {
    return [n](nlmsghdr* nlh) {
      for (size_t i = 0; i < n; ++i) mnl_attr_put_u32(nlh, NFTA_TABLE_FLAGS, 0);
    };
  };
  batch.add(NFT_MSG_NEWTABLE, NFPROTO_INET, 0, 64, attrs(4), "add table inet fits");
  CHECK_FALSE(batch.error());
  CHECK(batch.size() == 1);
  // 10 attributes of 8 bytes against a bound of 64: the buffer (twice the bound) holds
  // them, the check refuses the message.
  batch.add(NFT_MSG_NEWTABLE, NFPROTO_INET, 0, 64, attrs(10), "add table inet too-big");
  REQUIRE(batch.error());
  CHECK(batch.error()->code == ErrorCode::kInternal);
  CHECK(batch.error()->msg.find("add table inet too-big") != std::string::npos);
  CHECK(batch.error()->msg.find("over its bound") != std::string::npos);
  CHECK(batch.size() == 1);
  batch.add(NFT_MSG_NEWTABLE, NFPROTO_INET, 0, 64, attrs(1), "add table inet later");
  CHECK(batch.size() == 1);
  CHECK(batch.error()->msg.find("too-big") != std::string::npos);
}

TEST_CASE("NftBatch: attributes that do not tile their message are refused") {
  nl::NftBatch batch;
  batch.add(NFT_MSG_NEWTABLE, NFPROTO_INET, 0, 64,
            [](nlmsghdr* nlh) {
              mnl_attr_put_u32(nlh, NFTA_TABLE_FLAGS, 0);
              // An attribute claiming more bytes than the message has.
              auto* a = static_cast<nlattr*>(mnl_nlmsg_get_payload_tail(nlh));
              a->nla_type = NFTA_TABLE_NAME;
              a->nla_len = 40;
              nlh->nlmsg_len += 8;
            },
            "add table inet broken");
  REQUIRE(batch.error());
  CHECK(batch.error()->msg.find("do not tile") != std::string::npos);
  CHECK(batch.empty());
}

// closeParkedSockets waits out a grace period only after a commit that deleted objects
// (issue 17): creating a pod's table must not pay it, deleting or replacing one must.
TEST_CASE("NftBatch: deletes() is true exactly for batches that remove kernel objects") {
  const plan::Table table = podTable({{"redirect", json::object()}});
  nl::NftBatch create;
  nl::batchCreateTable(create, table);
  CHECK_FALSE(create.deletes());
  nl::NftBatch replace;
  nl::batchReplaceTable(replace, table);
  CHECK(replace.deletes());
  nl::NftBatch remove;
  nl::batchDeleteTable(remove, "inet", "podsteer");
  CHECK(remove.deletes());
  CHECK_FALSE(nl::NftBatch().deletes());
}
