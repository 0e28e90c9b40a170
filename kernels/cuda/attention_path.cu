/* The attention ops' choice between cuDNN's fused attention and the flash
 * kernels, call by call (contract in kernels/cuda/attention_path.h): the
 * path from CAIRN_CUDA_ATTENTION, the calls cuDNN cannot take (tensors not
 * 16-byte aligned, builds without cuDNN attention) or is not given
 * (per-document masks under auto, until measured on a GPU), the notes on
 * stderr when cuDNN was asked for and cannot run a call, and the record of
 * what ran. The state lives in the backend's cuda_backend. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/attention_path.h"
#include "kernels/cuda/cuda_common.cuh"
#ifdef CAIRN_HAVE_CUDNN_ATTENTION
#include "kernels/cuda/attention_cudnn.h"
#define CUDNN_MISSING "cuDNN's attention state could not be created (out of host memory)"
#else
#define CUDNN_MISSING "this cairn was built without cuDNN attention (no cudnn-frontend headers)"
#endif

static const char *const PATH_NAMES[] = {"auto", "cudnn", "flash"};

/* the notes printed once each when cuDNN was asked for (attention_notes bits) */
enum { NOTE_ALIGNMENT = 1, NOTE_MISSING = 2 };

extern "C" const char *cuda_attention_path_name(cuda_attention_path path) {
    return (unsigned)path < sizeof PATH_NAMES / sizeof *PATH_NAMES ? PATH_NAMES[path] : "?";
}

extern "C" void cuda_attention_use(cuda_attention_path path) {
    cuda_backend_state()->attention_path = path;
}

extern "C" cuda_attention_path cuda_attention_ran(int backward) {
    return (cuda_attention_path)cuda_backend_state()->attention_ran[backward ? 1 : 0];
}

int cuda_attention_read_environment(cuda_backend *state, char *why, size_t why_size) {
    return cuda_environment_choice("CAIRN_CUDA_ATTENTION", PATH_NAMES,
                                   (int)(sizeof PATH_NAMES / sizeof *PATH_NAMES),
                                   &state->attention_path, why, why_size);
}

void cuda_attention_start_cudnn(cuda_backend *state) {
#ifdef CAIRN_HAVE_CUDNN_ATTENTION
    state->cudnn_attention = cudnn_attention_create();
#else
    state->cudnn_attention = NULL;
#endif
}

/* 1 when cuDNN may run this call (it can still refuse the shape). Otherwise
 * the flash kernels run it, and if cuDNN was asked for, the reason is noted
 * on stderr the first time it comes up. */
static int cudnn_may_run(cuda_backend *state, const attention_documents *documents,
                         const void *const *tensors, int count) {
    if (state->attention_path == CUDA_ATTENTION_FLASH) return 0;
    /* cuDNN's ragged path for documents has not run on a GPU yet: only when asked for */
    if (documents && state->attention_path == CUDA_ATTENTION_AUTO) return 0;
    int note = 0;
    const char *why = NULL;
    for (int i = 0; i < count && !why; i++)
        if (!cuda_aligned(tensors[i], 16)) {
            note = NOTE_ALIGNMENT;
            why = "cuDNN needs 16-byte aligned tensors (and head dims a multiple of 8)";
        }
    if (!why && !state->cudnn_attention) {
        note = NOTE_MISSING;
        why = CUDNN_MISSING;
    }
    if (!why) return 1;
    if (state->attention_path == CUDA_ATTENTION_CUDNN && !(state->attention_notes & note)) {
        state->attention_notes |= note;
        fprintf(stderr,
                "cuda: cuDNN attention was asked for, but %s; "
                "those calls use the flash kernels\n",
                why);
    }
    return 0;
}

int cuda_attention_try_cudnn_forward(void *out, void *lse, const void *qkv,
                                     const attention_documents *documents, int B, int T, int H,
                                     int KV, int hd) {
    cuda_backend *state = cuda_backend_state();
    const void *tensors[] = {out, lse, qkv, cuda_head_start(qkv, H, hd),
                             cuda_head_start(qkv, H + KV, hd)};
    int ran = 0;
    if (cudnn_may_run(state, documents, tensors, (int)(sizeof tensors / sizeof *tensors))) {
#ifdef CAIRN_HAVE_CUDNN_ATTENTION
        attention_shape shape = {B, T, H, KV, hd};
        ran = cudnn_attention_forward(state->cudnn_attention, shape, documents, out, lse, qkv) ==
              0;
#else
        (void)B, (void)T; /* no cuDNN: cudnn_may_run said no */
#endif
    }
    state->attention_ran[0] = ran ? CUDA_ATTENTION_CUDNN : CUDA_ATTENTION_FLASH;
    return ran;
}

int cuda_attention_try_cudnn_backward(void *dqkv, const void *dout, const void *qkv,
                                      const void *out, const void *lse,
                                      const attention_documents *documents, int B, int T, int H,
                                      int KV, int hd) {
    cuda_backend *state = cuda_backend_state();
    const void *tensors[] = {dqkv,
                             dout,
                             qkv,
                             out,
                             lse,
                             cuda_head_start(qkv, H, hd),
                             cuda_head_start(qkv, H + KV, hd),
                             cuda_head_start(dqkv, H, hd),
                             cuda_head_start(dqkv, H + KV, hd)};
    int ran = 0;
    if (cudnn_may_run(state, documents, tensors, (int)(sizeof tensors / sizeof *tensors))) {
#ifdef CAIRN_HAVE_CUDNN_ATTENTION
        attention_shape shape = {B, T, H, KV, hd};
        ran = cudnn_attention_backward(state->cudnn_attention, shape, documents, dqkv, dout, qkv,
                                       out, lse) == 0;
#else
        (void)B, (void)T; /* no cuDNN: cudnn_may_run said no */
#endif
    }
    state->attention_ran[1] = ran ? CUDA_ATTENTION_CUDNN : CUDA_ATTENTION_FLASH;
    return ran;
}
