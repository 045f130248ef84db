// The whole path from stdin to netlink bytes, without a kernel: the conflist entry (with
// its prevResult, runtimeConfig annotations and args) is parsed, planned, rendered as
// nft/ip text, and every nftables batch ADD, DEL, CHECK and reconcile would send is
// encoded into NftBatch messages: the pod table (create and replace), the node's shared
// table for every configured domain, hairpin and the port pool, and the pod's node
// elements (add and delete). Any config the parser accepts must encode without a memory
// error and into well-formed messages.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "config/netconf.h"
#include "config/pod.h"
#include "nl/nft_encode.h"
#include "nl/nft_socket.h"
#include "nl/nft_table.h"
#include "plan/host.h"
#include "plan/plan.h"
#include "plan/render.h"

namespace {

using namespace podsteer;

// An encoding the batch itself found wrong (over its bound, or attributes that do not
// tile their message) is a bug the fuzzer must report.
void expectWellFormed(const nl::NftBatch& batch) {
  if (const auto& e = batch.error()) {
    (void)e;
    std::abort();
  }
}

void encodePod(const plan::Table& table) {
  nl::NftBatch create, replace;
  nl::batchCreateTable(create, table);
  nl::batchReplaceTable(replace, table);
  expectWellFormed(create);
  expectWellFormed(replace);
  // CHECK encodes each desired rule to compare it with the kernel's.
  for (const auto& c : table.chains)
    for (const auto& r : c.rules) (void)nl::ruleExpressions(nl::encodeRule(table, c, r).get());
  (void)plan::renderTable(table);
}

void encodeHost(const NetConf& conf, const plan::Plan& p) {
  plan::HostMembership m = p.host;
  if (m.portPool && conf.egressPortPool) plan::addPortBlockElements(m, {}, *conf.egressPortPool, 0);
  plan::HostBase base = plan::buildHostBase(conf.routingDomains, conf.hairpin, conf.egressPortPool);
  nl::NftBatch batch;
  plan::Table shell;
  if (base.table) {
    nl::batchEnsureBase(batch, *base.table);
    (void)plan::renderTable(*base.table);
    for (const auto& s : base.table->sets) nl::batchDeleteSet(batch, shell, s.name);
  }
  nl::batchAddElements(batch, shell, m.elements);
  nl::batchDeleteElements(batch, shell, m.elements);
  expectWellFormed(batch);
  for (const auto& r : base.rules) (void)r.text();
  for (const auto& r : base.routes) (void)r.text();
  for (const auto& e : m.elements) (void)e.text();
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  auto conf = parseNetConf(text, ParseMode::kStrict);
  if (!conf) return 0;
  CniEnv env;
  env.containerId = "fuzz";
  env.ifname = "eth0";
  PodInfo pod = podFromInvocation(env, *conf);
  auto plan = plan::buildPlan(*conf, pod);
  if (!plan) return 0;
  if (plan->podTable) encodePod(*plan->podTable);
  encodeHost(*conf, *plan);
  nl::NftBatch del;
  nl::batchDeleteTable(del, "inet", plan::kTableName);
  expectWellFormed(del);
  return 0;
}
