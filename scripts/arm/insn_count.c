/* A qemu-user TCG plugin that counts the guest instructions a program executes, for
 * scripts/arm_insn_counts.sh. Build: cc -shared -fPIC -O2 -o insn_count.so insn_count.c
 * Run:   qemu-aarch64 -plugin ./insn_count.so,outfile=FILE ... ; FILE then holds one number.
 *        With profile=FILE2 as well, FILE2 gets "address instructions" per translated block start,
 *        the most executed first (addresses as the guest sees them; symbolize against the load base).
 *
 * Debian bookworm's qemu (7.2) loads plugins but ships no plugin header, so the few entry points used
 * here are declared from qemu 7.2's plugin API (version 1): on each translated block, add its
 * instruction count to a counter inline, every time the block runs. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
typedef struct qemu_info_t qemu_info_t; /* not read */
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 = 0 };
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);
extern void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
extern size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
extern void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *tb, enum qemu_plugin_op op, void *ptr,
                                                     uint64_t imm);
extern void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void *userdata);
extern uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb *tb);

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

static uint64_t executed; /* one counter: run the program on one thread (-t 1) for exact counts */
static char outfile[4096], profile[4096];

/* Profile: one slot per translation (a block translated twice gets two, summed at exit). */
struct slot {
  uint64_t vaddr, insns;
};
#define MAX_SLOTS (1u << 20)
static struct slot *slots;
static unsigned n_slots;

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
  (void)id;
  const size_t n = qemu_plugin_tb_n_insns(tb);
  qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &executed, n);
  if (slots && n_slots < MAX_SLOTS) {
    struct slot *s = &slots[n_slots++];
    s->vaddr = qemu_plugin_tb_vaddr(tb);
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &s->insns, n);
  }
}

static int by_vaddr(const void *a, const void *b) {
  const struct slot *x = a, *y = b;
  return x->vaddr < y->vaddr ? -1 : x->vaddr > y->vaddr;
}
static int by_insns(const void *a, const void *b) {
  const struct slot *x = a, *y = b;
  return x->insns > y->insns ? -1 : x->insns < y->insns;
}

static void write_profile(void) {
  unsigned i, m = 0;
  FILE *f = fopen(profile, "w");
  if (!f) return;
  qsort(slots, n_slots, sizeof *slots, by_vaddr);
  for (i = 0; i < n_slots; ++i) {
    if (m > 0 && slots[m - 1].vaddr == slots[i].vaddr) slots[m - 1].insns += slots[i].insns;
    else slots[m++] = slots[i];
  }
  qsort(slots, m, sizeof *slots, by_insns);
  for (i = 0; i < m && slots[i].insns > 0; ++i)
    fprintf(f, "%llx %llu\n", (unsigned long long)slots[i].vaddr, (unsigned long long)slots[i].insns);
  fclose(f);
}

static void at_exit_cb(qemu_plugin_id_t id, void *userdata) {
  (void)id, (void)userdata;
  FILE *f = outfile[0] ? fopen(outfile, "w") : stderr;
  if (!f) return;
  fprintf(f, "%llu\n", (unsigned long long)executed);
  if (f != stderr) fclose(f);
  if (slots) write_profile();
}

__attribute__((visibility("default"))) int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info,
                                                               int argc, char **argv) {
  (void)info;
  for (int i = 0; i < argc; ++i)
    if (strncmp(argv[i], "outfile=", 8) == 0) snprintf(outfile, sizeof outfile, "%s", argv[i] + 8);
    else if (strncmp(argv[i], "profile=", 8) == 0) snprintf(profile, sizeof profile, "%s", argv[i] + 8);
  if (profile[0]) slots = calloc(MAX_SLOTS, sizeof *slots);
  qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
  qemu_plugin_register_atexit_cb(id, at_exit_cb, NULL);
  return 0;
}
