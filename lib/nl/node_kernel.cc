#include "nl/node_kernel.h"

#include <cerrno>
#include <set>
#include <string>

#include "nl/nft_table.h"

namespace podsteer::nl {

namespace {

// The host table's identity (family and name) without its contents: what element
// changes and lookups address.
const plan::Table& hostTableShell() {
  static const plan::Table shell{};
  return shell;
}

void batchElementChange(NftBatch& batch, const std::vector<plan::HostElement>& remove,
                        const std::vector<plan::HostElement>& add) {
  if (!remove.empty()) batchDeleteElements(batch, hostTableShell(), remove);
  if (!add.empty()) batchAddElements(batch, hostTableShell(), add);
}

} // namespace

Result<NftSocket*> NetlinkNodeKernel::nft() {
  if (!nft_) {
    auto s = NftSocket::open();
    if (!s) return s.error();
    nft_.emplace(std::move(*s));
  }
  return &*nft_;
}

Result<RouteSocket*> NetlinkNodeKernel::route() {
  if (!route_) {
    auto s = RouteSocket::open();
    if (!s) return s.error();
    route_.emplace(std::move(*s));
  }
  return &*route_;
}

Result<NodeKernel::Elements> NetlinkNodeKernel::applyElements(const std::vector<plan::HostElement>& remove,
                                                              const std::vector<plan::HostElement>& add) {
  auto sock = nft();
  if (!sock) return sock.error();
  NftBatch batch;
  batchElementChange(batch, remove, add);
  Status s = (*sock)->commit(batch);
  if (s) return Elements::kApplied;
  // The table or a set was removed behind our back: the caller rebuilds the base.
  if ((*sock)->lastCommitErrno() == ENOENT) return Elements::kBaseMissing;
  return s.error();
}

Status NetlinkNodeKernel::applyBase(const plan::Table& base, const std::vector<plan::HostElement>& remove,
                                   const std::vector<plan::HostElement>& add) {
  auto sock = nft();
  if (!sock) return sock.error();
  const plan::Table& shell = hostTableShell();
  // The node's first pod (or a table removed behind our back): nothing to flush or delete,
  // so the batch leaves no destroy work to wait for. Asked under the node lock.
  auto exists = nl::tableExists(**sock, shell.family, shell.name);
  if (!exists) return exists.error();
  NftBatch batch;
  batchEnsureBase(batch, base, !*exists);
  batchElementChange(batch, *exists ? remove : std::vector<plan::HostElement>{}, add);
  if (!*exists) return (*sock)->commit(batch);
  auto existing = listSets(**sock, shell.family, shell.name);
  if (!existing) return existing.error();
  std::set<std::string> wanted;
  for (const auto& s : base.sets) wanted.insert(s.name);
  for (const auto& name : *existing)
    if (!wanted.count(name)) batchDeleteSet(batch, shell, name);
  return (*sock)->commit(batch);
}

Status NetlinkNodeKernel::deleteTable() {
  auto exists = tableExists();
  if (!exists) return exists.error();
  if (!*exists) return Status::success();
  NftBatch batch;
  batchDeleteTable(batch, hostTableShell().family, hostTableShell().name);
  return (*nft())->commit(batch);
}

Result<bool> NetlinkNodeKernel::tableExists() {
  auto sock = nft();
  if (!sock) return sock.error();
  return nl::tableExists(**sock, hostTableShell().family, hostTableShell().name);
}

Result<std::vector<std::string>> NetlinkNodeKernel::diffBase(const plan::Table& base) {
  auto sock = nft();
  if (!sock) return sock.error();
  return diffTable(**sock, base);
}

Result<bool> NetlinkNodeKernel::hasElement(const plan::HostElement& element) {
  auto sock = nft();
  if (!sock) return sock.error();
  return elementExists(**sock, hostTableShell(), element);
}

Status NetlinkNodeKernel::addRule(const plan::IpRule& rule) {
  auto rs = route();
  return rs ? (*rs)->addRule(rule) : Status(rs.error());
}

Status NetlinkNodeKernel::deleteRule(const plan::IpRule& rule) {
  auto rs = route();
  return rs ? (*rs)->deleteRule(rule) : Status(rs.error());
}

Result<bool> NetlinkNodeKernel::hasRule(const plan::IpRule& rule) {
  auto rs = route();
  if (!rs) return rs.error();
  return (*rs)->hasRule(rule);
}

Status NetlinkNodeKernel::addRoute(const plan::IpRoute& r) {
  auto rs = route();
  return rs ? (*rs)->addRoute(r) : Status(rs.error());
}

Status NetlinkNodeKernel::deleteRoute(const plan::IpRoute& r) {
  auto rs = route();
  return rs ? (*rs)->deleteRoute(r) : Status(rs.error());
}

Result<bool> NetlinkNodeKernel::hasRoute(const plan::IpRoute& r) {
  auto rs = route();
  if (!rs) return rs.error();
  return (*rs)->hasRoute(r);
}

} // namespace podsteer::nl
