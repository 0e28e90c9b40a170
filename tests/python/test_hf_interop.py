"""Hugging Face interop through the CLI (docs/hf-interop.md).

cairn -> HF: tiny models trained 2 steps by `cairn train` are exported (`cairn export`) and loaded
with transformers (CPU, fp32, eager attention); their logits must equal cairn's (checkpoint_logits)
to 1e-4 relative. HF -> cairn: random transformers models are imported (`cairn import`) and cairn's
logits must equal transformers'. export(import(x)) must give x's tensors bit for bit (fp32).
Qwen3 and Qwen3-MoE are newer than transformers 4.44, so those are compared with `reference`, a
plain PyTorch forward of the HF Llama family that is itself checked against transformers on the
classes it has. Also: BF16/F16 files, sharding, and one-line errors for bad input.
Usage: test_hf_interop.py CAIRN CHECKPOINT_LOGITS. Exit 77 when transformers is missing."""
import functools, json, math, os, struct, subprocess, sys, tempfile

try:
    import torch
    import transformers
    from safetensors.torch import load_file, save_file
except ImportError as e:
    print("SKIP: transformers not importable:", e)
    sys.exit(77)

from cairn_testing import check, finish, run_cairn

transformers.logging.set_verbosity_error()
cairn, logits_tool = (os.path.abspath(p) for p in sys.argv[1:3])
run = functools.partial(run_cairn, cairn)
SEQUENCES = [[3, 100, 200, 17, 5, 250, 9, 33, 2, 1, 77, 140], [65, 66, 67, 68], [7] * 9]
TOLERANCE = 1e-4


def cairn_logits(checkpoint, sequences=SEQUENCES):
    out = subprocess.run([logits_tool, checkpoint, *(",".join(map(str, s)) for s in sequences)],
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"checkpoint_logits {checkpoint}: {out.stderr}")
    rows = torch.tensor([[float(x) for x in line.split()] for line in out.stdout.splitlines()])
    return list(rows.split([len(s) for s in sequences]))


def hf_logits(directory, sequences=SEQUENCES):
    model = transformers.AutoModelForCausalLM.from_pretrained(
        directory, attn_implementation="eager", torch_dtype=torch.float32).eval()
    with torch.no_grad():
        return [model(torch.tensor([s])).logits[0] for s in sequences]


def relative_error(got, want):
    return max(float((g - w).abs().max() / w.abs().max()) for g, w in zip(got, want))


def check_close(got, want, what, tolerance=TOLERANCE):
    error = relative_error(got, want)
    check(error <= tolerance, f"{what}: relative error {error:.2e} > {tolerance:.0e}")
    return error


def tensors(directory):
    index = os.path.join(directory, "model.safetensors.index.json")
    files = sorted(set(json.load(open(index))["weight_map"].values())) if os.path.exists(index) \
        else ["model.safetensors"]
    out = {}
    for f in files:
        out.update(load_file(os.path.join(directory, f)))
    return out


def check_same_tensors(a, b, what):
    ta, tb = tensors(a), tensors(b)
    check(sorted(ta) == sorted(tb), f"{what}: tensor names differ")
    same = all(k in tb and ta[k].dtype == tb[k].dtype and ta[k].shape == tb[k].shape
               and torch.equal(ta[k], tb[k]) for k in ta)
    check(same, f"{what}: tensors differ")


# ---------------------------------------------------------------------- reference forward --

def reference_logits(directory, sequences=SEQUENCES):
    """The HF Llama family (Llama, Mixtral, Qwen2-MoE, Qwen3, Qwen3-MoE) in plain PyTorch, fp32,
    following transformers' modeling code: RMSNorm, rotate_half RoPE, optional q/k RMSNorm per
    head before RoPE, GQA, causal softmax attention, SwiGLU MLP or softmax top-k experts
    (renormalised when norm_topk_prob, always for Mixtral) plus Qwen2-MoE's gated shared expert."""
    cfg = json.load(open(os.path.join(directory, "config.json")))
    w = {k: v.float() for k, v in tensors(directory).items()}
    d, H = cfg["hidden_size"], cfg["num_attention_heads"]
    KV, hd = cfg.get("num_key_value_heads", H), cfg.get("head_dim") or d // H
    eps, mixtral = cfg["rms_norm_eps"], cfg["model_type"] == "mixtral"

    def rms(x, weight):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight

    def linear(x, name):
        y = x @ w[name + ".weight"].T
        return y + w[name + ".bias"] if name + ".bias" in w else y

    def mlp(x, prefix, gate="gate_proj", up="up_proj", down="down_proj"):
        act = torch.nn.functional.silu(linear(x, f"{prefix}.{gate}")) * linear(x, f"{prefix}.{up}")
        return linear(act, f"{prefix}.{down}")

    def rotate_half(x):
        return torch.cat([-x[..., hd // 2:], x[..., :hd // 2]], -1)

    results = []
    for seq in sequences:
        T = len(seq)
        inv_freq = 1.0 / (cfg["rope_theta"] ** (torch.arange(0, hd, 2).float() / hd))
        angles = torch.outer(torch.arange(T).float(), inv_freq)
        angles = torch.cat([angles, angles], -1)[:, None]
        cos, sin = angles.cos(), angles.sin()
        x = w["model.embed_tokens.weight"][torch.tensor(seq)]
        for i in range(cfg["num_hidden_layers"]):
            p = f"model.layers.{i}."
            h = rms(x, w[p + "input_layernorm.weight"])
            q = linear(h, p + "self_attn.q_proj").view(T, H, hd)
            k = linear(h, p + "self_attn.k_proj").view(T, KV, hd)
            v = linear(h, p + "self_attn.v_proj").view(T, KV, hd)
            if p + "self_attn.q_norm.weight" in w:
                q = rms(q, w[p + "self_attn.q_norm.weight"])
                k = rms(k, w[p + "self_attn.k_norm.weight"])
            q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
            k, v = k.repeat_interleave(H // KV, 1), v.repeat_interleave(H // KV, 1)
            scores = torch.einsum("thd,shd->hts", q, k) / math.sqrt(hd)
            future = torch.triu(torch.ones(T, T, dtype=torch.bool), 1)
            scores = scores.masked_fill(future, float("-inf"))
            attn = torch.einsum("hts,shd->thd", scores.softmax(-1), v).reshape(T, H * hd)
            x = x + linear(attn, p + "self_attn.o_proj")
            h = rms(x, w[p + "post_attention_layernorm.weight"])
            block = p + ("block_sparse_moe" if mixtral else "mlp")
            if block + ".gate.weight" not in w:
                x = x + mlp(h, p + "mlp")
                continue
            probs = linear(h, block + ".gate").softmax(-1)
            top, chosen = probs.topk(cfg["num_experts_per_tok"], -1)
            if mixtral or cfg.get("norm_topk_prob"):
                top = top / top.sum(-1, keepdim=True)
            out = torch.zeros_like(h)
            names = ("w1", "w3", "w2") if mixtral else ("gate_proj", "up_proj", "down_proj")
            for t in range(T):
                for g, e in zip(top[t], chosen[t]):
                    out[t] += g * mlp(h[t], f"{block}.experts.{int(e)}", *names)
            if block + ".shared_expert_gate.weight" in w:
                gate = torch.sigmoid(linear(h, block + ".shared_expert_gate"))
                out += gate * mlp(h, block + ".shared_expert")
            x = x + out
        x = rms(x, w["model.norm.weight"])
        results.append(x @ w.get("lm_head.weight", w["model.embed_tokens.weight"]).T)
    return results


# ---------------------------------------------------------------------- cairn -> HF --------

BASE = ["run.steps=2", "run.eval_every=0", "model.layers=2", "model.d_model=32", "model.heads=4",
        "model.kv_heads=2", "model.ffn=64", "model.seq_len=16", "model.init_std=0.25",
        "train.micro_batch=2", "train.global_batch=2", "optim.schedule.warmup=0",
        "checkpoint.every=2", "data.sources.0.path=data/train", "data.valid=data/train"]


def train(name, *settings):
    args = ["train"]
    for s in BASE + [f"run.out_dir=runs/{name}", *settings]:
        args += ["--set", s]
    run(*args)
    return f"runs/{name}/checkpoints/step-00000002.h5"


def export(checkpoint, out, *extra, expect=0):
    return run("export", checkpoint, "--format", "hf", "--output", out, *extra, expect=expect)


def architecture(directory):
    return json.load(open(os.path.join(directory, "config.json")))["architectures"][0]


def cairn_to_hf(name, expected_class, *settings, in_transformers=True, continue_training=False):
    checkpoint = train(name, *settings)
    out = f"hf/{name}"
    export(checkpoint, out, "--dtype", "fp32")
    check(architecture(out) == expected_class, f"{name}: exported as {architecture(out)}")
    ours = cairn_logits(checkpoint)
    if in_transformers:
        check_close(hf_logits(out), ours, f"{name}: transformers vs cairn logits")
    if expected_class != "GPT2LMHeadModel":
        check_close(reference_logits(out), ours, f"{name}: reference vs cairn logits")
    # export(import(x)) == x, and the imported checkpoint is a weights-only start
    run("import", out, "--output", f"{out}.h5")
    export(f"{out}.h5", f"{out}-again", "--dtype", "fp32")
    check_same_tensors(out, f"{out}-again", f"{name}: export(import(x))")
    check(torch.equal(torch.cat(cairn_logits(f"{out}.h5")), torch.cat(ours)),
          f"{name}: the imported checkpoint's logits differ from the original's")
    if continue_training:
        train(name + "-continued", *settings, f"checkpoint.resume={out}.h5")
        steps = [json.loads(line)["step"] for line in open(f"runs/{name}-continued/metrics.jsonl")]
        check(steps == [1, 2], f"{name}: training from the import logged steps {steps}")
    return checkpoint, out


def test_cairn_to_hf():
    cairn_to_hf("llama", "LlamaForCausalLM", "model.tie_embeddings=false", continue_training=True)
    llama_tied, tied_dir = cairn_to_hf("llama-tied", "LlamaForCausalLM", "model.kv_heads=4")
    check("lm_head.weight" not in tensors(tied_dir), "tied llama: lm_head.weight exported")
    cairn_to_hf("mixtral", "MixtralForCausalLM", "model.moe.experts=4", "model.moe.top_k=2",
                "model.tie_embeddings=false", continue_training=True)
    cairn_to_hf("qwen2-moe", "Qwen2MoeForCausalLM", "model.moe.experts=4", "model.moe.top_k=2",
                "model.moe.shared_experts=1", "model.moe.ffn=32")
    cairn_to_hf("gpt2", "GPT2LMHeadModel", "model.arch=gpt2", "model.kv_heads=4")
    cairn_to_hf("gpt2-untied", "GPT2LMHeadModel", "model.arch=gpt2", "model.kv_heads=4",
                "model.tie_embeddings=false")
    cairn_to_hf("qwen3", "Qwen3ForCausalLM", "model.qk_norm=true", in_transformers=False)
    cairn_to_hf("qwen3-moe", "Qwen3MoeForCausalLM", "model.qk_norm=true", "model.moe.experts=4",
                "model.moe.top_k=2", in_transformers=False)

    # the default dtype is bf16, what released HF models use
    export(llama_tied, "hf/bf16")
    config = json.load(open("hf/bf16/config.json"))
    check(config["torch_dtype"] == "bfloat16", "bf16 export: torch_dtype")
    exact = tensors("hf/llama-tied")
    check(all(t.dtype == torch.bfloat16 and torch.equal(t, exact[k].to(torch.bfloat16))
              for k, t in tensors("hf/bf16").items()), "bf16 export: not torch's rounding")
    error = relative_error(hf_logits("hf/bf16"), cairn_logits(llama_tied))
    check(1e-6 < error < 3e-2, f"bf16 export: relative error {error:.2e}")

    # sharding: a tiny shard size gives several files and an index that transformers loads
    export(llama_tied, "hf/sharded", "--dtype", "fp32", "--shard-size", "20KB")
    index = json.load(open("hf/sharded/model.safetensors.index.json"))
    files = sorted(set(index["weight_map"].values()))
    check(len(files) > 2 and files[0] == f"model-00001-of-{len(files):05d}.safetensors",
          f"sharded export: files {files}")
    sizes = {f: sum(t.numel() * 4 for t in load_file(f"hf/sharded/{f}").values()) for f in files}
    check(index["metadata"]["total_size"] == sum(sizes.values()), "sharded export: total_size")
    check(all(size <= 20000 or len(load_file(f"hf/sharded/{f}")) == 1 for f, size in sizes.items()),
          "sharded export: a shard over the size holds more than one tensor")
    check_close(hf_logits("hf/sharded"), cairn_logits(llama_tied), "sharded export: logits")
    run("import", "hf/sharded", "--output", "hf/sharded.h5")
    check(torch.equal(torch.cat(cairn_logits("hf/sharded.h5")),
                      torch.cat(cairn_logits(llama_tied))), "import of a sharded export: logits")
    # exporting again unsharded into the same directory leaves no stale shard behind
    export(llama_tied, "hf/sharded", "--dtype", "fp32")
    check(sorted(os.listdir("hf/sharded")) == ["config.json", "model.safetensors"],
          f"re-export: stale files {sorted(os.listdir('hf/sharded'))}")

    # models no HF class represents: one line naming the config key, no output
    for name, settings, key in [
            ("sigmoid", ["model.moe.experts=4", "model.moe.router=sigmoid"], "model.moe.router"),
            ("xielu", ["model.activation=xielu"], "model.activation")]:
        p = export(train(name, *settings), f"hf/{name}", expect="failure")
        message = p.stderr.strip()
        check(key in message and "\n" not in message, f"export of {name}: message {message!r}")
        check(not os.path.exists(f"hf/{name}/config.json"), f"export of {name}: wrote output")


# ---------------------------------------------------------------------- HF -> cairn --------

SMALL = dict(vocab_size=96, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=16,
             rms_norm_eps=1e-5, rope_theta=10000.0)
HF_SEQUENCES = [[s % 96 for s in seq] for seq in SEQUENCES]


def randomize(model):
    torch.manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name or "ln_" in name:
                p.copy_(1 + 0.2 * torch.randn_like(p))
            else:
                p.normal_(0, 0.25)
    return model


def hf_to_cairn(name, model, dtype=torch.float32, tolerance=TOLERANCE):
    out = f"from-hf/{name}"
    model.to(dtype).save_pretrained(out, safe_serialization=True)
    run("import", out, "--output", f"{out}.h5")
    check_close(cairn_logits(f"{out}.h5", HF_SEQUENCES), hf_logits(out, HF_SEQUENCES),
                f"{name}: cairn vs transformers logits after import", tolerance)
    if dtype == torch.float32:
        export(f"{out}.h5", f"{out}-exported", "--dtype", "fp32")
        check_same_tensors(out, f"{out}-exported", f"{name}: export(import(x))")
    return out


def save_hf(out, config, weights):
    os.makedirs(out, exist_ok=True)
    json.dump(config, open(f"{out}/config.json", "w"))
    save_file({k: v.contiguous() for k, v in weights.items()}, f"{out}/model.safetensors",
              metadata={"format": "pt"})


def qwen3_weights(config):
    """Random weights with Qwen3 / Qwen3-MoE names (no transformers class for them here)."""
    torch.manual_seed(2)
    d, H, KV, F = (config[k] for k in ("hidden_size", "num_attention_heads", "num_key_value_heads",
                                          "intermediate_size"))
    hd, V = d // H, config["vocab_size"]
    w = {"model.embed_tokens.weight": torch.randn(V, d) * 0.25,
         "model.norm.weight": 1 + 0.2 * torch.randn(d), "lm_head.weight": torch.randn(V, d) * 0.25}
    for i in range(config["num_hidden_layers"]):
        p = f"model.layers.{i}."
        shapes = {"self_attn.q_proj": (H * hd, d), "self_attn.k_proj": (KV * hd, d),
                  "self_attn.v_proj": (KV * hd, d), "self_attn.o_proj": (d, H * hd)}
        if "num_experts" in config:
            E, Fe = config["num_experts"], config["moe_intermediate_size"]
            shapes["mlp.gate"] = (E, d)
            for e in range(E):
                shapes.update({f"mlp.experts.{e}.gate_proj": (Fe, d),
                               f"mlp.experts.{e}.up_proj": (Fe, d),
                               f"mlp.experts.{e}.down_proj": (d, Fe)})
        else:
            shapes.update({"mlp.gate_proj": (F, d), "mlp.up_proj": (F, d), "mlp.down_proj": (d, F)})
        for n, shape in shapes.items():
            w[p + n + ".weight"] = torch.randn(*shape) * 0.25
        for n, size in [("input_layernorm", d), ("post_attention_layernorm", d),
                        ("self_attn.q_norm", hd), ("self_attn.k_norm", hd)]:
            w[p + n + ".weight"] = 1 + 0.2 * torch.randn(size)
    return w


def test_hf_to_cairn():
    llama = hf_to_cairn("llama", randomize(transformers.LlamaForCausalLM(
        transformers.LlamaConfig(**SMALL, tie_word_embeddings=False))))
    check_close(reference_logits(llama, HF_SEQUENCES), hf_logits(llama, HF_SEQUENCES),
                "reference vs transformers (Llama)")
    hf_to_cairn("llama-tied", randomize(transformers.LlamaForCausalLM(
        transformers.LlamaConfig(**dict(SMALL, num_key_value_heads=4), tie_word_embeddings=True))))
    mixtral = hf_to_cairn("mixtral", randomize(transformers.MixtralForCausalLM(
        transformers.MixtralConfig(**SMALL, num_local_experts=4, num_experts_per_tok=2))))
    check_close(reference_logits(mixtral, HF_SEQUENCES), hf_logits(mixtral, HF_SEQUENCES),
                "reference vs transformers (Mixtral)")

    qwen2 = transformers.Qwen2MoeForCausalLM(transformers.Qwen2MoeConfig(
        **SMALL, num_experts=4, num_experts_per_tok=2, moe_intermediate_size=24,
        shared_expert_intermediate_size=48, norm_topk_prob=True))
    randomize(qwen2)
    with torch.no_grad():  # cairn has no attention biases and an ungated shared expert
        for name, p in qwen2.named_parameters():
            if name.endswith("_proj.bias") or name.endswith("shared_expert_gate.weight"):
                p.zero_()
    qwen2_dir = hf_to_cairn("qwen2-moe", qwen2)
    check_close(reference_logits(qwen2_dir, HF_SEQUENCES), hf_logits(qwen2_dir, HF_SEQUENCES),
                "reference vs transformers (Qwen2-MoE)")
    with torch.no_grad():
        qwen2.model.layers[1].self_attn.q_proj.bias[3] = 0.5
    qwen2.save_pretrained("from-hf/qwen2-bias", safe_serialization=True)
    message = run("import", "from-hf/qwen2-bias", "--output", "from-hf/qwen2-bias.h5",
                  expect="failure").stderr.strip()
    check("model.layers.1.self_attn.q_proj.bias: nonzero values" in message,
          f"qwen2-moe with a q bias: message {message!r}")

    hf_to_cairn("gpt2", randomize(transformers.GPT2LMHeadModel(transformers.GPT2Config(
        vocab_size=96, n_positions=16, n_embd=32, n_layer=2, n_head=4,
        activation_function="gelu_new"))))
    hf_to_cairn("llama-bf16", randomize(transformers.LlamaForCausalLM(
        transformers.LlamaConfig(**SMALL))), dtype=torch.bfloat16)
    hf_to_cairn("llama-fp16", randomize(transformers.LlamaForCausalLM(
        transformers.LlamaConfig(**SMALL))), dtype=torch.float16)

    for name, extra in [("qwen3", {}),
                        ("qwen3-moe", dict(num_experts=4, num_experts_per_tok=2,
                                           moe_intermediate_size=24, norm_topk_prob=True))]:
        config = dict(SMALL, model_type=name.replace("-", "_"), head_dim=8,
                      tie_word_embeddings=False, **extra)
        out = f"from-hf/{name}"
        save_hf(out, config, qwen3_weights(config))
        run("import", out, "--output", f"{out}.h5")
        check_close(cairn_logits(f"{out}.h5", HF_SEQUENCES), reference_logits(out, HF_SEQUENCES),
                    f"{name}: cairn vs reference logits after import")
        export(f"{out}.h5", f"{out}-exported", "--dtype", "fp32")
        check_same_tensors(out, f"{out}-exported", f"{name}: export(import(x))")


# ---------------------------------------------------------------------- bad input ----------

def expect_import_error(directory, needles, what):
    before = open("good.h5", "rb").read()
    p = run("import", directory, "--output", "good.h5", expect="failure")
    message = p.stderr.strip()
    check(all(n in message for n in needles) and "\n" not in message,
          f"{what}: message {message!r} lacks {needles}")
    check(open("good.h5", "rb").read() == before, f"{what}: the existing output was touched")


def test_bad_input():
    run("import", "from-hf/llama", "--output", "good.h5")
    source = "from-hf/llama/model.safetensors"
    raw = open(source, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])

    def write_variant(name, new_header=None, data=None, config=None):
        os.makedirs(f"bad/{name}", exist_ok=True)
        text = json.dumps(new_header if new_header is not None else header).encode()
        text += b" " * (-len(text) % 8)
        with open(f"bad/{name}/model.safetensors", "wb") as f:
            f.write(struct.pack("<Q", len(text)) + text + (raw[8 + n:] if data is None else data))
        cfg = json.load(open("from-hf/llama/config.json"))
        cfg.update(config or {})
        json.dump(cfg, open(f"bad/{name}/config.json", "w"))
        return f"bad/{name}"

    name = "model.layers.0.self_attn.k_proj.weight"
    overlap = json.loads(json.dumps(header))
    begin, end = overlap[name]["data_offsets"]
    overlap[name]["data_offsets"] = [begin - 4, end - 4]
    expect_import_error(write_variant("overlap", overlap), ["model.safetensors", name, "overlap"],
                        "overlapping offsets")
    wrong = json.loads(json.dumps(header))
    wrong[name]["shape"] = [wrong[name]["shape"][0] + 1, wrong[name]["shape"][1]]
    expect_import_error(write_variant("length", wrong), [name, "take", "span"], "shape vs offsets")
    expect_import_error(write_variant("truncated", data=raw[8 + n:-16]),
                        ["model.safetensors", "tensors cover"], "truncated data")
    with open(write_variant("garbage") + "/model.safetensors", "r+b") as f:
        f.write(struct.pack("<Q", 1 << 40))
    expect_import_error("bad/garbage", ["model.safetensors", "header length"], "header length")
    expect_import_error(write_variant("rope", config={"rope_scaling": {"rope_type": "llama3"}}),
                        ["config.json", "rope_scaling"], "rope_scaling")
    expect_import_error(write_variant("act", config={"hidden_act": "gelu"}),
                        ["config.json", "hidden_act"], "hidden_act")
    expect_import_error(write_variant("layers", config={"num_hidden_layers": 3}),
                        ["model.layers.2.", "missing"], "missing layer")
    weights = load_file(source)
    del weights["model.norm.weight"]
    save_file(weights, write_variant("no-norm") + "/model.safetensors")
    expect_import_error("bad/no-norm", ["model.norm.weight", "missing"], "missing tensor")
    expect_import_error("bad/nothing-here", ["bad/nothing-here"], "missing directory")


with tempfile.TemporaryDirectory() as tmp:
    os.chdir(tmp)
    words = "the quick brown fox jumps over the lazy dog while a cat sleeps on a mat".split()
    with open("corpus.txt", "w") as f:
        f.write("\n\n".join(" ".join(words[(i + j) % len(words)] for j in range(20))
                            for i in range(50)) + "\n")
    run("prepare", "--tokenizer", "bytes", "--output", "data/train", "corpus.txt")
    test_cairn_to_hf()
    test_hf_to_cairn()
    test_bad_input()

finish("test_hf_interop")
