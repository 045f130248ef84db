#include "util/build_id.h"

#include <elf.h>
#include <link.h>

#include <cstdint>
#include <cstdio>

namespace podsteer {

namespace {

// The first object dl_iterate_phdr reports is the program itself.
int fromMainProgram(dl_phdr_info* info, size_t, void* data) {
  auto* out = static_cast<std::string*>(data);
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_NOTE) continue;
    const auto* p = reinterpret_cast<const unsigned char*>(info->dlpi_addr + ph.p_vaddr);
    const unsigned char* end = p + ph.p_memsz;
    while (p + sizeof(ElfW(Nhdr)) <= end) {
      const auto* note = reinterpret_cast<const ElfW(Nhdr)*>(p);
      const unsigned char* name = p + sizeof(ElfW(Nhdr));
      const unsigned char* desc = name + ((note->n_namesz + 3) & ~3U);
      if (note->n_type == NT_GNU_BUILD_ID && note->n_namesz == 4 && desc + note->n_descsz <= end) {
        char hex[3];
        for (uint32_t k = 0; k < note->n_descsz; ++k) {
          std::snprintf(hex, sizeof(hex), "%02x", desc[k]);
          out->append(hex);
        }
        return 1;
      }
      p = desc + ((note->n_descsz + 3) & ~3U);
    }
  }
  return 1; // only the program itself
}

} // namespace

const std::string& buildIdentity() {
  static const std::string id = [] {
    std::string s;
    dl_iterate_phdr(fromMainProgram, &s);
    if (s.empty()) s = std::string(PODSTEER_VERSION) + " " + __DATE__ + " " + __TIME__;
    return s;
  }();
  return id;
}

} // namespace podsteer
