"""Zero-shot classification with a vision-language model's own text tower: class prompts → class embeddings."""
