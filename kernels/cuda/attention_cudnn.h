/* cuDNN's fused scaled-dot-product attention (cudnn-frontend graph API) as
 * the CUDA backend's attention: causal (query t sees keys 0..t), GQA (query
 * head h reads kv head h / (H/KV)), bf16 in and out, fp32 softmax and
 * accumulation, scale 1/sqrt(hd). lse is cuDNN's softmax statistics: the
 * natural-log logsumexp of the scaled scores, as the flash kernels write it.
 * The backward overwrites dqkv in full.
 *
 * With per-document masks (documents not NULL) every document is a sequence
 * of its own: cuDNN's ragged layout (cuDNN 9.6 or newer), the tensors still
 * read and written in place through per-document offsets, a padding mask
 * with each document's length, and a graph per power-of-two bucket of the
 * document count (unused entries have length 0). cuDNN's ragged statistics
 * are token-major, so lse passes through the scratch buffer, transposed.
 *
 * One graph per shape and direction, built at its first call and kept. A
 * shape cuDNN refuses is kept as refused; its first refusal is reported on
 * stderr with cuDNN's reason, and the caller runs the flash kernels. Every
 * cuDNN or frontend error while building is such a refusal; an error while
 * running a built graph is a real one and aborts like the backend's other
 * checks. The graphs share one grow-only workspace from the backend's counted
 * allocator, grown when a graph is built (never while calls run).
 *
 * The backward uses cuDNN's deterministic algorithm (bit-identical results
 * run to run) unless its workspace, which grows with B·H·T² on Hopper, would
 * exceed 1 GiB; then it uses the non-deterministic one (workspace linear in T)
 * and says so once on stderr.
 *
 * Calls run on the legacy default stream, like the backend's kernels. Tensor
 * pointers must be 16-byte aligned (the caller checks). Internal to
 * kernels/cuda/, compiled only when the cudnn-frontend headers were found. */
#ifndef CAIRN_CUDA_ATTENTION_CUDNN_H
#define CAIRN_CUDA_ATTENTION_CUDNN_H

#include "kernels/attention_documents.h"

struct cudnn_attention;

typedef struct attention_shape {
    int B, T, H, KV, hd;
} attention_shape;

/* The cuDNN handle (on the current device) and empty graph caches. NULL only
 * when out of host memory; a handle cuDNN could not create is kept as the
 * reason every shape is refused. */
cudnn_attention *cudnn_attention_create(void);

/* 0: cuDNN ran the call; -1: cuDNN does not run this shape (refused).
 * documents: NULL, or the per-document masks (kernels/attention_documents.h). */
int cudnn_attention_forward(cudnn_attention *state, attention_shape shape,
                            const attention_documents *documents, void *out, void *lse,
                            const void *qkv);
int cudnn_attention_backward(cudnn_attention *state, attention_shape shape,
                             const attention_documents *documents, void *dqkv, const void *dout,
                             const void *qkv, const void *out, const void *lse);

#endif
