// The processor's own answers about itself: CPUID leaves and the XCR0 register, which say what the
// processor implements and which register states the operating system saves (so may be used).
// Static inline, so this module needs no library; on other architectures every query answers 0.
#ifndef SHARDQUANT_PROCESSOR_H
#define SHARDQUANT_PROCESSOR_H

#include <stdint.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

/// CPUID leaf `leaf`, sub-leaf `subleaf`, into registers[0...3] = EAX, EBX, ECX, EDX.
/// Returns 0 (registers untouched) when the leaf is above the processor's highest leaf.
static inline int shardquant_cpuid(uint32_t leaf, uint32_t subleaf, uint32_t registers[4]) {
    unsigned int a = 0, b = 0, c = 0, d = 0;
    unsigned int highest = __get_cpuid_max(leaf & 0x80000000u, 0);
    if (highest == 0 || leaf > highest) return 0;
    __cpuid_count(leaf, subleaf, a, b, c, d);
    registers[0] = a; registers[1] = b; registers[2] = c; registers[3] = d;
    return 1;
}

/// XCR0, the extended-state features the operating system enabled. Only valid when CPUID.1:ECX
/// bit 27 (OSXSAVE) is set; the caller checks that first (XGETBV faults otherwise).
static inline uint64_t shardquant_xgetbv0(void) {
    uint32_t low = 0, high = 0;
    __asm__ volatile("xgetbv" : "=a"(low), "=d"(high) : "c"(0));
    return ((uint64_t)high << 32) | low;
}

static inline int shardquant_is_x86(void) { return 1; }

#else

static inline int shardquant_cpuid(uint32_t leaf, uint32_t subleaf, uint32_t registers[4]) {
    (void)leaf; (void)subleaf; (void)registers;
    return 0;
}
static inline uint64_t shardquant_xgetbv0(void) { return 0; }
static inline int shardquant_is_x86(void) { return 0; }

#endif

#endif
