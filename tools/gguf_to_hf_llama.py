#!/usr/bin/env python3
"""Writes a float32 Hugging Face Llama folder from a llama GGUF, independently of ShardQuant, so that
`shardquant perplexity --model DIR` (its LlamaSafetensorsSource path) can be compared with the GGUF:

    python tools/gguf_to_hf_llama.py MODEL.gguf TOKENIZER_JSON OUT_DIR

config.json (LlamaForCausalLM), model.safetensors ([out, in] float32, Hugging Face names; the query
and key rows put back from llama.cpp's adjacent-pair order with the inverse of convert_hf_to_gguf's
permute) and a copy of TOKENIZER_JSON. Needs numpy, gguf and safetensors.
"""
import json
import os
import shutil
import sys

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize
from safetensors.numpy import save_file


def value(reader, key, default=None):
    if key not in reader.fields:
        return default
    field = reader.fields[key]
    return field.parts[field.data[0]][0].item()


def main():
    path, tokenizer, out = sys.argv[1:4]
    reader = GGUFReader(path)
    heads = value(reader, "llama.attention.head_count")
    kv_heads = value(reader, "llama.attention.head_count_kv", heads)
    hidden = value(reader, "llama.embedding_length")
    names = {"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
             "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
             "ffn_down": "mlp.down_proj", "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm"}
    tensors = {}
    for tensor in reader.tensors:
        shape = tuple(int(n) for n in reversed(tensor.shape))
        array = dequantize(tensor.data, tensor.tensor_type).reshape(shape).astype(np.float32)
        if tensor.name == "token_embd.weight":
            name = "model.embed_tokens.weight"
        elif tensor.name == "output_norm.weight":
            name = "model.norm.weight"
        elif tensor.name == "output.weight":
            name = "lm_head.weight"
        else:
            _, layer, kind, suffix = tensor.name.split(".")
            name = f"model.layers.{layer}.{names[kind]}.{suffix}"
            if kind in ("attn_q", "attn_k"):
                count = heads if kind == "attn_q" else kv_heads
                # convert_hf_to_gguf: reshape(n, 2, d/2, in).swapaxes(1, 2); undone here.
                array = array.reshape(count, array.shape[0] // count // 2, 2, -1).swapaxes(1, 2).reshape(array.shape)
        tensors[name] = np.ascontiguousarray(array)
    os.makedirs(out, exist_ok=True)
    save_file(tensors, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": hidden,
              "num_hidden_layers": value(reader, "llama.block_count"), "num_attention_heads": heads,
              "num_key_value_heads": kv_heads, "intermediate_size": value(reader, "llama.feed_forward_length"),
              "vocab_size": len(reader.fields["tokenizer.ggml.tokens"].data),
              "max_position_embeddings": value(reader, "llama.context_length"),
              "rms_norm_eps": value(reader, "llama.attention.layer_norm_rms_epsilon"),
              "rope_theta": value(reader, "llama.rope.freq_base", 10000.0),
              "tie_word_embeddings": "output.weight" not in [t.name for t in reader.tensors], "torch_dtype": "float32"}
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    shutil.copyfile(tokenizer, os.path.join(out, "tokenizer.json"))


if __name__ == "__main__":
    main()
