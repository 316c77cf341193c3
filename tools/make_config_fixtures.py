"""Writes tests/fixtures/configs/tf5/<name>/config.json: config.json files as transformers 5 saves
them (rope_parameters instead of rope_theta/rope_scaling, layer_types for Qwen2), for
tests/test_model_config.c. Needs only PyPI's transformers >= 5 (no torch):
    python3 -m venv /tmp/tfv && /tmp/tfv/bin/pip install 'transformers>=5' && /tmp/tfv/bin/python tools/make_config_fixtures.py
The transformers 4 layout is covered by the parity fixtures (tests/fixtures/{gpt2,llama,bert}, 4.40)."""
import os
import sys

import transformers as T

assert int(T.__version__.split(".")[0]) >= 5, "transformers >= 5 writes rope_parameters"
root = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "configs", "tf5")
small = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, vocab_size=100)
configs = {
    "llama": T.LlamaConfig(**small, num_key_value_heads=2, rope_theta=100000.0, tie_word_embeddings=True),
    "llama3": T.LlamaConfig(**small, rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                                   "high_freq_factor": 4.0, "original_max_position_embeddings": 64}),
    "qwen2": T.Qwen2Config(**small, num_key_value_heads=2),
    "mistral": T.MistralConfig(**small, num_key_value_heads=2, sliding_window=32),
    "gpt2": T.GPT2Config(n_layer=2, n_embd=64, n_head=4, vocab_size=100, n_positions=64, bos_token_id=99, eos_token_id=99),
    "bert": T.BertConfig(**small),
    "roberta": T.RobertaConfig(**small),
}
for name, cfg in configs.items():
    cfg.save_pretrained(os.path.join(root, name))
    print(name, file=sys.stderr)
