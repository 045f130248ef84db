#include "nl/pod_kernel.h"

#include <sys/stat.h>

#include <cerrno>

#include "nl/netns.h"
#include "nl/nft_socket.h"
#include "nl/nft_table.h"
#include "nl/route.h"

namespace podsteer::nl {

std::string netnsFileIdentity(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return {};
  return std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
}

namespace {

// Each socket is opened in the namespace on first use (or all of ADD's in open()'s one
// visit): a DEL of a pod without TPROXY pays for no rtnetlink socket.
class NetlinkPodNetns : public PodNetns {
public:
  explicit NetlinkPodNetns(UniqueFd fd) : fd_(std::move(fd)) {}

  Status openSockets(unsigned sockets) {
    if (sockets == PodKernel::kNoSockets) return Status::success();
    NetnsGuard guard(fd_.get());
    if (!guard.status()) return guard.status();
    if (sockets & PodKernel::kTableSocket) {
      auto n = NftSocket::open();
      if (!n) return n.error();
      nft_.emplace(std::move(*n));
    }
    if (sockets & PodKernel::kAddressSocket) {
      auto r = RouteSocket::open();
      if (!r) return r.error();
      rtnl_.emplace(std::move(*r));
    }
    return Status::success();
  }

  std::string identity() override { return netnsFileIdentity(fd_.get()); }

  Result<Created> createTable(const plan::Table& table) override {
    auto sock = nft();
    if (!sock) return sock.error();
    NftBatch batch;
    batchCreateTable(batch, table);
    if (auto s = (*sock)->commit(batch); !s) {
      if ((*sock)->lastCommitErrno() == EEXIST) return Created::kExists;
      return s.error();
    }
    operations_ = batch.size();
    return Created::kCreated;
  }

  Status setTable(const plan::Table* desired) override {
    auto sock = nft();
    if (!sock) return sock.error();
    auto exists = nl::tableExists(**sock, "inet", plan::kTableName);
    if (!exists) return exists.error();
    NftBatch batch;
    if (desired && *exists) batchReplaceTable(batch, *desired);
    else if (desired) batchCreateTable(batch, *desired);
    else if (*exists) batchDeleteTable(batch, "inet", plan::kTableName);
    if (auto s = (*sock)->commit(batch); !s) return s;
    operations_ = batch.size();
    return Status::success();
  }

  Status deleteTable() override {
    auto sock = nft();
    if (!sock) return sock.error();
    NftBatch batch;
    batchDeleteTable(batch, "inet", plan::kTableName);
    return (*sock)->commit(batch);
  }

  Result<bool> tableExists() override {
    auto sock = nft();
    if (!sock) return sock.error();
    return nl::tableExists(**sock, "inet", plan::kTableName);
  }

  Result<std::vector<std::string>> diffTable(const plan::Table& desired) override {
    auto sock = nft();
    if (!sock) return sock.error();
    return nl::diffTable(**sock, desired);
  }

  size_t lastTableOperations() const override { return operations_; }

  Status addPodRoute(const plan::PodRoute& r) override {
    auto rs = route();
    return rs ? (*rs)->addPodRoute(r) : Status(rs.error());
  }
  Status deletePodRoute(const plan::PodRoute& r) override {
    auto rs = route();
    return rs ? (*rs)->deletePodRoute(r) : Status(rs.error());
  }
  Result<std::vector<std::string>> checkPodRoute(const plan::PodRoute& r) override {
    auto rs = route();
    if (!rs) return rs.error();
    return (*rs)->checkPodRoute(r);
  }
  Result<bool> hasLoAddress(const Cidr& a) override {
    auto rs = route();
    if (!rs) return rs.error();
    return (*rs)->hasLoAddress(a);
  }
  Result<bool> addLoAddress(const Cidr& a) override {
    auto rs = route();
    if (!rs) return rs.error();
    return (*rs)->addLoAddress(a);
  }
  Status deleteLoAddress(const Cidr& a) override {
    auto rs = route();
    return rs ? (*rs)->deleteLoAddress(a) : Status(rs.error());
  }

  // The one call site of the address check's socket: closed once it answered.
  Result<std::optional<std::vector<Cidr>>> interfaceAddresses(const std::string& ifname) override {
    if (!rtnl_) {
      NetnsGuard guard(fd_.get());
      if (!guard.status()) return guard.status().error();
      auto r = RouteSocket::open();
      if (!r) return r.error();
      rtnl_.emplace(std::move(*r));
    }
    auto have = rtnl_->interfaceAddresses(ifname);
    rtnl_.reset();
    return have;
  }

private:
  Result<NftSocket*> nft() {
    if (!nft_) {
      auto s = NftSocket::openIn(fd_.get());
      if (!s) return s.error();
      nft_.emplace(std::move(*s));
    }
    return &*nft_;
  }
  Result<RouteSocket*> route() {
    if (!route_) {
      NetnsGuard guard(fd_.get());
      if (!guard.status()) return guard.status().error();
      auto s = RouteSocket::open();
      if (!s) return s.error();
      route_.emplace(std::move(*s));
    }
    return &*route_;
  }

  UniqueFd fd_;
  std::optional<NftSocket> nft_;
  std::optional<RouteSocket> rtnl_;
  std::optional<RouteSocket> route_;
  size_t operations_ = 0;
};

} // namespace

Result<std::unique_ptr<PodNetns>> NetlinkPodKernel::open(const std::string& path, unsigned sockets) {
  auto ns = openNetns(path);
  if (!ns) return ns.error();
  if (ns->state != NetnsState::kOpen) return std::unique_ptr<PodNetns>();
  auto pod = std::make_unique<NetlinkPodNetns>(std::move(ns->fd));
  if (auto s = pod->openSockets(sockets); !s) return s.error();
  return std::unique_ptr<PodNetns>(std::move(pod));
}

bool NetlinkPodKernel::directoryVisible(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos || slash == 0) return true;
  struct stat st {};
  return ::stat(path.substr(0, slash).c_str(), &st) == 0;
}

} // namespace podsteer::nl
