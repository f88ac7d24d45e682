"""The editor's audio LLM: text tokenizer, joint vocabulary, chat format, model, sequence packing.

One file per idea:
- prompts.py         the two system prompts (zero-shot clone, unified edit)
- text_tokenizer.py  byte-level BPE over the project's own English and Chinese text
- vocab.py           joint id layout: text ids, then the 5120 audio ids, then special tokens
- chat.py            one example -> input_ids and labels (loss on the answer's audio only)
- model.py           decoder-only model from a size preset, optional warm start from a local checkpoint
- packing.py         several examples per row, attention kept inside each example
"""
