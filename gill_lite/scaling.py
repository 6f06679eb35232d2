"""The paper-scale shapes, written out (no download), and an estimate of GPU memory for joint GILL training.

`OPT_6_7B`, `VIT_L_14`, `SD_TEXT_ENCODER` and `SD_UNET` are the published configurations as plain dicts
(the keyword arguments of transformers' ``OPTConfig``/``CLIPVisionConfig``/``CLIPTextConfig`` and diffusers'
``UNet2DConditionModel``); ``bench/paper_shapes.py`` builds random-weight models from them.

`estimate_paper_memory()` is an ESTIMATE, from parameter counts and an itemised count of the activations
autograd keeps, for one GPU of the paper's run (data parallel: every GPU holds the whole frozen LM, so the
figure depends only on the per-GPU batch, 100 in the paper, and not on the number of GPUs).
"""
from __future__ import annotations

OPT_6_7B = dict(vocab_size=50272, hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, ffn_dim=16384,
                max_position_embeddings=2048, word_embed_proj_dim=4096, do_layer_norm_before=True,
                activation_function="relu", enable_bias=True, tie_word_embeddings=True)
VIT_L_14 = dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                patch_size=14, image_size=224, projection_dim=768, hidden_act="quick_gelu")
SD_TEXT_ENCODER = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                       num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=768)
SD_UNET = dict(sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
               block_out_channels=[320, 640, 1280, 1280],
               down_block_types=["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
               up_block_types=["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
               cross_attention_dim=768, attention_head_dim=8, norm_num_groups=32, act_fn="silu")
SD_UNET_PARAMETERS = 859_520_964  # counted once from SD_UNET on the meta device (bench/paper_shapes.py checks it)

GIB = 1024 ** 3


def _layer_norm(h: int) -> int:
    return 2 * h


def _linear(i: int, o: int, bias: bool = True) -> int:
    return i * o + (o if bias else 0)


def opt_parameters(c: dict = OPT_6_7B) -> int:
    """OPTForCausalLM parameters (lm_head tied to the input embeddings)."""
    h, f = c["hidden_size"], c["ffn_dim"]
    layer = 4 * _linear(h, h) + _linear(h, f) + _linear(f, h) + 2 * _layer_norm(h)
    return c["vocab_size"] * h + (c["max_position_embeddings"] + 2) * h + c["num_hidden_layers"] * layer + _layer_norm(h)


def vit_parameters(c: dict = VIT_L_14) -> int:
    """CLIP vision tower up to the pooled, post-layernorm vector (no projection: GILL uses the 1024-d vector)."""
    w, f = c["hidden_size"], c["intermediate_size"]
    patches = (c["image_size"] // c["patch_size"]) ** 2
    layer = 4 * _linear(w, w) + _linear(w, f) + _linear(f, w) + 2 * _layer_norm(w)
    return 3 * c["patch_size"] ** 2 * w + w + (patches + 1) * w + 2 * _layer_norm(w) + c["num_hidden_layers"] * layer


def clip_text_parameters(c: dict = SD_TEXT_ENCODER) -> int:
    """CLIPTextModel parameters (SD's text encoder; no projection)."""
    w, f = c["hidden_size"], c["intermediate_size"]
    layer = 4 * _linear(w, w) + _linear(w, f) + _linear(f, w) + 2 * _layer_norm(w)
    return c["vocab_size"] * w + c["max_position_embeddings"] * w + c["num_hidden_layers"] * layer + _layer_norm(w)


def gill_trainable_parameters(lm_hidden: int = 4096, vision_width: int = 1024, n_visual: int = 4, n_img: int = 8,
                              d: int = 512, heads: int = 4, enc: int = 4, dec: int = 4, ffn: int = 2048,
                              queries: int = 77, text_width: int = 768, retrieval_dim: int = 256) -> dict:
    """The trainable parts of gill_spec.md, counted (``[IMG]`` rows: only the 8 rows that learn)."""
    del heads  # the head count does not change a Transformer's parameter count
    attn = 4 * _linear(d, d)
    enc_layer = attn + _linear(d, ffn) + _linear(ffn, d) + 2 * _layer_norm(d)
    dec_layer = 2 * attn + _linear(d, ffn) + _linear(ffn, d) + 3 * _layer_norm(d)
    parts = {
        "visual_prefix": _linear(vision_width, n_visual * lm_hidden),
        "img_token_rows": n_img * lm_hidden,
        "mapper": _linear(lm_hidden, d) + enc * enc_layer + dec * dec_layer + 2 * _layer_norm(d)
        + queries * d + _linear(d, text_width),
        "retrieval_heads": _linear(lm_hidden, retrieval_dim) + _linear(vision_width, retrieval_dim) + 1,
        "decision_head": _linear(lm_hidden, 2),
    }
    parts["total"] = sum(parts.values())
    return parts


def lm_activation_bytes_per_token(c: dict = OPT_6_7B, dtype_bytes: int = 2, flash: bool = True, seq: int = 40) -> int:
    """Bytes autograd keeps per token and per decoder layer of a frozen OPT layer in eval mode (no dropout).

    Itemised (h hidden, f ffn): attention layer-norm input h, its output (the QKV input) h, q/k/v 3h, the
    attention output (out-projection input) h, MLP layer-norm input h and output (fc1 input) h, the ReLU output
    (saved once: ReLU's backward and fc2's input are the same tensor) f: 8h + f values. Without
    memory-efficient attention the softmax probabilities add ``heads * seq`` values per token.
    """
    h, f, a = c["hidden_size"], c["ffn_dim"], c["num_attention_heads"]
    values = 8 * h + f + (0 if flash else a * seq)
    return values * dtype_bytes


def estimate_paper_memory(batch_per_gpu: int = 100, caption_tokens: int = 32, n_visual: int = 4, n_img: int = 8,
                          cached_features: bool = True, flash: bool = True, published_embedding: bool = False,
                          verbose: bool = True) -> dict:
    """ESTIMATE of peak GPU memory (GiB) per GPU for the paper's joint GILL training step, bf16 frozen weights.

    Per example the LM runs twice with gradients flowing back through every layer to its inputs: captioning
    (``n_visual`` prefix tokens + the caption) and ``[IMG]`` prediction (caption + 8 ``[IMG]`` tokens). The
    SD text-encoder targets are precomputed (the encoder and the UNet are not on the GPU during training);
    with ``cached_features`` the CLIP vision features are too. Trainable parts keep fp32 weights, gradients and
    two AdamW moments (16 bytes a parameter). The 8 ``[IMG]`` rows are a separate small parameter here
    (`gill_lite.model.img_tokens`), so the frozen 50k-row embedding matrix has no gradient; the published code
    masks the gradient of the whole matrix instead (``published_embedding=True``: a bf16 gradient and two AdamW
    moments of the whole matrix). Sequences are at most ``caption_tokens`` long (pairs concatenated within the
    budget). Returns the parts and ``total_gib``; prints ``name: value`` lines if ``verbose``.
    """
    c = OPT_6_7B
    h, v, layers = c["hidden_size"], c["vocab_size"], c["num_hidden_layers"]
    lm_params, vit_params = opt_parameters(c), vit_parameters()
    trainable = gill_trainable_parameters()["total"]
    seq_caption, seq_img = n_visual + caption_tokens, caption_tokens + n_img
    tokens = batch_per_gpu * (seq_caption + seq_img)
    act_lm = tokens * layers * lm_activation_bytes_per_token(c, flash=flash, seq=max(seq_caption, seq_img))
    act_lm += tokens * h * 2 * 2  # embeddings + final layer norm input/output
    logits = tokens * v * (2 + 4)  # bf16 logits + the fp32 log-softmax the cross-entropy keeps
    # mapper: 4 encoder layers over the 8 [IMG] states, 4 decoder layers over the 77 queries, bf16 autocast,
    # ~24 kept values per token and layer (self- and cross-attention inputs, q/k/v, the ffn's inner activation)
    mapper_token_layers = batch_per_gpu * (4 * n_img + 4 * 77)
    parts = {
        "lm_weights_gib": lm_params * 2 / GIB,
        "vision_weights_gib": 0.0 if cached_features else vit_params * 2 / GIB,
        "embedding_grad_gib": 3 * v * h * 2 / GIB if published_embedding else 0.0,
        "trainable_states_gib": trainable * 16 / GIB,
        "ddp_buckets_gib": trainable * 4 / GIB,
        "lm_activations_gib": act_lm / GIB,
        "logits_gib": logits / GIB,
        "mapper_activations_gib": mapper_token_layers * 512 * 24 * 2 / GIB,
        "cuda_context_gib": 1.0,
    }
    subtotal = sum(parts.values())
    parts["fragmentation_gib"] = 0.1 * subtotal  # the caching allocator rarely packs perfectly
    parts["total_gib"] = subtotal + parts["fragmentation_gib"]
    out = {
        "estimate": True,
        "batch_per_gpu": batch_per_gpu,
        "tokens_per_step": tokens,
        "lm_parameters": lm_params,
        "vision_parameters": vit_params,
        "sd_text_encoder_parameters": clip_text_parameters(),
        "sd_unet_parameters": SD_UNET_PARAMETERS,
        "trainable_parameters": trainable,
        **{k: round(val, 2) for k, val in parts.items()},
    }
    if verbose:
        for key, value in out.items():
            print(f"{key}: {value}")
    return out


if __name__ == "__main__":
    estimate_paper_memory()
