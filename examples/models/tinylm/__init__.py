"""A small causal transformer language model whose tokenizer reads its vocabulary resource."""
