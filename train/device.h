/* Chooses the backend for `device: auto|cpu|cuda`: auto takes CUDA when this
 * binary has it and a GPU answers, else the CPU; `cuda` without a usable GPU
 * is an error that says why. `description` names the device for run.json and
 * the progress output; `peak_flops` is its dense bf16 peak (0 on the CPU). */
#ifndef CAIRN_DEVICE_H
#define CAIRN_DEVICE_H

#include <stddef.h>

#include "common/status.h"
#include "kernels/ops.h"
#include "train/config.h"

int device_select(device_kind kind, const ops **out, char *description, size_t description_size,
                  double *peak_flops, status *st);

#endif
