"""UserLM-8b's exact shape with random weights, for benchmarks on a GPU host with no model download.

`build_llama3_8b_shape` makes a Llama-3-8B (vocab 128,257, bf16) with small random weights (finite bf16
activations); `llama3_8b_shape_tokenizer` a 128,257-entry word-level tokenizer laid out like UserLM-8b's (special
tokens at 128000+, `<|endconversation|>` at 128256 as a non-special added token) with UserLM's chat template.
"""

from __future__ import annotations

from typing import Any

LLAMA3_8B = dict(
    vocab_size=128257,
    hidden_size=4096,
    intermediate_size=14336,
    num_hidden_layers=32,
    num_attention_heads=32,
    num_key_value_heads=8,
    max_position_embeddings=8192,
    rms_norm_eps=1e-5,
    bos_token_id=128000,
    eos_token_id=128001,
    tie_word_embeddings=False,
    rope_parameters={"rope_type": "default", "rope_theta": 500000.0},
)


def llama3_8b_shape_tokenizer() -> Any:
    """Word-level tokenizer with 128,257 ids laid out like UserLM-8b's and UserLM's chat template."""
    from tiny_llama import USERLM_CHAT_TEMPLATE
    from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {f"w{i}": i for i in range(128000)}
    vocab["\n"] = 198
    del vocab["w198"]
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="w0"))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split("\n", behavior="isolated"), pre_tokenizers.WhitespaceSplit()]
    )
    specials = ["<|begin_of_text|>", "<|end_of_text|>"] + [
        f"<|reserved_special_token_{i}|>" for i in range(2)
    ]
    specials += [
        "<|finetune_right_pad_id|>",
        "<|reserved_special_token_2|>",
        "<|start_header_id|>",
        "<|end_header_id|>",
        "<|eom_id|>",
        "<|eot_id|>",
    ]
    specials += [f"<|reserved_special_token_{i}|>" for i in range(3, 3 + 256 - len(specials))]
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    tok.add_tokens([AddedToken("<|endconversation|>", special=False, normalized=False)])
    assert tok.get_vocab_size() == 128257, tok.get_vocab_size()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|begin_of_text|>",
        eos_token="<|eot_id|>",
        chat_template=USERLM_CHAT_TEMPLATE,
    )


def build_llama3_8b_shape(device: str, meta: bool = False) -> Any:
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(**LLAMA3_8B)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device("meta" if meta else device):
            model = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(previous)
    if not meta:
        with torch.no_grad():  # small random weights keep bf16 activations finite
            for p in model.parameters():
                if p.dim() > 1:
                    p.normal_(0, 0.02)
    model.generation_config = GenerationConfig(bos_token_id=128000, eos_token_id=128009)
    return model.eval()
