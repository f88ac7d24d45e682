"""The included editor: dual-codebook audio tokenizer, token-to-audio decoder, codec evaluation."""
