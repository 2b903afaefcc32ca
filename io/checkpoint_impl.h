/*
 * checkpoint_impl.h — what the checkpoint writer (checkpoint.c) and reader
 * (checkpoint_read.c) share (private to io/).
 */
#ifndef PCN_CHECKPOINT_IMPL_H
#define PCN_CHECKPOINT_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// Bob Jenkins' lookup3 hashlittle of len bytes (HDF5's metadata checksum). Local.
uint32_t pcn_ckpt_lookup3(const void *data, size_t len, uint32_t init);
// Datasets' checksums are of their little-endian bytes: taken only on little-endian hosts.
bool pcn_ckpt_little_endian(void);

#endif // PCN_CHECKPOINT_IMPL_H
